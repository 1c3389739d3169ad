"""The reader plays the transition the director chose at each scene change (m2m/transitions.py), on
a turn from a scene's last page to the next scene's first: the bundled example with the chord
engine, whose offline plan closes scene 0 with a stinger into scene 1 (page 5), leaves a silence
before scene 2 (page 9) and cuts into scene 3 (page 13); and, with the transition into scene 1
edited by hand in 04-transitions.json to a crossfade, a crossfade of the edited length."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from m2m.cues import Transition, TransitionSheet
from m2m.manga109 import load_manga109
from tests.ui.chord_engine import GatedChordEngine, StingerGatedChordEngine, chord_service
from tests.ui.conftest import EXAMPLES, Served, serve
from tests.ui.test_reader_browser import (
    BROKEN_OGG,
    STATE,
    open_reader,
    settle,
    wait_all_clips,
    wait_full,
    wait_or_explain,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def served_example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serve(EXAMPLES, tmp_path_factory.mktemp("transitions"), chord_service())


@pytest.fixture(scope="module")
def served_unmade(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, threading.Event]]:
    """The example whose page 9 (the silence into scene 2) is made only when the test says so."""
    gate = threading.Event()
    try:
        for served in serve(EXAMPLES, tmp_path_factory.mktemp("unmade"), chord_service(GatedChordEngine({9: gate}))):
            yield served, gate
    finally:
        gate.set()


@pytest.fixture(scope="module")
def served_late_stinger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, threading.Event, threading.Event]]:
    """The example whose stinger into scene 1 is made only when the test says so, and whose page 5
    (the music after it) waits for a second gate: nothing but the stinger lands in between."""
    stinger, rest = threading.Event(), threading.Event()
    try:
        engine = StingerGatedChordEngine({5: rest}, stinger)
        for served in serve(EXAMPLES, tmp_path_factory.mktemp("late-stinger"), chord_service(engine)):
            yield served, stinger, rest
    finally:
        stinger.set()
        rest.set()


@pytest.fixture(scope="module")
def served_edited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The example whose plan a person edited before opening it: a 7.4 s crossfade into scene 1."""
    tmp = tmp_path_factory.mktemp("edited")
    service = chord_service()
    book = load_manga109(EXAMPLES)
    settings = service.Settings(runs_root=tmp / "runs")
    service.plan_book(book, settings)
    run = service.open_run(book, settings)
    edited = TransitionSheet((Transition(1, "crossfade", 7.4, "A slow dissolve, chosen by hand."),
                              *run.transitions.transitions[1:]))
    path = tmp / "runs" / book.id / "m2m" / "04-transitions.json"
    raw = json.loads(path.read_text())
    raw["data"]["transitions"][0] = {"scene": 1, "kind": "crossfade", "seconds": 7.4,
                                     "why": "A slow dissolve, chosen by hand."}
    path.write_text(json.dumps(raw))
    assert service.open_run(book, settings).transitions == edited  # the edit is what the run reads
    yield from serve(EXAMPLES, tmp, service)


