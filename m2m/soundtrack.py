"""Stage 6: page clips → a loudness-matched, crossfaded soundtrack and its cue sheet.

Each clip is normalised to the same loudness (ITU-R BS.1770 via pyloudnorm, -16 LUFS by default)
with its true peak (4x oversampled) held under -1 dBTP by a gentle look-ahead limiter, then written
atomically as ``audio/page-NNN.ogg``. ``soundtrack.json`` is the cue sheet a web reader loads: per
page its file, start time at the chosen reading pace, length, loop flag, crossfade, engine, caption
and scene. ``audio/soundtrack.ogg`` is the whole book at that pace, with equal-power crossfades
between pages and longer ones at scene boundaries. Pages rendered before from the same cue, engine
and settings are reused (each clip records the hash of what made it).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np
import pyloudnorm
import soundfile
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import firwin, resample_poly

from m2m.directives import CaptionSheet, Cue
from m2m.music import DEFAULT_ENGINE, load_engine
from m2m.music.base import Audio, Clip, Engine, Rendered, RenderOptions, stable_seed
from m2m.runs import Condition, Provenance, RunFolder, file_hash, hash_inputs

Progress = Callable[[str, int, int], None]
FORMATS = ("ogg", "mp3", "wav")


@dataclass(frozen=True)
class SoundtrackSettings:
    """How the soundtrack is made. Seconds and Hz; loudness in LUFS, peaks in dBTP.

    ``clip_seconds`` is the wanted length of each page's clip (clips loop); ``pace_seconds`` is the
    reading pace (seconds per page) of the whole-book file and of the cue sheet's start times;
    ``crossfade_seconds`` is the transition between pages of a scene, ``scene_crossfade_seconds``
    between scenes. ``mp3`` also writes MP3 copies (needs ffmpeg). ``continuation`` lets engines
    that can (MusicGen) continue each page from the previous page of its scene.
    """

    engine: str = DEFAULT_ENGINE
    clip_seconds: float = 24.0
    pace_seconds: float = 20.0
    seed: int = 0
    target_lufs: float = -16.0
    true_peak_db: float = -1.0
    crossfade_seconds: float = 2.0
    scene_crossfade_seconds: float = 5.0
    sample_rate: int = 44100
    mp3: bool = False
    whole_file: bool = True
    continuation: bool = True
    write_midi: bool = True

    def transition(self, new_scene: bool) -> float:
        """The crossfade into a page, in seconds: never longer than a page at the reading pace."""
        return min(self.scene_crossfade_seconds if new_scene else self.crossfade_seconds, self.pace_seconds)

    def __post_init__(self) -> None:
        if not 2.0 <= self.pace_seconds <= 3600.0:
            raise ValueError(f"pace_seconds: {self.pace_seconds} is outside 2..3600 s per page")
        # transitions longer than a page are shortened to the page (see transition()), not refused
        if not 0.0 <= self.crossfade_seconds <= 60.0:
            raise ValueError(f"crossfade_seconds: {self.crossfade_seconds} is outside 0..60 s")
        if not 0.0 <= self.scene_crossfade_seconds <= 60.0:
            raise ValueError(f"scene_crossfade_seconds: {self.scene_crossfade_seconds} is outside 0..60 s")
        if not -40.0 <= self.target_lufs <= -5.0:
            raise ValueError(f"target_lufs: {self.target_lufs} is outside -40..-5 LUFS")
        if not -12.0 <= self.true_peak_db <= 0.0:
            raise ValueError(f"true_peak_db: {self.true_peak_db} is outside -12..0 dBTP")
        if self.sample_rate not in (22050, 32000, 44100, 48000):
            raise ValueError(f"sample_rate: {self.sample_rate} is not 22050, 32000, 44100 or 48000 Hz")


@dataclass(frozen=True)
class SoundtrackCue:
    """One page in the cue sheet. ``file`` is relative to the run folder; times in seconds.

    ``start`` is when the page begins in the whole-book file (at the settings' pace);
    ``crossfade`` the length of the equal-power transition into it, centred on ``start``.
    """

    page: int
    scene: int
    file: str
    start: float
    seconds: float
    loop: bool
    crossfade: float
    engine: str
    caption: str
    hash: str
    file_hash: str = ""
    backend: str = ""
    lufs: float = 0.0
    true_peak_db: float = 0.0
    mp3: str | None = None
    midi: str | None = None
    warnings: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Soundtrack:
    """``soundtrack.json``: the cue sheet, the clips and the settings that made them.

    ``file`` is the whole book at the settings' pace (relative to the run folder), empty until made;
    ``complete`` is False while pages are still rendering (the file is rewritten as each page lands).
    """

    book_id: str
    condition: Condition
    cues: tuple[SoundtrackCue, ...]
    clips: tuple[Clip, ...]
    settings: SoundtrackSettings
    file: str = ""
    seconds: float = 0.0
    complete: bool = True


# ---------------------------------------------------------------------------------------------
# loudness


@dataclass(frozen=True)
class Loudness:
    lufs: float
    true_peak_db: float


def _oversample(samples: np.ndarray) -> np.ndarray:
    return resample_poly(samples, 4, 1, axis=1, window=_TP_FILTER)


# BS.1770-4 Annex 2 estimates true peak with a 48-tap, 4-phase interpolation filter; a Kaiser-windowed
# low-pass of the same size (resample_poly itself scales it by 4 for the zeros stuffed in).
_TP_FILTER = firwin(48, 0.25, window=("kaiser", 6.0)).astype(np.float32)
_BLOCK = 4096
_HEADROOM = 10 ** (-4.0 / 20)  # inter-sample peaks of music stay well within 4 dB of the sample peaks


def true_peak_db(samples: np.ndarray, sample_rate: int) -> float:
    """The true peak of ``[channels, samples]`` audio in dBTP, from 4x oversampling (BS.1770-4)."""
    del sample_rate  # the oversampling factor is fixed; the rate does not change the estimate
    peak = float(np.abs(_oversample(samples)).max()) if samples.size else 0.0
    return float(20 * np.log10(max(peak, 1e-12)))


def _peak_envelope(samples: np.ndarray, threshold: float) -> np.ndarray:
    """Per sample, the largest 4x-oversampled magnitude over channels around it.

    Only blocks whose sample peak comes within 4 dB of ``threshold`` are oversampled; elsewhere the
    sample magnitude stands in (the true peak there is far below the threshold anyway). This keeps
    normalisation cheap: a 4x oversampling of a whole clip costs more than the rest together.
    """
    envelope = np.abs(samples).max(axis=0)
    n = envelope.shape[0]
    blocks = -(-n // _BLOCK)
    block_peaks = np.pad(envelope, (0, blocks * _BLOCK - n)).reshape(blocks, _BLOCK).max(axis=1)
    hot = np.flatnonzero(block_peaks > threshold * _HEADROOM)
    if hot.size == 0:
        return envelope
    runs = np.split(hot, np.flatnonzero(np.diff(hot) > 1) + 1)
    for run in runs:
        a, b = run[0] * _BLOCK, min(n, (run[-1] + 1) * _BLOCK)
        lo, hi = max(0, a - 64), min(n, b + 64)
        up = np.abs(_oversample(samples[:, lo:hi])).max(axis=0)
        envelope[a:b] = up[4 * (a - lo): 4 * (b - lo)].reshape(b - a, 4).max(axis=1)
    return envelope


def loudness_lufs(samples: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (ITU-R BS.1770) of ``[channels, samples]`` audio; -inf when silent."""
    if samples.shape[1] < int(0.4 * sample_rate):
        raise ValueError(f"audio: {samples.shape[1] / sample_rate:.2f} s is too short to measure (at least 0.4 s)")
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(samples.T))


