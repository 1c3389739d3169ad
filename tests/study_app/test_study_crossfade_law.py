"""The listening study crossfades as the reader does, by the whole-book mixer's law (crossfade.js
steadyScale and fadeVoice's ``scale``; m2m/soundtrack.py steady_crossfade_gains): the sum of a turn's
two clips as loud, moment by moment, as two unrelated pages would be, so a participant rates what the
reader plays and the whole-book file holds.

The versions' clips are written by the test as WAV bytes (the browser decodes by content, not by the
file's name), their powers the same whatever moment the turn catches (tests/ui's
test_reader_crossfade_law stimuli): the m2m version's page 1 plays page 0's music at half the level
(alike, unequally loud), the baseline's an opposed offset under a tone of its own (the two cancel in
part: turned up), the random version's a tone unrelated to page 0's (equal power)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from m2m.study import RatingsStore, load_study
from tests.ui.test_reader_crossfade_law import assert_on_steady_law, assert_scale_records, stimuli

from .conftest import BOOK, SAMPLE_RATE, make_study_dir, write_cue_sheet
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

PAGES = range(4)


# the relation of each version's page 1 to its page 0 (tests/ui/test_reader_crossfade_law.stimuli)
RELATIONS = {"m2m": "quieter", "baseline": "opposed", "random": "unrelated"}
SECONDS = 4.0


def write_music(path: Path, samples: np.ndarray) -> None:
    sf.write(path, samples.T.astype(np.float32), SAMPLE_RATE, format="WAV", subtype="FLOAT")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, RatingsStore, Path]]:
    folder = tmp_path_factory.mktemp("study-crossfade-law")
    make_study_dir(folder, n_stimuli=1)
    # the m2m version's cue sheet says its clips are four bars of a second: a turn enters on the grid
    write_cue_sheet(folder, "m2m", PAGES, {}, seconds=4.0, bars=4)
    for condition, relation in RELATIONS.items():
        first, second = stimuli(relation, SECONDS, SAMPLE_RATE)
        audio = folder / "runs" / BOOK / condition / "audio"
        for page in PAGES:  # page 0, then page 1's music on to the last page
            write_music(audio / f"page-{page:03d}.ogg", second if page else first)
    yield from serve_study(folder)


def one_turn(page) -> tuple[dict, dict, list[tuple[float, float]], list[dict]]:
    """Play the version on screen, turn once, then on to its last page; (the first turn's fade-out record, the new page's fade-in
    record, the (old, new) gains sampled while both sound, the two voices then)."""
    began = page.evaluate("performance.now()")
    page.click("#st-play")
    wait_screen(page, "listen")
    page.wait_for_timeout(1_800)  # page 0 fully in, every clip of the version decoded
    page.click("#st-next")
    page.wait_for_function("window.studyPlayer.state().page === 1")
    samples, voices = [], []
    for _ in range(40):
        gains = [v["gain"] for v in page.evaluate(STATE)["voices"] if not v["stinger"]]
        # theta between about 0.1 and 1.47: the crossfade under way (the gains may be above 1)
        if len(gains) == 2 and 0.1 < math.atan2(gains[1], gains[0]) < 1.47:
            samples.append((gains[0], gains[1]))
            voices = [v for v in page.evaluate(STATE)["voices"] if not v["stinger"]]
        page.wait_for_timeout(40)
    fades = [f for f in page.evaluate(STATE)["fades"] if f["at"] > began and f["reason"] == "turn"]
    out = next(f for f in fades if "move" in f)
    into = next(f for f in fades[fades.index(out) + 1:] if "move" not in f)
    for last in (2, 3):  # on to the last page, where the version can be rated
        page.click("#st-next")
        page.wait_for_function(f"window.studyPlayer.state().page === {last}")
    return out["fades"][0], into["fades"][0], samples, voices


def test_a_turn_holds_the_sum_on_the_path_between_the_two_pages(browser, served) -> None:
    url, store, folder = served
    study = load_study(folder / "study.json")
    context, page, errors = open_study(browser, url)
    try:
        register(page)
        pid = page.evaluate(STATE)["participant"]
        session = session_of(folder, store, pid)
        seen = set()
        for rated in (1, 2, 3):
            condition = session.condition(study.stimuli[0].id, page.evaluate(STATE)["label"])
            fade_out, fade_in, samples, voices = one_turn(page)
            seen.add(condition)
            if condition == "m2m":  # its cue sheet's bars: page 2 enters on page 1's grid, a whole bar apart
                old, new = voices
                assert old["bar"] == new["bar"] == pytest.approx(1.0)
                bars_apart = new["clipStart"] - old["clipStart"]
                assert bars_apart == pytest.approx(round(bars_apart), abs=0.005) and bars_apart > 0.5, voices
            assert len(samples) >= 5, samples
            first, second = stimuli(RELATIONS[condition], SECONDS, SAMPLE_RATE)
            n = int(fade_in["seconds"] * SAMPLE_RATE)
            law = assert_on_steady_law(samples, first[:, :n], second[:, :n], SAMPLE_RATE)
            assert_scale_records([fade_out["scale"], fade_in["scale"]], law)  # both voices on one law
            rate_and_submit(page, rated)
            if rated < 3:
                wait_screen(page, "intro")
        assert seen == set(RELATIONS)
        assert errors == [] and page.evaluate(STATE)["errors"] == []
    finally:
        context.close()
