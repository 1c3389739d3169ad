"""The reader plays the transition the director chose at each scene change (m2m/transitions.py), on
a turn from a scene's last page to the next scene's first: the bundled example with the chord
engine, whose offline plan crossfades into scene 1 (page 5), leaves a silence before scene 2
(page 9) and cuts into scene 3 (page 13)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.ui.chord_engine import chord_service
from tests.ui.conftest import EXAMPLES, Served, serve
from tests.ui.test_reader_browser import STATE, open_reader, settle, wait_all_clips, wait_full

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def served_example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serve(EXAMPLES, tmp_path_factory.mktemp("transitions"), chord_service())


def turn_into(page, target: int) -> dict:
    """Jump to the page before ``target``, let its music settle, then turn forward once; the fade
    record of that turn."""
    page.evaluate(f"window.m2mReader.go({target - 1})")
    wait_full(page, target - 1)
    page.evaluate("window.m2mReader.next()")
    page.wait_for_function(f"window.m2mReader.state().page === {target}")
    state = page.evaluate(STATE)
    return next(f for f in reversed(state["fades"]) if f["page"] == target and f["reason"] == "turn")


def test_each_scene_change_plays_its_transition(browser, served_example, artifacts):
    context, page, errors = open_reader(browser, served_example.url)
    try:
        wait_all_clips(page)
        page.click(".m2m-start-btn")
        enters = page.evaluate(STATE)["enters"]
        assert {p: e["kind"] for p, e in enters.items()} == {"5": "crossfade", "9": "silence", "13": "cut"}

        fade = turn_into(page, 5)
        out, into = (f for f in fade["fades"] if f["to"] == 0), [f for f in fade["fades"] if f["to"] == 1]
        assert fade["move"] == "crossfade" and into[0]["seconds"] == pytest.approx(enters["5"]["fade"], abs=0.01)
        # (a voice a hair below full gain finishes its fade-out a hair sooner)
        assert all(f["seconds"] == pytest.approx(enters["5"]["fade"], abs=0.2) for f in out), fade["fades"]

        fade = turn_into(page, 9)
        entering = next(f for f in fade["fades"] if f["to"] == 1)
        assert fade["move"] == "silence"
        # the new scene waits out the old one's fade and the silence, then enters over 0.3 s
        assert entering["start"] - fade["ctxTime"] == pytest.approx(enters["9"]["fade"] + enters["9"]["silence"],
                                                                     abs=0.05)
        state = settle(page, enters["9"]["fade"] + 0.3)
        assert state["audible"] == 0, ("silence between the scenes", state["voices"], state["ctxTime"], fade)
        page.wait_for_function("window.m2mReader.state().voices.some(v => v.page === 9 && v.gain > 0.999)",
                               timeout=10_000)

        fade = turn_into(page, 13)
        assert fade["move"] == "cut" and all(f["seconds"] == pytest.approx(0.05, abs=0.01) for f in fade["fades"])

        page.evaluate("window.m2mReader.go(3)")
        page.evaluate("window.m2mReader.next()")  # within a scene: the reader's own crossfade
        state = page.evaluate(STATE)
        assert state["fades"][-1]["move"] is None
        assert not errors, errors
    finally:
        context.close()
