"""The reader's data, priorities and panels, without a browser."""

from __future__ import annotations

from pathlib import Path

import pytest

from m2m.book import BookError, LoadLimits, load_book
from m2m.ui import books
from m2m.ui.manifest import file_url, reader_value, render_order
from m2m.ui.panels import panels
from tests.ui import bookmaker
from tests.ui.chord_engine import chord_service


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    root = bookmaker.manga109_book(tmp_path_factory.mktemp("m109"), pages=7)
    return load_book(root, "TestBook")


def test_render_order_prefers_the_page_on_screen_and_the_next_two():
    pages = list(range(10))
    assert render_order(pages, 4, []) == [4, 5, 6, 3, 7, 8, 9, 0, 1, 2]
    assert render_order(pages, 4, [4, 5]) == [6, 3, 7, 8, 9, 0, 1, 2]
    assert render_order(pages, 0, []) == list(range(10))
    assert render_order(pages, 9, [9]) == [8, 0, 1, 2, 3, 4, 5, 6, 7]
    assert render_order(pages, 3, pages) == []


def test_clip_urls_carry_the_version(tmp_path):
    url = file_url(tmp_path / "a b.ogg", "abc123")
    assert url.startswith("gradio_api/file=/") and url.endswith("a%20b.ogg?v=abc123")


def test_reader_value_and_panels(book, tmp_path):
    service = chord_service()
    settings = service.Settings(runs_root=tmp_path)
    service.plan_book(book, settings)
    view = service.render_pages(book, settings, [0, 1])
    value = reader_value(book, "TestBook/m2m", view.clips, crossfade_s=2.0, planned=True)
    assert value["book"]["direction"] == "rtl" and len(value["book"]["pages"]) == 7
    assert set(value["clips"]) == {"0", "1"} and value["status"] == {
        "planned": True, "ready": 2, "total": 7, "message": "", "stopped": False}
    p = panels(book, view, 1)
    assert "おはよう" in p.scene or "待って" in p.scene
    assert 'lang="ja"' in p.scene and 'lang="en"' in p.scene
    cue = view.captions.cue(1)
    assert f"{cue.plan.tempo} BPM" in p.caption and p.caption_text == cue.caption
    assert "% " in p.emotions and "<code>dialogue</code>" in p.emotions
    assert "<code>offline</code>" in p.provenance and "<code>chord</code>" in p.provenance
    assert p.scene_index == view.captions.cue(1).scene


def test_panels_before_the_plan_say_so(book):
    p = panels(book, None, 0)
    assert "not planned yet" in p.scene and "No emotion report" in p.emotions and p.caption_text == ""


def test_upload_errors_hide_server_folders(tmp_path):
    archive = bookmaker.simple_zip(tmp_path / "b.zip", transcript={"pages": [{"image": "gone.png"}]}, images={})
    uploads = tmp_path / "uploads"
    with pytest.raises(BookError) as e:
        books.open_upload(archive, uploads, LoadLimits())
    assert "b.zip" in str(e.value) and str(uploads) not in str(e.value)
    assert not any(uploads.iterdir()), "a refused book leaves nothing behind"


def test_example_needs_books_txt(tmp_path):
    with pytest.raises(BookError, match="books.txt"):
        books.open_example(Path(tmp_path), LoadLimits())


def test_caption_panel_says_when_an_edited_caption_overrides_the_plan():
    from dataclasses import replace
    from types import SimpleNamespace

    from m2m.cues import CaptionSheet, Cue, Plan
    from m2m.ui.panels import caption_panel

    written = Cue.planned(0, 0, "A calm piano piece", Plan(80, "C", "major", ("acoustic grand piano",), 0.3, "calm"))
    view = SimpleNamespace(captions=CaptionSheet((written,)), clips={})
    assert "caption edited" not in caption_panel(view, 0)
    view = SimpleNamespace(captions=CaptionSheet((replace(written, caption="A furious metal track at 170 BPM"),)),
                           clips={})
    html = caption_panel(view, 0)
    assert "caption edited" in html
    # the chips show what the music follows: the caption's tempo, marked as taken from it, not the old 80
    assert '<span class="m2m-chip m2m-chip-edited">170 BPM</span>' in html and "80 BPM" not in html
    assert "tempo" in html.split("caption edited", 1)[1]


