"""A leitmotif sits in its page: the composer sets the theme so its bars are as loud as the bars
without it, so a page opening with a theme starts at the level it goes on at, neither louder nor
quieter (the join into it is not a step)."""

from __future__ import annotations

import numpy as np

from m2m.cues import Cue, Plan, Theme
from m2m.loudness import loudness_lufs
from m2m.music.composer import MAX_THEME_GAIN, MIN_THEME_GAIN, theme_gain

RATE = 22050
BAR = RATE  # one-second bars


def sine(hz: float, level: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    y = (level * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return np.stack([y, y])


def test_the_theme_is_set_to_the_level_of_the_other_bars():
    band = sine(220, 0.1, 4)
    band[:, BAR:] += sine(440, 0.1, 3)  # the melody, resting in bar 0 where the theme plays
    solo = np.zeros_like(band)
    solo[:, :BAR] = sine(660, 0.3, 1)  # a theme far louder than the melody it stands in for
    gain = theme_gain(band, solo, RATE, [0], BAR, 4)
    assert MIN_THEME_GAIN < gain < 1
    themed = band[:, :BAR] + gain * solo[:, :BAR]
    assert abs(loudness_lufs(themed, RATE) - loudness_lufs(band[:, BAR:], RATE)) < 0.1
    soft = solo * 0.2  # below the melody's level: turned up to it
    gain = theme_gain(band, soft, RATE, [0], BAR, 4)
    assert 1 < gain < MAX_THEME_GAIN
    themed = band[:, :BAR] + gain * soft[:, :BAR]
    assert abs(loudness_lufs(themed, RATE) - loudness_lufs(band[:, BAR:], RATE)) < 0.1
    # a whisper is turned up by no more than 6 dB
    assert theme_gain(band, solo * 0.001, RATE, [0], BAR, 4) == MAX_THEME_GAIN
    assert theme_gain(band, solo, RATE, [0, 1, 2, 3], BAR, 4) == 1.0  # nothing to match it with


def test_a_composed_page_that_opens_with_a_theme_starts_at_its_own_level():
    from m2m.music.base import RenderOptions
    from m2m.music.composer import ComposerEngine

    theme = Theme("b", "Ben", "Oboe", ((0.0, 2.0, 0), (2.0, 0.5, -1), (2.5, 0.5, 1), (3.0, 1.0, 4)))
    plan = Plan(64, "E", "minor", ("Acoustic Grand Piano", "String Ensemble 1"), 0.17, "sad")
    audio = ComposerEngine(sample_rate=RATE).render(Cue(0, 0, "", plan, theme=theme),
                                                    RenderOptions(seconds=24.0, seed=0, sample_rate=RATE)).audio
    bar = int(round(4 * 60 / 64 * RATE))
    first, rest = audio.samples[:, :bar], audio.samples[:, bar:]
    # the oboe alone, at the melody's velocity, lifted this bar 3-5 LU above the rest
    assert abs(loudness_lufs(first, RATE) - loudness_lufs(rest, RATE)) < 1.0
