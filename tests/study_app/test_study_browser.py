"""The Study tab in headless Chromium: consent -> screening -> listen with crossfades -> one rating -> reload resumes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from m2m.study import RatingsStore, build_session, load_study
from m2m.study.manifest import version_entries
from tests.conftest import chromium, free_port

from .conftest import ADMIN_TOKEN, make_study_dir

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "study"
STATE = "window.studyPlayer.state()"


def serve_study(folder: Path, other_tab: bool = True) -> Iterator[tuple[str, RatingsStore, Path]]:
    """The study in ``folder`` served as the app serves it; (its URL, its ratings store, the folder)."""
    import gradio as gr

    from m2m.ui.study_api import study_app_kwargs
    from m2m.ui.study_tab import build_study_tab

    store = RatingsStore(folder / "study.sqlite3")
    mp = pytest.MonkeyPatch()
    mp.setenv("M2M_STUDY_ADMIN_TOKEN", ADMIN_TOKEN)
    # As in the app: a second tab (the reader there) that hides the study while it is open.
    with gr.Blocks(title="Listening study") as demo:
        with gr.Tab("Listening study"):
            build_study_tab(folder, store)
        if other_tab:
            with gr.Tab("Read"):
                gr.Markdown("The reader would be here.")
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
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, RatingsStore, Path]]:
    folder = tmp_path_factory.mktemp("study")
    make_study_dir(folder)
    yield from serve_study(folder)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium(["--autoplay-policy=no-user-gesture-required"]) as b:
        yield b


def wait_screen(page, screen: str) -> None:
    page.wait_for_selector(f'.st-root[data-screen="{screen}"]', timeout=30_000)


PHONE = {"width": 390, "height": 844}


def session_of(folder: Path, store: RatingsStore, pid: str):
    """The participant's session as the server builds it (which condition each label plays), for a
    test to unblind what it heard; each version's transitions from its run folder, as served."""
    study = load_study(folder / "study.json")
    return build_session(study, folder, pid, store.participant(pid).number, store.server_secret(),
                         lambda book, p: folder / "pages" / book / f"{p:03d}.png",
                         lambda stimulus, condition: version_entries(folder, stimulus, condition))


def open_study(browser, url: str, routes: tuple = (), viewport: dict | None = None) -> tuple:
    """A new browser context on the study page (``routes`` installed first); its page errors collected."""
    context = browser.new_context(viewport=viewport or {"width": 1100, "height": 900})
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


# ---------------------------------------------------------------------------------------------
# Helpers for the tests below: each starts a new participant in a new browser context.

def register(page) -> None:
    """Consent and screening answered; the first version's intro is on screen."""
    wait_screen(page, "consent")
    page.check("#st-agree")
    page.click("#st-consent-go")
    wait_screen(page, "screening")
    page.click('label[for="st-manga_interest-3"]')
    page.click('label[for="st-music_interest-4"]')
    page.click('label[for="st-japanese-basic"]')
    page.click("#st-register")
    wait_screen(page, "intro")


def listen_through(page, play: str = "#st-play") -> None:
    """Play the version and turn to its last page, which opens the rating."""
    page.click(play)
    wait_screen(page, "listen")
    for expected in (1, 2, 3):
        page.click("#st-next")
        page.wait_for_function(f"window.studyPlayer.state().page === {expected}")
    page.wait_for_selector("#st-to-rate:not([disabled])")


def checked(page) -> dict[str, str | None]:
    return page.evaluate("""() => Object.fromEntries(['relevancy', 'quality', 'consistency'].map((k) => {
        const input = document.querySelector('input[name="st-' + k + '"]:checked');
        return [k, input ? input.value : null];
    }))""")


def unreadable_options(page) -> list[str]:
    """Every choice box on screen that shows no words, or whose words spill out of the box."""
    return page.evaluate("""() => [...document.querySelectorAll('.st-root .st-option')].filter((box) => {
        const label = box.querySelector('.st-label');
        if (!label || !label.offsetParent || !label.innerText.trim()) return true;
        const b = box.getBoundingClientRect(), l = label.getBoundingClientRect();
        return l.width < 1 || l.left < b.left - 0.5 || l.right > b.right + 0.5;
    }).map((box) => box.getAttribute('for'))""")


