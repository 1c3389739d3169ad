"""Leitmotifs (m2m/leitmotifs.py): a recurring character's theme sounds on their pages, in every
scene's key, and can be heard to recur: the same figure in the MIDI of pages of different scenes,
orchestrated by each scene's mood (m2m/data/music/theme_voices.json)."""

from __future__ import annotations

from pathlib import Path

import pytest

from m2m.book import load_book
from m2m.cli.themes import heard_theme
from m2m.cues import GM_INSTRUMENTS
from m2m.leitmotifs import (
    book_themes,
    edited_theme,
    orchestrate,
    parse_steps,
    recurring_characters,
    with_steps,
)
from m2m.midi import pretty_midi
from m2m.music.arrangement import voice_table
from m2m.music.composition import compose
from m2m.pipeline import Settings, plan_book

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "manga109"


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    book = load_book(EXAMPLE)
    return book, plan_book(book, Settings(runs_root=tmp_path_factory.mktemp("runs")))


def written_midi(cue, tmp: Path) -> tuple[pretty_midi.PrettyMIDI, object]:
    """The page's piece as the composer writes it to a .mid file, read back."""
    piece, resolved = compose(cue, 20.0)
    path = tmp / f"page-{cue.page:03d}.mid"
    piece.midi.write(str(path))
    return pretty_midi.PrettyMIDI(str(path)), resolved


def theme_track(midi: pretty_midi.PrettyMIDI) -> pretty_midi.Instrument:
    return next(i for i in midi.instruments if i.name.startswith("theme"))


def theme_steps(cue, tmp: Path) -> list[int]:
    """The theme track's first statement in the written MIDI, as scale steps from the page's tonic
    (``m2m themes`` reads a run's MIDI files the same way)."""
    midi, _ = written_midi(cue, tmp)
    return list(heard_theme(cue, midi).steps)


def test_a_recurring_character_s_theme_recurs_across_scenes_in_each_scene_s_key(plan, tmp_path):
    book, result = plan
    cues = [c for c in result.captions.cues if c.theme is not None and c.theme.name == "ヒナ"]
    scenes = {c.scene for c in cues}
    assert len(scenes) >= 3, "Hina speaks most on pages of at least three scenes"
    a, b = next(c for c in cues if c.scene == 0), next(c for c in cues if c.scene == 2)
    assert (a.plan.key, a.plan.mode) != (b.plan.key, b.plan.mode)  # another key and mode ...
    expected = [step for _, _, step in a.theme.motif]
    assert theme_steps(a, tmp_path) == theme_steps(b, tmp_path) == expected  # ... the same figure
    print("Hina's theme, scene 0 page", a.page, a.plan.key, a.plan.mode, "and scene 2 page", b.page,
          b.plan.key, b.plan.mode, ": scale steps", expected)
    track = theme_track(written_midi(a, tmp_path)[0])
    assert track.program == pretty_midi.instrument_name_to_program(a.theme.played_by)


def test_themes_are_stable_and_each_recurring_character_has_their_own(plan):
    book, result = plan
    themes = book_themes(book, result.scenes)
    assert set(themes) == set(recurring_characters(book, result.scenes)) and len(themes) >= 2
    assert themes == book_themes(book, result.scenes)  # the same draw every run
    assert len({t.instrument for t in themes.values()}) == len(themes)
    for cue in result.captions.cues:
        assert (cue.theme is None) == ("'s theme on" not in cue.caption)
        if cue.theme is not None:
            assert cue.theme.phrase in cue.caption.lower() and not cue.caption_edited


def test_a_page_without_a_recurring_speaker_has_no_theme(plan):
    book, result = plan
    for cue in result.captions.cues:
        speakers = {t.speaker for t in book.pages[cue.page].texts}
        if not speakers & set(book_themes(book, result.scenes)):
            assert cue.theme is None


def test_the_scene_s_mood_orchestrates_the_theme_and_the_notes_stay(plan, tmp_path):
    """Hina's theme in the hopeful first scene is her own flute, legato; in the tense second scene
    it goes to accented brass, lower: another program, shorter notes, the same scale steps."""
    book, result = plan
    hina = [c for c in result.captions.cues if c.theme is not None and c.theme.name == "ヒナ"]
    warm = next(c for c in hina if c.scene == 0)
    tense = next(c for c in hina if c.scene == 1)
    assert warm.theme.mood == "romantic" and warm.theme.voice == warm.theme.instrument == "Flute"
    assert tense.theme.mood == "tense" and tense.theme.voice in voice_table("tense")["voices"]
    assert tense.theme.voice != warm.theme.voice and tense.theme.register < 0
    assert "on a flute, legato, warm" in warm.caption
    assert f"on a {tense.theme.voice.lower()}, accented, low, tense" in tense.caption

    tracks = {}
    for cue in (warm, tense):
        midi, _ = written_midi(cue, tmp_path)
        tracks[cue.scene] = (theme_track(midi), midi.get_tempo_changes()[1][0])
    programs = {scene: track.program for scene, (track, _) in tracks.items()}
    assert programs == {0: pretty_midi.instrument_name_to_program("Flute"),
                        1: pretty_midi.instrument_name_to_program(tense.theme.voice)}
    assert theme_steps(warm, tmp_path) == theme_steps(tense, tmp_path) == [s for _, _, s in warm.theme.motif]

    def sounding(cue, track, bpm) -> float:
        """How much of each written note sounds, on average (1.0: legato)."""
        notes = sorted(track.notes, key=lambda n: n.start)[:len(cue.theme.motif)]
        return sum((n.end - n.start) / (length * 60 / bpm) for n, (_, length, _) in zip(notes, cue.theme.motif, strict=True))\
            / len(notes)

    assert sounding(warm, *tracks[0]) == pytest.approx(1.0, abs=0.05)
    assert sounding(tense, *tracks[1]) == pytest.approx(0.7, abs=0.05)