def _limit(samples: np.ndarray, envelope: np.ndarray, ceiling: float, sample_rate: int, loop: bool) -> np.ndarray:
    """Hold the peak ``envelope`` under ``ceiling`` (linear) with a smooth gain curve (about 20 ms
    each side of a peak), wrapping around the ends of a loop so the seam stays continuous."""
    needed = np.minimum(1.0, ceiling / np.maximum(envelope, 1e-9))
    width = max(1, int(0.01 * sample_rate))
    mode = "wrap" if loop else "nearest"
    # the minimum over 2w+1 samples, then a mean over w+1, stays below what every sample needs
    gain = minimum_filter1d(needed, size=2 * width + 1, mode=mode)
    gain = uniform_filter1d(gain, size=width + 1, mode=mode)
    return samples * gain[None, :].astype(samples.dtype)


def normalize(samples: np.ndarray, sample_rate: int, target_lufs: float = -16.0, true_peak_db_max: float = -1.0,
              loop: bool = True) -> tuple[np.ndarray, Loudness]:
    """``[channels, samples]`` audio at ``target_lufs`` with its true peak under ``true_peak_db_max``.

    A gain brings the loudness to the target; peaks that would then pass the ceiling are limited,
    and the small loudness the limiter took is given back (twice at most, re-limiting each time).
    """
    lufs = loudness_lufs(samples, sample_rate)
    if not np.isfinite(lufs):
        raise ValueError("audio: the clip is silent; nothing to normalise")
    ceiling = 10 ** ((true_peak_db_max - 0.1) / 20)
    out = samples.astype(np.float32) * np.float32(10 ** ((target_lufs - lufs) / 20))
    lufs = target_lufs  # a gain shifts integrated loudness by exactly that many dB
    envelope = _peak_envelope(out, ceiling)
    for _ in range(3):
        if envelope.max() <= ceiling:
            break
        out = _limit(out, envelope, ceiling, sample_rate, loop)
        lufs = loudness_lufs(out, sample_rate)
        if target_lufs - lufs > 0.05:
            out = out * np.float32(10 ** ((target_lufs - lufs) / 20))
            lufs = target_lufs
        envelope = _peak_envelope(out, ceiling)
    peak = float(envelope.max())
    if peak > ceiling:  # a last resort the limiter makes rare: a plain gain down to the ceiling
        out = out * np.float32(ceiling / peak)
        lufs += 20 * np.log10(ceiling / peak)
        peak = ceiling
    return out, Loudness(round(float(lufs), 2), round(float(20 * np.log10(max(peak, 1e-12))), 2))


