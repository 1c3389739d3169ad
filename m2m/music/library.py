"""The ``library`` engine (the paper's random condition) and the library it reads.

A library is a folder of clips made by an engine from varied random plans, indexed by
``library.json`` (``m2m.music.library_builder`` makes one). The engine picks a clip per page at
random, seeded by (book seed, page), so a run is reproducible while pages get unrelated music: the
lower bound of the listening study.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from m2m.audio import read_audio
from m2m.cues import Cue, Plan
from m2m.jsonio import from_jsonable
from m2m.music.base import Audio, EngineInfo, Rendered, RenderOptions, stable_seed

INDEX = "library.json"


@dataclass(frozen=True)
class LibraryClip:
    """One clip of a library: ``file`` relative to the library folder; seconds; Hz."""

    file: str
    seconds: float
    sample_rate: int
    loop: bool
    caption: str
    plan: Plan


@dataclass(frozen=True)
class Library:
    engine: str
    clips: tuple[LibraryClip, ...]


def read_library(folder: Path) -> Library:
    path = Path(folder) / INDEX
    if not path.is_file():
        raise ValueError(f"library_dir: {folder} has no {INDEX}; make one with "
                         "`m2m library build --engine composer --out DIR --count N`")
    import json

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from e
    library = from_jsonable(Library, raw, source=str(path))
    if not library.clips:
        raise ValueError(f"{path}: the library has no clips")
    return library


@dataclass(frozen=True)
class LibraryOptions:
    """The library engine's own options: ``library_dir``, the clip library it draws from."""

    library_dir: Path | None = None

    def settings(self) -> dict[str, Any]:
        return {"library_dir": str(self.library_dir) if self.library_dir else None}


class LibraryEngine:
    """The ``library`` engine: a seeded random clip per page from ``LibraryOptions.library_dir``."""

    name = "library"
    continues = False
    options_type = LibraryOptions
    version = "library-1"

    def render(self, cue: Cue, options: RenderOptions) -> Rendered:
        folder = options.options_for(LibraryOptions).library_dir
        if folder is None:
            raise ValueError("library_dir: the library engine needs a clip library folder "
                             "(`m2m library build --engine composer --out DIR --count N`)")
        library = read_library(folder)
        rng = np.random.default_rng(stable_seed(options.seed, "library", cue.page))
        pick = library.clips[int(rng.integers(len(library.clips)))]
        audio = read_audio(Path(folder) / pick.file)
        info = EngineInfo(engine=self.name, model=f"{library.engine} library {folder}",
                          details={"clip": pick.file, "clip_caption": pick.caption})
        if options.progress is not None:
            options.progress(1, 1)
        return Rendered(cue.page, Audio(audio.samples, audio.sample_rate), pick.loop, info)

    def render_many(self, cues: Sequence[Cue], options: RenderOptions, *,
                    after: Mapping[int, int | None] | None = None, previous: Mapping[int, Audio] | None = None,
                    on_rendered: Callable[[Rendered], None] | None = None) -> list[Rendered]:
        out = []
        for cue in cues:
            rendered = self.render(cue, options)
            if on_rendered is not None:
                on_rendered(rendered)
            out.append(rendered)
        return out