def test_every_choice_is_readable_on_a_phone(browser, served) -> None:
    """At 390 px the Japanese levels showed five empty boxes (their only text was hidden), and the
    1-5 scales only numbers: every choice must show its words, inside its box."""
    url, _, _ = served
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context, page, errors = open_study(browser, url, viewport=PHONE)
    try:
        wait_screen(page, "consent")
        page.check("#st-agree")
        page.click("#st-consent-go")
        wait_screen(page, "screening")
        assert page.locator(".st-option").count() == 15
        assert unreadable_options(page) == []
        assert page.locator('label[for="st-japanese-conversational"]').inner_text().strip() == "Conversational"
        page.click('label[for="st-japanese-fluent"]')
        page.screenshot(path=str(ARTIFACTS / "study-phone-screening.png"), full_page=True)
        page.click('label[for="st-manga_interest-2"]')
        page.click('label[for="st-music_interest-5"]')
        page.click("#st-register")
        wait_screen(page, "intro")
        listen_through(page)
        # a single page fits the phone's width; a two-page spread is not shrunk to it (unreadable)
        # but keeps a readable height, scrolls sideways and opens at its right edge, where a manga
        # spread begins
        measure = """() => {
            const stage = document.querySelector('.st-stage'), img = stage.querySelector('img');
            const s = stage.getBoundingClientRect(), i = img.getBoundingClientRect();
            return {height: i.height, right: i.right - s.right, scrolls: stage.scrollWidth > stage.clientWidth + 1,
                    page: document.documentElement.scrollWidth};
        }"""
        single = page.evaluate(measure)
        assert not single["scrolls"] and single["page"] <= PHONE["width"], single
        page.evaluate("""() => new Promise((done) => {
            const canvas = Object.assign(document.createElement('canvas'), {width: 1400, height: 1000});
            const img = document.querySelector('.st-stage img');
            img.addEventListener('load', () => done(), {once: true});
            img.src = canvas.toDataURL();
        })""")
        spread = page.evaluate(measure)
        assert spread["scrolls"] and spread["height"] >= 0.55 * PHONE["height"], spread
        assert spread["page"] <= PHONE["width"] and abs(spread["right"]) < 12, spread
        page.screenshot(path=str(ARTIFACTS / "study-phone-listen.png"))
        page.click("#st-to-rate")
        wait_screen(page, "rate")
        assert page.locator(".st-option").count() == 15
        assert unreadable_options(page) == []
        page.click('label[for="st-relevancy-3"]')
        page.screenshot(path=str(ARTIFACTS / "study-phone-rate.png"), full_page=True)
        assert errors == []
    finally:
        context.close()


def test_unsent_choices_survive_listen_again_and_a_reload(browser, served) -> None:
    """Scores picked, then "Listen again", then back to the rating: the choices were all cleared."""
    url, store, folder = served
    study = load_study(folder / "study.json")
    context, page, errors = open_study(browser, url)
    try:
        register(page)
        listen_through(page)
        page.click("#st-to-rate")
        wait_screen(page, "rate")
        page.click('label[for="st-relevancy-2"]')
        page.click('label[for="st-consistency-5"]')
        page.click("#st-again")
        wait_screen(page, "listen")
        page.wait_for_selector("#st-to-rate:not([disabled])")  # this version is heard already
        page.click("#st-to-rate")
        wait_screen(page, "rate")
        assert checked(page) == {"relevancy": "2", "quality": None, "consistency": "5"}

        # A reload starts at the version's intro again; once it is heard, the choices are back.
        page.reload()
        wait_screen(page, "intro")
        listen_through(page)
        page.click("#st-to-rate")
        wait_screen(page, "rate")
        assert checked(page) == {"relevancy": "2", "quality": None, "consistency": "5"}

        page.click('label[for="st-quality-4"]')
        pid = page.evaluate(STATE)["participant"]
        page.click("#st-submit")
        page.wait_for_function("window.studyPlayer.state().rated === 1", timeout=15_000)
        mine = [r for r in store.ratings(study.id) if r.participant == pid]
        assert [(r.label, r.relevancy, r.quality, r.consistency) for r in mine] == [("A", 2, 4, 5)]
        # Saved: the draft is gone, and the next version starts blank.
        assert not any(k.startswith("study-drafts:") for k in page.evaluate("Object.keys(localStorage)"))
        listen_through(page)
        page.click("#st-to-rate")
        wait_screen(page, "rate")
        assert checked(page) == {"relevancy": None, "quality": None, "consistency": None}
        assert errors == []
    finally:
        context.close()


def test_the_study_is_silent_while_another_tab_is_open(browser, served) -> None:
    """The Read tab has its own music: the study's clip must pause there and go on where it was."""
    url, _, _ = served
    context, page, errors = open_study(browser, url)
    try:
        register(page)
        page.click("#st-play")
        wait_screen(page, "listen")
        page.click("#st-next")
        page.wait_for_function("window.studyPlayer.state().voices.some(v => v.target === 1 && v.gain > 0.99)",
                               timeout=15_000)
        page.get_by_role("tab", name="Read").click()
        page.wait_for_function("window.studyPlayer.state().ctxState === 'suspended'", timeout=5_000)
        clock = page.evaluate("window.studyPlayer.state().voices.length")
        page.wait_for_timeout(600)
        assert page.evaluate(STATE)["ctxState"] == "suspended", "still silent while the other tab is open"

        page.get_by_role("tab", name="Listening study").click()
        page.wait_for_function("window.studyPlayer.state().ctxState === 'running'", timeout=5_000)
        state = page.evaluate(STATE)
        assert state["screen"] == "listen" and state["page"] == 1
        assert len(state["voices"]) == clock and any(v["target"] == 1 and v["gain"] > 0.99 for v in state["voices"])
        assert errors == [] and state["errors"] == []
    finally:
        context.close()


