"""Stage 6: page clips → a loudness-matched, crossfaded soundtrack and its cue sheet.

Each clip is normalised to the same loudness (ITU-R BS.1770, -16 LUFS by default) with its true
peak (4x oversampled) held under -1 dBTP by a gentle look-ahead limiter (``m2m.loudness``), then written
atomically as ``audio/page-NNN.ogg``. ``soundtrack.json`` is the cue sheet a web reader loads: per
page its file, start time at the chosen reading pace, length, loop flag, crossfade, engine, caption
and scene. ``audio/soundtrack.ogg`` is the whole book at that pace, with equal-power crossfades
between pages and longer ones at scene boundaries. Pages rendered before from the same cue, engine
and settings are reused (each clip records the hash of what made it).

Work overlaps so the pages land early and the book finishes sooner: the engine renders on its own
thread(s), each page is normalised and encoded on a pool of two, and the whole-book file is mixed
from the normalised clips in memory and encoded on one more thread as its pages arrive. Only the
caller's thread writes the cue sheet and calls ``progress``/``on_clip``.
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from m2m import kept_clips
from m2m.cues import CaptionSheet, Cue
from m2m.jsonio import from_jsonable, to_jsonable
from m2m.loudness import Loudness, normalize
from m2m.music import DEFAULT_ENGINE, load_engine
from m2m.music.base import (
    DEFAULT_SAMPLE_RATE,
    Audio,
    Clip,
    Engine,
    Rendered,
    RenderOptions,
    check_sample_rate,
    resample,
    stable_seed,
)
from m2m.runs import Condition, Provenance, RunFolder, StageRecord, file_hash, hash_inputs

log = logging.getLogger(__name__)
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
    sample_rate: int = DEFAULT_SAMPLE_RATE
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
        check_sample_rate(self.sample_rate)


@dataclass(frozen=True)
class SoundtrackCue:
    """One page in the cue sheet. ``file`` is relative to the run folder; times in seconds.

    ``start`` is when the page begins in the whole-book file (at the settings' pace);
    ``crossfade`` the length of the equal-power transition into it, centred on ``start``.
    ``lufs`` and ``true_peak_db`` are measured on the clip before it is encoded.
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
    file_hash: str = ""  # of ``file``: a whole-book file made from the same pages is kept, not redone


# ---------------------------------------------------------------------------------------------
# getting ready


def warm_up(engine: Engine | None = None, render: RenderOptions | None = None) -> None:
    """Let ``engine`` load what its first renders need (its ``prepare``, when it has one: the composer
    loads its SoundFont) on a background thread; call it early, e.g. before planning, when a core is idle."""
    prepare = getattr(engine, "prepare", None)
    if prepare is not None:
        threading.Thread(target=_prepare, args=(prepare, render or RenderOptions()), name="m2m-prepare",
                         daemon=True).start()


def _prepare(prepare: Callable[[RenderOptions], None], render: RenderOptions) -> None:
    try:
        prepare(render)
    except Exception as e:  # noqa: BLE001 - the render meets the same problem and reports it there
        log.debug("engine warm-up: %s", e)


# ---------------------------------------------------------------------------------------------
# files


def _to_rate(audio: Audio, sample_rate: int) -> np.ndarray:
    samples = audio.samples.astype(np.float32)
    if samples.shape[0] == 1:
        samples = np.repeat(samples, 2, axis=0)  # mono engines (MusicGen) play centred in stereo
    return resample(samples, audio.sample_rate, sample_rate)


# (format, subtype) that libsndfile writes for each suffix; MP3 goes through ffmpeg instead
_LIBSNDFILE_KINDS = {"ogg": ("OGG", "VORBIS"), "wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16")}