def test_the_directive_panel_says_how_the_music_moves_into_the_scene(tmp_path):
    from tests.ui.conftest import EXAMPLES

    example = load_book(EXAMPLES)
    service = chord_service()
    settings = service.Settings(runs_root=tmp_path)
    service.plan_book(example, settings)
    view = service.render_pages(example, settings, [8, 9])
    chosen = view.transitions.into(view.captions.cue(9).scene)
    assert chosen is not None and chosen.kind == "silence"
    text = panels(example, view, 9).directive
    assert "Into this scene: <b>a silence (1.5 s)</b>" in text and "breath of silence" in text
    assert "Into this scene: <b>a stinger, the old scene&#x27;s closing cadence (3 s)</b>" \
        in panels(example, view, 8).directive  # its scene's
    assert "closes on a 3 s cadence" in panels(example, view, 8).directive
    assert "Into this scene" not in panels(example, view, 2).directive  # the first scene: nothing before it
    value = reader_value(example, "x", view.clips, crossfade_s=1.5, planned=True, entrances=view.entrances)
    entrances = value["entrances"]
    assert entrances["9"]["enter"] == {"kind": "silence", "fade": 1.0, "silence": 1.5}
    # every page carries the cue sheet's fade into it: the old music's under the silence, the page
    # crossfade within a scene (a plain turn plays it)
    assert entrances["9"]["fade"] == 1.0 and entrances["8"]["fade"] == 1.5 and "enter" not in entrances["8"]
    # every planned page's entrance, its clip made or not (only 8 and 9 are): a turn into page 13
    # before its music is made still knows it is a cut
    assert set(value["clips"]) == {"8", "9"} and len(entrances) == len(example.pages)
    assert entrances["13"]["enter"]["kind"] == "cut" and entrances["0"] == {"fade": 0.0}
    assert "stinger" not in entrances["5"]["enter"]  # not made yet: the reader waits out its length
    # the stinger into scene 1 (page 5) is made with the scene's last page (4) and reaches the reader
    view = service.render_pages(example, settings, [4, 5])
    enter = reader_value(example, "x", view.clips, crossfade_s=1.5, planned=True,
                         entrances=view.entrances)["entrances"]["5"]["enter"]
    assert {k: enter[k] for k in ("kind", "fade", "silence", "seconds")} == {
        "kind": "stinger", "fade": 1.0, "silence": 0.0, "seconds": 3.0}
    assert "stinger-001.ogg" in enter["stinger"] and view.entrances[5].stinger.is_file()
    assert enter["stinger_fallback"].startswith("m2m/flac?") and "stinger-001.ogg" in enter["stinger_fallback"]


def test_the_theme_panel_names_the_page_s_leitmotif_and_fills_its_editors(tmp_path):
    from tests.ui.conftest import EXAMPLES

    example = load_book(EXAMPLES)
    service = chord_service()
    settings = service.Settings(runs_root=tmp_path)
    service.plan_book(example, settings)
    view = service.open_run(example, settings)
    theme = view.captions.cue(1).theme
    assert theme is not None and theme.phrase in view.captions.cue(1).caption.lower()
    shown = panels(example, view, 1)
    assert f"{theme.name}'s theme · flute · scale steps {theme.steps} " in shown.theme
    assert "the romantic scene plays it legato, warm; their own instrument" in shown.theme
    assert (shown.theme_voice, shown.theme_steps) == ("Flute", theme.steps)
    tense = panels(example, view, 5)  # scene 2 is tense: Hina's theme goes to brass, accented
    assert tense.theme_voice == view.captions.cue(5).theme.voice != "Flute"
    assert "the tense scene plays it accented, low, tense; their own instrument is the flute" in tense.theme
    assert view.captions.cue(0).theme is None and "No leitmotif on this page" in panels(example, view, 0).theme
    assert panels(example, view, 0).theme_voice == ""


def test_the_transition_editor_shows_the_scene_s_incoming_transition(tmp_path):
    from tests.ui.conftest import EXAMPLES

    example = load_book(EXAMPLES)
    service = chord_service()
    settings = service.Settings(runs_root=tmp_path)
    service.plan_book(example, settings)
    view = service.open_run(example, settings)
    into = view.transitions.into(2)
    shown = panels(example, view, 10)  # scene 3 (index 2) begins on page 10 (index 9)
    assert (shown.transition_kind, shown.transition_seconds, shown.transition_why) == (into.kind, into.seconds,
                                                                                       into.why)
    assert "Scene 3 begins on page 10" in shown.transition and "a silence (1.5 s)" in shown.transition
    first = panels(example, view, 1)
    assert first.transition_kind is None and "the music starts here" in first.transition


def test_the_baseline_s_panels_say_it_plans_no_scenes_rather_than_that_the_plan_has_not_run(tmp_path):
    from tests.ui.conftest import EXAMPLES

    example = load_book(EXAMPLES)
    service = chord_service()
    settings = service.Settings(runs_root=tmp_path, condition="baseline")
    service.plan_book(example, settings)
    view = service.open_run(example, settings)
    assert view.captions is not None and view.scenes is None
    p = panels(example, view, 2)
    for text in (p.scene, p.transition, p.theme):
        assert "This run plans no scenes" in text and "not planned yet" not in text and "has not run" not in text
    assert "only M2M-Gen chooses transitions" in p.transition and "only M2M-Gen" in p.theme
    # before any plan, the panels still say it has not run
    assert "not planned yet" in panels(example, None, 2).scene


def test_a_narration_box_is_said_to_have_no_speaker_not_an_unknown_one():
    from tests.ui.conftest import EXAMPLES

    example = load_book(EXAMPLES)
    scene = panels(example, None, 1).scene
    assert "夏の終わり" in scene and "(no speaker)" in scene and "unknown" not in scene
