"""MusicGen through ``transformers``: loading a checkpoint from the Hugging Face cache and one
batched ``generate`` call (the engine's windows, continuation and batching are ``m2m.music.musicgen``'s).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from m2m.music.melody import ChromaSettings, MelodyProcessor
from m2m.music.musicgen_model import ModelMissingError, gpu_function


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model and its processor on a device. ``melody``: a MusicGen-Melody (chroma-conditioned)."""

    model: Any
    processor: Any
    model_id: str
    device: str
    melody: bool = False

    @property
    def sample_rate(self) -> int:
        return int(self.model.config.audio_encoder.sampling_rate)

    @property
    def frame_rate(self) -> float:
        config = self.model.config.audio_encoder
        hop = int(np.prod(config.upsampling_ratios))
        return config.sampling_rate / hop

    @property
    def num_codebooks(self) -> int:
        return int(self.model.decoder.num_codebooks)

    @property
    def max_seconds(self) -> float:
        """The longest window the decoder's positions allow (prompt included), one second spare."""
        return self.model.config.decoder.max_position_embeddings / self.frame_rate - 1

    @property
    def backend(self) -> str:
        return "transformers"

    def generate(self, texts: list[str], prompts: list[np.ndarray] | None, new_tokens: int,
                 guidance_scale: float, seed: int, on_step: Callable[[], None]) -> list[np.ndarray]:
        return _generate(self, texts, prompts, new_tokens, guidance_scale, seed, on_step)


@lru_cache(maxsize=2)
def load_pretrained(model_id: str, device: str, allow_download: bool = False) -> LoadedModel:
    """A MusicGen from the Hugging Face cache, fp16 on GPU; loaded once per (model, device)."""
    import torch
    from transformers import (
        AutoProcessor,
        MusicgenForConditionalGeneration,
        MusicgenMelodyForConditionalGeneration,
    )

    melody = "melody" in model_id
    cls = MusicgenMelodyForConditionalGeneration if melody else MusicgenForConditionalGeneration
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    try:
        processor = _melody_processor(model_id, allow_download) if melody else \
            AutoProcessor.from_pretrained(model_id, local_files_only=not allow_download)
        model = cls.from_pretrained(model_id, local_files_only=not allow_download, dtype=dtype)
    except OSError as e:
        raise ModelMissingError(
            f"engine: {model_id} is not in the Hugging Face cache; fetch it with "
            f"`huggingface-cli download {model_id}` (or allow downloads: --allow-download)") from e
    return LoadedModel(model.to(device).eval(), processor, model_id, device, melody)


def _melody_processor(model_id: str, allow_download: bool) -> MelodyProcessor:
    """The melody checkpoint's tokenizer and chroma settings, with chroma computed here
    (``m2m.music.melody``): transformers' own feature extractor needs torchaudio."""
    from huggingface_hub import hf_hub_download
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_id, local_files_only=not allow_download)
    if Path(model_id).is_dir():  # a saved checkpoint, as from_pretrained accepts
        config = Path(model_id) / "preprocessor_config.json"
    else:
        config = Path(hf_hub_download(model_id, "preprocessor_config.json", local_files_only=not allow_download))
    return MelodyProcessor(tokenizer, ChromaSettings.from_config(config))


class _StepCounter:
    """A logits processor that reports each decoding step and changes nothing."""

    def __init__(self, report: Callable[[], None]) -> None:
        self.report = report

    def __call__(self, input_ids, scores):
        self.report()
        return scores


def _generate_impl(loaded: LoadedModel, texts: list[str], prompts: list[np.ndarray] | None, new_tokens: int,
                   guidance_scale: float, seed: int, on_step: Callable[[], None]) -> list[np.ndarray]:
    """One batched ``generate``: per text, float32 ``[channels, samples]`` at the model's rate, the
    audio prompt (if any) stripped off. ``prompts`` are mono float32 arrays of equal length."""
    import torch
    from transformers import LogitsProcessorList

    kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
    if prompts is not None:
        kwargs.update(audio=[p.astype(np.float32) for p in prompts], sampling_rate=loaded.sample_rate)
    inputs = loaded.processor(**kwargs)
    model_dtype = next(loaded.model.parameters()).dtype
    inputs = {k: (v.to(loaded.device, dtype=model_dtype) if v.is_floating_point() else v.to(loaded.device))
              for k, v in inputs.items()}
    with torch.random.fork_rng(devices=[] if loaded.device == "cpu" else None), torch.inference_mode():
        torch.manual_seed(seed)  # inside fork_rng: the process-wide generator is left as it was
        out = loaded.model.generate(
            **inputs, do_sample=True, guidance_scale=guidance_scale, max_new_tokens=new_tokens,
            logits_processor=LogitsProcessorList([_StepCounter(on_step)]))
    audio = out.float().cpu().numpy()  # [batch, channels, samples]
    if prompts is not None and not loaded.melody:
        hop = int(round(loaded.sample_rate / loaded.frame_rate))
        prompt_frames = int(np.ceil(len(prompts[0]) / hop))
        audio = audio[:, :, prompt_frames * hop:]
    return [a for a in audio]


_generate = gpu_function(_generate_impl)
