"""Stage 5: a page's cue → an audio clip, through one of several engines.

``available_engines()`` names them; ``load_engine(name)`` returns one (shared per process: engines
hold only loaded models or warm synths, never a reader's options, which come with each call).
"""

from __future__ import annotations

from dataclasses import fields
from functools import cache
from typing import Any

from m2m.music.base import Audio, Clip, Engine, EngineInfo, EngineOptions, Rendered, RenderOptions

ENGINES: tuple[str, ...] = (
    "composer", "musicgen-small", "musicgen-medium", "musicgen-melody", "musicgen-large", "library",
)
DEFAULT_ENGINE = "composer"


def available_engines() -> tuple[str, ...]:
    """The engine names ``load_engine`` accepts (MusicGen ones need their weights in the HF cache)."""
    return ENGINES


@cache
def load_engine(name: str) -> Engine:
    """The engine called ``name``, made once per process; an unknown name lists the valid ones."""
    if name == "composer":
        from m2m.music.composer import ComposerEngine

        return ComposerEngine()
    if name.startswith("musicgen-") and name in ENGINES:
        import os

        from m2m.music.musicgen import MusicGenEngine

        # which library runs MusicGen: transformers (always installed) or audiocraft (optional)
        return MusicGenEngine(name, backend=os.environ.get("M2M_MUSICGEN_BACKEND", "transformers"))
    if name == "library":
        from m2m.music.library import LibraryEngine

        return LibraryEngine()
    raise ValueError(f"engine: {name!r} is not one of {', '.join(ENGINES)}")


def engine_options(engine: Engine, **choices: Any) -> EngineOptions | None:
    """``engine``'s own options (its ``options_type``) from a reader's or command's choices (device,
    allow_download, library_dir ...): each engine takes the fields it has, None values dropped, so one
    set of choices serves every engine. None for an engine without options of its own."""
    kind = getattr(engine, "options_type", None)
    if kind is None:
        return None
    names = {f.name for f in fields(kind)}
    return kind(**{name: value for name, value in choices.items() if name in names and value is not None})


__all__ = [
    "Audio", "Clip", "DEFAULT_ENGINE", "ENGINES", "Engine", "EngineInfo", "RenderOptions", "Rendered",
    "EngineOptions", "available_engines", "engine_options", "load_engine",
]