def test_the_please_answer_note_is_red_and_leaves_once_all_is_answered(browser, served) -> None:
    """In the dark theme the error text was near-white (Gradio's --error-text-color there), and the
    note stayed up after the last question was answered."""
    url, _, _ = served
    context, page, errors = open_study(browser, url + "?__theme=dark")
    try:
        wait_screen(page, "consent")
        page.check("#st-agree")
        page.click("#st-consent-go")
        wait_screen(page, "screening")
        page.click('label[for="st-manga_interest-3"]')
        page.click("#st-register")
        note = page.locator("text=Please answer every question.")
        assert note.is_visible()
        rgb = page.evaluate("""() => getComputedStyle(document.querySelector('.st-root .st-error')).color
            .match(/\\d+/g).slice(0, 3).map(Number)""")
        assert rgb[0] > 180 and rgb[1] < 120 and rgb[2] < 120, f"a red, not {rgb}"
        page.click('label[for="st-music_interest-3"]')
        assert note.is_visible(), "one question is still open"
        page.click('label[for="st-japanese-native"]')
        assert note.count() == 0
        assert errors == []
    finally:
        context.close()


def test_an_offline_submit_says_once_that_the_answers_are_kept(browser, served) -> None:
    """No network at Submit: one sentence that the answers are still here (it used to say so twice)."""
    url, _, _ = served
    context, page, errors = open_study(browser, url)
    try:
        register(page)
        listen_through(page)
        page.click("#st-to-rate")
        wait_screen(page, "rate")
        for name, score in (("relevancy", 3), ("quality", 3), ("consistency", 2)):
            page.click(f'label[for="st-{name}-{score}"]')
        page.route("**/study/api/rate/**", lambda route: route.abort())
        page.click("#st-submit")
        page.wait_for_selector(".st-error-box", timeout=20_000)  # after its retries (about 5 s)
        text = page.locator(".st-error-box").inner_text()
        assert text == "The server cannot be reached. Your answers are still here: press Submit again."
        assert checked(page) == {"relevancy": "3", "quality": "3", "consistency": "2"}
        page.unroute("**/study/api/rate/**")
        page.click("#st-submit")
        page.wait_for_function("window.studyPlayer.state().rated === 1", timeout=15_000)
        assert errors == []
    finally:
        context.close()


def to_rating_with_scores(page, scores: tuple[int, int, int]) -> None:
    register(page)
    listen_through(page)
    page.click("#st-to-rate")
    wait_screen(page, "rate")
    for name, score in zip(("relevancy", "quality", "consistency"), scores, strict=True):
        page.click(f'label[for="st-{name}-{score}"]')


def test_a_rating_whose_acknowledgement_is_lost_is_saved_once(browser, served) -> None:
    """The server stores the rating and its answer never reaches the page: the page reads its saved
    ratings back, shows the rating as saved and goes on; one rating is stored, not two."""
    url, store, folder = served
    study = load_study(folder / "study.json")
    context, page, errors = open_study(browser, url)
    lost: list[int] = []

    def store_then_lose(route) -> None:
        if lost:
            route.continue_()
            return
        response = route.fetch()  # the server stores it...
        lost.append(response.status)
        route.abort()  # ...and the page never hears so

    try:
        to_rating_with_scores(page, (4, 2, 5))
        pid = page.evaluate(STATE)["participant"]
        page.route("**/study/api/rate/**", store_then_lose)
        page.click("#st-submit")
        page.wait_for_function("window.studyPlayer.state().rated === 1", timeout=15_000)
        state = page.evaluate(STATE)
        assert lost == [200] and state["recovered"] == 1 and state["submits"] == 1
        assert state["screen"] == "intro", "on to the next version, not an error with the answers kept"
        mine = [r for r in store.ratings(study.id) if r.participant == pid]
        assert [(r.relevancy, r.quality, r.consistency) for r in mine] == [(4, 2, 5)]
        assert not any(k.startswith("study-drafts:") for k in page.evaluate("Object.keys(localStorage)"))
        assert errors == []
    finally:
        context.close()


