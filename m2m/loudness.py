"""Loudness (ITU-R BS.1770), true peak, and normalising a clip to a loudness under a peak ceiling.

Integrated loudness comes from ``loudness`` (libloudness, C++). The true peak is estimated by 4x
oversampling with BS.1770-4 Annex 2's kind of 48-tap interpolation filter, and a gentle look-ahead
limiter holds it under the ceiling. Everything here is numpy and ``loudness``, on purpose not scipy:
``scipy.signal`` takes over a second of CPU to import, all of it holding the GIL, which stalls the
synthesis threads of a render that has just started (``bench/music.py``'s cold render). The few
filters needed are small enough to write out, and the tests hold them to scipy's results.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import loudness
import numpy as np


@dataclass(frozen=True)
class Loudness:
    lufs: float
    true_peak_db: float


# ---------------------------------------------------------------------------------------------
# measuring


def loudness_lufs(samples: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (ITU-R BS.1770 with EBU R 128's gating) of ``[channels, samples]`` audio;
    -inf when silent."""
    if samples.shape[1] < int(0.4 * sample_rate):
        raise ValueError(f"audio: {samples.shape[1] / sample_rate:.2f} s is too short to measure (at least 0.4 s)")
    if samples.shape[0] > 5:
        raise ValueError(f"audio: {samples.shape[0]} channels; BS.1770 loudness is defined for up to 5")
    return float(loudness.integrated_loudness(np.ascontiguousarray(samples.T, dtype=np.float32), sample_rate))


_UP = 4  # oversampling factor of the true-peak estimate


@cache
def interpolation_filter() -> np.ndarray:
    """BS.1770-4 Annex 2's kind of true-peak filter: a 48-tap, 4-phase low-pass at a quarter of the
    oversampled band; here a Kaiser-windowed sinc (beta 6) with unit gain at 0 Hz, which is what
    ``scipy.signal.firwin(48, 0.25, window=("kaiser", 6.0))`` designs."""
    taps = 48
    n = np.arange(taps) - (taps - 1) / 2
    h = 0.25 * np.sinc(0.25 * n) * np.kaiser(taps, 6.0)
    return h / h.sum()


def oversample(samples: np.ndarray) -> np.ndarray:
    """``[channels, samples]`` at four times the rate (zeros stuffed in, then the interpolation
    filter), aligned so output sample ``4 i`` is input sample ``i``: the same numbers as
    ``scipy.signal.resample_poly(samples, 4, 1, axis=1, window=interpolation_filter())``."""
    # resample_poly centres the filter by putting one zero in front and dropping the first 24
    # outputs; output 4 q + p is then sum_i h[4 (q - i + 6) + p] x[i], so each phase p is x convolved
    # with every 4th tap (12 taps instead of 49 on a 4x longer signal)
    h = np.concatenate(([0.0], _UP * interpolation_filter())).astype(np.float32)
    skip = (h.size - 1) // 2 // _UP
    n = samples.shape[1]
    out = np.empty((samples.shape[0], n, _UP), dtype=np.float32)
    for channel, x in enumerate(np.asarray(samples, dtype=np.float32)):
        for phase in range(_UP):
            out[channel, :, phase] = np.convolve(x, h[phase::_UP])[skip:skip + n]
    return out.reshape(samples.shape[0], _UP * n)


def true_peak_db(samples: np.ndarray, sample_rate: int) -> float:
    """The true peak of ``[channels, samples]`` audio in dBTP, from 4x oversampling (BS.1770-4)."""
    del sample_rate  # the oversampling factor is fixed; the rate does not change the estimate
    peak = float(np.abs(oversample(samples)).max()) if samples.size else 0.0
    return float(20 * np.log10(max(peak, 1e-12)))


_BLOCK = 4096
_HEADROOM = 10 ** (-4.0 / 20)  # inter-sample peaks of music stay well within 4 dB of the sample peaks


