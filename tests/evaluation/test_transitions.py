"""Transition smoothness: a hard cut with a click scores worse than a smooth crossfade."""

from __future__ import annotations

import numpy as np

from m2m.evaluation.sources import clip_samples, find_runs, played_book
from m2m.evaluation.transitions import CLICK_DB, loop_seams, measure_transitions
from m2m.soundtrack import Join, cue_join

from .conftest import PACE, RATE, make_run, tone


def transitions_of(root, clips, scenes, fades):
    run = find_runs([make_run(root, clips, scenes, fades).path])[0]
    audio = clip_samples(run)
    cues = run.soundtrack.cues
    return measure_transitions(played_book(run, audio), RATE, [c.page for c in cues], run.scenes,
                               [cue_join(c.crossfade, c.silence) for c in cues], [c.transition for c in cues],
                               [a.shape[1] for a in audio], [c.loop for c in cues], PACE)


def test_a_hard_cut_between_unlike_clips_scores_worse_than_a_smooth_crossfade(tmp_path):
    # the cut: a quiet low chord, then a loud high one starting mid-wave, with no crossfade
    cut = transitions_of(tmp_path / "cut", [tone([220, 277], level=0.05), tone([880, 1320], level=0.5, phase=1.5)],
                         [0, 0], [0.0, 0.0])
    smooth = transitions_of(tmp_path / "smooth", [tone([220, 277]), tone([220, 277], vibrato=0.1)], [0, 0],
                            [0.0, 2.0])
    (c,), (s,) = cut.joins, smooth.joins
    assert c.loudness_jump_lu > 10 > 1 > s.loudness_jump_lu
    assert c.spectral_distance_db > 10 * max(s.spectral_distance_db, 0.1)
    assert c.click_db > CLICK_DB > s.click_db
    assert cut.clicks >= 1 and smooth.clicks == 0
    assert (c.crossfade_seconds, c.at_seconds) == (0.0, PACE)


def test_a_click_is_found_even_between_like_clips(tmp_path):
    # same tone and level either side, but the second starts at its crest where the first passes
    # zero (4 s is a whole number of its periods): only the step shows
    result = transitions_of(tmp_path, [tone([220]), tone([220], phase=np.pi / 2)], [0, 1], [0.0, 0.0])
    (join,) = result.joins
    assert join.click_db > CLICK_DB and join.loudness_jump_lu < 0.5 and join.scene_change


def test_loop_seams_are_placed_as_the_mix_places_the_pages():
    # page 0 plays from 0 to pace + 1 s (half the 2 s crossfade into page 1) from a 3 s clip: a seam
    # at 3 s; page 1 plays from pace - 1 s = 3 s through the book's 3 s closing fade to 2 pace + 3 s
    # = 11 s (the last page): seams 3 and 6 s in, at 6 and 9 s
    joins = [Join.crossfade(0.0), Join.crossfade(2.0)]
    assert loop_seams([3 * RATE, 3 * RATE], [True, True], joins, PACE, RATE) == [(0, 3 * RATE), (1, 6 * RATE),
                                                                                    (1, 9 * RATE)]
    assert loop_seams([3 * RATE], [False], joins[:1], PACE, RATE) == []


def test_a_silence_shifts_the_seams_of_the_page_after_it():
    # page 0 stops at pace (a silence lets it go there, no crossfade past it): a 3 s clip seams at 3 s
    # only; page 1 enters 1.5 s after pace (5.5 s) and loops 3 s later, at 8.5 s, its next start
    # (11.5 s) already past the closing fade's end (11 s); with no silence it would seam at 6 and 9 s
    joins = [Join.crossfade(0.0), cue_join(1.0, 1.5)]
    assert loop_seams([3 * RATE, 3 * RATE], [True, True], joins, PACE, RATE) == [(0, 3 * RATE), (1, int(8.5 * RATE))]


