"""The reader's crossfade follows how alike the two pages' music is (crossfade.js correlationAt and
fadeVoice's ``r``, the law m2m/soundtrack.py's whole-book mixer uses): two pages playing alike music
sum in amplitude, so an equal-power crossfade would swell them by up to 3 dB mid-turn.

The clips are served by the test as WAV (the browser decodes by content, not by name): page 1's is
page 0's own music, or its inverse, so the correlation is known whatever moment the turn catches."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import soundfile as sf

from tests.ui.test_reader_browser import open_reader, settle, wait_all_clips, wait_full

pytestmark = pytest.mark.browser

RATE = 48_000


def wav(sign: float) -> bytes:
    """Ten seconds of a tone over a steady offset: alike to itself at any offset (r ~ 0.97), and the
    opposite of its inverse (r = -1, which the law treats as unrelated: equal power)."""
    t = np.arange(10 * RATE) / RATE
    mono = sign * (0.2 + 0.04 * np.sin(2 * np.pi * 220 * t))
    out = io.BytesIO()
    sf.write(out, np.stack([mono, mono], axis=1).astype(np.float32), RATE, format="WAV", subtype="FLOAT")
    return out.getvalue()


def serve_clips(second_sign: float) -> tuple:
    bodies = {"page-000.ogg": wav(1.0), "page-001.ogg": wav(second_sign)}

    def matches(url: str) -> bool:
        return "/m2m/flac" not in url and any(name in url for name in bodies)

    def fulfil(route) -> None:
        name = next(n for n in bodies if n in route.request.url)
        route.fulfill(status=200, body=bodies[name], content_type="audio/wav")
    return ((matches, fulfil),)


def turn_once(browser, served, second_sign: float) -> tuple[dict, list[tuple[float, float]], list]:
    """Start on page 0, turn to page 1; (the turn's fade record, (old, new) gains sampled during the
    crossfade, page errors)."""
    context, page, errors = open_reader(browser, served.url, routes=serve_clips(second_sign))
    try:
        wait_all_clips(page)
        page.click(".m2m-start-btn")
        wait_full(page, 0)
        page.keyboard.press("ArrowLeft")
        samples = []
        for _ in range(40):
            state = settle(page, 0.04)
            gains = {v["page"]: v["gain"] for v in state["voices"] if not v["stinger"]}
            if 0 in gains and 1 in gains and 0.05 < gains[1] < 0.95:
                samples.append((gains[0], gains[1]))
        fade = next(f for f in reversed(state["fades"]) if f["reason"] == "turn")
        return fade, samples, list(errors)
    finally:
        context.close()


def test_alike_pages_crossfade_at_equal_gain(browser, served):
    fade, samples, errors = turn_once(browser, served, 1.0)
    rs = [f["r"] for f in fade["fades"]]
    assert len(rs) == 2 and rs[0] == rs[1], fade
    # the same music with itself at whatever offset the turn caught it: (0.2^2 + 0.04^2 / 2 cos phase)
    # over (0.2^2 + 0.04^2 / 2), between 0.961 and 1
    assert 0.955 <= rs[0] <= 1.0, rs
    assert len(samples) >= 3, f"too few samples of the crossfade: {samples}"
    for old, new in samples:  # the law the gains follow: a^2 + b^2 + 2 r a b = 1, not a^2 + b^2 = 1
        assert old ** 2 + new ** 2 + 2 * rs[0] * old * new == pytest.approx(1, abs=0.03), samples
    assert any(old ** 2 + new ** 2 < 0.8 for old, new in samples), "below equal power mid-fade"
    assert not errors, errors


def test_opposite_pages_crossfade_at_equal_power(browser, served):
    fade, samples, errors = turn_once(browser, served, -1.0)
    assert [f["r"] for f in fade["fades"]] == [0, 0], fade
    assert len(samples) >= 3, samples
    for old, new in samples:
        assert old ** 2 + new ** 2 == pytest.approx(1, abs=0.03), samples
    assert math.isclose(fade["fades"][0]["seconds"], fade["fades"][1]["seconds"], rel_tol=0.05)
    assert not errors, errors
