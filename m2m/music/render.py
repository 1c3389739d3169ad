"""Stage 5 over a book: the clip each page should have, the clips already made, and the render loop.

Each page's clip carries a hash of what made it (its cue, the engine and its version, the render and
loudness settings, and the hash of the page it continues from), so a clip on disk is reused when
that hash is wanted again, and a clip with another hash is put aside (``m2m.kept_clips``) and can come
back. Clips are normalised to the same loudness (ITU-R BS.1770, -16 LUFS by default) with their true
peak held under the ceiling by ``m2m.loudness``, and written as ``audio/page-NNN.ogg`` (with MP3 and
MIDI copies when asked). The engine renders on its own thread while a pool of two normalises and
encodes; ``m2m.soundtrack`` (stage 6) builds the cue sheet and the whole-book file from the records.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from m2m import kept_clips
from m2m.audio import read_audio, write_audio_atomic
from m2m.cues import CaptionSheet, Cue, TransitionSheet
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
from m2m.runs import RunFolder, file_hash, hash_inputs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SoundtrackSettings:
    """How the soundtrack is made. Seconds and Hz; loudness in LUFS, peaks in dBTP.

    ``clip_seconds`` is the wanted length of each page's clip (clips loop); ``pace_seconds`` is the
    reading pace (seconds per page) of the whole-book file and of the cue sheet's start times;
    ``crossfade_seconds`` is the transition between pages of a scene, ``scene_crossfade_seconds``
    between scenes. ``mp3`` also writes MP3 copies (needs ffmpeg). ``continuation`` lets engines
    that can (MusicGen) continue each page from the previous page of its scene.

    One record for stages 5 and 6 (the pace and crossfades are stage 6's), as ``soundtrack.json``
    and the reader's settings hold it; it lives here because stage 5 is the first to read it.
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
    """One page's clip as the cue sheet lists it. ``file`` is relative to the run folder; times in seconds.

    Stage 5 writes the record (``start`` and ``crossfade`` 0); stage 6 places it: ``start`` is when the page begins in the whole-book file (at the settings' pace);
    ``crossfade`` the length of the crossfade into it, centred on ``start`` (a
    silence: the page before's fade-out). ``transition`` is the kind chosen at a scene change
    (m2m.cues.Transition; "" within a scene), ``silence`` the seconds of silence before the page;
    ``stinger`` the file of the old scene's closing cadence played first, ``stinger_seconds`` its length.
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
    transition: str = ""
    silence: float = 0.0
    stinger: str = ""  # the stinger played before the page (m2m/stingers.py), relative to the run folder
    stinger_seconds: float = 0.0

    def bar_seconds(self) -> float:
        """A bar of the clip, in seconds (``bar_of``)."""
        return bar_of(self.details, self.seconds, self.loop)


def bar_of(details: Mapping[str, Any], seconds: float, loop: bool) -> float:
    """A bar of a clip ``seconds`` long, in seconds, where its engine says it loops whole bars (the
    composer's ``details["bars"]``); 0 when it does not say (MusicGen has no bar grid to keep)."""
    bars = details.get("bars")
    if not loop or isinstance(bars, bool) or not isinstance(bars, int) or bars <= 0:
        return 0.0
    return seconds / bars


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
# one page


def stereo_at(audio: Audio, sample_rate: int) -> np.ndarray:
    samples = audio.samples.astype(np.float32)
    if samples.shape[0] == 1:
        samples = np.repeat(samples, 2, axis=0)  # mono engines (MusicGen) play centred in stereo
    return resample(samples, audio.sample_rate, sample_rate)


def render_page(cue: Cue, engine: Engine | str, options: RenderOptions, path: Path | str,
                settings: SoundtrackSettings | None = None) -> Clip:
    """Render one page and write it, loudness-normalised, atomically at ``path`` (.ogg/.wav/.mp3)."""
    engine = load_engine(engine) if isinstance(engine, str) else engine
    settings = settings or SoundtrackSettings(engine=engine.name)
    rendered = engine.render(cue, replace(options, sample_rate=settings.sample_rate))
    samples, _ = finish_clip(rendered, settings)
    write_audio_atomic(Path(path), samples, settings.sample_rate)
    return Clip(cue.page, str(path), samples.shape[1] / settings.sample_rate, settings.sample_rate, rendered.loop)


# Lossy encoding moves peaks: Vorbis at libsndfile's default quality raised the example book's clips'
# true peaks by up to 0.2 dB. The files people play must stay under the ceiling, so the limiter
# aims this much lower than the settings' true peak.
ENCODER_HEADROOM_DB = 0.5


def finish_clip(rendered: Rendered, settings: SoundtrackSettings) -> tuple[np.ndarray, Loudness]:
    samples = stereo_at(rendered.audio, settings.sample_rate)
    return normalize(samples, settings.sample_rate, settings.target_lufs,
                     settings.true_peak_db - ENCODER_HEADROOM_DB, rendered.loop)


# ---------------------------------------------------------------------------------------------
# which clip each page should have


def clip_hashes(book_id: str, captions: CaptionSheet, engine_name: str, options: SoundtrackSettings | None = None,
                render: RenderOptions | None = None, engine: Engine | None = None,
                transitions: TransitionSheet | None = None) -> dict[int, str]:
    """Page -> the hash its clip carries when made from these captions and settings now; a clip on
    disk with another hash was made from something else (other settings, an older plan, an earlier
    version of the book) and is not this run's music. ``engine`` replaces the registry's (tests)."""
    settings = replace(options or SoundtrackSettings(), engine=engine_name)
    return clip_plan(book_id, captions, engine_name, engine or load_engine(engine_name), settings, render,
                     transitions)[2]


def clip_plan(book_id: str, captions: CaptionSheet, engine_name: str, engine: Engine, settings: SoundtrackSettings,
              render: RenderOptions | None, transitions: TransitionSheet | None = None,
              ) -> tuple[list[Cue], dict[int, int | None], dict[int, str], RenderOptions]:
    """The pages in order, the page each continues from (None: none), each clip's hash, and the engine
    options with the settings' clip length and the book's seed. Within a scene a page continues from
    the page before; across a scene change only where the transition chosen there is "continue"."""
    book_seed = stable_seed(book_id, settings.seed) % (2**31)
    render = replace(render or RenderOptions(), seconds=settings.clip_seconds, seed=book_seed,
                     previous=None, progress=None, sample_rate=settings.sample_rate)
    sheet = sorted(captions.cues, key=lambda c: c.page)
    continues = engine.continues and settings.continuation
    after: dict[int, int | None] = {}
    for prev, cue in zip([None, *sheet], sheet, strict=False):
        carried = prev is not None and (prev.scene == cue.scene or _continued(transitions, cue.scene))
        after[cue.page] = prev.page if continues and carried and prev is not None else None
    # render.settings() carries the sample rate (set above from the settings)
    common = (engine_name, getattr(engine, "version", ""), render.settings(),
              settings.target_lufs, settings.true_peak_db, ENCODER_HEADROOM_DB)
    hashes: dict[int, str] = {}
    for cue in sheet:
        hashes[cue.page] = hash_inputs(cue_identity(cue), *common, hashes.get(after[cue.page] or -1, ""))
    return sheet, after, hashes, render


def cue_identity(cue: Cue) -> dict[str, Any]:
    """The cue as its clip's hash sees it: a page without a leitmotif hashes as it did before cues
    could carry one, so no clip made then renders again."""
    data = to_jsonable(cue)
    if data.get("theme") is None:
        data.pop("theme", None)
    return data


def _continued(transitions: TransitionSheet | None, scene: int) -> bool:
    chosen = transitions.into(scene) if transitions is not None else None
    return chosen is not None and chosen.kind == "continue"


def with_predecessors(pages: Collection[int], after: Mapping[int, int | None]) -> set[int]:
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


def render_order(cues: Sequence[Cue], order: Sequence[int] | None) -> list[Cue]:
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


# ---------------------------------------------------------------------------------------------
# clips made before


def intact(path: Path, expected: str) -> bool:
    return path.is_file() and bool(expected) and file_hash(path) == expected


def keep_aside(run: RunFolder, current: SoundtrackCue | None, new_hash: str) -> None:
    """Before a clip of ``new_hash`` replaces the page's ``current`` one, put that one's files aside."""
    if current is None or current.hash == new_hash or not intact(run.path / current.file, current.file_hash):
        return
    files = [run.path / f for f in (current.file, current.mp3, current.midi) if f]
    kept_clips.keep(run.audio_dir, current.hash, files, to_jsonable(current))


def take_back(run: RunFolder, clip_hash: str, current: SoundtrackCue | None) -> SoundtrackCue | None:
    """The page's clip of ``clip_hash`` from the kept ones, back in its place (the page's current clip
    put aside first), or None: none kept, or its file no longer what it was."""
    if not kept_clips.is_kept(run.audio_dir, clip_hash):  # only then is the current clip put aside
        return None
    keep_aside(run, current, clip_hash)
    entry = kept_clips.take_back(run.audio_dir, clip_hash)
    try:
        back = from_jsonable(SoundtrackCue, entry, source="kept clip") if entry is not None else None
    except ValueError:
        return None
    if back is None or back.hash != clip_hash or not intact(run.path / back.file, back.file_hash):
        return None  # the page renders anew over whatever came back
    return back


def reused_clips(run: RunFolder, sheet: Sequence[Cue], hashes: Mapping[int, str],
                 existing: Mapping[int, SoundtrackCue], force: Collection[int] = ()) -> dict[int, SoundtrackCue]:
    """Page -> its record, for the pages of ``sheet`` (not in ``force``) whose clip of ``hashes`` is on
    disk: the page's ``existing`` clip, or one kept aside, moved back. Caption and scene are the sheet's
    (an edit that changes neither the plan nor the music keeps the clip)."""
    done: dict[int, SoundtrackCue] = {}
    for cue in sheet:
        old = existing.get(cue.page)
        if old is not None and cue.page not in force and old.hash == hashes[cue.page] \
                and intact(run.path / old.file, old.file_hash):
            done[cue.page] = replace(old, caption=cue.caption, scene=cue.scene)
        elif cue.page not in force:
            back = take_back(run, hashes[cue.page], old)
            if back is not None:
                done[cue.page] = replace(back, caption=cue.caption, scene=cue.scene)
    return done


def continued_audio(run: RunFolder, pending: Sequence[Cue], after: Mapping[int, int | None],
                    done: Mapping[int, SoundtrackCue]) -> dict[int, Audio]:
    """Page -> its clip read back, for the clips already made that ``pending`` pages continue from."""
    previous = {}
    for cue in pending:
        before = after[cue.page]
        if before is not None and before in done:
            previous[before] = read_audio(run.path / done[before].file)
    return previous


# ---------------------------------------------------------------------------------------------
# rendering and writing


def write_clip(run: RunFolder, cue: Cue, rendered: Rendered, settings: SoundtrackSettings, clip_hash: str,
               on_samples: Callable[[int, np.ndarray, bool, float], None] | None = None) -> SoundtrackCue:
    """Normalise ``rendered`` and write the page's files; its record, ``start`` and ``crossfade`` left
    for the cue sheet. ``on_samples(page, [2, samples], loop, bar seconds)`` gets the normalised clip
    first (the whole-book mix), before it is encoded."""
    samples, loudness = finish_clip(rendered, settings)
    if on_samples is not None:
        on_samples(cue.page, samples, rendered.loop,
                   bar_of(rendered.info.details, samples.shape[1] / settings.sample_rate, rendered.loop))
    name = f"page-{cue.page:03d}"
    ogg = run.audio_dir / f"{name}.ogg"
    write_audio_atomic(ogg, samples, settings.sample_rate)
    mp3 = midi = None
    if settings.mp3:
        write_audio_atomic(run.audio_dir / f"{name}.mp3", samples, settings.sample_rate)
        mp3 = f"audio/{name}.mp3"
    if settings.write_midi and rendered.midi is not None:
        midi = write_midi(run, name, rendered.midi)
    info = rendered.info
    return SoundtrackCue(
        page=cue.page, scene=cue.scene, file=f"audio/{name}.ogg", start=0.0,
        seconds=round(samples.shape[1] / settings.sample_rate, 4), loop=rendered.loop, crossfade=0.0,
        engine=info.engine, caption=cue.caption, hash=clip_hash, file_hash=file_hash(ogg),
        backend=info.model or info.soundfont, lufs=loudness.lufs, true_peak_db=loudness.true_peak_db,
        mp3=mp3, midi=midi, warnings=info.warnings, details=info.details)


def write_midi(run: RunFolder, name: str, midi: Any) -> str:
    """Write a score (``pretty_midi.PrettyMIDI``) atomically as ``audio/<name>.mid``; its path in the run."""
    target = run.audio_dir / f"{name}.mid"
    tmp = target.with_name(f".{name}.tmp.mid")
    midi.write(str(tmp))
    os.replace(tmp, target)
    return f"audio/{name}.mid"


def clip_of(cue: SoundtrackCue, settings: SoundtrackSettings) -> Clip:
    return Clip(cue.page, cue.file, cue.seconds, settings.sample_rate, cue.loop)


# Page clips are normalised and encoded on two threads (libvorbis, scipy and hashlib run outside
# the GIL) while the engine renders the next pages; the cue sheet is written only by the caller.
_WRITERS = 2


def render_and_write(engine: Engine, pending: Sequence[Cue], render: RenderOptions,
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
