"""MusicGen-Melody's inputs without torchaudio: the tokenized caption plus the chroma of a melody.

transformers' ``MusicgenMelodyFeatureExtractor`` needs torchaudio only for its spectrogram and its
resampler, and torchaudio has no release for every torch (none for the one these machines install).
``MelodyProcessor`` computes the same features with ``torch.stft`` and scipy: a 16384-point
spectrogram every 4096 samples at 32 kHz, folded onto 12 pitch classes with the same filter bank
(``transformers.audio_utils.chroma_filter_bank``, librosa's), then one-hot on the strongest class per
frame. The only scaling the extractor applies before its argmax (a window norm, a max-norm per frame)
cannot move the argmax, so it is left out.

One difference on purpose: the extractor zero-pads a short melody to its 30-second chroma window,
which tells the model "C" for the padding (the argmax of a silent frame); here a short melody is
repeated to fill the window, as a looping page's music would be heard.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from m2m.music.base import resample


@dataclass(frozen=True)
class ChromaSettings:
    """The feature extractor's parameters (``preprocessor_config.json`` of a melody checkpoint)."""

    sampling_rate: int = 32000
    n_fft: int = 16384
    hop_length: int = 4096
    chunk_length: int = 30  # seconds of melody the model attends to
    num_chroma: int = 12

    @classmethod
    def from_config(cls, path: Path) -> ChromaSettings:
        """Read from a checkpoint's ``preprocessor_config.json``; unknown keys are ignored."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        keys = ("sampling_rate", "n_fft", "hop_length", "chunk_length", "num_chroma")
        return cls(**{k: int(data[k]) for k in keys if k in data})

    @property
    def window_samples(self) -> int:
        return self.chunk_length * self.sampling_rate


def melody_chroma(audio: np.ndarray, sample_rate: int, settings: ChromaSettings = ChromaSettings()) -> np.ndarray:
    """One-hot chroma ``[frames, num_chroma]`` (float32) of mono ``audio`` for MusicGen-Melody.

    The audio is resampled to the model's rate and repeated (or cut) to the chroma window, so every
    melody gives the model the same number of frames (235 for the released checkpoints).
    """
    import torch
    from transformers.audio_utils import chroma_filter_bank

    mono = np.asarray(audio, dtype=np.float32)
    if mono.ndim != 1 or mono.size == 0:
        raise ValueError(f"melody: expected non-empty mono audio, got shape {mono.shape}")
    mono = resample(mono, sample_rate, settings.sampling_rate)
    n = settings.window_samples
    mono = np.tile(mono, -(-n // mono.size))[:n]
    window = torch.hann_window(settings.n_fft)
    spectrum = torch.stft(torch.from_numpy(np.ascontiguousarray(mono)), settings.n_fft, settings.hop_length,
                          window=window, center=True, pad_mode="reflect", return_complex=True)
    power = spectrum.abs().square()  # [bins, frames]
    filters = torch.from_numpy(chroma_filter_bank(
        sampling_rate=settings.sampling_rate, num_frequency_bins=settings.n_fft, tuning=0,
        num_chroma=settings.num_chroma)).float()
    strongest = (filters @ power).argmax(dim=0)  # [frames]
    return torch.nn.functional.one_hot(strongest, settings.num_chroma).float().numpy()


@dataclass(frozen=True)
class MelodyProcessor:
    """Called like transformers' ``MusicgenMelodyProcessor``: text (and optionally melodies) in,
    ``input_ids``/``attention_mask`` (and ``input_features``, the chroma) out as torch tensors."""

    tokenizer: Any
    chroma: ChromaSettings = ChromaSettings()

    def __call__(self, text: list[str], audio: list[np.ndarray] | None = None, sampling_rate: int | None = None,
                 padding: bool = True, return_tensors: str = "pt") -> dict[str, Any]:
        import torch

        if return_tensors != "pt":
            raise ValueError(f"return_tensors: only 'pt' is supported, got {return_tensors!r}")
        inputs = dict(self.tokenizer(text, padding=padding, return_tensors="pt"))
        if audio is not None:
            if len(audio) != len(text):
                raise ValueError(f"audio: {len(audio)} melodies for {len(text)} captions")
            rate = sampling_rate or self.chroma.sampling_rate
            inputs["input_features"] = torch.from_numpy(np.stack([melody_chroma(a, rate, self.chroma) for a in audio]))
        return inputs