def write_audio_atomic(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write ``[channels, samples]`` audio as OGG Vorbis, WAV, FLAC or MP3 (by suffix) through a
    temporary file and a rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower().lstrip(".")
    tmp = path.with_name(f".{path.stem}.tmp.{suffix}")
    data = np.clip(samples, -1.0, 1.0).T
    try:
        if suffix in _LIBSNDFILE_KINDS:
            kind = _LIBSNDFILE_KINDS[suffix]
            with soundfile.SoundFile(tmp, "w", sample_rate, data.shape[1], format=kind[0], subtype=kind[1]) as f:
                # block by block: libsndfile 1.2's Vorbis encoder crashes on one very long write
                for i in range(0, data.shape[0], 65536):
                    f.write(data[i:i + 65536])
        elif suffix == "mp3":
            _write_mp3(tmp, data, sample_rate)
        else:
            raise ValueError(f"path: {path.name!r} has an unsupported suffix (use .ogg, .wav, .flac or .mp3)")
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
    pieces: list[np.ndarray] = []
    mixer = PageMixer(crossfades, pace_seconds, sample_rate, pieces.append, end_fade_seconds)
    for samples, loop in clips:
        mixer.add(samples, loop)
    return np.concatenate(pieces, axis=1) if pieces else np.zeros((2, 0), dtype=np.float32)


class PageMixer:
    """``mix_pages`` as a stream: pages are added in order, and each stretch of the book is handed
    to ``sink`` (``[2, samples]`` float32, in order) as soon as no later page can overlap it, so the
    whole book is never held in memory and can be encoded while later pages still render."""

    def __init__(self, crossfades: Sequence[float], pace_seconds: float, sample_rate: int,
                 sink: Callable[[np.ndarray], None], end_fade_seconds: float = 3.0) -> None:
        n = len(crossfades)
        self.sample_rate, self.sink, self.next = sample_rate, sink, 0
        self.pace = int(round(pace_seconds * sample_rate))
        self.end_fade = int(round(end_fade_seconds * sample_rate))
        self.total = self.pace * n + self.end_fade
        self.half = [int(round(c * sample_rate / 2)) for c in crossfades]  # half of each transition
        if n:
            self.half[0] = 0
        begins = [k * self.pace - self.half[k] for k in range(n)]
        # everything before the earliest start of the pages still to come is final
        self.final = [min(begins[k + 1:], default=self.total) for k in range(n)]
        self.flushed = 0
        self.buffer = np.zeros((2, 0), dtype=np.float32)  # the book from ``flushed`` on

    def add(self, samples: np.ndarray, loop: bool) -> None:
        k, n = self.next, len(self.half)
        if k >= n:
            raise ValueError(f"clips: more than the {n} pages the crossfades were given for")
        begin = k * self.pace - self.half[k]
        fade_in = 2 * self.half[k] if k else int(0.01 * self.sample_rate)
        if k == n - 1:
            end, fade_out = self.total, self.end_fade
        else:
            end = (k + 1) * self.pace + self.half[k + 1]
            fade_out = 2 * self.half[k + 1]
        segment = _looped(samples, end - begin, loop).copy()
        if fade_in > 0:
            segment[:, :fade_in] *= equal_power(fade_in)[0]
        if fade_out > 0:
            segment[:, -fade_out:] *= equal_power(fade_out)[1]
        if end - self.flushed > self.buffer.shape[1]:
            grown = np.zeros((2, end - self.flushed), dtype=np.float32)
            grown[:, :self.buffer.shape[1]] = self.buffer
            self.buffer = grown
        self.buffer[:, begin - self.flushed:end - self.flushed] += segment
        self.next += 1
        cut = self.final[k] - self.flushed
        if cut > 0:
            self.sink(self.buffer[:, :cut])
            self.buffer = self.buffer[:, cut:].copy()
            self.flushed += cut


# ---------------------------------------------------------------------------------------------
# building


def render_page(cue: Cue, engine: Engine | str, options: RenderOptions, path: Path | str,
                settings: SoundtrackSettings | None = None) -> Clip:
    """Render one page and write it, loudness-normalised, atomically at ``path`` (.ogg/.wav/.mp3)."""
    engine = load_engine(engine) if isinstance(engine, str) else engine
    settings = settings or SoundtrackSettings(engine=engine.name)
    rendered = engine.render(cue, replace(options, sample_rate=settings.sample_rate))
    samples, _ = _finish(rendered, settings)
    write_audio_atomic(Path(path), samples, settings.sample_rate)
    return Clip(cue.page, str(path), samples.shape[1] / settings.sample_rate, settings.sample_rate, rendered.loop)


# Lossy encoding moves peaks: Vorbis at libsndfile's default quality raised the example book's clips'
# true peaks by up to 0.2 dB. The files people play must stay under the ceiling, so the limiter
# aims this much lower than the settings' true peak.
ENCODER_HEADROOM_DB = 0.5


def _finish(rendered: Rendered, settings: SoundtrackSettings) -> tuple[np.ndarray, Loudness]:
    samples = _to_rate(rendered.audio, settings.sample_rate)
    return normalize(samples, settings.sample_rate, settings.target_lufs,
                     settings.true_peak_db - ENCODER_HEADROOM_DB, rendered.loop)


def clip_hashes(book_id: str, captions: CaptionSheet, engine_name: str, options: SoundtrackSettings | None = None,
                render: RenderOptions | None = None) -> dict[int, str]:
    """Page -> the hash its clip carries when made from these captions and settings now; a clip on
    disk with another hash was made from something else (other settings, an older plan, an earlier
    version of the book) and is not this run's music."""
    settings = replace(options or SoundtrackSettings(), engine=engine_name)
    return _clip_plan(book_id, captions, engine_name, load_engine(engine_name), settings, render)[2]


def _clip_plan(book_id: str, captions: CaptionSheet, engine_name: str, engine: Engine, settings: SoundtrackSettings,
               render: RenderOptions | None) -> tuple[list[Cue], dict[int, int | None], dict[int, str], RenderOptions]:
    """The pages in order, the page each continues from (None: none), each clip's hash, and the engine
    options with the settings' clip length and the book's seed."""
    book_seed = stable_seed(book_id, settings.seed) % (2**31)
    render = replace(render or RenderOptions(), seconds=settings.clip_seconds, seed=book_seed,
                     previous=None, progress=None, sample_rate=settings.sample_rate)
    sheet = sorted(captions.cues, key=lambda c: c.page)
    continues = engine.continues and settings.continuation
    after: dict[int, int | None] = {}
    for prev, cue in zip([None, *sheet], sheet, strict=False):
        after[cue.page] = prev.page if continues and prev is not None and prev.scene == cue.scene else None
    # render.settings() carries the sample rate (set above from the settings)
    common = (engine_name, getattr(engine, "version", ""), render.settings(),
              settings.target_lufs, settings.true_peak_db, ENCODER_HEADROOM_DB)
    hashes: dict[int, str] = {}
    for cue in sheet:
        hashes[cue.page] = hash_inputs(cue, *common, hashes.get(after[cue.page] or -1, ""))
    return sheet, after, hashes, render


def _with_predecessors(pages: Collection[int], after: Mapping[int, int | None]) -> set[int]:
    """``pages`` and every page they continue from (an engine that continues needs the audio before)."""
    unknown = sorted(set(pages) - set(after))
    if unknown:
        raise ValueError(f"only: page {unknown[0]} has no caption")
    wanted: set[int] = set()
    for page in pages:
        current: int | None = page
        while current is not None and current not in wanted:
            wanted.add(current)
            current = after[current]
    return wanted


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
                     only: Collection[int] | None = None,
                     on_clip: Callable[[Clip], None] | None = None, engine: Engine | None = None) -> Soundtrack:
    """Render every page's clip (reusing clips made from the same inputs) and write the soundtrack.

    ``order`` lists pages to render first (the page on screen and the next two); the rest follow in
    page order. ``force`` re-renders those pages even if unchanged. ``on_clip`` is called as each
    page's file lands. ``render`` carries engine options (device, SoundFont, library folder, ...);
    its ``seconds`` and ``seed`` are taken from the settings. ``engine`` replaces the registry's
    (tests). ``progress(stage, done, total)`` reports "music" per page and "soundtrack" at the end.
    ``only`` renders just those pages (and the pages they continue from); the cue sheet then lists
    what is done and the whole-book file waits for a render that completes the book.
    """
    if not captions.cues:
        raise ValueError("captions: no cues; nothing to render")
    settings = replace(options or SoundtrackSettings(), engine=engine_name)
    engine = engine or load_engine(engine_name)
    warm_up(engine, render)  # ready by the first clip
    progress = progress or (lambda stage, done, total: None)
    sheet, after, hashes, render = _clip_plan(book_id, captions, engine_name, engine, settings, render)

    record = _existing(run)
    existing = _existing_cues(record)
    done: dict[int, SoundtrackCue] = {}
    for cue in sheet:
        old = existing.get(cue.page)
        if old is not None and cue.page not in force and old.hash == hashes[cue.page] \
                and _intact(run.path / old.file, old.file_hash):
            done[cue.page] = replace(old, caption=cue.caption, scene=cue.scene)
        elif cue.page not in force:
            back = _take_back(run, hashes[cue.page], old)
            if back is not None:
                done[cue.page] = replace(back, caption=cue.caption, scene=cue.scene)
    wanted = None if only is None else _with_predecessors(only, after)
    pending = [c for c in _order(sheet, order) if c.page not in done and (wanted is None or c.page in wanted)]
    complete = len(done) + len(pending) == len(sheet)
    total = len(sheet)
    progress("music", len(done), total)
    previous = {}
    for cue in pending:
        before = after[cue.page]
        if before is not None and before in done:
            previous[before] = read_audio(run.path / done[before].file)

    # The whole-book file is mixed and encoded on its own thread while pages still render; pages
    # kept from an earlier run are read back from their files when the mix reaches them. When every
    # page is kept and the file was made from them with these settings, it is kept too.
    make_whole = settings.whole_file and complete
    kept = _kept_whole_file(record, run, hashes, settings) if make_whole and not pending else None
    whole = _WholeFile(run, sheet, settings, {p: (run.path / c.file, c.loop) for p, c in done.items()}) \
        if make_whole and kept is None else None
    try:
        if pending:
            def write(rendered: Rendered) -> SoundtrackCue:
                cue = next(c for c in sheet if c.page == rendered.page)
                _keep(run, existing.get(cue.page), hashes[cue.page])
                return _write_clip(run, cue, rendered, settings, hashes[cue.page], whole)

            def written(clip: SoundtrackCue) -> None:
                done[clip.page] = clip
                _write_sheet(run, book_id, condition, sheet, done, settings, hashes, complete=False)
                progress("music", len(done), total)
                if on_clip is not None:
                    on_clip(_clip_of(clip, settings))

            _render_and_write(engine, pending, render, {c.page: after[c.page] for c in pending}, previous,
                              write, written)
        soundtrack = _write_sheet(run, book_id, condition, sheet, done, settings, hashes, complete=complete,
                                  whole=kept)
        if whole is not None:
            progress("soundtrack", 0, 1)
            soundtrack = whole.finish(soundtrack)
            progress("soundtrack", 1, 1)
    finally:
        if whole is not None:
            whole.close()
    return soundtrack


