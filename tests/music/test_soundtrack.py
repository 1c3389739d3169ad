"""The soundtrack: loudness, peaks, crossfades, the cue sheet, reuse and atomic writes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest

from m2m.audio import read_audio
from m2m.cues import CaptionSheet
from m2m.evaluation.transitions import loop_seams
from m2m.loudness import loudness_lufs, normalize, true_peak_db
from m2m.music.base import RenderOptions
from m2m.music.render import ENCODER_HEADROOM_DB, SoundtrackSettings
from m2m.runs import RunFolder
from m2m.soundtrack import (
    Join,
    Soundtrack,
    build_soundtrack,
    mix_book,
    mix_pages,
    steady_crossfade_gains,
)

from .conftest import cue

SETTINGS = SoundtrackSettings(clip_seconds=5.0, pace_seconds=4.0, crossfade_seconds=1.0, scene_crossfade_seconds=3.0)


def sheet():
    return CaptionSheet((
        cue(1, 0, "calm piano", tempo=96, energy=0.3),
        cue(2, 0, "calm piano, a little brighter", tempo=96, energy=0.4),
        cue(3, 1, "intense battle with drums", tempo=144, energy=0.9, mode="minor", key="E",
            instruments=("brass section", "drums"), mood="battle"),
    ))


class Counting:
    """Wraps an engine and counts the pages it renders."""

    def __init__(self, engine, fail_on: int | None = None):
        self.engine, self.fail_on, self.pages = engine, fail_on, []
        self.name, self.continues = engine.name, engine.continues
        self.version = getattr(engine, "version", "")  # in every clip's hash, as the engine's own

    def render(self, c, options):
        if c.page == self.fail_on:
            raise RuntimeError("engine crashed")
        self.pages.append(c.page)
        return self.engine.render(c, options)

    def render_many(self, cues, options, *, after=None, previous=None, on_rendered=None):
        out = []
        for c in cues:
            out.append(self.render(c, options))
            if on_rendered:
                on_rendered(out[-1])
        return out


@pytest.fixture(scope="module")
def built(tmp_path_factory, composer):
    run = RunFolder(tmp_path_factory.mktemp("runs"), "book", "m2m")
    engine = Counting(composer)
    events = []
    soundtrack = build_soundtrack("book", "m2m", sheet(), run, "composer", SETTINGS,
                                  lambda *e: events.append(e), order=[2], engine=engine)
    return run, soundtrack, engine, events


def test_cue_sheet_is_complete_and_loadable(built):
    run, soundtrack, engine, events = built
    assert engine.pages == [2, 1, 3]  # the page asked for first, then page order
    raw = json.loads((run.path / "soundtrack.json").read_text())
    cues = raw["data"]["cues"]
    assert [c["page"] for c in cues] == [1, 2, 3]
    assert [c["start"] for c in cues] == [0.0, 4.0, 8.0]
    assert [c["crossfade"] for c in cues] == [0.0, 1.0, 3.0]  # a longer transition at the scene boundary
    for c in cues:
        assert (run.path / c["file"]).is_file() and c["file"].startswith("audio/page-")
        assert c["loop"] is True and c["engine"] == "composer" and c["caption"]
        assert "FluidR3" in c["backend"] or "TimGM" in c["backend"]
    assert raw["data"]["file"] == "audio/soundtrack.ogg" and raw["data"]["complete"] is True
    assert ("music", 3, 3) in events and events[-1] == ("soundtrack", 1, 1)
    # the composer loops whole bars: a bar is the clip over its bars (the reader keeps the grid)
    for c in soundtrack.cues:
        assert c.bar_seconds() == pytest.approx(c.seconds / c.details["bars"]) and c.details["bars"] >= 1
        assert c.bar_seconds() == pytest.approx(4 * 60 / c.details["tempo"], rel=0.02)  # 4/4 at its tempo
    assert replace(soundtrack.cues[0], details={}).bar_seconds() == 0.0  # MusicGen says no bars: no grid
    assert replace(soundtrack.cues[0], loop=False).bar_seconds() == 0.0
    assert not list(run.audio_dir.glob(".*tmp*"))


def test_clips_are_normalised_not_silent_not_clipped(built):
    run, soundtrack, _, _ = built
    for c in soundtrack.cues:
        audio = read_audio(run.path / c.file)
        lufs = loudness_lufs(audio.samples, audio.sample_rate)
        assert abs(lufs - SETTINGS.target_lufs) < 1.0, (c.page, lufs)
        # the file as decoded, not only the clip before encoding, stays under the ceiling
        assert true_peak_db(audio.samples, audio.sample_rate) < SETTINGS.true_peak_db, c.page
        assert c.true_peak_db <= SETTINGS.true_peak_db - ENCODER_HEADROOM_DB
        assert np.abs(audio.samples).max() < 1.0
        assert np.sqrt(np.mean(audio.samples**2)) > 0.02
        assert audio.seconds == pytest.approx(c.seconds, abs=0.01)


def test_whole_file_has_the_pace_length(built):
    run, soundtrack, _, _ = built
    audio = read_audio(run.path / soundtrack.file)
    assert audio.seconds == pytest.approx(3 * SETTINGS.pace_seconds + 3.0, abs=0.05)
    assert abs(loudness_lufs(audio.samples, audio.sample_rate) - SETTINGS.target_lufs) < 1.5


def test_unchanged_pages_are_reused_and_an_edited_caption_rerenders_one(built, composer):
    run, _, _, _ = built
    again = Counting(composer)
    build_soundtrack("book", "m2m", sheet(), run, "composer", SETTINGS, engine=again)
    assert again.pages == []
    edited = CaptionSheet(tuple(c if c.page != 2 else cue(2, 0, "calm piano, now in a minor key", tempo=96,
                                                           energy=0.4) for c in sheet().cues))
    once = Counting(composer)
    soundtrack = build_soundtrack("book", "m2m", edited, run, "composer", SETTINGS, engine=once)
    assert once.pages == [2]
    assert soundtrack.cues[1].caption == "calm piano, now in a minor key"
    forced = Counting(composer)
    build_soundtrack("book", "m2m", edited, run, "composer", SETTINGS, engine=forced, force={3})
    assert forced.pages == [3]


def test_the_whole_file_is_kept_when_its_pages_and_settings_are(tmp_path, composer):
    from dataclasses import replace

    run = RunFolder(tmp_path, "book", "m2m")
    first = build_soundtrack("book", "m2m", sheet(), run, "composer", SETTINGS, engine=composer)
    whole = run.path / first.file
    made = whole.stat().st_mtime_ns
    again = build_soundtrack("book", "m2m", sheet(), run, "composer", SETTINGS, engine=composer)
    assert whole.stat().st_mtime_ns == made and again.file == first.file and again.file_hash == first.file_hash
    # another reading pace: the pages are kept, the whole file is mixed again
    slower = replace(SETTINGS, pace_seconds=5.0)
    paced = build_soundtrack("book", "m2m", sheet(), run, "composer", slower, engine=composer)
    assert paced.file_hash != first.file_hash
    assert read_audio(whole).seconds == pytest.approx(3 * 5.0 + 3.0, abs=0.05)
    # a damaged file is made again, not trusted
    whole.write_bytes(b"OggS" + b"\0" * 100)
    repaired = build_soundtrack("book", "m2m", sheet(), run, "composer", slower, engine=composer)
    from m2m.runs import file_hash

    assert repaired.file_hash == file_hash(whole)
    assert read_audio(whole).seconds == pytest.approx(18.0, abs=0.05)


def test_a_crash_midway_leaves_finished_pages_and_no_partial_files(tmp_path, composer):
    run = RunFolder(tmp_path, "book", "m2m")
    with pytest.raises(RuntimeError):
        build_soundtrack("book", "m2m", sheet(), run, "composer", SETTINGS, engine=Counting(composer, fail_on=3))
    record = run.read("soundtrack", Soundtrack)
    assert record is not None and record.data.complete is False
    assert [c.page for c in record.data.cues] == [1, 2]
    assert sorted(p.name for p in run.audio_dir.iterdir()) == ["page-001.mid", "page-001.ogg", "page-002.mid",
                                                              "page-002.ogg"]
    resumed = Counting(composer)
    build_soundtrack("book", "m2m", sheet(), run, "composer", SETTINGS, engine=resumed)
    assert resumed.pages == [3]


def test_only_some_pages_renders_those_and_no_whole_file(tmp_path, composer):
    """The listening study needs a few pages, not the book: ``only`` renders those, the cue sheet
    says the book is incomplete, and a later full render adds the rest and the whole-book file."""
    run = RunFolder(tmp_path, "book", "m2m")
    engine = Counting(composer)
    partial = build_soundtrack("book", "m2m", sheet(), run, "composer", SETTINGS, engine=engine, only=[3])
    assert engine.pages == [3] and [c.page for c in partial.cues] == [3]
    assert partial.complete is False and not partial.file
    assert not (run.audio_dir / "soundtrack.ogg").exists()
    with pytest.raises(ValueError, match="only: page 9 has no caption"):
        build_soundtrack("book", "m2m", sheet(), run, "composer", SETTINGS, engine=engine, only=[9])
    rest = Counting(composer)
    full = build_soundtrack("book", "m2m", sheet(), run, "composer", SETTINGS, engine=rest)
    assert rest.pages == [1, 2] and full.complete and (run.audio_dir / "soundtrack.ogg").is_file()


def test_music_made_with_other_settings_comes_back_without_rendering(tmp_path, composer):
    """A reader tries other settings (another engine, director, an edited caption) and returns: the
    clips made before come back from the run folder instead of being made again (with MusicGen that is
    minutes), the same files, listed in the cue sheet; a damaged kept clip renders anew; each page
    keeps a few versions."""
    from m2m.kept_clips import KEPT, VERSIONS_PER_PAGE
    from m2m.runs import file_hash

    run = RunFolder(tmp_path, "book", "m2m")
    first = build_soundtrack("book", "m2m", sheet(), run, "composer", SETTINGS, engine=composer)
    page2 = run.path / first.cues[1].file
    made = file_hash(page2)

    def edited(words: str) -> CaptionSheet:
        return CaptionSheet(tuple(c if c.page != 2 else cue(2, 0, words, tempo=80, key="A", mode="minor")
                                  for c in sheet().cues))

    other = Counting(composer)
    build_soundtrack("book", "m2m", edited("a slow sad cello"), run, "composer", SETTINGS, engine=other)
    assert other.pages == [2] and file_hash(page2) != made
    twin = page2.with_suffix(".flac")  # the reader's FLAC copy of the clip now in place
    twin.write_bytes(b"fLaC")
    back = Counting(composer)
    again = build_soundtrack("book", "m2m", sheet(), run, "composer", SETTINGS, engine=back)
    assert back.pages == [], "the first clip came back, nothing rendered"
    assert not twin.exists(), "a copy of the clip it replaced is not served for it"
    assert file_hash(page2) == made and again.cues[1].hash == first.cues[1].hash
    assert again.cues[1].file_hash == made and (run.path / again.cues[1].midi).is_file()
    assert read_audio(run.path / again.file).seconds > 0  # the whole-book file is mixed from it
    # and the other way: the cello clip was put aside in turn and comes back too
    cello = Counting(composer)
    build_soundtrack("book", "m2m", edited("a slow sad cello"), run, "composer", SETTINGS, engine=cello)
    assert cello.pages == []
    # a kept clip that no longer is what it was is not trusted
    store = run.audio_dir / KEPT
    for kept in store.glob("*.ogg"):
        kept.write_bytes(b"OggS" + b"\0" * 64)
    damaged = Counting(composer)
    remade = build_soundtrack("book", "m2m", sheet(), run, "composer", SETTINGS, engine=damaged)
    assert damaged.pages == [2] and remade.cues[1].hash == first.cues[1].hash
    assert remade.cues[1].file_hash == file_hash(page2) and read_audio(page2).seconds == first.cues[1].seconds
    # a few versions per page, the oldest deleted
    for n in range(VERSIONS_PER_PAGE + 2):
        build_soundtrack("book", "m2m", edited(f"version {n} on a harp"), run, "composer", SETTINGS,
                         engine=composer)
    kept_pages = [json.loads(p.read_text())["page"] for p in store.glob("*.json")]
    assert kept_pages.count(2) == VERSIONS_PER_PAGE
    assert len(list(store.glob("*.ogg"))) == len(kept_pages)


def test_only_a_page_that_continues_renders_the_page_it_continues_from():
    from m2m.music.render import with_predecessors

    after = {1: None, 2: 1, 3: 2, 4: None, 5: 4}  # pages 1-3 and 4-5 continue within their scenes
    assert with_predecessors([3, 4], after) == {1, 2, 3, 4}


def _tone(freq, seconds, sr):
    t = np.arange(int(seconds * sr)) / sr
    return np.tile(0.3 * np.sin(2 * np.pi * freq * t), (2, 1)).astype(np.float32)


def _band_envelope(y, sr, freq, hop=441):
    """Amplitude of one frequency over time (10 ms hops), by a short windowed projection."""
    win = 2048
    frames = range(0, y.shape[0] - win, hop)
    w = np.hanning(win)
    basis = np.exp(-2j * np.pi * freq * np.arange(win) / sr) * w
    return np.array([abs(np.dot(y[i:i + win], basis)) * 2 / w.sum() for i in frames]), hop / sr


@pytest.mark.parametrize("fade", [1.0, 3.0])
def test_crossfade_has_the_stated_length_and_equal_power(fade):
    sr = 8000
    out = mix_pages([(_tone(440, 10, sr), True), (_tone(1000, 10, sr), True)], [0.0, fade], 6.0, sr,
                    end_fade_seconds=1.0)
    old, step = _band_envelope(out[0], sr, 440)
    new, _ = _band_envelope(out[0], sr, 1000)
    centre = 1024 / sr  # envelope frames are stamped at their window's start
    t = np.arange(len(old)) * step + centre
    falling = t[(old < 0.3 * 0.99) & (old > 0.3 * 0.01) & (t < 9)]
    rising = t[(new > 0.3 * 0.01) & (new < 0.3 * 0.99) & (t < 9)]
    window = 2048 / sr  # the measuring window smears each edge by about its length
    # an equal-power fade-out cos(pi/2 t) spends (acos(.01) - acos(.99)) * 2/pi = 90.4 % of its
    # length between 99 % and 1 % amplitude
    span = (np.arccos(0.01) - np.arccos(0.99)) * 2 / np.pi * fade
    assert falling.max() - falling.min() == pytest.approx(span, abs=window)
    assert rising.min() == pytest.approx(6.0 - fade / 2, abs=window)
    middle = np.argmin(abs(t - 6.0))
    assert old[middle] ** 2 + new[middle] ** 2 == pytest.approx(0.09, rel=0.05)  # equal power at the turn


def _rms_over(x: np.ndarray, sr: int, seconds: float = 0.05) -> np.ndarray:
    n = int(seconds * sr)
    frames = x[: x.size // n * n].reshape(-1, n)
    return np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))


def test_alike_pages_crossfade_without_swelling_and_unlike_ones_keep_equal_power():
    """Two pages playing the same music (a scene's pages share key, tempo, chords) sum in amplitude:
    the equal-power law would swell them by 3 dB mid-crossfade, the correlation law holds the level;
    two unrelated pages still crossfade at equal power, as before."""
    sr, fade = 8000, 2.0
    same = _tone(440, 10, sr)
    out = mix_pages([(same, True), (same.copy(), True)], [0.0, fade], 6.0, sr, end_fade_seconds=1.0)
    level = _rms_over(out[0], sr)
    t = (np.arange(level.size) + 0.5) * 0.05
    steady = level[(t > 3) & (t < 9)]
    assert steady.max() / steady.min() < 1.02, "no swell where two alike pages overlap"

    noise = np.random.default_rng(0)
    a, b = (noise.standard_normal((2, 10 * sr)).astype(np.float32) * 0.1 for _ in range(2))
    out = mix_pages([(a, True), (b, True)], [0.0, fade], 6.0, sr, end_fade_seconds=1.0)
    power = _rms_over(out[0], sr, 0.25) ** 2
    t = (np.arange(power.size) + 0.5) * 0.25
    assert power[(t > 5.2) & (t < 6.8)].mean() == pytest.approx(power[(t > 2) & (t < 4)].mean(), rel=0.1)


def test_the_law_follows_the_pages_alikeness_moment_by_moment():
    """Pages alike for the first half of their crossfade (the same music: two downbeats on one chord)
    and unrelated for the second: the level holds through both halves. One correlation for the whole
    fade (about 0.5 here) would swell the first half by ~1 dB and sink the second by as much."""
    sr, pace, fade = 8000, 6.0, 2.0
    rng = np.random.default_rng(1)
    first = (rng.standard_normal((2, 10 * sr)) * 0.1).astype(np.float32)
    second = (rng.standard_normal((2, 10 * sr)) * 0.1).astype(np.float32)
    enters = int((pace - fade / 2) * sr)  # the second page's clip starts 1 s before the turn
    second[:, :sr] = first[:, enters:enters + sr]  # ... playing the first page's own music for 1 s
    out = mix_pages([(first, True), (second, True)], [0.0, fade], pace, sr, end_fade_seconds=1.0)
    def power(start: float, end: float) -> float:
        return float(np.mean(out[:, int(start * sr):int(end * sr)].astype(np.float64) ** 2))

    before = power(2.0, 4.0)  # the first page alone
    assert power(pace - fade / 2, pace) == pytest.approx(before, rel=0.08)  # the alike half: no swell
    assert power(pace, pace + fade / 2) == pytest.approx(before, rel=0.08)  # the unrelated half: no dip


def _crossfade_power(first: np.ndarray, second: np.ndarray, sr: int, pace: float, fade: float) -> tuple[np.ndarray, np.ndarray]:
    """Two pages mixed at ``pace`` with a ``fade`` s crossfade: per quarter second of the crossfade,
    (the mix's power, the power an equal-power fade of two unrelated pages as loud as these gives)."""
    out = mix_pages([(first, True), (second, True)], [0.0, fade], pace, sr, end_fade_seconds=1.0)
    begin, quarter = int((pace - fade / 2) * sr), sr // 4
    got, path = [], []
    for k in range(int(fade * 4)):
        lo, hi = begin + k * quarter, begin + (k + 1) * quarter
        mid = (k + 0.5) / (fade * 4)  # where in the fade, 0 to 1
        fade_out, fade_in = np.cos(0.5 * np.pi * mid), np.sin(0.5 * np.pi * mid)
        p_first = np.mean(first[:, lo % first.shape[1]:][:, :quarter].astype(np.float64) ** 2)
        p_second = np.mean(second[:, lo - begin:hi - begin].astype(np.float64) ** 2)
        got.append(np.mean(out[:, lo:hi].astype(np.float64) ** 2))
        path.append(fade_out ** 2 * p_first + fade_in ** 2 * p_second)
    return np.array(got), np.array(path)


@pytest.mark.parametrize("relation", ["quieter", "opposed"])
def test_a_crossfade_holds_the_sum_on_the_path_between_the_two_pages(relation):
    """The next page plays the same music at half the level (quieter), or half of it in opposite
    phase over noise of its own (opposed: r about -0.45): each quarter second of the crossfade is as
    loud as an equal-power fade of unrelated pages that loud, within 0.5 dB. The law of one r in
    [0, 1] on equally loud pages (crossfade_gains) is 0.9 and 2.6 dB off: equal gain for the first,
    which sinks its middle towards the quieter page, equal power for the second, where the two cancel."""
    sr, pace, fade = 8000, 6.0, 2.0
    rng = np.random.default_rng(3)
    first = (rng.standard_normal((2, 10 * sr)) * 0.1).astype(np.float32)
    enters = int((pace - fade / 2) * sr)
    music = np.roll(first, -enters, axis=1)  # the first page's music from where the second enters
    if relation == "quieter":
        second = 0.5 * music
    else:
        second = (-0.5 * music + rng.standard_normal((2, 10 * sr)).astype(np.float32) * 0.1).astype(np.float32)
    got, path = _crossfade_power(first, second.astype(np.float32), sr, pace, fade)
    assert np.max(np.abs(10 * np.log10(got / path))) < 0.5


def _stretches_of_correlation(r: Sequence[float], sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Two equally loud ``[2, samples]`` stretches whose correlation is exactly ``r[k]`` over the
    k-th quarter second: a sine against r of it plus sqrt(1 - r^2) of the cosine (whole periods in
    every quarter second, so the two are orthogonal there)."""
    t = np.arange(len(r) * sr // 4) / sr
    sine, cosine = np.sin(2 * np.pi * 8 * t), np.cos(2 * np.pi * 8 * t)
    r_t = np.repeat(np.asarray(r, dtype=np.float64), sr // 4)
    other = r_t * sine + np.sqrt(1 - r_t ** 2) * cosine
    return np.stack([sine, sine]).astype(np.float32), np.stack([other, other]).astype(np.float32)


def test_the_crossfade_law_runs_from_equal_power_to_equal_gain():
    """Between equally loud stretches the steady law is the correlation law: equal power where they
    are unrelated, equal gain where they are the same music, 1 / sqrt(1 + 2 r sin cos) between, and
    moment by moment (each quarter second its own r, interpolated between their middles)."""
    sr = 8000
    for r in (0.0, 1.0, 0.5):
        old, new = _stretches_of_correlation([r] * 4, sr)
        fade_in, fade_out = steady_crossfade_gains(old, new, sr)
        assert np.allclose(fade_in ** 2 + fade_out ** 2 + 2 * r * fade_in * fade_out, 1.0, atol=1e-4)
    assert not np.allclose(fade_in + fade_out, 1.0, atol=1e-4)  # r = 0.5 is neither law's end
    old, new = _stretches_of_correlation([1.0, 1.0, 0.0, 0.0], sr)
    fade_in, fade_out = steady_crossfade_gains(old, new, sr)
    assert np.allclose((fade_in + fade_out)[:sr // 8], 1.0, atol=1e-4)  # the same music: equal gain
    assert np.allclose((fade_in ** 2 + fade_out ** 2)[-sr // 8:], 1.0, atol=1e-4)  # unrelated: equal power
    quarter = sr // 4
    r_t = np.interp(np.arange(4 * quarter), (np.arange(4) + 0.5) * quarter, [1.0, 1.0, 0.0, 0.0])
    assert np.allclose(fade_in ** 2 + fade_out ** 2 + 2 * r_t * fade_in * fade_out, 1.0, atol=1e-4)


def test_normalise_meets_loudness_and_true_peak():
    rng = np.random.default_rng(0)
    sr = 44100
    # a spiky signal: quiet noise with loud clicks, the worst case for peak control
    x = (rng.normal(0, 0.02, (2, sr * 6))).astype(np.float32)
    x[:, ::9000] = 0.9
    out, loudness = normalize(x, sr, -16.0, -1.0)
    assert abs(loudness_lufs(out, sr) + 16.0) < 0.5
    assert true_peak_db(out, sr) <= -1.0 + 0.05


def test_mp3_copies_when_asked(tmp_path, composer):
    import shutil

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    run = RunFolder(tmp_path, "book", "m2m")
    one = CaptionSheet(sheet().cues[:1])
    soundtrack = build_soundtrack("book", "m2m", one, run, "composer",
                                  SoundtrackSettings(clip_seconds=3.0, pace_seconds=3.0, mp3=True))
    assert soundtrack.cues[0].mp3 == "audio/page-001.mp3"
    assert (run.path / "audio/page-001.mp3").stat().st_size > 1000
    assert (run.path / "audio/soundtrack.mp3").is_file()




def test_render_command_makes_the_soundtrack_at_the_rate_asked_for(manga109_root, tmp_path, capsys):
    """MusicGen's 32 kHz by default; ``--sample-rate 44100`` gives the composer's full band, the
    composer synthesising at that rate (whole-bar loops at either), and a rate no player takes is refused."""
    import soundfile

    from m2m.cli import main

    for rate in (None, 44100):
        out = tmp_path / f"runs-{rate}"
        argv = ["render", str(manga109_root), "--out", str(out), "--no-whole-file"]
        assert main(argv + ([] if rate is None else ["--sample-rate", str(rate)])) == 0
        sheet = json.loads(next(out.glob("*/m2m/soundtrack.json")).read_text(encoding="utf-8"))["data"]
        for entry in sheet["cues"]:
            info = soundfile.info(str(next(out.glob("*/m2m")) / entry["file"]))
            assert info.samplerate == (rate or 32000)
            assert info.frames / info.samplerate == pytest.approx(entry["seconds"], abs=1e-3)
            audio = read_audio(next(out.glob("*/m2m")) / entry["file"])
            assert true_peak_db(audio.samples, audio.sample_rate) < -1.0, "the file as played, not only before encoding"
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["render", str(manga109_root), "--out", str(tmp_path / "x"), "--sample-rate", "12345"])
    assert "invalid choice" in capsys.readouterr().err


def test_render_into_a_folder_that_cannot_be_made_says_so(manga109_root, tmp_path, capsys):
    """An --out under a file (as read-only or full disks do) is an error naming the path in words."""
    from m2m.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["render", str(manga109_root), "--out", str(blocker / "runs"), "--no-whole-file"]) == 2
    err = capsys.readouterr().err
    assert f"error: not a directory: {blocker / 'runs'}" in err and "--out" in err
    assert "Errno" not in err and "Traceback" not in err


def test_a_page_file_stays_under_the_true_peak_ceiling_as_decoded(tmp_path):
    """Vorbis moves peaks: a clip limited to -1.1 dBTP came back from the file at -0.92. The limiter
    aims lower by the encoder's headroom, so the file a reader plays is under the ceiling."""
    from m2m.music.base import Audio, EngineInfo, Rendered
    from m2m.music.render import render_page

    rate = 32000
    n = np.arange(4 * rate)
    # hard clicks over noise: the kind of material whose peaks a lossy codec moves most
    x = (np.random.default_rng(0).normal(0, 0.05, n.size) + (n % 8000 < 40) * 0.9).astype(np.float32)

    class Clicks:
        name, continues = "clicks", False

        def render(self, c, options):
            return Rendered(c.page, Audio(np.stack([x, x]), rate), True, EngineInfo("clicks"))

    settings = SoundtrackSettings(engine="clicks")
    clip = render_page(cue(1, 0, "clicks"), Clicks(), RenderOptions(), tmp_path / "page.ogg", settings)
    audio = read_audio(tmp_path / "page.ogg")
    assert clip.sample_rate == rate
    assert true_peak_db(audio.samples, rate) < settings.true_peak_db
    assert abs(loudness_lufs(audio.samples, rate) - settings.target_lufs) < 0.5


def test_a_page_crossfading_in_from_one_of_its_bar_length_enters_on_its_bar_grid():
    """Pages of a scene share tempo and metre: the new page's clip enters where the old one is
    within its bar, so both put their downbeats on one grid while they overlap (entered from its
    beginning, it would land 0.4 s, most of a bar, off). Clips of other bar lengths start as before."""
    rate, bar = 8000, 0.5

    def clicks(bars: int, level: float) -> np.ndarray:
        x = np.zeros((2, int(bars * bar * rate)), dtype=np.float32)
        x[:, ::int(bar * rate)] = level  # a click on every downbeat
        return x

    old, new = clicks(4, 1.0), clicks(3, 0.5)  # 2 s and 1.5 s loops of 0.5 s bars
    pace, fade = 2.2, 0.6  # the new page begins at 1.9 s, 1.9 s into the old clip: 0.4 s into its bar
    book, offsets = mix_book([(old, True), (new, True)], [0.0, fade], pace, rate, bars=[bar, bar])
    assert offsets == [0, int(0.4 * rate)]
    onsets = np.flatnonzero(np.abs(book[0]) > 1e-3)
    assert onsets.size > 8 and np.all(onsets % int(bar * rate) == 0), onsets[onsets % int(bar * rate) != 0]
    unaligned = mix_book([(old, True), (new, True)], [0.0, fade], pace, rate, bars=[bar, 0.4])[0]
    assert np.any(np.flatnonzero(np.abs(unaligned[0]) > 1e-3) % int(bar * rate)), "other bar lengths: from the start"
    # the evaluation's loop seams follow where the clip entered: the new clip's first seam is on the grid too
    joins = [Join(0.0, 0.0, 0.0, 0.0), Join.crossfade(fade)]
    seams = loop_seams([old.shape[1], new.shape[1]], [True, True], joins, pace, rate, 3.0, offsets)
    assert [at for k, at in seams if k == 1][0] == int(3.0 * rate)
