"""Leitmotifs (m2m/leitmotifs.py): a recurring character's theme sounds on their pages, in every
scene's key, and can be heard to recur: the same figure in the MIDI of pages of different scenes."""

from __future__ import annotations

from pathlib import Path

import pytest

from m2m.book import load_book
from m2m.leitmotifs import book_themes, recurring_characters
from m2m.midi import pretty_midi
from m2m.music.composition import compose
from m2m.music.theory import scale_pitches, tonic_pitch_class
from m2m.pipeline import Settings, plan_book

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "manga109"


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    book = load_book(EXAMPLE)
    return book, plan_book(book, Settings(runs_root=tmp_path_factory.mktemp("runs")))


def theme_steps(cue) -> list[int]:
    """The theme track's notes as scale steps from the page's tonic nearest its first note."""
    piece, resolved = compose(cue, 20.0)
    track = next(i for i in piece.midi.instruments if i.name.startswith("theme"))
    scale = scale_pitches(tonic_pitch_class(resolved.plan.key), resolved.plan.mode, 0, 127)
    tonics = [i for i, p in enumerate(scale) if p % 12 == tonic_pitch_class(resolved.plan.key)]
    notes = sorted(track.notes, key=lambda n: n.start)[:len(cue.theme.motif)]
    first = scale.index(notes[0].pitch)
    home = min(tonics, key=lambda i: abs(i - (first - cue.theme.motif[0][2])))
    return [scale.index(n.pitch) - home for n in notes]


def test_a_recurring_character_s_theme_recurs_across_scenes_in_each_scene_s_key(plan):
    book, result = plan
    cues = [c for c in result.captions.cues if c.theme is not None and c.theme.name == "ヒナ"]
    scenes = {c.scene for c in cues}
    assert len(scenes) >= 3, "Hina speaks most on pages of at least three scenes"
    a, b = next(c for c in cues if c.scene == 0), next(c for c in cues if c.scene == 2)
    assert (a.plan.key, a.plan.mode) != (b.plan.key, b.plan.mode)  # another key and mode ...
    expected = [step for _, _, step in a.theme.motif]
    assert theme_steps(a) == theme_steps(b) == expected  # ... the same figure
    print("Hina's theme, scene 0 page", a.page, a.plan.key, a.plan.mode, "and scene 2 page", b.page,
          b.plan.key, b.plan.mode, ": scale steps", expected)
    piece, _ = compose(a, 20.0)
    track = next(i for i in piece.midi.instruments if i.name.startswith("theme"))
    assert track.program == pretty_midi.instrument_name_to_program(a.theme.instrument)


def test_themes_are_stable_and_each_recurring_character_has_their_own(plan):
    book, result = plan
    themes = book_themes(book, result.scenes)
    assert set(themes) == set(recurring_characters(book, result.scenes)) and len(themes) >= 2
    assert themes == book_themes(book, result.scenes)  # the same draw every run
    assert len({t.instrument for t in themes.values()}) == len(themes)
    for cue in result.captions.cues:
        assert (cue.theme is None) == (cue.theme is None and "theme of" not in cue.caption)
        if cue.theme is not None:
            assert cue.theme.phrase in cue.caption.lower() and not cue.caption_edited


def test_a_page_without_a_recurring_speaker_has_no_theme(plan):
    book, result = plan
    for cue in result.captions.cues:
        speakers = {t.speaker for t in book.pages[cue.page].texts}
        if not speakers & set(book_themes(book, result.scenes)):
            assert cue.theme is None
