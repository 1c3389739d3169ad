"""The side panel's theme and transition editors in a real browser (Debian's Chromium): the bundled
example with the chord engine. On page 6 (scene 2, tense) Hina's theme is given to a cello with a
new motif and the page's music comes again; on page 10 the silence into scene 3 becomes a
crossfade, which the reader then plays; a bad motif is a status message and the box keeps it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from m2m.book import load_book
from m2m.cues import CaptionSheet, TransitionSheet
from m2m.pipeline import run_folder
from tests.ui.chord_engine import chord_service
from tests.ui.conftest import EXAMPLES, Served, serve
from tests.ui.test_reader_browser import STATE, open_reader, wait_all_clips, wait_or_explain

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def served_example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serve(EXAMPLES, tmp_path_factory.mktemp("editors"), chord_service())


def go(page, index: int) -> None:
    """Turn to page ``index`` (0-based) and wait for its panels."""
    page.evaluate(f"window.m2mReader.go({index})")
    page.wait_for_selector(f'#m2m-scene [data-m2m-page="{index}"]', timeout=15_000)


def status(page) -> str:
    return page.locator(".m2m-status").first.inner_text()


def test_the_theme_and_transition_editors_save_and_the_music_follows(browser, served_example, artifacts):
    context, page, errors = open_reader(browser, served_example.url, 1366, 1400)
    try:
        wait_all_clips(page)
        go(page, 5)
        info = page.locator("#m2m-theme-info")
        assert "ヒナ's theme" in info.inner_text() and "tense scene" in info.inner_text()
        voice = page.locator("#m2m-theme-voice input, #m2m-theme-voice textarea").first
        motif = page.locator("#m2m-theme-motif input, #m2m-theme-motif textarea").first
        assert voice.input_value() not in ("", "Flute") and motif.input_value() == "0 -2 -3 -2 0"
        old = page.evaluate(STATE)["clips"]["5"]

        voice.fill("Cello")
        motif.fill("0 +2 +4 +2 0")
        page.click("#m2m-theme-save")
        wait_or_explain(page, "document.querySelector('.m2m-status-box').innerText.includes('Saved to the run file')",
                        20_000, "the theme edit to be saved")
        wait_or_explain(page, f"window.m2mReader.state().clips['5'] !== '{old}'", 15_000,
                        "page 6's new clip")
        page.wait_for_function("document.querySelector('#m2m-theme-info').innerText.includes('your choice')",
                               timeout=10_000)
        assert "cello · scale steps 0 +2 +4 +2 0" in info.inner_text()
        book = load_book(EXAMPLES)
        settings = served_example.service.Settings(runs_root=served_example.config.runs_root)
        run = run_folder(book, settings)
        assert run.read("captions", CaptionSheet).data.cue(5).theme.voice == "Cello"

        # a motif that is not scale steps: said in the status line, the box keeps what was typed
        motif.fill("0 +2 up")
        page.click("#m2m-theme-save")
        wait_or_explain(page, "document.querySelector('.m2m-status-box').innerText.includes('not applied')",
                        10_000, "the refusal of a bad motif")
        assert "'up' is not a scale step" in status(page) and motif.input_value() == "0 +2 up"

        go(page, 9)
        assert page.evaluate(STATE)["enters"]["9"]["kind"] == "silence"
        # a negative length: refused in the status line; nothing else on the page is marked failed
        seconds = page.locator("#m2m-transition-seconds input")
        seconds.fill("-5")
        page.click("#m2m-transition-save")
        wait_or_explain(page, "document.querySelector('.m2m-status-box').innerText.includes('-5.0 s is outside 0..12 s')",
                        10_000, "the refusal of a negative length")
        assert "not applied" in status(page), status(page)
        page.wait_for_timeout(500)
        failed = page.evaluate("[...document.querySelectorAll('.gradio-container *')].filter(e => "
                               "e.childElementCount === 0 && e.textContent.trim() === 'Error' && e.offsetParent).length")
        assert failed == 0, f"{failed} components show Gradio's error badge"
        assert page.evaluate(STATE)["enters"]["9"]["kind"] == "silence"
        page.locator("#m2m-transition-kind input").click()
        page.get_by_role("option", name="crossfade").click()
        seconds.fill("3")
        page.locator("#m2m-transition-why textarea").fill("A slow dissolve into the quiet scene.")
        page.locator(".m2m-side").screenshot(path=str(artifacts / "side-panel-theme-transition.png"))
        page.click("#m2m-transition-save")
        wait_or_explain(page, "window.m2mReader.state().enters['9'] && "
                              "window.m2mReader.state().enters['9'].kind === 'crossfade'", 20_000,
                        "the reader to take the new transition")
        assert page.evaluate(STATE)["enters"]["9"]["fade"] == pytest.approx(3.0, abs=0.01)
        assert run.read("transitions", TransitionSheet).data.into(2).kind == "crossfade"
        page.wait_for_function("document.querySelector('#m2m-transition-info').innerText.includes('a crossfade (3 s)')",
                               timeout=10_000)
        wait_or_explain(page, "document.querySelector('.m2m-status-box').innerText.includes('scene change into page 10')",
                        10_000, "the status line to say the scene change is rebuilt")
        assert not errors, errors
    finally:
        context.close()
