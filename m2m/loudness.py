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
RIDE_HOP_SECONDS = 0.25  # the gain moves by straight ramps between points this far apart
RIDE_MAX_DB = 2.5  # the most the rider turns any moment up or down
RIDE_PASSES = 3  # Gauss-Newton steps: loudness is not quite linear in the gain; the third changes ~nothing
# what a gain move between neighbouring points costs against the windows' level errors (ride_level).
# On the example book's composed loops the level moves from one 3 s to the next by 0.070 LU on average
# at 0.05, 0.055 at 0.02, 0.046 at 0.01, the gain moving at most 0.8, 1.0, 1.3 dB a tenth of a second;
# the ride this replaced (a plain-window deconvolution in 6 passes) left 0.087 with moves of 1.5 dB
RIDE_STEADINESS = 0.02
_GATE_BLOCK_SECONDS, _GATE_STEP_SECONDS = 0.4, 0.1  # BS.1770's gating blocks: 400 ms, 75 % overlap


def k_weighting(freqs: np.ndarray, sample_rate: int) -> np.ndarray:
    """The magnitude of BS.1770's K-weighting (its high shelf, then its high pass) at ``freqs`` Hz,
    with the filters designed for ``sample_rate`` as libebur128 (the ``loudness`` meter) designs them."""
    z = np.exp(-2j * np.pi * np.asarray(freqs, dtype=np.float64) / sample_rate)

    def biquad(b: tuple[float, float, float], a: tuple[float, float, float]) -> np.ndarray:
        return (b[0] + b[1] * z + b[2] * z * z) / (a[0] + a[1] * z + a[2] * z * z)

    k = np.tan(np.pi * 1681.974450955533 / sample_rate)
    q, vh = 0.7071752369554196, 10 ** (3.999843853973347 / 20)
    vb = vh ** 0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = biquad(((vh + vb * k / q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0),
                   (1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0))
    k, q = np.tan(np.pi * 38.13547087602444 / sample_rate), 0.5003270373238773
    a0 = 1 + k / q + k * k
    high_pass = biquad((1.0, -2.0, 1.0), (1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0))
    return np.abs(shelf * high_pass)


def k_weighted_power(loop: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per sample, the K-weighted power of a ``[channels, samples]`` loop summed over its channels
    (BS.1770's weights for left and right are 1). The loop is filtered round its seam, as it plays
    when it repeats: by its spectrum, which needs no filter state (and no scipy, see above)."""
    n = loop.shape[1]
    spectrum = np.fft.rfft(loop.astype(np.float64), axis=1) * k_weighting(np.fft.rfftfreq(n, 1 / sample_rate),
                                                                           sample_rate)
    return (np.fft.irfft(spectrum, n, axis=1) ** 2).sum(axis=0)


def _gated(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BS.1770's gating of rows of block powers (K-weighted mean squares): (each row's loudness in
    LUFS, -inf where every block is below the absolute gate; the blocks each row keeps)."""
    kept = blocks > 10 ** ((-70.0 + 0.691) / 10)
    ungated = np.where(kept, blocks, 0.0).sum(axis=1) / np.maximum(kept.sum(axis=1), 1)
    kept &= blocks > ungated[:, None] * 0.1  # the relative gate: 10 LU under the ungated loudness
    mean = np.where(kept, blocks, 0.0).sum(axis=1) / np.maximum(kept.sum(axis=1), 1)
    with np.errstate(divide="ignore"):
        return np.where(kept.any(axis=1), -0.691 + 10 * np.log10(mean), -np.inf), kept


def short_term_profile(loop: np.ndarray, sample_rate: int, window_seconds: float = RIDE_WINDOW_SECONDS,
                       hop_seconds: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(window centres in samples, their loudness in LUFS) of a looping ``[channels, samples]`` clip:
    BS.1770 over ``window_seconds`` centred every ``hop_seconds``, wrapping round the loop's end as
    it plays when it repeats. A silent window reads as -inf. Measured by the ``loudness`` meter (the
    reference the rider's own model is held to)."""
    n, window, hop = loop.shape[1], int(round(window_seconds * sample_rate)), int(round(hop_seconds * sample_rate))
    centres = np.arange(0, n, max(1, hop))
    levels = np.array([loudness_lufs(loop[:, np.arange(c - window // 2, c - window // 2 + window) % n], sample_rate)
                       for c in centres])
    return centres, levels


@dataclass(frozen=True)
class _RideGrid:
    """Where a loop's gain points and gating blocks lie. The gain is a straight ramp between points
    ``hop`` apart (wrapping round the loop): each sample takes ``1 - frac`` of the point ``left`` of it
    and ``frac`` of the next. Blocks start every ``_GATE_STEP_SECONDS`` and are built of
    ``segments_per_block`` consecutive segments (a sample lies in one segment, ``segment``); a window
    is ``blocks_per_window`` consecutive blocks, one starting at every block."""

    left: np.ndarray
    right: np.ndarray
    frac: np.ndarray
    segment: np.ndarray
    points: int
    segments: int
    segments_per_block: int
    blocks_per_window: int

    @classmethod
    def of(cls, n: int, sample_rate: int, hop_seconds: float, window_seconds: float) -> _RideGrid:
        starts = np.arange(0, n, max(1, int(round(hop_seconds * sample_rate))))
        t = np.arange(n)
        left = np.searchsorted(starts, t, side="right") - 1
        ends = np.r_[starts[1:], n]
        step = int(round(_GATE_STEP_SECONDS * sample_rate))
        per_block = int(round(_GATE_BLOCK_SECONDS / _GATE_STEP_SECONDS))
        per_window = int(round((window_seconds - _GATE_BLOCK_SECONDS) / _GATE_STEP_SECONDS)) + 1
        return cls(left, (left + 1) % starts.size, (t - starts[left]) / (ends[left] - starts[left]),
                   np.minimum(t // step, -(-n // step) - 1), starts.size, -(-n // step), per_block, per_window)

    def gain_db(self, points_db: np.ndarray) -> np.ndarray:
        return points_db[self.left] * (1 - self.frac) + points_db[self.right] * self.frac

    def rolling(self, per_segment: np.ndarray, count: int) -> np.ndarray:
        """Sums of ``count`` consecutive rows of ``per_segment`` (one per segment), from every row,
        wrapping round the loop."""
        index = (np.arange(per_segment.shape[0])[:, None] + np.arange(count)[None, :]) % per_segment.shape[0]
        return per_segment[index].sum(axis=1)

    def window_index(self) -> np.ndarray:
        """[window, block]: the blocks of the window starting at each block, round the loop."""
        return (np.arange(self.segments)[:, None] + np.arange(self.blocks_per_window)[None, :]) % self.segments


def _bounded_step(derivative: np.ndarray, error: np.ndarray, penalty: np.ndarray, points_db: np.ndarray,
                  max_db: float, rounds: int = 4) -> np.ndarray:
    """The gains after one Gauss-Newton step of ride_level's fit, none beyond ``max_db``: the
    least-squares step is solved, points it would take past the limit are held at it, and the others
    solved again with those fixed (an active set), so a loop too uneven to even within the limit is
    still evened as far as it allows instead of keeping a step solved as if the limit were not there."""
    fixed = np.zeros(points_db.size, dtype=bool)
    target = points_db.copy()
    for _ in range(rounds):
        free = ~fixed
        # the linearised level errors left once the fixed points sit where they are held
        residual = error - derivative[:, fixed] @ (target[fixed] - points_db[fixed])
        fit = derivative[:, free].T @ derivative[:, free] + penalty[np.ix_(free, free)]
        rhs = derivative[:, free].T @ residual - penalty[free] @ np.where(free, points_db, target)
        target[free] = points_db[free] + np.linalg.solve(fit, rhs)
        beyond = free & (np.abs(target) > max_db)
        if not beyond.any():
            break
        target[beyond] = np.clip(target[beyond], -max_db, max_db)
        fixed |= beyond
    return np.clip(target, -max_db, max_db)


def ride_level(loop: np.ndarray, sample_rate: int, max_db: float = RIDE_MAX_DB,
               window_seconds: float = RIDE_WINDOW_SECONDS) -> np.ndarray:
    """A looping ``[channels, samples]`` clip with its short-term loudness held at its own level, as a
    mixing engineer rides the fader of background music: wherever a 3 s stretch sounds quieter or
    louder than the whole loop it is turned up or down (by ``max_db`` at most), by a gain that moves
    in straight quarter-second ramps and wraps round the loop, so the seam stays as smooth as before.

    Why: a page's clip loops while the reader turns pages at their own pace, so the page turn catches
    it anywhere in its phrase; a clip whose level wanders by 1-2 LU over its phrases makes the turn
    jump by as much, however well the pages' integrated loudness is matched. Notes keep their own
    dynamics (velocity, accents, the timbre of a louder note); only the slow level is evened.

    How: the gains at the points are the least-squares fit that brings the BS.1770 loudness of the 3 s
    window starting at every gating block (a tenth of a second apart) to the loop's, less
    ``RIDE_STEADINESS`` times the squared steps between neighbouring points, so the gain moves no
    faster than the level needs. The windows' loudness comes from the K-weighted power of the loop
    (k_weighted_power: the gain is too slow to change what the filter does) and is not linear in the
    gains, so the fit is a few Gauss-Newton steps, each with the exact derivatives (every sample's
    share of its window's kept blocks). A loop shorter than two windows, or silent, is returned as it is."""
    n = loop.shape[1]
    if n < 2 * window_seconds * sample_rate:
        return loop
    power = k_weighted_power(loop, sample_rate)
    grid = _RideGrid.of(n, sample_rate, RIDE_HOP_SECONDS, window_seconds)
    block = int(round(_GATE_BLOCK_SECONDS * sample_rate))
    # the whole loop's loudness: every block of it, gated once
    segment_power = np.bincount(grid.segment, power, grid.segments)
    target, _ = _gated(grid.rolling(segment_power[:, None], grid.segments_per_block).T / block)
    if not np.isfinite(target[0]):
        return loop
    steps = np.eye(grid.points) - np.roll(np.eye(grid.points), 1, axis=1)  # a first difference round the loop
    penalty = RIDE_STEADINESS * steps.T @ steps
    points_db = np.zeros(grid.points)
    windows, cells = grid.window_index(), grid.segments * grid.points
    for _ in range(RIDE_PASSES):
        ridden = power * 10.0 ** (grid.gain_db(points_db) / 10.0)
        # per segment, its power and each gain point's share of it (d power / d point dB, up to ln 10 / 10)
        shares = (np.bincount(grid.segment * grid.points + grid.left, ridden * (1 - grid.frac), cells)
                  + np.bincount(grid.segment * grid.points + grid.right, ridden * grid.frac, cells)
                  ).reshape(grid.segments, grid.points)
        blocks = grid.rolling(shares, grid.segments_per_block)  # [block, point]
        window_blocks = (blocks.sum(axis=1) / block)[windows]  # [window, its blocks' powers]
        levels, kept = _gated(window_blocks)
        kept_power = np.where(kept, window_blocks, 0.0).sum(axis=1) * block
        # d level / d point dB (in units of 10 / ln 10): the point's share of the power in the window's kept blocks
        derivative = np.einsum("wb,wbp->wp", kept.astype(np.float64), blocks[windows]) \
            / np.maximum(kept_power, 1e-30)[:, None]
        error = np.where(np.isfinite(levels), target[0] - levels, 0.0)
        points_db = _bounded_step(derivative, error, penalty, points_db, max_db)
    gain = (10.0 ** (grid.gain_db(points_db) / 20.0)).astype(np.float32)
    return (loop.astype(np.float32) * gain).astype(np.float32)
