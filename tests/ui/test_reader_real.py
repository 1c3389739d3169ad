"""The reader over the REAL pipeline (offline director, composer engine) on the bundled example, from
a cold runs folder: the music is not there yet when the reader opens, so the page says so, the music
fades in when it lands, the next page's clip is fetched before the turn and the turn crossfades.

Part of the default ``make test`` run (browser tests included). The chord engine's tests (tests/ui/chord_engine.py) cover the
fast, deterministic cases; this one proves the reader copes with a real composer's pace. Every wait
is on the page's own audio state, never on a time budget: the machine may be busy.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from m2m.music.render import SoundtrackSettings
from tests.ui.conftest import EXAMPLES, Served, serve
from tests.ui.test_reader_browser import STATE, check_upload, open_reader, settle, wait_decoded, wait_full

pytestmark = pytest.mark.browser

# The real composer takes seconds a page, more on a loaded machine.
MUSIC_TIMEOUT_MS = 240_000
# The random condition's library, built by the reader on first use: smaller than the app's 24 clips
# so the test stays short; the code path is the same.
LIBRARY_CLIPS = 6


@pytest.fixture(scope="module")
def served_real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from m2m.ui.adapter import PipelineAdapter
    yield from serve(EXAMPLES, tmp_path_factory.mktemp("real"), PipelineAdapter(library_clips=LIBRARY_CLIPS))


def test_cold_open_real_music_lands_then_turns_crossfade(browser, served_real, artifacts):
    context, page, errors = open_reader(browser, served_real.url)
    try:
        # Start at once: nothing is composed yet on a cold runs folder.
        first = page.evaluate(STATE)
        assert "0" not in first["clips"], "cold: page 1's clip cannot exist before the plan"
        assert page.is_visible(".m2m-pagenote"), "a page whose music isn't ready says so"
        page.click(".m2m-start-btn")
        page.wait_for_function("window.m2mReader.state().playingPage === 0", timeout=MUSIC_TIMEOUT_MS)
        state = page.evaluate(STATE)
        notes = [n["text"] for n in state["notes"] if n["page"] == 0]
        assert any(t.startswith(("Planning", "Composing")) for t in notes), notes
        # The music started with a fade when it landed, not at the start gesture.
        fade = next(f for f in state["fades"] if f["hadBuffer"] and f["page"] == 0)
        assert fade["reason"] in {"clip-ready", "update"}, fade
        step = next(s for s in fade["fades"] if s["to"] == 1)
        assert step["from"] == 0 and step["seconds"] == pytest.approx(state["crossfade"], rel=0.05)
        wait_full(page, 0)
        assert not page.is_visible(".m2m-pagenote"), "the note goes once the music plays"
        assert state["voices"][0]["version"] == state["clips"]["0"]

        # The next page's clip is composed, fetched and decoded while the reader is on page 1.
        wait_decoded(page, [0, 1], timeout_ms=MUSIC_TIMEOUT_MS)
        before = page.evaluate(STATE)
        page.keyboard.press("ArrowLeft")  # right-to-left book: forward
        state = settle(page, 0.2)
        assert state["page"] == 1
        turn = state["turns"][-1]
        fade = next(f for f in state["fades"] if f["turnAt"] == turn["at"])
        assert fade["hadBuffer"] and fade["count"] == 2, "one fade out, one fade in"
        prefetched = [p for p in before["prefetch"] if p["page"] == 1 and p["decodedAt"]]
        assert prefetched and prefetched[0]["decodedAt"] < turn["at"], "prefetched before the turn"
        assert {v["page"] for v in state["voices"]} == {0, 1}, "mid-crossfade both sound"
        # the composer's pages of a scene share their bar: page 2's music enters on page 1's bar
        # grid (its clip starts a bar line away from page 1's), so their beats fall together
        old, new = sorted(state["voices"], key=lambda v: v["page"])
        assert old["bar"] == pytest.approx(new["bar"], abs=1e-3) and old["bar"] > 0.5, state["voices"]
        bars_apart = (new["clipStart"] - old["clipStart"]) / old["bar"]
        assert bars_apart == pytest.approx(round(bars_apart), abs=0.005), (bars_apart, fade)
        assert fade["grid"] and new["clipStart"] <= fade["ctxTime"] + 0.01, "it entered part-way into its bar"
        state = settle(page, state["crossfade"] + 0.4)
        assert state["audible"] == 1 and state["playingPage"] == 1
        assert state["voices"][0]["gain"] == pytest.approx(1, abs=1e-3)
        assert state["voices"][0]["version"] == state["clips"]["1"], "page 2's own clip plays"

        # By click: the left zone goes forward once page 3's clip is there.
        wait_decoded(page, [2], timeout_ms=MUSIC_TIMEOUT_MS)
        page.click(".m2m-zone-left")
        page.wait_for_function("window.m2mReader.state().page === 2")
        state = settle(page, state["crossfade"] + 0.4)
        assert state["turns"][-1]["how"] == "click"
        assert state["playingPage"] == 2 and state["audible"] == 1
        assert page.locator(".m2m-engine").inner_text().startswith("♪ composer")
        page.screenshot(path=str(artifacts / "reader-real-laptop.png"))

        # The dialogue list scrolls in its own box to the page on screen (page 5 is the last of the
        # example's first scene, far below the list's fold).
        page.evaluate("window.m2mReader.go(4)")
        page.wait_for_function("""() => {
            const list = document.querySelector('#m2m-scene .m2m-dialogue');
            const here = list && list.querySelector('.m2m-pagehead.m2m-here');
            if (!here || here.textContent.trim() !== 'page 5') return false;
            const box = list.getBoundingClientRect(), line = here.getBoundingClientRect();
            return list.scrollTop > 0 && line.top >= box.top - 1 && line.bottom <= box.bottom + 1;
        }""", timeout=15_000)
        assert not errors, errors
    finally:
        context.close()


def switch_condition(page, label: str) -> None:
    """Settings → Condition → Apply, as a listener comparing conditions does."""
    radio = page.get_by_label(label, exact=True)
    if not radio.is_visible():
        page.get_by_text("Settings", exact=True).click()
    radio.check()
    page.click("#m2m-apply")


def wait_playing_run(page, condition: str) -> dict:
    page.wait_for_function(
        f"""(() => {{ const s = window.m2mReader.state();
            return s.run.endsWith('/{condition}') && s.voices.some(v => v.run === s.run && v.page === s.page
                   && v.target === 1 && v.version === s.clips[String(s.page)]); }})()""", timeout=MUSIC_TIMEOUT_MS)
    state = page.evaluate(STATE)
    return settle(page, state["crossfade"] + 0.4)


def test_condition_switch_plays_the_other_runs_clip(browser, served_real, artifacts):
    context, page, errors = open_reader(browser, served_real.url)
    try:
        page.click(".m2m-start-btn")
        m2m = wait_playing_run(page, "m2m")
        heard = {"m2m": m2m["voices"][0]["version"]}

        switch_condition(page, "Baseline (page descriptions)")
        state = wait_playing_run(page, "baseline")
        assert state["audible"] == 1 and state["voices"][0]["run"].endswith("/baseline")
        heard["baseline"] = state["voices"][0]["version"]
        assert heard["baseline"] != heard["m2m"], "the baseline's own clip, not the m2m one"
        # The baseline's clip came in with a full crossfade from silence.
        fade = next(f for f in reversed(state["fades"]) if f["hadBuffer"] and f["count"])
        step = next(s for s in fade["fades"] if s["to"] == 1)
        assert step["from"] == 0 and step["seconds"] == pytest.approx(state["crossfade"], rel=0.05)
        # A plain turn plays the baseline's cue sheet: each of its pages is a scene of its own, so the
        # turn crossfades over the scene crossfade, as its whole-book file does, not the reader's 1.5 s.
        wait_decoded(page, [1], timeout_ms=MUSIC_TIMEOUT_MS)
        page.keyboard.press("ArrowLeft")
        state = settle(page, 0.2)
        turn = state["turns"][-1]
        fade = next(f for f in state["fades"] if f["turnAt"] == turn["at"])
        scene_crossfade = SoundtrackSettings().scene_crossfade_seconds
        assert scene_crossfade != pytest.approx(state["crossfade"], rel=0.05)
        assert sorted(s["seconds"] for s in fade["fades"]) == [pytest.approx(scene_crossfade, rel=0.01)] * 2, fade
        page.evaluate("window.m2mReader.go(0)")

        # The random condition builds its clip library on first use, and the page says so.
        switch_condition(page, "Random clips (lower bound)")
        state = wait_playing_run(page, "random")
        notes = [n["text"] for n in state["notes"]]
        assert any("clip library" in t for t in notes), notes
        heard["random"] = state["voices"][0]["version"]
        assert len(set(heard.values())) == 3, heard
        assert state["audible"] == 1
        assert page.locator(".m2m-engine").inner_text().startswith("♪ library")
        page.screenshot(path=str(artifacts / "reader-real-random.png"))
        assert not errors, errors
    finally:
        context.close()


@pytest.mark.parametrize("kind", ["manga109.zip", "simple.cbz"])
def test_upload_real_plan(browser, served_real, tmp_path, kind):
    """The real stages plan an uploaded book (Manga109 layout with faces; simple format without)."""
    check_upload(browser, served_real, tmp_path, kind)
