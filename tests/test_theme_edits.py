"""A person's leitmotif and transition edits (m2m/pipeline.py edit_theme, edit_transition): the run
file is updated and marked edited, only the music that depends on it renders again, a directive
rewritten later keeps the person's theme, and a bad value is a clear message with nothing written.
The bundled example with the UI tests' chord engine (the real pipeline, clips in milliseconds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import m2m
from m2m.cues import CaptionSheet, Theme, TransitionSheet
from m2m.jsonio import from_jsonable
from m2m.leitmotifs import orchestrate
from m2m.pipeline import (
    Settings,
    edit_directive,
    edit_theme,
    edit_transition,
    plan_book,
    render_pages,
    run_folder,
)
from m2m.soundtrack import Soundtrack
from m2m.ui.panels import theme_html
from tests.ui.chord_engine import ChordEngine

from .conftest import EXAMPLES

pytestmark = pytest.mark.skipif(not (EXAMPLES / "books.txt").exists(), reason="example book missing")


class ContinuingChordEngine(ChordEngine):
    """The chord engine as an engine that continues each page from the one before (as MusicGen does)."""

    continues = True


@pytest.fixture(scope="module")
def book() -> m2m.Book:
    return m2m.load_book(EXAMPLES)


def render_all(book: m2m.Book, settings: Settings, engine: ChordEngine) -> dict[int, tuple[str, str]]:
    """Render every page missing its clip; page -> (clip hash, file hash) from soundtrack.json."""
    render_pages(book, settings, [p.index for p in book.pages], engine=engine)
    sheet = run_folder(book, settings).read("soundtrack", Soundtrack)
    assert sheet is not None
    return {c.page: (c.hash, c.file_hash) for c in sheet.data.cues}


def raw(book: m2m.Book, settings: Settings, stage: str) -> dict:
    return json.loads(run_folder(book, settings).file(stage).read_text(encoding="utf-8"))


def test_a_theme_edit_is_saved_renders_its_page_only_and_survives_a_new_directive(book, tmp_path: Path) -> None:
    settings = Settings(runs_root=tmp_path)
    engine = ChordEngine()
    before = render_all(book, settings, engine)
    plan = plan_book(book, settings)
    cue = plan.captions.cue(5)  # Hina speaks most; scene 1 is tense: a brass voice, accented
    assert cue.theme is not None and cue.theme.mood == "tense" and not cue.theme.edited

    edit_theme(book, settings, 5, "cello", "0 +2 +4 +2 0")
    saved = raw(book, settings, "captions")
    assert saved["payload_hash"] == "edited", "marked as a person's edit, so the plan keeps it"
    theme = saved["data"]["cues"][5]["theme"]
    assert (theme["voice"], theme["instrument"], theme["edited"]) == ("Cello", "Flute", True)
    assert [step for _, _, step in theme["motif"]] == [0, 2, 4, 2, 0]
    assert theme["articulation"] == "accented" and theme["mood"] == "tense"  # the scene's mood still shapes it
    captions = run_folder(book, settings).read("captions", CaptionSheet).data
    assert captions.cue(5).caption.endswith("ヒナ's theme on a cello, accented, low, tense.")
    assert not captions.cue(5).caption_edited, "the director's caption, its theme sentence rewritten"
    assert [c for c in captions.cues if c.page != 5] == [c for c in plan.captions.cues if c.page != 5]

    after = render_all(book, settings, engine)
    changed = sorted(p for p in before if before[p] != after[p])
    assert changed == [5], "only the edited page's music renders again"

    # A new directive for scene 1 rewrites its captions; the person's theme stands on page 5.
    edit_directive(book, settings, 1, "A frantic chase: driving percussion and brass, fast and loud.")
    captions = run_folder(book, settings).read("captions", CaptionSheet).data
    kept = captions.cue(5).theme
    assert kept.edited and kept.voice == "Cello" and kept.steps == "0 +2 +4 +2 0"
    assert "ヒナ's theme on a cello" in captions.cue(5).caption
    assert captions.cue(5).caption.count("'s theme on") == 1
    assert captions.cue(6).theme is not None and not captions.cue(6).theme.edited  # the others follow the mood


def test_a_motif_only_edit_leaves_the_voice_to_the_scenes_mood(book, tmp_path: Path) -> None:
    settings = Settings(runs_root=tmp_path)
    plan = plan_book(book, settings)
    planned = plan.captions.cue(5).theme
    assert planned is not None and planned.mood == "tense"

    edit_theme(book, settings, 5, "", "0 -1 -3 -1 0")
    theme = run_folder(book, settings).read("captions", CaptionSheet).data.cue(5).theme
    assert theme.edited and not theme.keeps_voice and theme.voice == planned.voice, "the mood's voice, not frozen"
    assert "the figure is yours" in theme_html(run_folder(book, settings).read("captions", CaptionSheet).data.cue(5))

    # a scene turned happy gives the theme the character's own flute (the French horn was the tense
    # scene's pick, not the person's); the person's figure stays
    happy = orchestrate(theme, "happy")
    assert (happy.voice, happy.steps) == ("Flute", "0 -1 -3 -1 0") != (theme.voice, planned.steps)
    # a new directive writes the scene's captions again: the person's figure stands there too
    edit_directive(book, settings, 1, "A gentle, warm reunion: soft strings, slow and tender.")
    kept = run_folder(book, settings).read("captions", CaptionSheet).data.cue(5).theme
    assert kept.steps == "0 -1 -3 -1 0" and kept.edited and not kept.keeps_voice


def test_a_voice_edit_stands_when_a_motif_edit_follows(book, tmp_path: Path) -> None:
    settings = Settings(runs_root=tmp_path)
    plan_book(book, settings)
    edit_theme(book, settings, 5, "cello", "")
    edit_theme(book, settings, 5, "", "0 +1 0")
    theme = run_folder(book, settings).read("captions", CaptionSheet).data.cue(5).theme
    assert theme.keeps_voice and theme.voice == "Cello" and theme.steps == "0 +1 0"


def test_a_theme_edited_before_voice_choices_were_recorded_keeps_its_voice() -> None:
    legacy = from_jsonable(Theme, {"character": "c1", "name": "Aki", "instrument": "Flute", "voice": "Cello",
                                   "motif": [[0.0, 1.0, 0]], "edited": True})
    assert legacy.voice_chosen is None and legacy.keeps_voice
    assert orchestrate(legacy, "happy").voice == "Cello"


@pytest.mark.parametrize(("page", "voice", "steps", "said"), [
    (0, "oboe", "", "page 1 has no leitmotif"),
    (5, "kazooo", "", "theme instrument: unknown instrument 'kazooo'"),
    (5, "", "0 up 2", "theme motif: 'up' is not a scale step"),
    (5, "drums", "", "drum kit"),
])
def test_a_bad_theme_edit_says_why_and_writes_nothing(book, tmp_path: Path, page, voice, steps, said) -> None:
    settings = Settings(runs_root=tmp_path)
    plan_book(book, settings)
    file = run_folder(book, settings).file("captions")
    text = file.read_text(encoding="utf-8")
    with pytest.raises(ValueError) as e:
        edit_theme(book, settings, page, voice, steps)
    assert said in str(e.value)
    assert file.read_text(encoding="utf-8") == text


def test_a_transition_edit_is_played_and_renders_only_what_continues_from_it(book, tmp_path: Path) -> None:
    settings = Settings(runs_root=tmp_path)
    engine = ContinuingChordEngine()
    before = render_all(book, settings, engine)
    plan = plan_book(book, settings)
    assert plan.transitions.into(2).kind == "silence"

    edit_transition(book, settings, 2, "crossfade", 3.0, "  A slow dissolve into the quiet scene.  ")
    saved = raw(book, settings, "transitions")
    assert saved["payload_hash"] == "edited"
    sheet = run_folder(book, settings).read("transitions", TransitionSheet).data
    assert sheet.into(2) == type(sheet.into(2))(2, "crossfade", 3.0, "A slow dissolve into the quiet scene.")
    assert sheet.into(1) == plan.transitions.into(1) and sheet.into(3) == plan.transitions.into(3)
    after = render_all(book, settings, engine)
    assert after == before, "a crossfade instead of a silence changes how pages join, not their clips"
    cues = {c.page: c for c in run_folder(book, settings).read("soundtrack", Soundtrack).data.cues}
    assert (cues[9].transition, cues[9].crossfade, cues[9].silence) == ("crossfade", 3.0, 0.0)

    # "continue" carries scene 1's last page into scene 2: an engine that continues renders the new
    # scene again (its pages continue one from another), and nothing before it.
    edit_transition(book, settings, 2, "continue", 2.0, "The same breath goes on.")
    after = render_all(book, settings, engine)
    changed = sorted(p for p in before if before[p][0] != after[p][0])
    assert changed == [9, 10, 11, 12]
    assert plan_book(book, settings).transitions.into(2).kind == "continue", "the plan keeps the edit"


@pytest.mark.parametrize(("scene", "kind", "seconds", "why", "said"), [
    (0, "cut", 0.0, "x", "no scene change leads into scene 1"),
    (2, "fade", 2.0, "x", "kind 'fade' is not one of continue, crossfade"),
    (2, "crossfade", 99.0, "x", "transition into scene 3: 99.0 s is outside 0..12 s"),
    (2, "crossfade", 0.0, "x", "a crossfade needs a length above 0 s"),
    (2, "crossfade", None, "x", "say how many seconds"),
    (2, "silence", 1.0, "   ", "the reason is empty"),
])
def test_a_bad_transition_edit_says_why_and_writes_nothing(book, tmp_path: Path, scene, kind, seconds, why,
                                                           said) -> None:
    settings = Settings(runs_root=tmp_path)
    plan_book(book, settings)
    file = run_folder(book, settings).file("transitions")
    text = file.read_text(encoding="utf-8")
    with pytest.raises(ValueError) as e:
        edit_transition(book, settings, scene, kind, seconds, why)
    assert said in str(e.value)
    assert file.read_text(encoding="utf-8") == text
