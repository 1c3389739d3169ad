"""Scene transitions as the soundtrack plays them: the joins in the whole-book mix, the cue sheet,
and continuation across a scene change only where the director chose "continue"."""

from __future__ import annotations

import json

import numpy as np
import pytest

from m2m.audio import read_audio
from m2m.cues import CaptionSheet, Transition, TransitionSheet
from m2m.music.render import SoundtrackSettings, clip_plan
from m2m.runs import RunFolder
from m2m.soundtrack import Join, build_soundtrack, join_into, mix_pages

from .conftest import cue

SR = 8000


def tone(freq: float, seconds: float = 10.0) -> tuple[np.ndarray, bool]:
    t = np.arange(int(seconds * SR)) / SR
    return np.stack([np.sin(2 * np.pi * freq * t)] * 2).astype(np.float32) * 0.5, True


def level_db(out: np.ndarray, start: float, seconds: float = 0.1) -> float:
    seg = out[:, int(start * SR):int((start + seconds) * SR)]
    return float(20 * np.log10(np.sqrt((seg ** 2).mean()) + 1e-9))


def test_a_silence_holds_between_the_scenes_and_keeps_the_book_s_timing():
    out = mix_pages([tone(440), tone(660), tone(880)], [0.0, join_into(Transition(1, "silence", 1.5, "x"), 3.0, 4.0),
                                                        2.0], 4.0, SR, end_fade_seconds=1.0)
    assert out.shape[1] == 13 * SR  # three 4 s pages and the end's fade: the silence moves nothing after it
    assert level_db(out, 3.0) > -20  # the old scene fades out over the second before the turn ...
    assert all(level_db(out, t) < -100 for t in (4.05, 4.7, 5.35))  # ... silence until 5.5 s ...
    assert level_db(out, 5.9) > -12  # ... and the new scene enters


def test_a_cut_changes_the_music_within_a_few_tens_of_milliseconds_without_a_dip():
    cut = join_into(Transition(1, "cut", 0.0, "x"), 3.0, 4.0)
    out = mix_pages([tone(440), tone(880)], [0.0, cut], 4.0, SR, end_fade_seconds=1.0)
    assert cut.fade_in == pytest.approx(0.05)
    levels = [level_db(out, t, 0.01) for t in np.arange(3.9, 4.1, 0.01)]
    assert max(levels) - min(levels) < 1.5  # equal power over the 50 ms: no hole, no click of silence
    spectrum = np.abs(np.fft.rfft(out[0, int(4.05 * SR):int(4.25 * SR)]))
    freqs = np.fft.rfftfreq(int(0.2 * SR), 1 / SR)
    assert abs(freqs[spectrum.argmax()] - 880) < 10  # 50 ms after the turn only the new music plays


@pytest.mark.parametrize("transition, fade", [(None, 3.0), (Transition(1, "crossfade", 6.5, "x"), 4.0),
                                              (Transition(1, "continue", 2.5, "x"), 2.5)])
def test_crossfades_take_the_chosen_length_within_a_page(transition, fade):
    assert join_into(transition, 3.0, 4.0) == Join.crossfade(fade)


def sheet() -> CaptionSheet:
    return CaptionSheet((cue(1, 0, "calm piano", tempo=96), cue(2, 0, "calm piano again", tempo=96),
                         cue(3, 1, "a tense cello", tempo=80, mode="minor", key="D"),
                         cue(4, 2, "battle drums", tempo=150, energy=0.9)))


MOVES = TransitionSheet((Transition(1, "silence", 1.0, "falls quiet"), Transition(2, "cut", 0.0, "an attack")))


def test_the_cue_sheet_and_the_whole_file_play_the_chosen_transitions(tmp_path, composer):
    settings = SoundtrackSettings(clip_seconds=5.0, pace_seconds=4.0, crossfade_seconds=1.0,
                                  scene_crossfade_seconds=3.0, sample_rate=22050)
    run = RunFolder(tmp_path, "book", "m2m")
    build_soundtrack("book", "m2m", sheet(), run, "composer", settings, engine=composer, transitions=MOVES)
    cues = json.loads((run.path / "soundtrack.json").read_text())["data"]["cues"]
    assert [(c["transition"], c["crossfade"], c["silence"]) for c in cues] == [
        ("", 0.0, 0.0), ("", 1.0, 0.0), ("silence", 1.0, 1.0), ("cut", 0.05, 0.0)]
    whole = read_audio(run.path / "audio" / "soundtrack.ogg")
    rate, samples = whole.sample_rate, whole.samples
    gap = samples[:, int(8.1 * rate):int(8.9 * rate)]
    assert np.abs(gap).max() < 1e-3  # the chosen second of silence before scene 1 (page 3 at 8 s)
    assert np.abs(samples[:, int(9.2 * rate):int(9.6 * rate)]).max() > 0.01


def test_a_continue_carries_the_audio_across_the_scene_change_for_an_engine_that_continues():
    class Continuing:
        name, continues, version = "continuing", True, "1"

    settings = SoundtrackSettings(clip_seconds=5.0, pace_seconds=4.0)
    plain = clip_plan("book", sheet(), "continuing", Continuing(), settings, None)
    moves = TransitionSheet((Transition(1, "continue", 3.0, "same key"), Transition(2, "cut", 0.0, "attack")))
    carried = clip_plan("book", sheet(), "continuing", Continuing(), settings, None, moves)
    assert plain[1] == {1: None, 2: 1, 3: None, 4: None}
    assert carried[1] == {1: None, 2: 1, 3: 2, 4: None}
    assert carried[2][3] != plain[2][3] and carried[2][1] == plain[2][1]  # only the carried page's clip changes