def turn_into(page, target: int, ready: str = "true") -> dict:
    """Jump to the page before ``target``, let its music settle (and ``ready``, a JS condition,
    hold), then turn forward once; the fade record of that turn."""
    page.evaluate(f"window.m2mReader.go({target - 1})")
    wait_full(page, target - 1)
    page.wait_for_function(ready, timeout=10_000)
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
        assert {p: e["kind"] for p, e in enters.items()} == {"5": "stinger", "9": "silence", "13": "cut"}
        assert "stinger-001.ogg" in enters["5"]["stinger"] and enters["5"]["seconds"] == 3.0

        # the stinger is prefetched with the pages around the one on screen
        fade = turn_into(page, 5, "window.m2mReader.state().stingers.length === 1")
        assert fade["move"] == "stinger" and fade["stinger"]["played"], fade
        # the stinger starts on the turn and lasts its clip's length ...
        assert fade["stinger"]["start"] == pytest.approx(fade["ctxTime"], abs=0.02)
        assert fade["stinger"]["seconds"] == pytest.approx(enters["5"]["seconds"], abs=0.05)
        # ... the old scene's music fades out under it, and the new page enters when it ends, over 0.3 s
        out, into = [f for f in fade["fades"] if f["to"] == 0], [f for f in fade["fades"] if f["to"] == 1]
        assert out and all(f["seconds"] == pytest.approx(enters["5"]["fade"], abs=0.2) for f in out), fade["fades"]
        assert into[0]["start"] - fade["ctxTime"] == pytest.approx(enters["5"]["seconds"], abs=0.05)
        assert into[0]["seconds"] == pytest.approx(0.3, abs=0.01)
        # and its clip starts from its beginning then, as the whole-book file plays it (not 3 s in)
        (entering,) = [v for v in page.evaluate(STATE)["voices"] if v["page"] == 5 and not v["stinger"]]
        assert entering["clipStart"] - fade["ctxTime"] == pytest.approx(enters["5"]["seconds"], abs=0.05)
        state = settle(page, 1.5)  # mid-stinger: the stinger alone sounds
        audible = [v for v in state["voices"] if v["gain"] > 0.001]
        assert [v["stinger"] for v in audible] == [True], (audible, state["ctxTime"], fade)
        wait_full(page, 5)
        page.wait_for_function("!window.m2mReader.state().voices.some(v => v.stinger)", timeout=10_000)  # rung out

        fade = turn_into(page, 9)
        entering = next(f for f in fade["fades"] if f["to"] == 1)
        assert fade["move"] == "silence"
        # the new scene waits out the old one's fade and the silence, then enters over 0.3 s
        assert entering["start"] - fade["ctxTime"] == pytest.approx(enters["9"]["fade"] + enters["9"]["silence"],
                                                                     abs=0.05)
        (voice,) = [v for v in page.evaluate(STATE)["voices"] if v["page"] == 9]
        assert voice["clipStart"] == pytest.approx(entering["start"], abs=0.05)  # from its beginning
        state = settle(page, enters["9"]["fade"] + 0.3)
        assert state["audible"] == 0, ("silence between the scenes", state["voices"], state["ctxTime"], fade)
        page.wait_for_function("window.m2mReader.state().voices.some(v => v.page === 9 && v.gain > 0.999)",
                               timeout=10_000)

        fade = turn_into(page, 13)
        # the old scene's voice and the new one switch over 50 ms (turn_into let every earlier fade end)
        assert fade["move"] == "cut" and len(fade["fades"]) == 2, fade["fades"]
        assert all(f["seconds"] == pytest.approx(0.05, abs=0.01) for f in fade["fades"]), fade["fades"]

        page.evaluate("window.m2mReader.go(3)")
        page.evaluate("window.m2mReader.next()")  # within a scene: the reader's own crossfade
        state = page.evaluate(STATE)
        assert state["fades"][-1]["move"] is None
        assert not errors, errors
    finally:
        context.close()


def test_a_stinger_the_browser_cannot_decode_plays_from_its_flac_copy(browser, served_example):
    """As in a Safari without OGG Vorbis: the stinger's OGG fails to decode, its FLAC copy plays."""
    broken = (lambda url: "stinger-001.ogg" in url and "/m2m/flac" not in url,
              lambda route: route.fulfill(**BROKEN_OGG))
    context, page, errors = open_reader(browser, served_example.url, routes=(broken,))
    try:
        wait_all_clips(page)
        page.click(".m2m-start-btn")
        fade = turn_into(page, 5, "window.m2mReader.state().stingers.length === 1")
        assert fade["move"] == "stinger" and fade["stinger"]["played"], fade
        state = page.evaluate(STATE)
        assert len(state["stingersFromFlac"]) == 1 and "stinger-001.ogg" in state["stingersFromFlac"][0]
        assert any(v["stinger"] for v in state["voices"])
        assert not errors, errors
    finally:
        context.close()


def test_a_transition_edited_to_a_crossfade_plays_a_crossfade_of_its_length(browser, served_edited):
    context, page, errors = open_reader(browser, served_edited.url)
    try:
        wait_all_clips(page)
        page.click(".m2m-start-btn")
        enters = page.evaluate(STATE)["enters"]
        assert {p: e["kind"] for p, e in enters.items()} == {"5": "crossfade", "9": "silence", "13": "cut"}
        fade = turn_into(page, 5)
        out, into = (f for f in fade["fades"] if f["to"] == 0), [f for f in fade["fades"] if f["to"] == 1]
        assert fade["move"] == "crossfade" and into[0]["seconds"] == pytest.approx(7.4, abs=0.01)
        # (a voice a hair below full gain finishes its fade-out a hair sooner)
        assert all(f["seconds"] == pytest.approx(7.4, abs=0.2) for f in out), fade["fades"]
        assert fade["stinger"] is None
        assert not errors, errors
    finally:
        context.close()