# ---------------------------------------------------------------------------------------------
# files


def _to_rate(audio: Audio, sample_rate: int) -> np.ndarray:
    samples = audio.samples.astype(np.float32)
    if samples.shape[0] == 1:
        samples = np.repeat(samples, 2, axis=0)  # mono engines (MusicGen) play centred in stereo
    if audio.sample_rate != sample_rate:
        g = gcd(audio.sample_rate, sample_rate)
        samples = resample_poly(samples, sample_rate // g, audio.sample_rate // g, axis=1).astype(np.float32)
    return samples


def write_audio_atomic(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write ``[channels, samples]`` audio as OGG Vorbis, WAV or MP3 (by suffix) through a temporary
    file and a rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower().lstrip(".")
    tmp = path.with_name(f".{path.stem}.tmp.{suffix}")
    data = np.clip(samples, -1.0, 1.0).T
    try:
        if suffix in ("ogg", "wav"):
            kind = ("OGG", "VORBIS") if suffix == "ogg" else ("WAV", "PCM_16")
            with soundfile.SoundFile(tmp, "w", sample_rate, data.shape[1], format=kind[0], subtype=kind[1]) as f:
                # block by block: libsndfile 1.2's Vorbis encoder crashes on one very long write
                for i in range(0, data.shape[0], 65536):
                    f.write(data[i:i + 65536])
        elif suffix == "mp3":
            _write_mp3(tmp, data, sample_rate)
        else:
            raise ValueError(f"path: {path.name!r} has an unsupported suffix (use .ogg, .wav or .mp3)")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_mp3(path: Path, data: np.ndarray, sample_rate: int) -> None:
    try:
        from pydub import AudioSegment
    except ImportError as e:
        raise RuntimeError("MP3 export needs pydub: `pip install pydub`") from e
    pcm = (data * 32767).astype("<i2")
    segment = AudioSegment(pcm.tobytes(), frame_rate=sample_rate, sample_width=2, channels=data.shape[1])
    try:
        segment.export(path, format="mp3", bitrate="192k")
    except (OSError, subprocess.SubprocessError) as e:
        raise RuntimeError(f"MP3 export failed ({e}); it needs ffmpeg: `apt-get install ffmpeg`") from e


def read_audio(path: Path) -> Audio:
    """An audio file as ``Audio`` (float32 ``[channels, samples]``)."""
    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (OSError, RuntimeError, soundfile.LibsndfileError) as e:
        raise ValueError(f"{path}: cannot read audio: {e}") from e
    return Audio(np.ascontiguousarray(data.T), int(rate))


# ---------------------------------------------------------------------------------------------
# the whole book


def equal_power(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(fade-in, fade-out) gains over ``n`` samples whose squares sum to one."""
    t = (np.arange(n, dtype=np.float64) + 0.5) / max(n, 1)
    return np.sin(0.5 * np.pi * t).astype(np.float32), np.cos(0.5 * np.pi * t).astype(np.float32)


def _looped(samples: np.ndarray, length: int, loop: bool) -> np.ndarray:
    if samples.shape[1] >= length:
        return samples[:, :length]
    if not loop:
        return np.pad(samples, ((0, 0), (0, length - samples.shape[1])))
    reps = -(-length // samples.shape[1])
    return np.tile(samples, (1, reps))[:, :length]


def mix_pages(clips: Sequence[tuple[np.ndarray, bool]], crossfades: Sequence[float], pace_seconds: float,
              sample_rate: int, end_fade_seconds: float = 3.0) -> np.ndarray:
    """The whole book: page k starts at ``k * pace_seconds``; the transition into it is an
    equal-power crossfade of ``crossfades[k]`` seconds centred on that start (the first page fades
    in over 10 ms, the last fades out over ``end_fade_seconds``). Clips are ``([channels, samples],
    loop)`` at ``sample_rate``; looping clips repeat to fill their page. Returns ``[2, samples]``."""
    if len(clips) != len(crossfades):
        raise ValueError("crossfades: one per clip expected")
    pace = int(round(pace_seconds * sample_rate))
    end_fade = int(round(end_fade_seconds * sample_rate))
    total = pace * len(clips) + end_fade
    out = np.zeros((2, total), dtype=np.float32)
    half = [int(round(c * sample_rate / 2)) for c in crossfades]  # half of each transition
    half[0] = 0
    last = len(clips) - 1
    for k, (samples, loop) in enumerate(clips):
        begin = k * pace - half[k]
        fade_in = 2 * half[k] if k else int(0.01 * sample_rate)
        if k == last:
            end, fade_out = total, end_fade
        else:
            end = (k + 1) * pace + half[k + 1]
            fade_out = 2 * half[k + 1]
        segment = _looped(samples, end - begin, loop).copy()
        if fade_in > 0:
            segment[:, :fade_in] *= equal_power(fade_in)[0]
        if fade_out > 0:
            segment[:, -fade_out:] *= equal_power(fade_out)[1]
        out[:, begin:end] += segment
    return out


# ---------------------------------------------------------------------------------------------
# building


def render_page(cue: Cue, engine: Engine | str, options: RenderOptions, path: Path | str,
                settings: SoundtrackSettings | None = None) -> Clip:
    """Render one page and write it, loudness-normalised, atomically at ``path`` (.ogg/.wav/.mp3)."""
    engine = load_engine(engine) if isinstance(engine, str) else engine
    settings = settings or SoundtrackSettings(engine=engine.name)
    rendered = engine.render(cue, options)
    samples, _ = _finish(rendered, settings)
    write_audio_atomic(Path(path), samples, settings.sample_rate)
    return Clip(cue.page, str(path), samples.shape[1] / settings.sample_rate, settings.sample_rate, rendered.loop)


def _finish(rendered: Rendered, settings: SoundtrackSettings) -> tuple[np.ndarray, Loudness]:
    samples = _to_rate(rendered.audio, settings.sample_rate)
    return normalize(samples, settings.sample_rate, settings.target_lufs, settings.true_peak_db, rendered.loop)


def _order(cues: Sequence[Cue], order: Sequence[int] | None) -> list[Cue]:
    by_page = {c.page: c for c in cues}
    if len(by_page) != len(cues):
        raise ValueError("captions: two cues for the same page")
    first: list[int] = []
    for page in order or ():
        if page not in by_page:
            raise ValueError(f"order: page {page} has no caption")
        if page not in first:
            first.append(page)
    return [by_page[p] for p in first] + [c for c in cues if c.page not in first]


def build_soundtrack(book_id: str, condition: Condition, captions: CaptionSheet, run: RunFolder,
                     engine_name: str, options: SoundtrackSettings | None = None,
                     progress: Progress | None = None, *, render: RenderOptions | None = None,
                     order: Sequence[int] | None = None, force: Collection[int] = (),
                     on_clip: Callable[[Clip], None] | None = None, engine: Engine | None = None) -> Soundtrack:
    """Render every page's clip (reusing clips made from the same inputs) and write the soundtrack.

    ``order`` lists pages to render first (the page on screen and the next two); the rest follow in
    page order. ``force`` re-renders those pages even if unchanged. ``on_clip`` is called as each
    page's file lands. ``render`` carries engine options (device, SoundFont, library folder, ...);
    its ``seconds`` and ``seed`` are taken from the settings. ``engine`` replaces the registry's
    (tests). ``progress(stage, done, total)`` reports "music" per page and "soundtrack" at the end.
    """
    if not captions.cues:
        raise ValueError("captions: no cues; nothing to render")
    settings = replace(options or SoundtrackSettings(), engine=engine_name)
    engine = engine or load_engine(engine_name)
    progress = progress or (lambda stage, done, total: None)
    book_seed = stable_seed(book_id, settings.seed) % (2**31)
    render = replace(render or RenderOptions(), seconds=settings.clip_seconds, seed=book_seed,
                     previous=None, progress=None)
    sheet = sorted(captions.cues, key=lambda c: c.page)
    continues = engine.continues and settings.continuation
    after: dict[int, int | None] = {}
    for prev, cue in zip([None, *sheet], sheet, strict=False):
        after[cue.page] = prev.page if continues and prev is not None and prev.scene == cue.scene else None
    common = (engine_name, getattr(engine, "version", ""), render.settings(), settings.sample_rate,
              settings.target_lufs, settings.true_peak_db)
    hashes: dict[int, str] = {}
    for cue in sheet:
        hashes[cue.page] = hash_inputs(cue, *common, hashes.get(after[cue.page] or -1, ""))

    existing = _existing_cues(run)
    done: dict[int, SoundtrackCue] = {}
    for cue in sheet:
        old = existing.get(cue.page)
        if old is not None and cue.page not in force and old.hash == hashes[cue.page] \
                and _intact(run.path / old.file, old.file_hash):
            done[cue.page] = replace(old, caption=cue.caption, scene=cue.scene)
    pending = [c for c in _order(sheet, order) if c.page not in done]
    total = len(sheet)
    progress("music", len(done), total)
    previous = {}
    for cue in pending:
        before = after[cue.page]
        if before is not None and before in done:
            previous[before] = read_audio(run.path / done[before].file)

    def landed(rendered: Rendered) -> None:
        cue = next(c for c in sheet if c.page == rendered.page)
        done[cue.page] = _write_clip(run, cue, rendered, settings, hashes[cue.page])
        _write_sheet(run, book_id, condition, sheet, done, settings, hashes, complete=False)
        progress("music", len(done), total)
        if on_clip is not None:
            on_clip(_clip_of(done[cue.page], settings))

    if pending:
        engine.render_many(pending, render, after={c.page: after[c.page] for c in pending},
                           previous=previous, on_rendered=landed)
    soundtrack = _write_sheet(run, book_id, condition, sheet, done, settings, hashes, complete=True)
    if settings.whole_file:
        progress("soundtrack", 0, 1)
        soundtrack = _write_whole(run, soundtrack)
        progress("soundtrack", 1, 1)
    return soundtrack


def _existing_cues(run: RunFolder) -> dict[int, SoundtrackCue]:
    try:
        record = run.read("soundtrack", Soundtrack)
    except ValueError:
        return {}  # an unreadable cue sheet only costs re-rendering; the new one replaces it
    return {} if record is None else {c.page: c for c in record.data.cues}


def _intact(path: Path, expected: str) -> bool:
    return path.is_file() and bool(expected) and file_hash(path) == expected


def _write_clip(run: RunFolder, cue: Cue, rendered: Rendered, settings: SoundtrackSettings,
                clip_hash: str) -> SoundtrackCue:
    samples, loudness = _finish(rendered, settings)
    name = f"page-{cue.page:03d}"
    ogg = run.audio_dir / f"{name}.ogg"
    write_audio_atomic(ogg, samples, settings.sample_rate)
    mp3 = midi = None
    if settings.mp3:
        write_audio_atomic(run.audio_dir / f"{name}.mp3", samples, settings.sample_rate)
        mp3 = f"audio/{name}.mp3"
    if settings.write_midi and rendered.midi is not None:
        target = run.audio_dir / f"{name}.mid"
        tmp = target.with_name(f".{name}.tmp.mid")
        rendered.midi.write(str(tmp))
        os.replace(tmp, target)
        midi = f"audio/{name}.mid"
    info = rendered.info
    return SoundtrackCue(
        page=cue.page, scene=cue.scene, file=f"audio/{name}.ogg", start=0.0,
        seconds=round(samples.shape[1] / settings.sample_rate, 4), loop=rendered.loop, crossfade=0.0,
        engine=info.engine, caption=cue.caption, hash=clip_hash, file_hash=file_hash(ogg),
        backend=info.model or info.soundfont, lufs=loudness.lufs, true_peak_db=loudness.true_peak_db,
        mp3=mp3, midi=midi, warnings=info.warnings, details=info.details)


def _clip_of(cue: SoundtrackCue, settings: SoundtrackSettings) -> Clip:
    return Clip(cue.page, cue.file, cue.seconds, settings.sample_rate, cue.loop)


def _write_sheet(run: RunFolder, book_id: str, condition: Condition, sheet: Sequence[Cue],
                 done: Mapping[int, SoundtrackCue], settings: SoundtrackSettings, hashes: Mapping[int, str],
                 complete: bool) -> Soundtrack:
    cues = []
    previous_scene = None
    for k, cue in enumerate(sheet):
        if cue.page not in done:
            continue
        fade = settings.transition(new_scene=previous_scene not in (None, cue.scene))
        cues.append(replace(done[cue.page], start=round(k * settings.pace_seconds, 4),
                            crossfade=0.0 if k == 0 else fade))
        previous_scene = cue.scene
    soundtrack = Soundtrack(book_id, condition, tuple(cues), tuple(_clip_of(c, settings) for c in cues),
                            settings, seconds=round(len(sheet) * settings.pace_seconds, 4), complete=complete)
    warnings = tuple(dict.fromkeys(w for c in cues for w in c.warnings))
    run.write("soundtrack", soundtrack, Provenance(
        stage="soundtrack", backend=settings.engine, input_hash=hash_inputs(sorted((c.page, c.hash) for c in cues)),
        settings=_settings_json(settings), warnings=warnings))
    return soundtrack


def _settings_json(settings: SoundtrackSettings) -> dict[str, Any]:
    from m2m.jsonio import to_jsonable

    return to_jsonable(settings)


def _write_whole(run: RunFolder, soundtrack: Soundtrack) -> Soundtrack:
    settings = soundtrack.settings
    clips = [(_to_rate(read_audio(run.path / c.file), settings.sample_rate), c.loop) for c in soundtrack.cues]
    fades = [c.crossfade for c in soundtrack.cues]
    mixed = mix_pages(clips, fades, settings.pace_seconds, settings.sample_rate)
    write_audio_atomic(run.audio_dir / "soundtrack.ogg", mixed, settings.sample_rate)
    if settings.mp3:
        write_audio_atomic(run.audio_dir / "soundtrack.mp3", mixed, settings.sample_rate)
    done = replace(soundtrack, file="audio/soundtrack.ogg")
    run.write("soundtrack", done, Provenance(
        stage="soundtrack", backend=settings.engine, input_hash=hash_inputs(sorted((c.page, c.hash) for c in done.cues)),
        settings=_settings_json(settings), warnings=tuple(dict.fromkeys(w for c in done.cues for w in c.warnings))))
    return done
