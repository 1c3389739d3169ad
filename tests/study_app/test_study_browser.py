"""The Study tab in headless Chromium: consent -> screening -> listen with crossfades -> one rating -> reload resumes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from m2m.study import RatingsStore, load_study
from tests.conftest import chromium, free_port

from .conftest import ADMIN_TOKEN, make_study_dir

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "study"
STATE = "window.studyPlayer.state()"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, RatingsStore, Path]]:
    from m2m.ui.study_api import study_app_kwargs
    from m2m.ui.study_tab import build_study_blocks

    folder = tmp_path_factory.mktemp("study")
    make_study_dir(folder)
    store = RatingsStore(folder / "study.sqlite3")
    mp = pytest.MonkeyPatch()
    mp.setenv("M2M_STUDY_ADMIN_TOKEN", ADMIN_TOKEN)
    demo = build_study_blocks(folder, store)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False,
                app_kwargs=study_app_kwargs(folder, store))
    try:
        yield f"http://127.0.0.1:{port}/", store, folder
    finally:
        demo.close()
        store.close()
        mp.undo()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium(["--autoplay-policy=no-user-gesture-required"]) as b:
        yield b


def wait_screen(page, screen: str) -> None:
    page.wait_for_selector(f'.st-root[data-screen="{screen}"]', timeout=30_000)


def open_study(browser, url: str, routes: tuple = ()) -> tuple:
    """A new browser context on the study page (``routes`` installed first); its page errors collected."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    for matcher, handler in routes:
        context.route(matcher, handler)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    return context, page, errors


def test_consent_screening_listen_and_rate(browser, served) -> None:
    url, store, folder = served
    study = load_study(folder / "study.json")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context, page, errors = open_study(browser, url)
    try:
        wait_screen(page, "consent")
        assert page.is_disabled("#st-consent-go")
        page.check("#st-agree")
        page.click("#st-consent-go")

        wait_screen(page, "screening")
        page.click("#st-register")  # nothing answered yet: refused on the page, nothing sent
        assert page.is_visible("text=Please answer every question.")
        page.click('label[for="st-manga_interest-4"]')
        page.click('label[for="st-music_interest-5"]')
        page.click('label[for="st-japanese-fluent"]')
        page.screenshot(path=str(ARTIFACTS / "study-screening.png"))
        page.click("#st-register")

        wait_screen(page, "intro")
        state = page.evaluate(STATE)
        assert state["rated"] == 0 and state["total"] == 6 and state["label"] == "A"
        assert page.evaluate("localStorage.length") == 1
        page.click("#st-play")
        wait_screen(page, "listen")
        page.wait_for_function("window.studyPlayer.state().voices.some(v => v.gain > 0.99)", timeout=15_000)
        assert page.is_disabled("#st-to-rate"), "rating opens only after the last page"
        for expected in (1, 2, 3):
            page.click("#st-next")
            page.wait_for_function(f"window.studyPlayer.state().page === {expected}")
            # Each turn: the old page fades out while the new one fades in (equal power, from the current gain).
            page.wait_for_function("(() => { const v = window.studyPlayer.state().voices;"
                                   " return v.some(x => x.target === 1 && x.gain > 0.99); })()", timeout=15_000)
        fades = page.evaluate(STATE)["fades"]
        turns = [f for f in fades if f["reason"] == "turn"]
        assert len([f for f in turns if any(x["to"] == 0 for x in f["fades"])]) >= 3
        assert len([f for f in turns if any(x["to"] == 1 for x in f["fades"])]) >= 3
        page.screenshot(path=str(ARTIFACTS / "study-listen.png"))
        page.click("#st-to-rate")

        wait_screen(page, "rate")
        assert page.is_visible("text=How appropriate is the music for the scene?")
        page.click('label[for="st-relevancy-4"]')
        page.click('label[for="st-quality-3"]')
        page.click('label[for="st-consistency-5"]')
        page.screenshot(path=str(ARTIFACTS / "study-rate.png"), full_page=True)
        page.click("#st-submit")
        page.wait_for_function("window.studyPlayer.state().rated === 1", timeout=15_000)
        wait_screen(page, "intro")
        assert page.evaluate(STATE)["label"] == "B"
        rows = store.ratings(study.id)
        assert [(r.label, r.relevancy, r.quality, r.consistency) for r in rows] == [("A", 4, 3, 5)]

        # A reload resumes where the participant was, with the same anonymous id.
        pid = page.evaluate(STATE)["participant"]
        page.reload()
        wait_screen(page, "intro")
        state = page.evaluate(STATE)
        assert state["participant"] == pid and state["rated"] == 1 and state["label"] == "B"
        page.screenshot(path=str(ARTIFACTS / "study-resumed.png"))

        # The researcher view: wrong token refused, right token answers (too few participants for a report yet).
        page.click("#study-researcher button, #study-researcher .label-wrap")
        page.fill("#study-admin-token input", "wrong")
        page.click("#study-admin-show")
        page.wait_for_selector("text=That is not the researcher token.", timeout=15_000)
        page.fill("#study-admin-token input", ADMIN_TOKEN)
        page.click("#study-admin-show")
        page.wait_for_selector("text=No report yet", timeout=30_000)
        assert errors == [] and page.evaluate(STATE)["errors"] == []

        # The app runs in Gradio's dark theme: the same screen there.
        page.goto(url + "?__theme=dark")
        wait_screen(page, "intro")
        page.screenshot(path=str(ARTIFACTS / "study-dark.png"))
    finally:
        context.close()


def test_clips_play_from_flac_where_ogg_does_not_decode(browser, served) -> None:
    """As in a Safari without OGG Vorbis: every OGG clip arrives undecodable; the player asks for
    FLAC and the stimulus plays."""
    url, _, _ = served

    def break_ogg(route) -> None:
        response = route.fetch()
        if response.headers.get("content-type") == "audio/ogg":
            route.fulfill(status=200, body=b"OggS not really", content_type="audio/ogg")
        else:
            route.fulfill(response=response)

    context, page, errors = open_study(browser, url, routes=(("**/study/api/asset/**", break_ogg),))
    try:
        wait_screen(page, "consent")
        page.check("#st-agree")
        page.click("#st-consent-go")
        wait_screen(page, "screening")
        page.click('label[for="st-manga_interest-3"]')
        page.click('label[for="st-music_interest-3"]')
        page.click('label[for="st-japanese-none"]')
        page.click("#st-register")
        wait_screen(page, "intro")
        page.click("#st-play")
        wait_screen(page, "listen")
        page.wait_for_function("window.studyPlayer.state().voices.some(v => v.gain > 0.99)", timeout=20_000)
        assert any("trying FLAC" in e for e in page.evaluate(STATE)["errors"])
        assert errors == []
    finally:
        context.close()
