"""What the MusicGen engine needs of a loaded MusicGen, whichever library runs it.

``m2m.music.transformers_backend`` (always installed) and ``m2m.music.audiocraft_backend`` (optional)
each load a model that fits :class:`MusicGenModel`; ``m2m.music.musicgen`` runs the engine over either.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Protocol

import numpy as np


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