# Page clips are normalised and encoded on two threads (libvorbis, scipy and hashlib run outside
# the GIL) while the engine renders the next pages; the cue sheet is written only by the caller.
_WRITERS = 2


def _render_and_write(engine: Engine, pending: Sequence[Cue], render: RenderOptions,
                      after: Mapping[int, int | None], previous: Mapping[int, Audio],
                      write: Callable[[Rendered], SoundtrackCue], written: Callable[[SoundtrackCue], None]) -> None:
    """Run ``engine.render_many`` on a thread, ``write`` each rendered page on a small pool, and call
    ``written`` on this thread as each page's files land. On a failure, pages already rendered are
    still written and recorded before the error is raised (no work is lost)."""
    events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
    stop = threading.Event()

    def landed(rendered: Rendered) -> None:
        if stop.is_set():
            raise _Stopped
        events.put(("rendered", rendered))

    def run() -> None:
        try:
            engine.render_many(pending, render, after=after, previous=previous, on_rendered=landed)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread, raised there
            events.put(("failed", e))
        else:
            events.put(("finished", None))

    failure: BaseException | None = None
    rendering, outstanding = True, 0

    def take(future: Future) -> None:
        nonlocal failure
        error = future.exception()
        if error is None:
            written(future.result())
        else:
            failure = failure or error
            stop.set()

    renderer = threading.Thread(target=run, name="m2m-render", daemon=True)
    with ThreadPoolExecutor(max_workers=_WRITERS, thread_name_prefix="m2m-write") as pool:
        renderer.start()
        try:
            while rendering or outstanding:
                kind, item = events.get()
                if kind == "rendered" and failure is None:
                    outstanding += 1
                    pool.submit(write, item).add_done_callback(lambda f: events.put(("written", f)))
                elif kind == "written":
                    outstanding -= 1
                    take(item)
                elif kind in ("finished", "failed"):
                    rendering = False
                    if kind == "failed" and not isinstance(item, _Stopped):
                        failure = failure or item
        except BaseException as e:  # an interrupt or a failing callback: stop, keep what is written
            stop.set()
            failure = failure or e
            while outstanding:
                kind, item = events.get()
                if kind == "written":
                    outstanding -= 1
                    if item.exception() is None:
                        written(item.result())
    if failure is not None:
        raise failure
    renderer.join()


