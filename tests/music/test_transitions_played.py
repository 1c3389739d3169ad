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


def test_a_stinger_plays_between_the_old_page_fading_under_it_and_the_new_page():
    stinger = tone(1320, 2.0)[0]
    join = join_into(Transition(1, "stinger", 2.0, "x"), 3.0, 4.0)
    assert join == Join(0.5, 1.0, 2.0, 0.3, 2.0) and join.silence == 0.0
    out = mix_pages([tone(440), tone(880)], [0.0, join], 4.0, SR, end_fade_seconds=1.0, stingers={1: stinger})
    assert out.shape[1] == 9 * SR  # the stinger moves nothing after it

    def strongest(start: float, seconds: float = 0.2) -> float:
        spectrum = np.abs(np.fft.rfft(out[0, int(start * SR):int((start + seconds) * SR)]))
        return float(np.fft.rfftfreq(int(seconds * SR), 1 / SR)[spectrum.argmax()])

    assert abs(strongest(3.0) - 440) < 10  # the old page, before the turn at 4 s
    assert abs(strongest(4.6) - 1320) < 10 and abs(strongest(5.5) - 1320) < 10  # the stinger alone ...
    assert level_db(out, 4.6) == pytest.approx(level_db(out, 5.5), abs=0.5)  # ... the old page gone under it
    assert abs(strongest(6.5) - 880) < 10  # then the new page


def test_a_mix_refuses_a_stinger_join_without_its_clip():
    join = join_into(Transition(1, "stinger", 2.0, "x"), 3.0, 4.0)
    with pytest.raises(ValueError, match="stinger: the join into page 1 has stinger"):
        mix_pages([tone(440), tone(880)], [0.0, join], 4.0, SR)


STINGER_MOVES = TransitionSheet((Transition(1, "stinger", 2.0, "closes on a cadence"),
                                 Transition(2, "cut", 0.0, "an attack")))
STINGER_SETTINGS = SoundtrackSettings(clip_seconds=5.0, pace_seconds=4.0, crossfade_seconds=1.0,
                                      scene_crossfade_seconds=3.0, sample_rate=22050)


def test_the_composer_s_stinger_is_a_cadence_on_disk_in_the_cue_sheet_and_in_the_whole_file(tmp_path, composer):
    from m2m.loudness import loudness_lufs

    run = RunFolder(tmp_path, "book", "m2m")
    build_soundtrack("book", "m2m", sheet(), run, "composer", STINGER_SETTINGS, engine=composer,
                     transitions=STINGER_MOVES)
    data = json.loads((run.path / "soundtrack.json").read_text())["data"]
    (stinger,) = data["stingers"]
    assert stinger["scene"] == 1 and stinger["page"] == 2 and stinger["file"] == "audio/stinger-001.ogg"
    assert "a short final cadence in C major" in stinger["caption"] and stinger["details"]["cadence"] == "V7-I"
    assert data["cues"][2]["transition"] == "stinger" and data["cues"][2]["stinger"] == stinger["file"]
    clip = read_audio(run.path / stinger["file"])
    assert clip.seconds == pytest.approx(2.0, abs=0.01)
    assert stinger["lufs"] == pytest.approx(-16.0, abs=0.5) and stinger["true_peak_db"] <= -1.0
    # the cadence's notes: the dominant (G B D F) then the tonic (C E G), in the MIDI beside it
    import pretty_midi

    notes = [n for i in pretty_midi.PrettyMIDI(str(run.path / stinger["midi"])).instruments for n in i.notes]
    assert {n.pitch % 12 for n in notes if n.start < 0.5} == {7, 11, 2, 5}
    assert {n.pitch % 12 for n in notes if n.start > 0.5} <= {0, 4, 7}
    # the whole file: page 3 (scene 1) starts at 8 s; the stinger sounds from 8 s, the page from 10 s
    whole = read_audio(run.path / "audio" / "soundtrack.ogg")
    rate = whole.sample_rate
    page2 = read_audio(run.path / data["cues"][1]["file"]).samples
    heard = whole.samples[:, int(8.5 * rate):int(9.5 * rate)]
    expected = clip.samples[:, int(0.5 * rate):int(1.5 * rate)]
    assert np.corrcoef(heard[0], expected[0])[0, 1] > 0.95  # what plays then is the stinger
    assert np.corrcoef(heard[0], page2[0, int(0.5 * rate):int(1.5 * rate)])[0, 1] < 0.5
    assert loudness_lufs(heard, rate) > -30