def test_a_rating_the_network_drops_is_sent_again_by_itself(browser, served) -> None:
    """Two submissions lost on the network, the third arrives: no error, no second press, one rating."""
    url, store, folder = served
    study = load_study(folder / "study.json")
    context, page, errors = open_study(browser, url)
    dropped: list[str] = []

    def drop_twice(route) -> None:
        if len(dropped) < 2:
            dropped.append(route.request.method)
            route.abort()
        else:
            route.continue_()

    try:
        to_rating_with_scores(page, (1, 3, 3))
        pid = page.evaluate(STATE)["participant"]
        page.route("**/study/api/rate/**", drop_twice)
        page.click("#st-submit")
        page.wait_for_function("window.studyPlayer.state().rated === 1", timeout=20_000)
        state = page.evaluate(STATE)
        assert dropped == ["POST", "POST"] and state["retries"] == 2 and state["submits"] == 3
        assert state["recovered"] == 0
        mine = [r for r in store.ratings(study.id) if r.participant == pid]
        assert [(r.relevancy, r.quality, r.consistency) for r in mine] == [(1, 3, 3)]
        assert errors == [] and not [e for e in state["errors"] if "cannot be reached" in e]
    finally:
        context.close()


def turn_to_last_page(page) -> None:
    """On a version's listening screen (already playing): to its last page, which allows rating it."""
    for expected in (1, 2, 3):
        page.click("#st-next")
        page.wait_for_function(f"window.studyPlayer.state().page === {expected}")
    page.wait_for_selector("#st-to-rate:not([disabled])")


def rate_and_submit(page, expected_rated: int) -> None:
    page.click("#st-to-rate")
    wait_screen(page, "rate")
    for name in ("relevancy", "quality", "consistency"):
        page.click(f'label[for="st-{name}-3"]')
    page.click("#st-submit")
    page.wait_for_function(f"window.studyPlayer.state().rated === {expected_rated}", timeout=15_000)


def listened(store: RatingsStore, study_id: str, pid: str) -> list[float | None]:
    """The participant's listening times in the order they rated (which version comes first depends
    on the participant's row of the counterbalancing, so not on a label)."""
    mine = sorted((r for r in store.ratings(study_id) if r.participant == pid), key=lambda r: r.created)
    return [r.listened_s for r in mine]


def test_listening_time_is_recorded_with_each_rating(browser, served) -> None:
    """Nothing told a rushed rating from an attentive one: the seconds a version was listened to
    (summed over "Listen again") now go with its rating; the time on the rating screen does not."""
    url, store, folder = served
    study = load_study(folder / "study.json")
    context, page, errors = open_study(browser, url)
    try:
        register(page)
        pid = page.evaluate(STATE)["participant"]
        page.click("#st-play")
        wait_screen(page, "listen")
        page.wait_for_timeout(2_000)
        turn_to_last_page(page)
        page.click("#st-to-rate")
        wait_screen(page, "rate")
        page.wait_for_timeout(1_500)  # deciding on the scores is not listening
        page.click("#st-again")
        wait_screen(page, "listen")
        page.wait_for_timeout(1_000)
        rate_and_submit(page, 1)
        first = listened(store, study.id, pid)[0]
        assert first is not None and 3.0 <= first < 6.0, first

        # Quickly clicked through: recorded as such, not refused.
        listen_through(page)
        rate_and_submit(page, 2)
        quick = listened(store, study.id, pid)[1]
        assert quick is not None and 0 <= quick < 2.0, quick
        assert errors == [] and page.evaluate(STATE)["errors"] == []
    finally:
        context.close()


def test_time_with_the_study_hidden_is_not_listening_time(browser, served) -> None:
    """While another tab is open the study's audio is suspended: that time must not count."""
    url, store, folder = served
    study = load_study(folder / "study.json")
    context, page, errors = open_study(browser, url)
    try:
        register(page)
        pid = page.evaluate(STATE)["participant"]
        page.click("#st-play")
        wait_screen(page, "listen")
        page.wait_for_function("window.studyPlayer.state().ctxState === 'running'", timeout=5_000)
        page.wait_for_timeout(1_000)
        page.get_by_role("tab", name="Read").click()
        page.wait_for_function("window.studyPlayer.state().ctxState === 'suspended'", timeout=5_000)
        page.wait_for_timeout(3_000)
        page.get_by_role("tab", name="Listening study").click()
        page.wait_for_function("window.studyPlayer.state().ctxState === 'running'", timeout=5_000)
        page.wait_for_timeout(1_000)
        turn_to_last_page(page)
        rate_and_submit(page, 1)
        seconds = listened(store, study.id, pid)[0]
        # About 2 s listened (plus the 200 ms it takes to notice the tab change) out of more than 5.
        assert seconds is not None and 1.8 <= seconds < 3.5, seconds
        assert errors == []
    finally:
        context.close()