class _Stopped(Exception):
    """Raised inside the engine's callback to stop rendering after a failure elsewhere."""


class _WholeFile:
    """The whole book at the reading pace, mixed (``PageMixer``) and encoded as OGG on one thread
    while pages arrive in any order; written to a temporary file and renamed when complete."""

    def __init__(self, run: RunFolder, sheet: Sequence[Cue], settings: SoundtrackSettings,
                 on_disk: Mapping[int, tuple[Path, bool]]) -> None:
        self.run, self.settings = run, settings
        self.pages = [c.page for c in sheet]
        fades = [0.0 if k == 0 else settings.transition(new_scene=sheet[k - 1].scene != c.scene)
                 for k, c in enumerate(sheet)]
        self.on_disk = dict(on_disk)
        self.arrived: dict[int, tuple[np.ndarray, bool]] = {}
        self.lock = threading.Lock()
        self.path = run.audio_dir / "soundtrack.ogg"
        self.tmp = self.path.with_name(".soundtrack.tmp.ogg")
        self.mp3: list[np.ndarray] | None = [] if settings.mp3 else None
        self.file: soundfile.SoundFile | None = None
        self.mixer = PageMixer(fades, settings.pace_seconds, settings.sample_rate, self._sink)
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="m2m-whole")
        self.work: list[Future] = [self.worker.submit(self._advance)]  # pages kept from before

    def add(self, page: int, samples: np.ndarray, loop: bool) -> None:
        """A page's normalised ``[2, samples]`` clip at the settings' rate (any thread, any order)."""
        with self.lock:
            self.arrived[page] = (samples, loop)
            self.work.append(self.worker.submit(self._advance))

    def _advance(self) -> None:
        while self.mixer.next < len(self.pages):
            page = self.pages[self.mixer.next]
            with self.lock:
                item = self.arrived.pop(page, None)
            if item is None and page in self.on_disk:
                path, loop = self.on_disk.pop(page)
                item = (_to_rate(read_audio(path), self.settings.sample_rate), loop)
            if item is None:
                return
            self.mixer.add(*item)

    def _sink(self, samples: np.ndarray) -> None:
        if self.file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = soundfile.SoundFile(self.tmp, "w", self.settings.sample_rate, 2, format="OGG",
                                            subtype="VORBIS")
        data = np.clip(samples, -1.0, 1.0).T
        for i in range(0, data.shape[0], 65536):  # libsndfile 1.2's Vorbis encoder: small writes
            self.file.write(data[i:i + 65536])
        if self.mp3 is not None:
            self.mp3.append(samples.copy())

    def finish(self, soundtrack: Soundtrack) -> Soundtrack:
        """Wait for the mix, put the files in place and record the whole file in the cue sheet."""
        with self.lock:
            work = list(self.work)
        for future in work:
            future.result()
        self.worker.submit(self._advance).result()
        if self.mixer.next < len(self.pages) or self.file is None:
            raise RuntimeError(f"soundtrack: page {self.pages[self.mixer.next]} never reached the whole-book mix")
        self.file.close()
        self.file = None
        os.replace(self.tmp, self.path)
        if self.mp3 is not None:
            write_audio_atomic(self.path.with_suffix(".mp3"), np.concatenate(self.mp3, axis=1),
                               self.settings.sample_rate)
        settings = self.settings
        done = replace(soundtrack, file="audio/soundtrack.ogg", file_hash=file_hash(self.path))
        self.run.write("soundtrack", done, Provenance(
            stage="soundtrack", backend=settings.engine,
            input_hash=_whole_file_key({c.page: c.hash for c in done.cues}),
            settings=_settings_json(settings),
            warnings=tuple(dict.fromkeys(w for c in done.cues for w in c.warnings))))
        return done

    def close(self) -> None:
        """Stop the worker; an unfinished file is removed (never half a file on disk)."""
        self.worker.shutdown(wait=True, cancel_futures=True)
        if self.file is not None:
            self.file.close()
            self.file = None
        self.tmp.unlink(missing_ok=True)


