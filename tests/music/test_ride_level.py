"""A page's loop holds its level: wherever the page turn catches it, the 3 s before the turn sound as
loud as the whole clip (m2m.loudness.ride_level), so a turn does not jump because the outgoing page
was caught in a quieter or louder phrase."""

from __future__ import annotations

import numpy as np
import pytest

from m2m.cues import Cue, Plan, Theme
from m2m.loudness import RIDE_MAX_DB, loudness_lufs, ride_level, short_term_profile

RATE = 22050


def phrased_noise(seconds: float, quiet_db: float, seed: int = 0) -> np.ndarray:
    """Noise whose second half is ``quiet_db`` below its first (a loud phrase, then a quiet one)."""
    n = int(seconds * RATE)
    rng = np.random.default_rng(seed)
    y = rng.normal(0, 0.05, n).astype(np.float32)
    y[n // 2:] *= np.float32(10 ** (-quiet_db / 20))
    return np.stack([y, y])


def spread_lu(loop: np.ndarray) -> float:
    """How far the loop's 3 s windows stray from its integrated loudness, at worst."""
    _, levels = short_term_profile(loop, RATE)
    return float(np.max(np.abs(levels - loudness_lufs(loop, RATE))))


def test_a_loop_with_a_quiet_phrase_is_ridden_to_one_level_without_changing_its_loudness():
    loop = phrased_noise(12.0, 3.0)
    assert spread_lu(loop) > 1.2
    ridden = ride_level(loop, RATE)
    assert spread_lu(ridden) < 0.4
    assert abs(loudness_lufs(ridden, RATE) - loudness_lufs(loop, RATE)) < 0.5


def test_the_gain_wraps_round_the_loop_so_the_seam_does_not_step():
    loop = phrased_noise(12.0, 3.0, seed=1)
    gain = np.abs(ride_level(loop, RATE)[0]) / np.maximum(np.abs(loop[0]), 1e-9)
    ends = gain[np.abs(loop[0]) > 1e-3]
    # the gain just before the seam continues into the gain just after it (no step of a dB)
    assert abs(20 * np.log10(ends[-1] / ends[0])) < 0.2
    # and it moves by ramps: no sample-to-sample step in the gain anywhere
    steps = np.abs(np.diff(20 * np.log10(ends)))
    assert steps.max() < 0.05


def test_the_rider_turns_nothing_by_more_than_its_limit():
    loop = phrased_noise(12.0, 12.0)
    ridden = ride_level(loop, RATE)
    n = loop.shape[1]
    for part in (slice(0, n // 2), slice(n // 2, n)):
        change = 20 * np.log10(np.sqrt(np.mean(ridden[:, part] ** 2) / np.mean(loop[:, part] ** 2)))
        assert abs(change) <= RIDE_MAX_DB + 0.01
    assert spread_lu(ridden) > 3.0  # a 12 dB phrase is evened by the limit, not flattened


def test_a_short_or_silent_loop_is_left_as_it_is():
    short = phrased_noise(4.0, 6.0)
    assert np.array_equal(ride_level(short, RATE), short)
    silent = np.zeros((2, 10 * RATE), dtype=np.float32)
    assert np.array_equal(ride_level(silent, RATE), silent)


THEME = Theme("b", "Ben", "Oboe", ((0.0, 2.0, 0), (2.0, 0.5, -1), (2.5, 0.5, 1), (3.0, 1.0, 4)))
PLANS = {
    "calm, themed": (Plan(64, "E", "minor", ("Acoustic Grand Piano", "String Ensemble 1"), 0.17, "sad"), THEME),
    "bright, themed": (Plan(125, "A", "major", ("Acoustic Grand Piano", "Xylophone", "Flute", "String Ensemble 1"),
                            0.62, "joyful"), THEME),
    "driving, drums": (Plan(140, "D", "minor", ("Electric Bass (finger)", "Overdriven Guitar", "Drums"), 0.9,
                            "tense"), None),
}


@pytest.mark.parametrize("name", list(PLANS))
def test_a_composed_page_sounds_at_its_own_level_wherever_the_turn_catches_it(name):
    from m2m.music.base import RenderOptions
    from m2m.music.composer import ComposerEngine

    plan, theme = PLANS[name]
    audio = ComposerEngine(sample_rate=RATE).render(Cue(0, 0, "", plan, theme=theme),
                                                    RenderOptions(seconds=24.0, seed=3, sample_rate=RATE)).audio
    loop = audio.samples
    whole = loudness_lufs(loop, RATE)
    # the 3 s before a turn at a 20 s pace (the page entered 0.75 s early), and the page's opening
    n, turn = loop.shape[1], int(20.75 * RATE)
    before_turn = loop[:, np.arange(turn - 3 * RATE, turn) % n]
    opening = loop[:, :3 * RATE]
    assert abs(loudness_lufs(before_turn, RATE) - whole) < 0.6
    assert abs(loudness_lufs(opening, RATE) - whole) < 0.6
    assert spread_lu(loop) < 0.8  # and anywhere else


def test_the_riders_k_weighting_is_bs1770s():
    from m2m.loudness import k_weighting

    # BS.1770's K-weighting lifts 997 Hz by 0.691 dB (the meter's -0.691 offset cancels it), the
    # presence band by its ~4 dB shelf, and cuts the lowest octaves
    assert 20 * np.log10(k_weighting(np.array([997.0]), 48_000)[0]) == pytest.approx(0.691, abs=0.01)
    assert 20 * np.log10(k_weighting(np.array([10_000.0]), 48_000)[0]) == pytest.approx(4.0, abs=0.1)
    assert 20 * np.log10(k_weighting(np.array([20.0]), 48_000)[0]) < -5.0


@pytest.mark.parametrize("rate", [22_050, 32_000, 48_000])
def test_the_riders_loudness_model_is_the_meters(rate):
    """The rider measures its windows from the loop's K-weighted power; on a steady window that is
    the BS.1770 meter's reading (``loudness``), at any sample rate."""
    from m2m.loudness import k_weighted_power

    rng = np.random.default_rng(rate)
    t = np.arange(6 * rate) / rate
    mono = (rng.normal(0, 0.05, t.size) + 0.1 * np.sin(2 * np.pi * 3_000 * t) + 0.2 * np.sin(2 * np.pi * 60 * t))
    loop = np.stack([mono, 0.5 * mono]).astype(np.float32)
    power = k_weighted_power(loop, rate)
    window = slice(rate, 4 * rate)
    assert -0.691 + 10 * np.log10(power[window].mean()) == pytest.approx(loudness_lufs(loop[:, window], rate), abs=0.05)


def test_the_gain_moves_slowly():
    """A fader, not a compressor: evening a 3 dB phrase, the gain moves by under 0.6 dB in any tenth
    of a second (faster moves are heard as pumping; the fit without its steadiness term moves 0.8)."""
    loop = phrased_noise(12.0, 3.0, seed=2)
    gain_db = 20 * np.log10(np.abs(ride_level(loop, RATE)[0]) / np.maximum(np.abs(loop[0]), 1e-9))
    sounding = np.abs(loop[0]) > 1e-3
    tenth = RATE // 10
    steps = [abs(gain_db[i + tenth] - gain_db[i]) for i in range(0, loop.shape[1] - tenth, tenth // 4)
             if sounding[i] and sounding[i + tenth]]
    assert max(steps) < 0.6
