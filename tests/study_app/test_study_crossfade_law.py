"""The listening study crossfades as the reader does: by the correlation law (crossfade.js
fadeVoice's ``r``; the whole-book mixer's steady_crossfade_gains where the clips are equally loud), so a participant hears a turn between
two alike pages without the 2-3 dB swell an equal-power crossfade gives them, and rates what the
reader plays.

The versions' clips are written by the test as WAV bytes (the browser decodes by content, not by the
file's name): the m2m version's pages all play the same music, so any two are alike whatever moment
the turn catches (r ~ 0.97); the baseline's pages alternate it with its inverse (r = -1: unrelated
for the law, equal power)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from m2m.study import RatingsStore, load_study

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


def write_music(path: Path, sign: float) -> None:
    """Four seconds of a tone over a steady offset (alike to itself at any offset), times ``sign``."""
    t = np.arange(4 * SAMPLE_RATE) / SAMPLE_RATE
    mono = sign * (0.2 + 0.04 * np.sin(2 * np.pi * 220 * t))
    sf.write(path, np.stack([mono, mono], axis=1).astype(np.float32), SAMPLE_RATE, format="WAV", subtype="FLOAT")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, RatingsStore, Path]]:
    folder = tmp_path_factory.mktemp("study-crossfade-law")
    make_study_dir(folder, n_stimuli=1)
    # the m2m version's cue sheet says its clips are four bars of a second: a turn enters on the grid
    write_cue_sheet(folder, "m2m", PAGES, {}, seconds=4.0, bars=4)
    for page in PAGES:
        write_music(folder / "runs" / BOOK / "m2m" / "audio" / f"page-{page:03d}.ogg", 1.0)
        write_music(folder / "runs" / BOOK / "baseline" / "audio" / f"page-{page:03d}.ogg", (-1.0) ** page)
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
        if len(gains) == 2 and 0.05 < min(gains) < 0.95:
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


def test_alike_pages_crossfade_without_a_swell_unrelated_ones_at_equal_power(browser, served) -> None:
    url, store, folder = served
    study = load_study(folder / "study.json")
    context, page, errors = open_study(browser, url)
    try:
        register(page)
        pid = page.evaluate(STATE)["participant"]
        session = session_of(folder, store, pid)
        seen = {}
        for rated in (1, 2, 3):
            condition = session.condition(study.stimuli[0].id, page.evaluate(STATE)["label"])
            fade_out, fade_in, samples, voices = one_turn(page)
            seen[condition] = (fade_out["r"], fade_in["r"])
            if condition == "m2m":  # its cue sheet's bars: page 2 enters on page 1's grid, a whole bar apart
                old, new = voices
                assert old["bar"] == new["bar"] == pytest.approx(1.0)
                bars_apart = new["clipStart"] - old["clipStart"]
                assert bars_apart == pytest.approx(round(bars_apart), abs=0.005) and bars_apart > 0.5, voices
            if condition in ("m2m", "baseline"):
                r = fade_in["r"]
                assert fade_out["r"] == r  # both voices on one law
                assert len(samples) >= 5, samples
                for old, new in samples:  # the sum's power held: a^2 + b^2 + 2 r a b = 1
                    assert old ** 2 + new ** 2 + 2 * r * old * new == pytest.approx(1.0, abs=0.03)
            rate_and_submit(page, rated)
            if rated < 3:
                wait_screen(page, "intro")
        assert seen["m2m"][0] > 0.9  # alike: near equal gain
        assert seen["baseline"] == (0.0, 0.0)  # the inverse: unrelated for the law, equal power
        assert errors == [] and page.evaluate(STATE)["errors"] == []
    finally:
        context.close()
