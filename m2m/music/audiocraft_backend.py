"""audiocraft (Meta's reference MusicGen) as a second backend of the MusicGen engines.

Optional: audiocraft pins an old torch and xformers, so it does not install beside this project's
torch and gradio; it runs where someone has built an environment for it (``pip install audiocraft``
with the torch it supports). Choose it with ``M2M_MUSICGEN_BACKEND=audiocraft``. The engine logic
(windows, continuation from the previous page, batching, loop seams) is the same as with
transformers; only loading and the ``generate`` call differ.

audiocraft reads weights through ``huggingface_hub`` without a way to forbid downloads, so the cache
is checked here first: with downloads not allowed, missing files are a ``ModelMissingError`` that
names them, never a silent fetch.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from m2m.music.musicgen_model import ModelMissingError, gpu_function

# What MusicGen.get_pretrained reads for a hub checkpoint, and the text encoder its conditioner loads.
CHECKPOINT_FILES = ("state_dict.bin", "compression_state_dict.bin")
TEXT_ENCODER = ("t5-base", "config.json")
INSTALL_HINT = ("install audiocraft in an environment whose torch it supports (`pip install audiocraft`), "
                "or use the transformers backend (M2M_MUSICGEN_BACKEND=transformers)")


@dataclass(frozen=True, eq=False)
class AudiocraftModel:
    """An ``audiocraft.models.MusicGen`` on a device. One generation at a time per model: audiocraft
    keeps its generation parameters on the model object."""

    model: Any
    model_id: str
    device: str
    melody: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def sample_rate(self) -> int:
        return int(self.model.sample_rate)

    @property
    def frame_rate(self) -> float:
        return float(self.model.frame_rate)

    @property
    def num_codebooks(self) -> int:
        return int(self.model.lm.num_codebooks)

    @property
    def max_seconds(self) -> float:
        return float(self.model.max_duration)

    @property
    def backend(self) -> str:
        return "audiocraft"

    def generate(self, texts: list[str], prompts: list[np.ndarray] | None, new_tokens: int,
                 guidance_scale: float, seed: int, on_step: Callable[[], None]) -> list[np.ndarray]:
        with self.lock:
            return _generate(self, texts, prompts, new_tokens, guidance_scale, seed, on_step)


def missing_files(model_id: str) -> list[str]:
    """The hub files ``get_pretrained`` would need that are not in the Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    wanted = [(model_id, name) for name in CHECKPOINT_FILES] + [TEXT_ENCODER]
    return [f"{repo}/{name}" for repo, name in wanted if not isinstance(try_to_load_from_cache(repo, name), str)]


@lru_cache(maxsize=2)
def load_audiocraft(model_id: str, device: str, allow_download: bool = False) -> AudiocraftModel:
    """``audiocraft.models.MusicGen.get_pretrained`` from the Hugging Face cache; loaded once per
    (model, device). audiocraft itself chooses float16 on a GPU."""
    if importlib.util.find_spec("audiocraft") is None:
        raise ModelMissingError(f"engine: the audiocraft backend is not installed; {INSTALL_HINT}")
    if not allow_download and not _is_local(model_id):
        missing = missing_files(model_id)
        if missing:
            raise ModelMissingError(
                f"engine: {model_id} (audiocraft) needs {', '.join(missing)} in the Hugging Face cache; fetch "
                f"them with `huggingface-cli download {model_id} {' '.join(CHECKPOINT_FILES)}` and "
                f"`huggingface-cli download {TEXT_ENCODER[0]}` (or allow downloads: --allow-download)")
    from audiocraft.models import MusicGen

    model = MusicGen.get_pretrained(model_id, device=device)
    return AudiocraftModel(model, model_id, device, melody="melody" in model_id)


def _is_local(model_id: str) -> bool:
    from pathlib import Path

    return Path(model_id).is_dir()


def _generate_impl(loaded: AudiocraftModel, texts: list[str], prompts: list[np.ndarray] | None, new_tokens: int,
                   guidance_scale: float, seed: int, on_step: Callable[[], None]) -> list[np.ndarray]:
    """One batched audiocraft call (``generate``, ``generate_continuation`` or, for a melody model,
    ``generate_with_chroma``), returning only the new audio per text."""
    import torch

    model = loaded.model
    new_seconds = max(1, new_tokens - (loaded.num_codebooks - 1)) / loaded.frame_rate
    continuing = prompts is not None and not loaded.melody
    prompt_seconds = len(prompts[0]) / loaded.sample_rate if continuing else 0.0
    # audiocraft's duration counts a continuation's prompt, as MusicGen's 30-second window does
    model.set_generation_params(use_sampling=True, top_k=250, duration=prompt_seconds + new_seconds,
                                cfg_coef=guidance_scale)
    model.set_custom_progress_callback(lambda generated, total: on_step())
    with torch.random.fork_rng(devices=[] if loaded.device == "cpu" else None), torch.inference_mode():
        torch.manual_seed(seed)  # audiocraft samples from the process-wide generator; fork_rng restores it
        if prompts is None:
            wav = model.generate(texts, progress=True)
        elif loaded.melody:
            melodies = [torch.from_numpy(np.asarray(p, dtype=np.float32))[None].to(loaded.device) for p in prompts]
            wav = model.generate_with_chroma(texts, melodies, loaded.sample_rate, progress=True)
        else:
            batch = torch.from_numpy(np.stack(prompts).astype(np.float32))[:, None].to(loaded.device)
            wav = model.generate_continuation(batch, loaded.sample_rate, texts, progress=True)
    audio = wav.float().cpu().numpy()  # [batch, channels, samples]
    if continuing:
        audio = audio[:, :, len(prompts[0]):]  # the output starts with the prompt, re-decoded
    return [a for a in audio]


_generate = gpu_function(_generate_impl)
