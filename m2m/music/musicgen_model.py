"""What the MusicGen engine needs of a loaded MusicGen, whichever library runs it.

``m2m.music.transformers_backend`` (always installed) and ``m2m.music.audiocraft_backend`` (optional)
each load a model that fits :class:`MusicGenModel`; ``m2m.music.musicgen`` runs the engine over either.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class MusicGenOptions:
    """The MusicGen engines' own options. ``device`` picks a torch device ("cpu", "cuda"; None: the
    GPU when there is one); ``allow_download`` lets missing weights download into the Hugging Face
    cache; ``prompt_seconds`` is how much of the previous page's tail a page continues from;
    ``guidance_scale`` is classifier-free guidance; ``batch_size`` is how many pages generate at once."""

    device: str | None = None
    allow_download: bool = False
    prompt_seconds: float = 3.0
    guidance_scale: float = 3.0
    batch_size: int = 4

    def __post_init__(self) -> None:
        if not 0.0 <= self.prompt_seconds <= 10.0:
            raise ValueError(f"prompt_seconds: {self.prompt_seconds} is outside 0..10 s")
        if self.batch_size < 1:
            raise ValueError(f"batch_size: {self.batch_size} must be at least 1")

    def settings(self) -> dict[str, Any]:
        """What changes the music (the device and the batch size do not)."""
        return {"prompt_seconds": self.prompt_seconds, "guidance_scale": self.guidance_scale}


class ModelMissingError(FileNotFoundError):
    """MusicGen weights are not in the Hugging Face cache and downloads were not allowed."""


class MusicGenModel(Protocol):
    """A loaded MusicGen on a device (``transformers_backend.LoadedModel``, ``audiocraft_backend.AudiocraftModel``)."""

    model_id: str
    device: str
    melody: bool

    @property
    def sample_rate(self) -> int: ...

    @property
    def frame_rate(self) -> float: ...

    @property
    def num_codebooks(self) -> int: ...

    @property
    def max_seconds(self) -> float: ...

    @property
    def backend(self) -> str: ...

    def generate(self, texts: list[str], prompts: list[np.ndarray] | None, new_tokens: int,
                 guidance_scale: float, seed: int, on_step: Callable[[], None]) -> list[np.ndarray]:
        """Per text, float32 ``[channels, samples]`` of new audio (a continuation's prompt stripped).
        ``prompts``: mono float32 arrays of equal length at ``sample_rate``, the audio each text
        continues (or, for a melody model, the melody it follows). ``new_tokens`` counts decoding
        steps including the delay pattern's ``num_codebooks - 1``; ``on_step`` is called per step."""
        ...


Loader = Callable[[str, str, bool], MusicGenModel]  # (model id, device, allow download) -> model
def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def gpu_function(fn):
    """``spaces.GPU`` on a ZeroGPU Space (a GPU is attached only while ``fn`` runs); else ``fn``."""
    if os.environ.get("SPACES_ZERO_GPU") and importlib.util.find_spec("spaces") is not None:
        import spaces

        return spaces.GPU(duration=120)(fn)
    return fn