def _existing(run: RunFolder) -> StageRecord[Soundtrack] | None:
    try:
        return run.read("soundtrack", Soundtrack)
    except ValueError:
        return None  # an unreadable cue sheet only costs re-rendering; the new one replaces it


def _existing_cues(record: StageRecord[Soundtrack] | None) -> dict[int, SoundtrackCue]:
    return {} if record is None else {c.page: c for c in record.data.cues}


def _whole_file_key(hashes: Mapping[int, str]) -> str:
    return hash_inputs(sorted(hashes.items()))


def _kept_whole_file(record: StageRecord[Soundtrack] | None, run: RunFolder, hashes: Mapping[int, str],
                     settings: SoundtrackSettings) -> Soundtrack | None:
    """The previous whole-book file when it was made from these very clips with these settings."""
    if record is None or not record.data.file or record.edited:
        return None
    same = record.provenance.input_hash == _whole_file_key(hashes) \
        and record.provenance.settings == _settings_json(settings)
    return record.data if same and _intact(run.path / record.data.file, record.data.file_hash) else None


def _intact(path: Path, expected: str) -> bool:
    return path.is_file() and bool(expected) and file_hash(path) == expected


def _keep(run: RunFolder, current: SoundtrackCue | None, new_hash: str) -> None:
    """Before a clip of ``new_hash`` replaces the page's ``current`` one, put that one's files aside."""
    if current is None or current.hash == new_hash or not _intact(run.path / current.file, current.file_hash):
        return
    files = [run.path / f for f in (current.file, current.mp3, current.midi) if f]
    kept_clips.keep(run.audio_dir, current.hash, files, to_jsonable(current))