def test_deliberate_breaks_are_scored_apart_and_still_checked_for_clicks(tmp_path):
    # three pages: a smooth crossfade within a scene, then a cut into a loud, unlike second scene
    clips = [tone([220, 277]), tone([220, 277], vibrato=0.1), tone([880, 1320], level=0.5)]
    run = find_runs([make_run(tmp_path, clips, [0, 0, 1], [0.0, 2.0, 0.05], transitions=["", "", "cut"]).path])[0]
    audio = clip_samples(run)
    cues = run.soundtrack.cues
    result = measure_transitions(played_book(run, audio), RATE, [c.page for c in cues], run.scenes,
                                 [cue_join(c.crossfade, c.silence) for c in cues], [c.transition for c in cues],
                                 [a.shape[1] for a in audio], [c.loop for c in cues], PACE)
    smooth, cut = result.joins
    assert not smooth.deliberate and cut.deliberate and cut.kind == "cut"
    assert result.seamless == 1 and result.breaks.count == 1 and result.breaks.kinds == ("cut",)
    # the seamless figures are the smooth join's alone; the cut's are reported apart
    assert result.loudness_jump_lu.mean == smooth.loudness_jump_lu < 1 < cut.loudness_jump_lu
    assert result.breaks.loudness_jump_lu.mean == cut.loudness_jump_lu
    assert result.click_db.worst == max(smooth.click_db, cut.click_db)  # clicks: every join
    assert "1 seamless joins of 2" in result.counted and "1 deliberate break apart" in result.counted


def test_the_played_book_includes_a_chosen_stinger_as_the_whole_file_plays_it(tmp_path):
    from m2m.audio import read_audio
    from m2m.cues import CaptionSheet, Cue, Plan, Transition, TransitionSheet
    from m2m.music.composer import ComposerEngine
    from m2m.music.render import SoundtrackSettings
    from m2m.runs import RunFolder
    from m2m.soundtrack import build_soundtrack

    def cue(page: int, scene: int, key: str, mode: str) -> Cue:
        return Cue.planned(page, scene, f"piano in {key} {mode}", Plan(100, key, mode, ("Acoustic Grand Piano",), 0.5))

    captions = CaptionSheet((cue(0, 0, "A", "major"), cue(1, 0, "A", "major"), cue(2, 1, "C#", "minor")))
    settings = SoundtrackSettings(clip_seconds=5.0, pace_seconds=4.0, crossfade_seconds=1.0, sample_rate=22050)
    run = RunFolder(tmp_path, "book", "m2m")
    build_soundtrack("book", "m2m", captions, run, "composer", settings, engine=ComposerEngine(),
                     transitions=TransitionSheet((Transition(1, "stinger", 2.0, "closes on a cadence"),)))
    (found,) = find_runs([run.path])
    played = played_book(found, clip_samples(found))
    stinger = read_audio(run.path / "audio" / "stinger-001.ogg").samples
    whole = read_audio(run.path / "audio" / "soundtrack.ogg").samples
    rate = 22050
    span = slice(int(8.6 * rate), int(9.6 * rate))  # the stinger alone: 0.6-1.6 s after the turn at 8 s
    assert np.corrcoef(played[0, span], stinger[0, int(0.6 * rate):int(1.6 * rate)])[0, 1] > 0.95
    assert np.corrcoef(played[0, span], whole[0, span])[0, 1] > 0.95  # as the whole-book file plays it
    assert played.shape[1] == whole.shape[1]


def test_the_music_s_own_movement_is_measured_mid_page_clear_of_every_fade():
    # a steady tone for page 0, one that steps up 6 dB at its middle for page 1: the floor sees the step
    from m2m.evaluation.transitions import inside_pages
    from m2m.soundtrack import Join as PlayedJoin

    rate, pace = RATE, 10.0
    steady = tone([440.0], seconds=pace, level=0.1)
    stepped = tone([440.0], seconds=pace, level=0.1)
    stepped[:, int(5.0 * rate):] *= 2.0
    book = np.concatenate([steady, stepped], axis=1)
    joins = [PlayedJoin(0.0, 0.0, 0.0, 0.0), PlayedJoin.crossfade(1.5)]
    jumps, distances = inside_pages(book, rate, joins, pace)
    assert len(jumps) == 2 and jumps[0] < 0.1 and abs(jumps[1] - 6.0) < 0.5
    assert distances[0] < 0.5 < distances[1]
    # a page too short for 3 s either side clear of its fades is left out, not measured through a join
    # (a 5 s crossfade fades page 0 out from 7.5 s and page 1 in until 12.5 s: neither middle is clear)
    assert inside_pages(book, rate, [PlayedJoin(0.0, 0.0, 0.0, 0.0), PlayedJoin.crossfade(5.0)], pace) == ([], [])
    assert len(inside_pages(book, rate, [PlayedJoin(0.0, 0.0, 0.0, 0.0), PlayedJoin.crossfade(3.0)], pace)[0]) == 2
    assert inside_pages(book[:, :int(8 * rate)], rate, [PlayedJoin(0.0, 0.0, 0.0, 0.0)] * 2, 4.0) == ([], [])