@pytest.mark.parametrize("target", [9, 5], ids=["silence", "stinger"])
def test_a_turn_before_the_new_scene_s_clip_lands_still_plays_its_transition(browser, served_example, target):
    """The reader turns into a new scene while its first page's clip is still on its way: the old
    scene lets go at the turn as the chosen move asks (not held for the new clip; a stinger plays at
    once), and the new page enters when its clip lands, over 0.3 s, at the turn + the silence's fade
    and gap or the stinger's length: the wait counts from the turn, not from the clip's arrival."""
    held = []
    name = f"page-{target:03d}.ogg"
    late_clip = (lambda url: name in url and "/m2m/flac" not in url, lambda route: held.append(route))
    context, page, errors = open_reader(browser, served_example.url, routes=(late_clip,))
    try:
        wait_all_clips(page)
        page.click(".m2m-start-btn")
        enter = page.evaluate(STATE)["enters"][str(target)]
        wait = enter["fade"] + enter["silence"] if enter["kind"] == "silence" else enter["seconds"]
        page.evaluate(f"window.m2mReader.go({target - 1})")
        wait_full(page, target - 1)
        if enter["kind"] == "stinger":
            page.wait_for_function("window.m2mReader.state().stingers.length === 1", timeout=10_000)
        for _ in range(100):  # the clip is prefetched from the page before, and held on its way
            if held:
                break
            page.wait_for_timeout(100)
        assert held and target not in page.evaluate(STATE)["decoded"]
        page.evaluate("window.m2mReader.next()")
        page.wait_for_function(f"window.m2mReader.state().page === {target}")
        turn = next(f for f in reversed(page.evaluate(STATE)["fades"]) if f["page"] == target and f["reason"] == "turn")
        assert turn["move"] == enter["kind"] and not turn["hadBuffer"] and not turn["held"], turn
        assert [f["to"] for f in turn["fades"]] == [0] and turn["fades"][0]["seconds"] == pytest.approx(enter["fade"],
                                                                                                          abs=0.05)
        assert (turn["stinger"] or {}).get("played", False) == (enter["kind"] == "stinger"), turn
        page.wait_for_timeout(300)
        for route in held:
            route.continue_()
        page.wait_for_function(f"window.m2mReader.state().fades.some(f => f.page === {target} && f.late !== null)",
                               timeout=15_000)
        landed = next(f for f in page.evaluate(STATE)["fades"] if f["page"] == target and f["late"] is not None)
        assert landed["move"] == enter["kind"] and landed["hadBuffer"] and landed["stinger"] is None, landed
        assert 0.3 <= landed["late"] < wait, landed  # it landed before the move's wait was over
        (entering,) = [f for f in landed["fades"] if f["to"] == 1]
        assert entering["start"] - turn["ctxTime"] == pytest.approx(wait, abs=0.05)
        assert entering["seconds"] == pytest.approx(0.3, abs=0.01)
        if enter["kind"] == "stinger":  # the stinger plays on through the clip's landing
            assert any(v["stinger"] and v["gain"] > 0.5 for v in page.evaluate(STATE)["voices"])
        page.wait_for_function(f"window.m2mReader.state().voices.some(v => v.page === {target} && v.gain > 0.999)",
                               timeout=10_000)
        assert not errors, errors
    finally:
        context.close()


@pytest.mark.parametrize("moving_on", ["back", "music off"])
def test_a_pending_turn_is_dropped_once_the_reader_moves_on(browser, served_example, moving_on):
    """The transition into page 9 waits for its clip only while the reader stays there with music on:
    turned back, or with the music switched off and on again, before the clip lands, nothing of the
    silence plays later (the music comes back by the reader's own crossfade)."""
    held = []
    late_clip = (lambda url: "page-009.ogg" in url and "/m2m/flac" not in url, lambda route: held.append(route))
    context, page, errors = open_reader(browser, served_example.url, routes=(late_clip,))
    try:
        wait_all_clips(page)
        page.click(".m2m-start-btn")
        page.evaluate("window.m2mReader.go(8)")
        wait_full(page, 8)
        for _ in range(100):
            if held:
                break
            page.wait_for_timeout(100)
        page.evaluate("window.m2mReader.next()")
        page.wait_for_function("window.m2mReader.state().page === 9")
        assert page.evaluate(STATE)["pendingTurn"] == {"page": 9, "move": "silence"}
        if moving_on == "back":
            page.evaluate("window.m2mReader.prev()")
            page.wait_for_function("window.m2mReader.state().page === 8")
        else:
            page.click(".m2m-music")
            page.wait_for_function("!window.m2mReader.state().musicOn")
        assert page.evaluate(STATE)["pendingTurn"] is None
        for route in held:
            route.continue_()
        page.wait_for_function("window.m2mReader.state().decoded.includes(9)", timeout=15_000)
        if moving_on == "music off":
            page.click(".m2m-music")
            page.wait_for_function("window.m2mReader.state().playingPage === 9")
        settle(page, 0.3)
        state = page.evaluate(STATE)
        assert not [f for f in state["fades"] if f["page"] == 9 and f["late"] is not None], state["fades"][-3:]
        assert state["playingPage"] == (8 if moving_on == "back" else 9)
        if moving_on == "music off":  # back by the reader's crossfade, not the silence's 0.3 s entry
            back = next(f for f in reversed(state["fades"]) if f["page"] == 9 and f["reason"] == "music-on")
            assert [f["seconds"] for f in back["fades"] if f["to"] == 1] == [pytest.approx(state["crossfade"], abs=0.01)]
        assert not errors, errors
    finally:
        context.close()