def test_a_character_keeps_their_own_voice_where_the_mood_allows_it():
    from m2m.cues import Theme
    motif = ((0.0, 1.0, 0), (1.0, 1.0, 2), (2.0, 2.0, 4))
    oboe = Theme("c1", "Aki", "Oboe", motif)
    assert orchestrate(oboe, "sad").voice == "Oboe"  # the sad voices include the oboe
    assert orchestrate(oboe, "calm").voice == "Oboe"  # calm lists none: the character's own
    assert orchestrate(oboe, "happy").voice in voice_table("happy")["voices"]
    assert orchestrate(oboe, "happy") == orchestrate(oboe, "happy")  # the same pick every run
    assert orchestrate(oboe, "no such mood").voice == "Oboe"
    for mood in ("calm", "sad", "tense", "action", "happy", "mysterious", "romantic", "epic"):
        assert all(v in GM_INSTRUMENTS for v in voice_table(mood)["voices"]), mood
        assert orchestrate(oboe, mood).motif == motif
    # a voice a person chose is kept over the mood's; the mood still shapes register and articulation
    cello = edited_theme(oboe, "cello", "")
    assert orchestrate(cello, "tense").voice == "Cello" and orchestrate(cello, "tense").articulation == "accented"


def test_a_person_s_motif_is_checked_and_keeps_the_rhythm_when_it_can():
    motif = ((0.0, 1.0, 0), (1.0, 1.0, 2), (2.0, 2.0, 4))
    assert parse_steps("0 +2 +4 +2 0") == (0, 2, 4, 2, 0)
    assert parse_steps(" 0, -1 ,3 ") == (0, -1, 3)
    assert with_steps(motif, (0, -1, 3)) == ((0.0, 1.0, 0), (1.0, 1.0, -1), (2.0, 2.0, 3))
    spread = with_steps(motif, (0, 1, 2, 3))
    assert [o for o, _, _ in spread] == [0.0, 1.0, 2.0, 3.0] and sum(d for _, d, _ in spread) == 4.0
    for bad, said in (("", "empty"), ("0 two 4", "'two' is not a scale step"), ("0 +2.5", "not a scale step"),
                      ("0 +20", "more than 14"), ("3", "1 notes"), (" ".join(["0"] * 17), "17 notes")):
        with pytest.raises(ValueError, match="theme motif") as e:
            parse_steps(bad)
        assert said in str(e.value)
    with pytest.raises(ValueError, match="theme instrument: unknown instrument 'kazooo'"):
        edited_theme(book_theme(), "kazooo", "")
    with pytest.raises(ValueError, match="drum kit"):
        edited_theme(book_theme(), "drums", "")
    assert edited_theme(book_theme(), "horn", "0 1").voice == "French Horn"


def book_theme():
    from m2m.cues import Theme
    return Theme("c1", "Aki", "Flute", ((0.0, 1.0, 0), (1.0, 3.0, 2)))


def test_a_caption_s_theme_sentence_is_replaced_not_repeated():
    from m2m.cues import Cue, Plan
    from m2m.leitmotifs import name_theme

    theme = book_theme()
    plan = Plan(100, "C", "major", ("Acoustic Grand Piano",), 0.4, "calm")
    legacy = Cue.planned(0, 0, "A calm piano piece. The flute theme of Aki sounds.", plan)
    legacy = Cue(0, 0, legacy.caption, plan, legacy.planned_with, theme)
    named = name_theme(legacy, orchestrate(theme, "tense"))
    assert named.caption == "A calm piano piece. Aki's theme on a french horn, accented, low, tense."
    assert not named.caption_edited, "the director's caption stays the director's"
    again = name_theme(named, orchestrate(edited_theme(theme, "cello", ""), "tense"))
    assert again.caption == "A calm piano piece. Aki's theme on a cello, accented, low, tense."
    typed = Cue(0, 0, "My own words.", plan, legacy.planned_with, theme)  # a person's caption, no theme sentence
    assert name_theme(typed, orchestrate(theme, "calm")).caption == "My own words. Aki's theme on a flute, legato, gentle."
    assert name_theme(typed, orchestrate(theme, "calm")).caption_edited


def test_m2m_themes_prints_each_theme_from_the_run_s_midi(tmp_path, capsys):
    """``m2m themes`` on a rendered run: Hina's theme, read back from the MIDI files, has the same
    scale steps on pages of every scene, played by another voice in the tense scene."""
    from dataclasses import replace

    from m2m.cli import main
    from m2m.pipeline import render_pages
    from tests.ui.chord_engine import ChordEngine

    class ScoredChordEngine(ChordEngine):
        """The chord engine's quick audio with the composer's score, which the run keeps as .mid files."""

        def render(self, cue, options):
            return replace(super().render(cue, options), midi=compose(cue, options.seconds, options.seed)[0].midi)

    book = load_book(EXAMPLE)
    render_pages(book, Settings(runs_root=tmp_path), [p.index for p in book.pages], engine=ScoredChordEngine())
    assert main(["themes", str(EXAMPLE), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    hina = out.split("ヒナ's theme", 1)[1].split("'s theme (", 1)[0]
    pages = hina.split("\n  page")[1:]
    assert len(pages) == 9 and all("scale steps 0 -2 -3 -2 0" in block for block in pages), hina
    assert {block.split(" · ")[1] for block in pages} == {"scene 1", "scene 2", "scene 3", "scene 4"}
    assert "flute (program 73)" in pages[0] and "(program 73)" not in next(b for b in pages if "scene 2" in b)
