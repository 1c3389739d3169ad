"""The reader crossfades by the whole-book mixer's law (crossfade.js steadyScale and fadeVoice's
``scale``; m2m/soundtrack.py steady_crossfade_gains): the equal-power gains scaled, by the quarter
second, so the sum is as loud as two unrelated pages would be (cos^2 P_old + sin^2 P_new, the path
from one page's level to the other's), its cross power 2 sin cos C included, within 6 dB.

steadyScale is held to the mixer on stretches that change by the quarter second (in the browser,
crossfade.js on a blank page). A turn is held to it on clips the test serves as WAV (the browser
decodes by content, not by name) whose powers are the same at any moment the turn catches: a tone
over a steady offset, then the same music at half the level, or an opposed offset under a tone of
its own, or two tones of different pitch (unrelated: equal power). The law of one r in [0, 1] per
crossfade that the reader had was 0.9 dB off on the first and 3.7 dB on the second."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from m2m.soundtrack import STEADY_MAX_DB, local_powers, steady_crossfade_gains
from tests.ui.test_reader_browser import open_reader, settle, wait_all_clips, wait_full

pytestmark = pytest.mark.browser

RATE = 48_000
CROSSFADE_JS = Path(__file__).resolve().parents[2] / "m2m" / "ui" / "static" / "crossfade.js"


def steady_scale(theta: np.ndarray, p_old: np.ndarray, p_new: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """steady_crossfade_gains' scale of the equal-power gains at ``theta`` (in = sin, out = cos)."""
    c, s = np.cos(theta), np.sin(theta)
    unrelated = c * c * p_old + s * s * p_new
    summed = unrelated + 2 * s * c * cross
    limit = 10.0 ** (STEADY_MAX_DB / 20.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.clip(np.where(summed > 0, np.sqrt(unrelated / summed), 1.0), 1 / limit, limit)


def mixer_scale(old: np.ndarray, new: np.ndarray, rate: int):
    """The scale steady_crossfade_gains gives a crossfade of two equally long ``[channels, samples]``
    stretches, as a function of theta (both its gains are one scale times sin and cos)."""
    fade_in, fade_out = steady_crossfade_gains(old.astype(np.float32), new.astype(np.float32), rate)
    n = old.shape[1]
    theta = 0.5 * np.pi * (np.arange(n) + 0.5) / n
    scale = np.hypot(fade_in.astype(np.float64), fade_out.astype(np.float64))
    return lambda at: np.interp(at, theta, scale)


def assert_on_steady_law(samples: list[tuple[float, float]], old: np.ndarray, new: np.ndarray, rate: int):
    """Each sampled (old, new) gain pair of a crossfade of ``old`` into ``new`` (the stretches it
    overlaps) is the mixer's scale at its own theta, and the sum's power (from the stretches' powers)
    is on the unrelated path within 0.5 dB (where no cap holds it). Returns the law (mixer_scale)."""
    law = mixer_scale(old, new, rate)
    p_old, p_new, cross = float(np.mean(old * old)), float(np.mean(new * new)), float(np.mean(old * new))
    for g_old, g_new in samples:
        theta = math.atan2(g_new, g_old)
        assert math.hypot(g_old, g_new) == pytest.approx(float(law(theta)), abs=0.015), (theta, samples)
        summed = g_old * g_old * p_old + g_new * g_new * p_new + 2 * g_old * g_new * cross
        path = math.cos(theta) ** 2 * p_old + math.sin(theta) ** 2 * p_new
        assert abs(10 * math.log10(summed / path)) < 0.5, (theta, samples)
    return law


def assert_scale_records(scales: list[dict | None], law) -> None:
    """Both voices' fade records give one scale, whose range is the law's over the fade: the same
    music dips towards equal gain, the opposed is turned up where the two cancel, the unrelated
    stays at equal power (1)."""
    assert scales[0] is not None and all(s == scales[0] for s in scales), scales
    want = law(np.linspace(0, np.pi / 2, 96))
    assert (scales[0]["min"], scales[0]["max"]) == pytest.approx((want.min(), want.max()), abs=0.02), scales


def stereo(mono: np.ndarray) -> np.ndarray:
    return np.stack([mono, mono])


def tone(hz: float, amplitude: float, offset: float = 0.0, seconds: float = 10.0,
         rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return stereo(offset + amplitude * np.sin(2 * np.pi * hz * t))


def stimuli(relation: str, seconds: float = 10.0, rate: int = RATE) -> tuple[np.ndarray, np.ndarray]:
    """(page 0's music, page 1's), whose powers are the same whatever moment a turn catches them:
    a tone over a steady offset (which dominates), then the same at half the level ("quieter"), or
    an opposed offset under a tone of its own ("opposed", r about -0.57); or two tones of different
    pitch ("unrelated")."""
    if relation == "unrelated":
        return tone(220, 0.2, 0.0, seconds, rate), tone(330, 0.2, 0.0, seconds, rate)
    music = tone(220, 0.04, 0.2, seconds, rate)
    return music, 0.5 * music if relation == "quieter" else tone(330, 0.2, -0.1, seconds, rate)


def wav(samples: np.ndarray) -> bytes:
    out = io.BytesIO()
    sf.write(out, samples.T.astype(np.float32), RATE, format="WAV", subtype="FLOAT")
    return out.getvalue()


def serve_clips(first: np.ndarray, second: np.ndarray) -> tuple:
    bodies = {"page-000.ogg": wav(first), "page-001.ogg": wav(second)}

    def matches(url: str) -> bool:
        return "/m2m/flac" not in url and any(name in url for name in bodies)

    def fulfil(route) -> None:
        name = next(n for n in bodies if n in route.request.url)
        route.fulfill(status=200, body=bodies[name], content_type="audio/wav")
    return ((matches, fulfil),)


def turn_once(browser, served, first: np.ndarray,
              second: np.ndarray) -> tuple[dict, list[tuple[float, float]], list]:
    """Start on page 0, turn to page 1; (the turn's fade record, (old, new) gains sampled during the
    crossfade, page errors)."""
    context, page, errors = open_reader(browser, served.url, routes=serve_clips(first, second))
    try:
        wait_all_clips(page)
        page.click(".m2m-start-btn")
        wait_full(page, 0)
        page.keyboard.press("ArrowLeft")
        samples = []
        for _ in range(40):
            state = settle(page, 0.04)
            gains = {v["page"]: v["gain"] for v in state["voices"] if not v["stinger"]}
            # theta between about 0.1 and 1.47: the crossfade under way (the gains may be above 1)
            if 0 in gains and 1 in gains and 0.1 < math.atan2(gains[1], gains[0]) < 1.47:
                samples.append((gains[0], gains[1]))
        fade = next(f for f in reversed(state["fades"]) if f["reason"] == "turn")
        return fade, samples, list(errors)
    finally:
        context.close()


@pytest.mark.parametrize("relation", ["quieter", "opposed", "unrelated"])
def test_a_turn_holds_the_sum_on_the_path_between_the_two_pages(browser, served, relation):
    first, second = stimuli(relation)
    fade, samples, errors = turn_once(browser, served, first, second)
    assert len(fade["fades"]) == 2, fade
    assert len(samples) >= 3, f"too few samples of the crossfade: {samples}"
    n = int(fade["fades"][0]["seconds"] * RATE)
    law = assert_on_steady_law(samples, first[:, :n], second[:, :n], RATE)
    assert_scale_records([f["scale"] for f in fade["fades"]], law)
    assert math.isclose(fade["fades"][0]["seconds"], fade["fades"][1]["seconds"], rel_tol=0.05)
    assert not errors, errors


def stretches(sr: int) -> tuple[np.ndarray, np.ndarray]:
    """One second of two ``[2, samples]`` stretches whose relation changes by the quarter second: a
    sine against the same, then half of it over a cosine, then its opposite (the cap holds), then a
    cosine twice as loud (unrelated)."""
    quarter = sr // 4
    t = np.arange(4 * quarter) / sr
    sine, cosine = np.sin(2 * np.pi * 8 * t), np.cos(2 * np.pi * 8 * t)
    k = np.repeat(np.arange(4), quarter)
    other = np.choose(k, [sine, 0.5 * sine + 0.5 * cosine, -sine, 2 * cosine])
    return stereo(sine).astype(np.float32), stereo(other).astype(np.float32)


def test_steady_scale_is_the_mixer_s_law_by_the_quarter_second(browser):
    """crossfade.js steadyScale, on a blank page, from a looping clip read round its end into
    another from its entry: at each of the fade curve's 96 points, the law steady_crossfade_gains
    applies to the quarter seconds' powers interpolated between their middles."""
    sr, n = 8000, 8000  # one second of two channels: every sample read
    old, new = stretches(sr)
    start_old, start_new = 9000, 11000  # both wrap round their clip's end
    clip_old, clip_new = np.zeros((2, 10400), np.float32), np.zeros((2, 12000), np.float32)
    clip_old[:, (start_old + np.arange(n)) % 10400] = old
    clip_new[:, (start_new + np.arange(n)) % 12000] = new
    page = browser.new_page()
    try:
        page.add_script_tag(content=CROSSFADE_JS.read_text())
        got = np.array(page.evaluate("""([a, b, sr, offA, offB]) => {
            const buffer = (data) => {
              const x = new AudioBuffer({ length: data[0].length, numberOfChannels: 2, sampleRate: sr });
              data.forEach((ch, i) => x.copyToChannel(Float32Array.from(ch), i));
              return x;
            };
            return Array.from(steadyScale(buffer(a), offA, buffer(b), offB, 1.0));
        }""", [clip_old.tolist(), clip_new.tolist(), sr, start_old / sr, start_new / sr]))
        silent = page.evaluate("""(sr) => {
            const quiet = () => new AudioBuffer({ length: sr, numberOfChannels: 2, sampleRate: sr });
            return steadyScale(quiet(), 0, quiet(), 0, 1.0);
        }""", sr)
    finally:
        page.close()
    x = np.linspace(0, 1, 96)
    columns = [np.interp(x * n, np.arange(n), column) for column in local_powers(old, new, sr)]
    want = steady_scale(0.5 * np.pi * x, *columns)
    assert got == pytest.approx(want, abs=1e-4)
    # the helper is the mixer's law: its scale at the mixer's own theta
    fade_in, fade_out = steady_crossfade_gains(old, new, sr)
    theta = 0.5 * np.pi * (np.arange(n) + 0.5) / n
    mixer = np.hypot(fade_in, fade_out)
    assert np.allclose(mixer, steady_scale(theta, *local_powers(old, new, sr)), atol=1e-5)
    assert got.max() == pytest.approx(10 ** (STEADY_MAX_DB / 20), abs=1e-4)  # the cap: where the two cancel
    assert silent is None  # silence: plain equal power
