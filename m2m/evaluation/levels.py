"""Loudness and peak sanity per clip, on the decoded files as a reader plays them: integrated
loudness and true peak (BS.1770, m2m/loudness.py), how much of the clip is silent, how many samples
sit at full scale. Stage 6 normalises every clip to one loudness under a peak ceiling; this checks
that what reached the files still holds it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from m2m.loudness import loudness_lufs, true_peak_db

SILENT_DBFS = -60.0  # a 100 ms frame quieter than this (RMS) counts as silence
FRAME_SECONDS = 0.1
CLIPPED = 0.999  # a sample at or above this magnitude sits at full scale (about -0.01 dBFS)


@dataclass(frozen=True)
class ClipLevels:
    page: int
    lufs: float | None  # None: the clip is silent
    true_peak_db: float
    silent_percent: float
    clipped_samples: int


@dataclass(frozen=True)
class Levels:
    """A run's clips: mean and spread (max - min) of their loudness, the highest true peak, the
    mean silent share and every clipped sample."""

    clips: tuple[ClipLevels, ...]
    mean_lufs: float | None
    lufs_spread: float | None
    max_true_peak_db: float
    mean_silent_percent: float
    clipped_samples: int


def silent_percent(samples: np.ndarray, sample_rate: int) -> float:
    frame = max(1, int(FRAME_SECONDS * sample_rate))
    n = samples.shape[1] // frame
    if n == 0:
        return 100.0
    power = (samples[:, :n * frame] ** 2).mean(axis=0).reshape(n, frame).mean(axis=1)
    return round(100.0 * float(np.mean(10 * np.log10(np.maximum(power, 1e-20)) < SILENT_DBFS)), 2)


def clip_levels(page: int, samples: np.ndarray, sample_rate: int) -> ClipLevels:
    lufs = loudness_lufs(samples, sample_rate)
    return ClipLevels(page, round(lufs, 2) if np.isfinite(lufs) else None,
                      round(true_peak_db(samples, sample_rate), 2), silent_percent(samples, sample_rate),
                      int((np.abs(samples) >= CLIPPED).sum()))


def levels(pages: Sequence[int], clips: Sequence[np.ndarray], sample_rate: int) -> Levels:
    each = tuple(clip_levels(p, c, sample_rate) for p, c in zip(pages, clips, strict=True))
    lufs = [c.lufs for c in each if c.lufs is not None]
    return Levels(each, round(float(np.mean(lufs)), 2) if lufs else None,
                  round(float(np.ptp(lufs)), 2) if lufs else None, max(c.true_peak_db for c in each),
                  round(float(np.mean([c.silent_percent for c in each])), 2), sum(c.clipped_samples for c in each))