def _peak_envelope(samples: np.ndarray, threshold: float) -> np.ndarray:
    """Per sample, the largest 4x-oversampled magnitude over channels around it.

    Only blocks whose sample peak comes within 4 dB of ``threshold`` are oversampled; elsewhere the
    sample magnitude stands in (the true peak there is far below the threshold anyway). This keeps
    normalisation cheap: a 4x oversampling of a whole clip costs more than the rest together.
    """
    envelope = np.abs(samples).max(axis=0)
    n = envelope.shape[0]
    blocks = -(-n // _BLOCK)
    block_peaks = np.pad(envelope, (0, blocks * _BLOCK - n)).reshape(blocks, _BLOCK).max(axis=1)
    hot = np.flatnonzero(block_peaks > threshold * _HEADROOM)
    if hot.size == 0:
        return envelope
    runs = np.split(hot, np.flatnonzero(np.diff(hot) > 1) + 1)
    for run in runs:
        a, b = run[0] * _BLOCK, min(n, (run[-1] + 1) * _BLOCK)
        lo, hi = max(0, a - 64), min(n, b + 64)
        up = np.abs(oversample(samples[:, lo:hi])).max(axis=0)
        envelope[a:b] = up[_UP * (a - lo): _UP * (b - lo)].reshape(b - a, _UP).max(axis=1)
    return envelope


# ---------------------------------------------------------------------------------------------
# sliding-window filters for the limiter's gain curve


def _padded(x: np.ndarray, before: int, after: int, wrap: bool) -> np.ndarray:
    """``x`` extended at both ends: around the loop (``wrap``) or by repeating the end samples."""
    if not wrap:
        return np.pad(x, (before, after), mode="edge")
    reps = -(-max(before, after) // x.size)  # a window may be longer than a very short clip
    tiled = np.tile(x, 2 * reps + 1)
    start = reps * x.size - before
    return tiled[start:start + before + x.size + after]


def sliding_min(x: np.ndarray, size: int, wrap: bool) -> np.ndarray:
    """The minimum over a centred window of ``size`` samples (odd), as ``scipy.ndimage.minimum_filter1d``
    with mode "wrap" or "nearest": van Herk / Gil-Werman, O(n) whatever the size."""
    half = size // 2
    padded = _padded(x, half, half, wrap)
    n = padded.size
    blocks = -(-n // size)
    grid = np.pad(padded, (0, blocks * size - n), constant_values=np.inf).reshape(blocks, size)
    forward = np.minimum.accumulate(grid, axis=1).ravel()  # min from each block's start to here
    backward = np.minimum.accumulate(grid[:, ::-1], axis=1)[:, ::-1].ravel()  # min from here to its end
    # a window [i, i + size) spans at most two blocks: its part in the first ends at that block's end
    return np.minimum(backward[:x.size], forward[size - 1:size - 1 + x.size])


def sliding_mean(x: np.ndarray, size: int, wrap: bool) -> np.ndarray:
    """The mean over a window of ``size`` samples centred as ``scipy.ndimage.uniform_filter1d`` centres
    it (an even size leans one sample to the left), with mode "wrap" or "nearest"."""
    before, after = size // 2, size - 1 - size // 2
    padded = _padded(np.asarray(x, dtype=np.float64), before, after, wrap)
    running = np.concatenate(([0.0], np.cumsum(padded)))
    return (running[size:size + x.size] - running[:x.size]) / size


# ---------------------------------------------------------------------------------------------
# normalising


def _limit(samples: np.ndarray, envelope: np.ndarray, ceiling: float, sample_rate: int, loop: bool) -> np.ndarray:
    """Hold the peak ``envelope`` under ``ceiling`` (linear) with a smooth gain curve (about 20 ms
    each side of a peak), wrapping around the ends of a loop so the seam stays continuous."""
    needed = np.minimum(1.0, ceiling / np.maximum(envelope, 1e-9))
    width = max(1, int(0.01 * sample_rate))
    # the minimum over 2w+1 samples, then a mean over w+1, stays below what every sample needs
    gain = sliding_min(needed, 2 * width + 1, wrap=loop)
    gain = sliding_mean(gain, width + 1, wrap=loop)
    return samples * gain[None, :].astype(samples.dtype)


def normalize(samples: np.ndarray, sample_rate: int, target_lufs: float = -16.0, true_peak_db_max: float = -1.0,
              loop: bool = True) -> tuple[np.ndarray, Loudness]:
    """``[channels, samples]`` audio at ``target_lufs`` with its true peak under ``true_peak_db_max``.

    A gain brings the loudness to the target; peaks that would then pass the ceiling are limited,
    and the small loudness the limiter took is given back (twice at most, re-limiting each time).
    """
    lufs = loudness_lufs(samples, sample_rate)
    if not np.isfinite(lufs):
        raise ValueError("audio: the clip is silent; nothing to normalise")
    ceiling = 10 ** ((true_peak_db_max - 0.1) / 20)
    out = samples.astype(np.float32) * np.float32(10 ** ((target_lufs - lufs) / 20))
    lufs = target_lufs  # a gain shifts integrated loudness by exactly that many dB
    envelope = _peak_envelope(out, ceiling)
    for _ in range(3):
        if envelope.max() <= ceiling:
            break
        out = _limit(out, envelope, ceiling, sample_rate, loop)
        lufs = loudness_lufs(out, sample_rate)
        if target_lufs - lufs > 0.05:
            out = out * np.float32(10 ** ((target_lufs - lufs) / 20))
            lufs = target_lufs
        envelope = _peak_envelope(out, ceiling)
    peak = float(envelope.max())
    if peak > ceiling:  # a last resort the limiter makes rare: a plain gain down to the ceiling
        out = out * np.float32(ceiling / peak)
        lufs += 20 * np.log10(ceiling / peak)
        peak = ceiling
    return out, Loudness(round(float(lufs), 2), round(float(20 * np.log10(max(peak, 1e-12))), 2))


# ---------------------------------------------------------------------------------------------
# riding the level of a loop

RIDE_WINDOW_SECONDS = 3.0  # EBU R 128's short-term window: what a listener hears as "the level now"
RIDE_HOP_SECONDS = 0.5  # the gain moves by straight ramps between points this far apart
RIDE_MAX_DB = 2.5  # the most the rider turns any moment up or down
RIDE_PASSES = 6  # each pass corrects what the one before left (loudness is not quite linear in the gain)
# how much a fast gain move costs against a level error (see window_gain); at 0.3 a loop kept 0.4-0.8 LU
# of its phrase swell, at 0.05 0.3-0.6 LU, the gain still moving no faster than ~1 dB a tenth of a second
RIDE_STEADINESS = 0.05


def short_term_profile(loop: np.ndarray, sample_rate: int, window_seconds: float = RIDE_WINDOW_SECONDS,
                       hop_seconds: float = RIDE_HOP_SECONDS) -> tuple[np.ndarray, np.ndarray]:
    """(window centres in samples, their loudness in LUFS) of a looping ``[channels, samples]`` clip:
    BS.1770 over ``window_seconds`` centred every ``hop_seconds``, wrapping round the loop's end as
    it plays when it repeats. A silent window reads as -inf."""
    n, window, hop = loop.shape[1], int(round(window_seconds * sample_rate)), int(round(hop_seconds * sample_rate))
    centres = np.arange(0, n, max(1, hop))
    levels = np.array([loudness_lufs(loop[:, np.arange(c - window // 2, c - window // 2 + window) % n], sample_rate)
                       for c in centres])
    return centres, levels


def window_gain(error_db: np.ndarray, window_points: int, steadiness: float = RIDE_STEADINESS) -> np.ndarray:
    """The gains (dB, one per point, round a loop) whose average over each ``window_points`` window
    best cancels that window's ``error_db``, with fast moves between neighbouring points penalised by
    ``steadiness``: least squares, solved exactly since both the window and the loop are circular.
    Simply applying each window's error at its centre would over-correct its neighbours (every
    window overlaps several), and an error that alternates from point to point would grow."""
    m = error_db.size
    window = np.zeros(m)
    window[(np.arange(window_points) - window_points // 2) % m] = 1.0 / window_points
    averaging = np.fft.fft(window)
    moving = 1.0 - np.exp(-2j * np.pi * np.arange(m) / m)  # a first difference round the loop
    solved = np.fft.fft(error_db) * np.conj(averaging) / (np.abs(averaging) ** 2 + steadiness * np.abs(moving) ** 2)
    return np.real(np.fft.ifft(solved))


def ride_level(loop: np.ndarray, sample_rate: int, max_db: float = RIDE_MAX_DB,
               window_seconds: float = RIDE_WINDOW_SECONDS) -> np.ndarray:
    """A looping ``[channels, samples]`` clip with its short-term loudness held at its own level, as a
    mixing engineer rides the fader of background music: wherever a 3 s stretch sounds quieter or
    louder than the whole loop it is turned up or down (by ``max_db`` at most), by a gain that moves
    in straight half-second ramps and wraps round the loop, so the seam stays as smooth as before.

    Why: a page's clip loops while the reader turns pages at their own pace, so the page turn catches
    it anywhere in its phrase; a clip whose level wanders by 1-2 LU over its phrases makes the turn
    jump by as much, however well the pages' integrated loudness is matched. Notes keep their own
    dynamics (velocity, accents, the timbre of a louder note); only the slow level is evened.
    A loop shorter than two windows, or silent, is returned as it is."""
    n = loop.shape[1]
    if n < 2 * window_seconds * sample_rate:
        return loop
    target = loudness_lufs(loop, sample_rate)
    if not np.isfinite(target):
        return loop
    out, total_db = loop.astype(np.float32), np.zeros(n)
    positions = np.arange(n)
    for _ in range(RIDE_PASSES):
        centres, levels = short_term_profile(out, sample_rate, window_seconds)
        error_db = np.where(np.isfinite(levels), target - levels, 0.0)
        step_db = window_gain(error_db, int(round(window_seconds / RIDE_HOP_SECONDS)))
        # the ramps wrap: the last point ramps to the first one a loop later
        ramp = np.interp(positions, np.r_[centres, n], np.r_[step_db, step_db[0]])
        new_total = np.clip(total_db + ramp, -max_db, max_db)
        out = (out * (10.0 ** ((new_total - total_db) / 20.0)).astype(np.float32)).astype(np.float32)
        total_db = new_total
    return out
