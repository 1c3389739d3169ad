"""Audio measurements for the music tests, in numpy/scipy (no numba compile on the first call)."""

from __future__ import annotations

import numpy as np
from scipy.signal import find_peaks, stft


def onset_envelope(y: np.ndarray, sr: int, hop: int = 512) -> tuple[np.ndarray, float]:
    """Spectral flux (positive change of log magnitude), and its frame rate in Hz."""
    _, _, spec = stft(y, fs=sr, nperseg=2048, noverlap=2048 - hop, boundary=None, padded=False)
    logmag = np.log1p(100 * np.abs(spec))
    flux = np.maximum(0.0, np.diff(logmag, axis=1)).sum(axis=0)
    return flux - flux.mean(), sr / hop


def tempo(y: np.ndarray, sr: int, low: float = 50, high: float = 220) -> float:
    """The pulse in BPM: the strongest autocorrelation lag of the onset envelope (may be an octave off)."""
    env, rate = onset_envelope(y, sr)
    ac = np.correlate(env, env, mode="full")[len(env) - 1:]
    lags = np.arange(len(ac))
    valid = (lags >= rate * 60 / high) & (lags <= rate * 60 / low)
    best = lags[valid][np.argmax(ac[valid])]
    # refine to a fraction of a frame with a parabola through the peak
    a, b, c = ac[best - 1], ac[best], ac[best + 1]
    shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
    return 60 * rate / (best + shift)


def onsets_per_second(y: np.ndarray, sr: int) -> float:
    env, rate = onset_envelope(y, sr)
    peaks, _ = find_peaks(env, height=env.mean() + env.std(), distance=max(1, int(rate * 0.05)))
    return len(peaks) / (len(y) / sr)


def spectral_centroid(y: np.ndarray, sr: int) -> float:
    freqs, _, spec = stft(y, fs=sr, nperseg=2048)
    mag = np.abs(spec)
    return float((freqs[:, None] * mag).sum() / mag.sum())


def chroma(y: np.ndarray, sr: int) -> np.ndarray:
    """A 12-bin pitch-class profile (C first) from the magnitude spectrum between 55 Hz and 2 kHz."""
    freqs, _, spec = stft(y, fs=sr, nperseg=16384)
    energy = np.abs(spec).sum(axis=1)  # magnitude, not power: loud sustained pads would swamp the rest
    keep = (freqs > 55) & (freqs < 2000)
    pcs = np.round(12 * np.log2(freqs[keep] / 440.0) + 69).astype(int) % 12
    out = np.zeros(12)
    np.add.at(out, pcs, energy[keep])
    return out / out.sum()
