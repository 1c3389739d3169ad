"""The listening study plays each version as the reader does: a forward turn into a page its cue
sheet enters by a chosen transition plays that transition (a silence, a stinger, a cut), a plain
turn crossfades over the cue sheet's length (the baseline's scene crossfade: each of its pages is a
scene of its own), and a version without a cue sheet over the study's crossfade. A between-scenes
passage is heard as the reader would hear it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from m2m.study import RatingsStore, load_study

from .conftest import make_study_dir, write_cue_sheet
from .test_study_browser import (
    STATE,
    browser,
    open_study,
    rate_and_submit,
    register,
    serve_study,
    session_of,
    wait_screen,
)

pytestmark = pytest.mark.browser
__all__ = ["browser"]  # the browser fixture, shared with the study's other browser tests

FADE, SILENCE, STINGER = 0.5, 1.0, 1.0
MOVES = {1: ("silence", FADE, SILENCE, 0.0), 2: ("stinger", FADE, 0.0, STINGER), 3: ("cut", 0.05, 0.0, 0.0)}
SCENE_CROSSFADE = 2.5  # the baseline's plain crossfade at each of its scene changes (shorter than a turn's wait)
PLAIN = {page: ("", SCENE_CROSSFADE, 0.0, 0.0) for page in (1, 2, 3)}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, RatingsStore, Path]]:
    folder = tmp_path_factory.mktemp("study-transitions")
    make_study_dir(folder, n_stimuli=1)
    write_cue_sheet(folder, "m2m", range(4), MOVES)
    write_cue_sheet(folder, "baseline", range(4), PLAIN)
    yield from serve_study(folder)


def turns_of_one_version(page) -> tuple[list[dict], list[dict]]:
    """Play the version on screen, turn forward through its pages (each turn given time to play
    out), and return (the turn's fade records, one per turn; every fade record since it began)."""
    began = page.evaluate("performance.now()")
    page.click("#st-play")
    wait_screen(page, "listen")
    page.wait_for_timeout(1_800)  # page 0 fully in: a fade-out from full gain takes its whole length
    for expected in (1, 2, 3):
        page.click("#st-next")
        page.wait_for_function(f"window.studyPlayer.state().page === {expected}")
        page.wait_for_timeout(2_600)  # the silence's fade and gap, the stinger and the entry after it
    fades = [f for f in page.evaluate(STATE)["fades"] if f["at"] > began]
    return [f for f in fades if f["reason"] == "turn" and "move" in f], fades


def entry_of(fades: list[dict], turn: dict) -> dict:
    """The new page's fade-in record logged after ``turn`` (its start is when the page enters)."""
    later = fades[fades.index(turn) + 1:]
    return next(f for f in later if f["reason"] == "turn" and "move" not in f)["fades"][0]


def test_each_version_s_turns_play_its_own_transitions(browser, served) -> None:
    url, store, folder = served
    study = load_study(folder / "study.json")
    context, page, errors = open_study(browser, url)
    try:
        register(page)
        pid = page.evaluate(STATE)["participant"]
        session = session_of(folder, store, pid)
        seen = {}
        for rated in (1, 2, 3):
            label = page.evaluate(STATE)["label"]
            condition = session.condition(study.stimuli[0].id, label)
            turns, all_fades = turns_of_one_version(page)
            seen[condition] = [t["move"] for t in turns]
            if condition == "m2m":
                silence, stinger, cut = turns
                # the silence: the old page out over its fade, the new one in after fade + silence
                assert [f["seconds"] for f in silence["fades"]] == [pytest.approx(FADE, abs=0.01)]
                assert entry_of(all_fades, silence)["start"] - silence["ctxTime"] == \
                    pytest.approx(FADE + SILENCE, abs=0.05)
                # the stinger played once, and the new page entered when it ended
                played = page.evaluate(STATE)["stingers"]
                assert [s["played"] for s in played] == [True] and played[0]["seconds"] == pytest.approx(STINGER, abs=0.05)
                assert played[0]["start"] - stinger["ctxTime"] < 0.25
                assert entry_of(all_fades, stinger)["start"] - stinger["ctxTime"] == pytest.approx(STINGER, abs=0.05)
                # the cut: 50 ms each way, no delay
                assert [f["seconds"] for f in cut["fades"]] == [pytest.approx(0.05, abs=0.01)]
                entry = entry_of(all_fades, cut)
                assert entry["seconds"] == pytest.approx(0.05, abs=0.01)
                assert entry["start"] - cut["ctxTime"] < 0.05
            else:
                # the baseline's cue sheet crossfades each turn over its scene crossfade; random has no
                # cue sheet in this study folder: the study's own 1.5 s
                seconds = SCENE_CROSSFADE if condition == "baseline" else 1.5
                for turn in turns:
                    assert [f["seconds"] for f in turn["fades"]] == [pytest.approx(seconds, abs=0.05)]
                    assert entry_of(all_fades, turn)["seconds"] == pytest.approx(seconds, abs=0.05)
            rate_and_submit(page, rated)
            if rated < 3:
                wait_screen(page, "intro")
        assert seen == {"m2m": ["silence", "stinger", "cut"], "baseline": [None] * 3, "random": [None] * 3}
        assert errors == [] and page.evaluate(STATE)["errors"] == []
    finally:
        context.close()