def test_a_turn_into_a_page_whose_music_is_not_made_yet_plays_its_transition_when_it_is(browser, served_unmade):
    """Page 9's clip is not in the reader's value when the reader turns there (it is still being
    made): the move chosen into scene 2 is known from the plan, so the old scene lets go at the turn
    as the silence asks, and when the clip is made the page enters by the silence's 0.3 s, not by
    a plain fade-in."""
    served, gate = served_unmade
    context, page, errors = open_reader(browser, served.url)
    try:
        page.wait_for_function("(() => { const c = window.m2mReader.state().clips; "
                               "return [0, 1, 2, 3, 4, 5, 6, 7, 8].every(p => String(p) in c); })()", timeout=60_000)
        page.click(".m2m-start-btn")
        state = page.evaluate(STATE)
        assert "9" not in state["clips"] and state["enters"]["9"]["kind"] == "silence", state["clips"]
        page.evaluate("window.m2mReader.go(8)")
        wait_full(page, 8)
        page.evaluate("window.m2mReader.next()")
        page.wait_for_function("window.m2mReader.state().page === 9")
        state = page.evaluate(STATE)
        turn = next(f for f in reversed(state["fades"]) if f["page"] == 9 and f["reason"] == "turn")
        assert turn["move"] == "silence" and not turn["hadBuffer"], turn
        assert state["pendingTurn"] == {"page": 9, "move": "silence"}
        gate.set()
        page.wait_for_function("window.m2mReader.state().fades.some(f => f.page === 9 && f.late !== null)",
                               timeout=30_000)
        landed = next(f for f in page.evaluate(STATE)["fades"] if f["page"] == 9 and f["late"] is not None)
        assert landed["move"] == "silence" and landed["hadBuffer"], landed
        (entering,) = [f for f in landed["fades"] if f["to"] == 1]
        assert entering["seconds"] == pytest.approx(0.3, abs=0.01), landed
        # it waits out what is left of the old scene's fade and the silence, counted from the turn
        wait = state["enters"]["9"]["fade"] + state["enters"]["9"]["silence"]
        assert entering["start"] >= turn["ctxTime"] + wait - 0.05, (entering, turn)
        assert not errors, errors
    finally:
        context.close()


def test_a_stinger_made_after_the_pages_around_it_is_prefetched_when_it_lands(browser, served_late_stinger):
    """The stinger into scene 1 is made after page 4's clip (the scene's last page) has landed, and
    no other clip lands with it: the reader on page 4 still fetches it then, so the turn plays it."""
    served, stinger, rest = served_late_stinger
    context, page, errors = open_reader(browser, served.url)
    try:
        page.wait_for_function("(() => { const c = window.m2mReader.state().clips; "
                               "return [0, 1, 2, 3, 4].every(p => String(p) in c); })()", timeout=60_000)
        page.click(".m2m-start-btn")
        page.evaluate("window.m2mReader.go(4)")
        wait_full(page, 4)
        state = page.evaluate(STATE)
        assert "stinger" not in state["enters"]["5"] and state["stingers"] == [], state["enters"]
        stinger.set()
        wait_or_explain(page, "window.m2mReader.state().stingers.length === 1", 15_000,
                        "the stinger to be fetched once it is made")
        assert "5" not in page.evaluate(STATE)["clips"]  # it came alone: page 5's music is still held back
        rest.set()
        fade = turn_into(page, 5)
        assert fade["move"] == "stinger" and fade["stinger"]["played"], fade
        assert not errors, errors
    finally:
        context.close()
