"""Scene consistency vs contrast, and plan adherence measured on composer clips of known tempo and key."""

from __future__ import annotations

import pytest

from m2m.cues import Cue, Plan
from m2m.evaluation.features import analysis_signal, clip_features, plan_adherence, scene_contrast

from .conftest import RATE, tone

C_MAJOR, F_SHARP_MINOR = [261.6, 329.6, 392.0], [185.0, 220.0, 277.2]


def features(clips):
    return [clip_features(analysis_signal(c, RATE)) for c in clips]


def test_scenes_with_their_own_music_have_more_contrast_than_one_clip_everywhere():
    scenes = [0, 0, 1, 1]
    distinct = features([tone(C_MAJOR, 3.0), tone(C_MAJOR, 3.0, vibrato=0.2),
                         tone(F_SHARP_MINOR, 3.0), tone(F_SHARP_MINOR, 3.0, vibrato=0.2)])
    same = features([tone(C_MAJOR, 3.0)] * 4)
    following, uniform = scene_contrast(distinct, scenes), scene_contrast(same, scenes)
    assert uniform.ratio == 1.0  # identical music: no difference within or between scenes
    assert following.ratio > 2.0 and following.harmony_ratio > following.timbre_ratio > 1.0
    assert (following.within_pairs, following.between_pairs) == (2, 4)


def test_scene_contrast_is_undefined_when_no_two_pages_share_a_scene():
    result = scene_contrast(features([tone(C_MAJOR, 2.0), tone(F_SHARP_MINOR, 2.0)]), [0, 1])
    assert result.ratio is None and "no two pages share a scene" in result.note


@pytest.fixture(scope="module")
def composed():
    """Composer clips of known tempo and key, at 22050 Hz (about a second each to render)."""
    from m2m.music.base import RenderOptions
    from m2m.music.composer import ComposerEngine

    engine = ComposerEngine(sample_rate=RATE)
    plans = [Plan(96, "D", "major", ("Acoustic Grand Piano", "Drums"), 0.75, "happy"),
             Plan(140, "A", "minor", ("Acoustic Grand Piano", "String Ensemble 1", "Drums"), 0.75, "calm")]
    clips = [engine.render(Cue(page, 0, "", plan), RenderOptions(seconds=8.0, seed=3, sample_rate=RATE)).audio
             for page, plan in enumerate(plans)]
    return plans, [clip_features(analysis_signal(c.samples, c.sample_rate)) for c in clips]


def test_plan_adherence_finds_the_composer_tempo_and_key(composed):
    plans, found = composed
    result = plan_adherence(list(enumerate(plans)), found)
    assert result.available and result.tempo_match == 1.0, result.pages
    assert result.median_tempo_error_bpm < 4.0
    assert result.key_match == 1.0, [(c.plan_key, c.found_key) for c in result.pages]


def test_plan_adherence_fails_music_that_ignores_the_plan(composed):
    plans, found = composed
    # the same clips held to each other's plans: 96 vs 140 BPM is no octave, D major is not A minor
    result = plan_adherence([(0, plans[1]), (1, plans[0])], found)
    assert result.tempo_match == 0.0 and result.key_match == 0.0 and result.mode_match == 0.0


def test_plan_adherence_says_unavailable_without_a_plan(composed):
    result = plan_adherence([(0, None), (1, None)], composed[1])
    assert not result.available and result.note.startswith("unavailable: ")
