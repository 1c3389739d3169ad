"""Loudness, true peak and the limiter's filters: held to EBU Tech 3341's reference cases, to
pyloudnorm, and to the scipy functions they stand in for (the render path does not import scipy)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m2m.loudness import (
    interpolation_filter,
    loudness_lufs,
    normalize,
    oversample,
    sliding_mean,
    sliding_min,
    true_peak_db,
)


def _sine(dbfs: float, seconds: float, sr: int, freq: float = 1000.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return np.tile(10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t), (2, 1)).astype(np.float32)


@pytest.mark.parametrize("sr", [44100, 48000])
def test_loudness_meets_ebu_tech_3341_reference_cases(sr):
    """EBU Tech 3341 cases 1-4 (stereo 1 kHz sines), each -23.0 or -33.0 LUFS within 0.1 LU."""
    assert loudness_lufs(_sine(-23, 20, sr), sr) == pytest.approx(-23.0, abs=0.1)
    assert loudness_lufs(_sine(-33, 20, sr), sr) == pytest.approx(-33.0, abs=0.1)
    # the relative gate drops the quiet parts: -36 / -23 / -36 dBFS for 10 / 60 / 10 s
    case3 = np.concatenate([_sine(-36, 10, sr), _sine(-23, 60, sr), _sine(-36, 10, sr)], axis=1)
    assert loudness_lufs(case3, sr) == pytest.approx(-23.0, abs=0.1)
    # and the absolute gate the very quiet ones: -72 / -36 / -23 / -36 / -72 dBFS
    case4 = np.concatenate([_sine(-72, 10, sr), _sine(-36, 10, sr), _sine(-23, 60, sr), _sine(-36, 10, sr),
                            _sine(-72, 10, sr)], axis=1)
    assert loudness_lufs(case4, sr) == pytest.approx(-23.0, abs=0.1)


# BS.1770 defines its filters at 48 kHz; each library designs them for other rates its own way, and
# the designs part most near the top of a 22.05 kHz band (white noise puts much of its power there)
@pytest.mark.parametrize(("sr", "tolerance"), [(22050, 0.25), (44100, 0.1), (48000, 0.1)])
def test_loudness_agrees_with_pyloudnorm_within_the_standard_tolerance(sr, tolerance):
    import pyloudnorm

    rng = np.random.default_rng(sr)
    for seconds in (0.4, 1.3, 9.7):
        n = int(seconds * sr)
        x = (rng.normal(0, 1, (2, n)) * np.linspace(0.0005, 0.4, n)).astype(np.float32)
        x[:, : n // 5] = 0.0  # silence that the gates must drop
        assert loudness_lufs(x, sr) == pytest.approx(pyloudnorm.Meter(sr).integrated_loudness(x.T), abs=tolerance)
    assert loudness_lufs(np.zeros((2, sr)), sr) == float("-inf")


def test_loudness_refuses_what_it_cannot_measure():
    with pytest.raises(ValueError, match="too short"):
        loudness_lufs(np.zeros((2, 100), dtype=np.float32), 44100)
    with pytest.raises(ValueError, match="6 channels"):
        loudness_lufs(np.zeros((6, 44100), dtype=np.float32), 44100)


def test_interpolation_filter_is_scipys_firwin_design():
    from scipy.signal import firwin

    np.testing.assert_allclose(interpolation_filter(), firwin(48, 0.25, window=("kaiser", 6.0)), atol=1e-12)


@pytest.mark.parametrize("n", [1, 7, 48, 4096, 20011])
def test_oversampling_gives_resample_polys_numbers(n):
    from scipy.signal import resample_poly

    x = np.random.default_rng(n).normal(0, 0.3, (2, n)).astype(np.float32)
    expected = resample_poly(x, 4, 1, axis=1, window=interpolation_filter().astype(np.float32))
    np.testing.assert_allclose(oversample(x), expected, atol=2e-6)


def test_true_peak_sees_the_peak_between_samples():
    """A sine at a quarter of the rate, sampled 45 degrees off its crests: every sample is at 0.707
    of the crest (-9.03 dBFS for a 0.5 crest), and the true peak is the crest (-6.02 dBTP)."""
    sr = 48000
    t = np.arange(sr)
    x = np.tile(0.5 * np.sin(2 * np.pi * t / 4 + np.pi / 4), (2, 1)).astype(np.float32)
    assert 20 * np.log10(np.abs(x).max()) == pytest.approx(-9.03, abs=0.01)
    assert true_peak_db(x, sr) == pytest.approx(-6.02, abs=0.2)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3000), half=st.integers(0, 600), wrap=st.booleans(), seed=st.integers(0, 2**16))
def test_sliding_filters_give_scipy_ndimages_numbers(n, half, wrap, seed):
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    x = np.random.default_rng(seed).random(n)
    mode = "wrap" if wrap else "nearest"
    np.testing.assert_array_equal(sliding_min(x, 2 * half + 1, wrap), minimum_filter1d(x, 2 * half + 1, mode=mode))
    np.testing.assert_allclose(sliding_mean(x, half + 1, wrap), uniform_filter1d(x, half + 1, mode=mode), atol=1e-12)


def test_normalising_a_hot_loop_keeps_its_seam_and_meets_both_targets():
    sr = 44100
    rng = np.random.default_rng(3)
    x = rng.normal(0, 0.05, (2, 4 * sr)).astype(np.float32)
    x[:, ::5000] = 0.95  # sparse spikes the limiter must catch, one right at the loop's end
    x[:, -1] = 0.95
    out, measured = normalize(x, sr, -16.0, -1.0, loop=True)
    assert loudness_lufs(out, sr) == pytest.approx(-16.0, abs=0.5)
    assert true_peak_db(out, sr) <= -1.0 + 0.05
    assert measured.true_peak_db <= -1.0
    # the gain curve wraps around the loop, so the seam is no bigger a step than the clip's own
    seam = np.abs(out[:, 0] - out[:, -1]).max()
    assert seam <= np.abs(np.diff(out, axis=1)).max() + 1e-6


def test_a_render_imports_no_scipy():
    """scipy.signal costs over a second of GIL-holding import at the start of every render."""
    code = ("import sys, numpy as np; from m2m.loudness import normalize; from m2m.soundtrack import build_soundtrack;"
            "import m2m.music.composer;"
            "x = np.random.default_rng(0).normal(0, 0.3, (2, 44100)).astype(np.float32); normalize(x, 44100);"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('scipy', 'pyloudnorm')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