def test_a_rerun_reuses_the_stinger_and_an_edit_to_a_stinger_renders_one(tmp_path, composer):
    run = RunFolder(tmp_path, "book", "m2m")
    plain = TransitionSheet((Transition(1, "crossfade", 3.0, "a dissolve"), Transition(2, "cut", 0.0, "attack")))
    build_soundtrack("book", "m2m", sheet(), run, "composer", STINGER_SETTINGS, engine=composer, transitions=plain)
    assert json.loads((run.path / "soundtrack.json").read_text())["data"]["stingers"] == []
    assert not (run.path / "audio" / "stinger-001.ogg").exists()

    class Counting:  # the composer, counting what it renders
        name, continues, version = composer.name, composer.continues, "counting"
        pages: list[int] = []
        stingers: list[int] = []

        def render_many(self, cues, options, **kw):
            self.pages.extend(c.page for c in cues)
            return composer.render_many(cues, options, **kw)

        def render_stinger(self, cue, seconds, options):
            self.stingers.append(cue.page)
            return composer.render_stinger(cue, seconds, options)

    counting = Counting()
    build_soundtrack("book", "m2m", sheet(), run, "composer", STINGER_SETTINGS, engine=counting, transitions=plain)
    counting.pages.clear()
    # a person edits the transition into scene 1 to a stinger: only the stinger is made, the pages are kept
    build_soundtrack("book", "m2m", sheet(), run, "composer", STINGER_SETTINGS, engine=counting,
                     transitions=STINGER_MOVES)
    assert counting.pages == [] and counting.stingers == [2]
    first = json.loads((run.path / "soundtrack.json").read_text())["data"]["stingers"][0]
    build_soundtrack("book", "m2m", sheet(), run, "composer", STINGER_SETTINGS, engine=counting,
                     transitions=STINGER_MOVES)
    assert counting.stingers == [2]  # the rerun reuses it
    again = json.loads((run.path / "soundtrack.json").read_text())["data"]["stingers"][0]
    assert again["hash"] == first["hash"] and again["file_hash"] == first["file_hash"]
    longer = TransitionSheet((Transition(1, "stinger", 1.5, "a shorter close"), STINGER_MOVES.transitions[1]))
    build_soundtrack("book", "m2m", sheet(), run, "composer", STINGER_SETTINGS, engine=counting, transitions=longer)
    assert counting.stingers == [2, 2]
    assert read_audio(run.path / "audio" / "stinger-001.ogg").seconds == pytest.approx(1.5, abs=0.01)


def test_an_engine_without_a_symbolic_stinger_is_asked_in_words_and_the_run_file_warns(tmp_path, composer):
    class Words:  # renders pages like the composer, and has no render_stinger
        name, continues, version = "words", False, "1"
        asked: list[str] = []

        def render(self, cue, options):
            self.asked.append(cue.caption)
            return composer.render(cue, options)

        def render_many(self, cues, options, **kw):
            return composer.render_many(cues, options, **kw)

    words = Words()
    run = RunFolder(tmp_path, "book", "m2m")
    build_soundtrack("book", "m2m", sheet(), run, "composer", STINGER_SETTINGS, engine=words, transitions=STINGER_MOVES)
    raw = json.loads((run.path / "soundtrack.json").read_text())
    (stinger,) = raw["data"]["stingers"]
    assert words.asked == [stinger["caption"]] and stinger["caption"].startswith("a short final cadence")
    assert any("asked for the cadence in words" in w for w in raw["provenance"]["warnings"])
    clip = read_audio(run.path / stinger["file"]).samples
    assert np.abs(clip[:, -int(0.05 * 22050):]).max() < 0.02  # faded to silence at its end