def _take_back(run: RunFolder, clip_hash: str, current: SoundtrackCue | None) -> SoundtrackCue | None:
    """The page's clip of ``clip_hash`` from the kept ones, back in its place (the page's current clip
    put aside first), or None: none kept, or its file no longer what it was."""
    if not kept_clips.is_kept(run.audio_dir, clip_hash):  # only then is the current clip put aside
        return None
    _keep(run, current, clip_hash)
    entry = kept_clips.take_back(run.audio_dir, clip_hash)
    try:
        back = from_jsonable(SoundtrackCue, entry, source="kept clip") if entry is not None else None
    except ValueError:
        return None
    if back is None or back.hash != clip_hash or not _intact(run.path / back.file, back.file_hash):
        return None  # the page renders anew over whatever came back
    return back


def _write_clip(run: RunFolder, cue: Cue, rendered: Rendered, settings: SoundtrackSettings,
                clip_hash: str, whole: _WholeFile | None = None) -> SoundtrackCue:
    samples, loudness = _finish(rendered, settings)
    if whole is not None:
        whole.add(cue.page, samples, rendered.loop)
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
                 complete: bool, whole: Soundtrack | None = None) -> Soundtrack:
    """Write ``soundtrack.json`` for the pages done so far; ``whole``: a whole-book file kept as it is."""
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
                            settings, seconds=round(len(sheet) * settings.pace_seconds, 4), complete=complete,
                            file=whole.file if whole else "", file_hash=whole.file_hash if whole else "")
    warnings = tuple(dict.fromkeys(w for c in cues for w in c.warnings))
    run.write("soundtrack", soundtrack, Provenance(
        stage="soundtrack", backend=settings.engine, input_hash=_whole_file_key({c.page: c.hash for c in cues}),
        settings=_settings_json(settings), warnings=warnings))
    return soundtrack


def _settings_json(settings: SoundtrackSettings) -> dict[str, Any]:
    return to_jsonable(settings)
