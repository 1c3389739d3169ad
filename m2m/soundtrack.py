"""Stage 6: page clips → a crossfaded soundtrack and its cue sheet.

``build_soundtrack`` runs stage 5 over the book (``m2m.music.render``: each page's clip reused when
it was made before from the same inputs, else rendered, loudness-matched and written as
``audio/page-NNN.ogg``) and writes ``soundtrack.json`` as the pages land: the cue sheet a web reader
loads, per page its file, start time at the chosen reading pace, length, loop flag, crossfade,
engine, caption and scene. ``audio/soundtrack.ogg`` is the whole book at that pace, with
crossfades between pages (equal power, scaled moment by moment so the sum is as loud as two
unrelated pages' would be, however alike or opposed the two pages' music is:
``steady_crossfade_gains``) and, at scene boundaries, the transition the director chose (a crossfade, a silence, a cut, or a stinger: the old scene's closing cadence, ``m2m.stingers``,
made after the old page's clip and written as ``audio/stinger-NNN.ogg``).

Work overlaps so the pages land early and the book finishes sooner: the engine renders on its own
thread(s), each page is normalised and encoded on a pool of two, and the whole-book file is mixed
from the normalised clips in memory and encoded on one more thread as its pages arrive. Only the
caller's thread writes the cue sheet and calls ``progress``/``on_clip``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from m2m.audio import read_audio, write_audio_atomic, write_blocks
from m2m.cues import CUT_SECONDS, CaptionSheet, Cue, Transition, TransitionSheet
from m2m.jsonio import to_jsonable
from m2m.music import load_engine
from m2m.music.base import Clip, Engine, Rendered, RenderOptions
from m2m.music.render import (
    SoundtrackCue,
    SoundtrackSettings,
    clip_of,
    clip_plan,
    continued_audio,
    intact,
    keep_aside,
    render_and_write,
    render_order,
    reused_clips,
    stereo_at,
    warm_up,
    with_predecessors,
    write_clip,
)
from m2m.runs import Condition, Provenance, RunFolder, StageRecord, file_hash, hash_inputs
from m2m.stingers import StingerClip, StingerJob, render_stinger, reused_stingers, stinger_jobs, write_stinger

Progress = Callable[[str, int, int], None]


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
    stingers: tuple[StingerClip, ...] = ()  # the stinger clips played at scene changes (m2m/stingers.py)

    def played_hash(self) -> str:
        """What a listener hears from this cue sheet, as a hash: every page's clip (its content
        hash), loop, bars, start and how it is entered, the stingers' clips, and the pace, crossfades
        and levels; not what only files or labels change (a whole-book file made or not, an MP3 copy,
        a caption's words). Figures measured from one (``m2m evaluate``) are stale once it changes."""
        s = self.settings
        return hash_inputs([(c.page, c.scene, c.file_hash or c.hash, c.loop, c.bar_seconds(), c.start, c.crossfade,
                             c.transition, c.silence, c.stinger, c.stinger_seconds) for c in self.cues],
                           [(st.scene, st.file_hash) for st in self.stingers],
                           (s.pace_seconds, s.crossfade_seconds, s.scene_crossfade_seconds, s.target_lufs,
                            s.true_peak_db, s.sample_rate))


# ---------------------------------------------------------------------------------------------
# the whole book


def equal_power(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(fade-in, fade-out) gains over ``n`` samples whose squares sum to one."""
    t = (np.arange(n, dtype=np.float64) + 0.5) / max(n, 1)
    return np.sin(0.5 * np.pi * t).astype(np.float32), np.cos(0.5 * np.pi * t).astype(np.float32)


# How long a stretch of a crossfade its powers are measured over: alike pages are alike by the
# moment (two downbeats on one chord add up, the bar after on another chord does not), so one r for
# a whole 1.5 s crossfade swelled its first half and sank its second by up to 0.3 LU
CORRELATION_SECONDS = 0.25
# The most the steady law turns a crossfade's moment up or down: where the two nearly cancel (the
# same music in opposite phase) no gain could bring back what is not there
STEADY_MAX_DB = 6.0


def local_powers(a: np.ndarray, b: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample, (power of ``a``, power of ``b``, their cross power) over the ``CORRELATION_SECONDS``
    around it, of two equally long ``[channels, samples]`` stretches: mean squares and mean product
    of consecutive stretches of about that length, interpolated between their middles."""
    n = a.shape[1]
    count = max(1, int(round(n / (CORRELATION_SECONDS * sample_rate))))
    edges = np.linspace(0, n, count + 1).astype(int)
    x, y = a.astype(np.float64), b.astype(np.float64)
    measured = np.array([(np.mean(x[:, lo:hi] ** 2), np.mean(y[:, lo:hi] ** 2), np.mean(x[:, lo:hi] * y[:, lo:hi]))
                         for lo, hi in zip(edges[:-1], edges[1:], strict=True)])
    middles, at = (edges[:-1] + edges[1:]) / 2, np.arange(n)
    p_a, p_b, cross = (np.interp(at, middles, column) for column in measured.T)
    return p_a, p_b, cross


def steady_crossfade_gains(old: np.ndarray, new: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(fade-in of ``new``, fade-out of ``old``) over their overlap (two equally long ``[channels,
    samples]`` stretches) that make the sum as loud, moment by moment, as the equal-power fade of two
    unrelated signals would be: cos^2 P_old + sin^2 P_new, the straight path from one level to the
    other. Equal power (sin, cos) scaled by sqrt of that over the sum's power with the two's cross
    power 2 sin cos C (measured by the quarter second, ``local_powers``), within ``STEADY_MAX_DB``.

    Where the two are equally loud, of correlation r, this is the equal-power law scaled by
    1 / sqrt(1 + 2 r sin cos): equal power at r = 0, equal gain (a + b = 1) at r = 1.

    Why: the law it replaced was that one, with one r per quarter second clipped to [0, 1] (the
    reader's crossfade.js had one r per crossfade; it now follows this law, steadyScale): it assumed the two as loud as each
    other at every moment and never working against each other. The pages of a scene, on one bar
    grid, are neither: one page's downbeat against the other's rest, the same chord voiced in
    opposite phase. On the example book's whole-book file that law moved the within-scene joins'
    loudness by 0.087 LU on average, this one by 0.065; at a 5 s crossfade by 0.128 against 0.072."""
    n = old.shape[1]
    fade_in, fade_out = equal_power(n)
    p_old, p_new, cross = local_powers(old, new, sample_rate)
    i, o = fade_in.astype(np.float64), fade_out.astype(np.float64)
    unrelated = o * o * p_old + i * i * p_new
    summed = unrelated + 2.0 * i * o * cross
    limit = 10.0 ** (STEADY_MAX_DB / 20.0)
    # the sum is never below zero (the cross power is at most the powers' geometric mean); silence of
    # both keeps its gains
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.clip(np.where(summed > 0, np.sqrt(unrelated / summed), 1.0), 1.0 / limit, limit)
    return (fade_in * scale).astype(np.float32), (fade_out * scale).astype(np.float32)


def _looped(samples: np.ndarray, length: int, loop: bool) -> np.ndarray:
    if samples.shape[1] >= length:
        return samples[:, :length]
    if not loop:
        return np.pad(samples, ((0, 0), (0, length - samples.shape[1])))
    reps = -(-length // samples.shape[1])
    return np.tile(samples, (1, reps))[:, :length]


# A silence's edges: the music before it fades out over this long (at most a quarter page), and the
# new scene enters over a short fade, so the silence reads as a held breath, not a dropout. After a
# stinger the new scene enters over the same short fade.
SILENCE_FADE_OUT_SECONDS = 1.0
SILENCE_ENTRY_SECONDS = 0.3
# Under a stinger the old page's music fades out over this long (at most a quarter page), centred on
# the turn where the stinger starts, so the cadence takes over from it rather than sounding on top.
STINGER_FADE_OUT_SECONDS = 1.0


@dataclass(frozen=True)
class Join:
    """How a page's music enters, in seconds from the page's start at the reading pace: the page
    before sounds until ``out_end``, fading out over ``fade_out``; this page sounds from ``in_begin``,
    fading in over ``fade_in``. A crossfade of c s is centred on the start: (c/2, c, -c/2, c).
    ``stinger``: the seconds of the old scene's closing cadence, played from the page's start (the
    page's own music then begins when it ends), 0 for none."""

    out_end: float
    fade_out: float
    in_begin: float
    fade_in: float
    stinger: float = 0.0

    @classmethod
    def crossfade(cls, seconds: float) -> Join:
        return cls(seconds / 2, seconds, -seconds / 2, seconds)

    @classmethod
    def stinger_of(cls, seconds: float, fade_out: float) -> Join:
        """A stinger of ``seconds`` at the page's start, the old music fading out over ``fade_out``
        centred on it, the new page entering when the stinger ends."""
        return cls(fade_out / 2, fade_out, seconds, SILENCE_ENTRY_SECONDS, seconds)

    @property
    def silence(self) -> float:
        return max(0.0, self.in_begin - max(self.out_end, self.stinger))


def cue_join(crossfade: float, silence: float, stinger: float = 0.0) -> Join:
    """The join a cue sheet entry describes (its ``crossfade``, ``silence`` and ``stinger_seconds``),
    as the mix made it."""
    if stinger > 0:
        return Join.stinger_of(stinger, crossfade)
    if silence > 0:
        return Join(0.0, crossfade, silence, SILENCE_ENTRY_SECONDS)
    return Join.crossfade(crossfade)


def join_into(transition: Transition | None, default_seconds: float, pace_seconds: float) -> Join:
    """The join a scene change's transition asks for (None: a crossfade of ``default_seconds``),
    never longer than the page allows."""
    if transition is None or transition.kind in ("continue", "crossfade"):
        return Join.crossfade(min(default_seconds if transition is None else transition.seconds, pace_seconds))
    if transition.kind == "cut":
        return Join.crossfade(CUT_SECONDS)
    if transition.kind == "stinger":  # the stinger's clip is this long (m2m.stingers.stinger_jobs)
        return Join.stinger_of(min(transition.seconds, pace_seconds / 2),
                               min(STINGER_FADE_OUT_SECONDS, pace_seconds / 4))
    gap = min(transition.seconds, pace_seconds / 2)
    return Join(0.0, min(SILENCE_FADE_OUT_SECONDS, pace_seconds / 4), gap, SILENCE_ENTRY_SECONDS)


def page_joins(sheet: Sequence[Cue], settings: SoundtrackSettings, transitions: TransitionSheet | None) -> list[Join]:
    """The join into each page of ``sheet`` (in order): within a scene the page crossfade; at a scene
    change the transition the director chose, or the scene crossfade when there is none."""
    joins = [Join(0.0, 0.0, 0.0, 0.0)]
    for before, cue in zip(sheet, sheet[1:], strict=False):
        if before.scene == cue.scene:
            joins.append(Join.crossfade(settings.transition(new_scene=False)))
        else:
            chosen = transitions.into(cue.scene) if transitions is not None else None
            joins.append(join_into(chosen, settings.transition(new_scene=True), settings.pace_seconds))
    return joins


@dataclass(frozen=True)
class Entry:
    """How the music enters a page, as the cue sheet and the reader say it: the kind chosen at a
    scene change ("" within a scene), the page before's fade-out, the silence between and the
    seconds of the stinger played first (0: none)."""

    transition: str
    fade: float
    silence: float
    stinger: float = 0.0


def page_entries(sheet: Sequence[Cue], settings: SoundtrackSettings,
                 transitions: TransitionSheet | None) -> dict[int, Entry]:
    """Page -> how its music enters (the first page: nothing before it)."""
    entries = {}
    for k, (cue, join) in enumerate(zip(sheet, page_joins(sheet, settings, transitions), strict=True)):
        chosen = transitions.into(cue.scene) if transitions is not None and k and sheet[k - 1].scene != cue.scene \
            else None
        entries[cue.page] = Entry(chosen.kind if chosen else "", 0.0 if k == 0 else round(join.fade_out, 4),
                                  round(join.silence, 4), round(join.stinger, 4))
    return entries


def mix_pages(clips: Sequence[tuple[np.ndarray, bool]], crossfades: Sequence[float | Join], pace_seconds: float,
              sample_rate: int, end_fade_seconds: float = 3.0,
              stingers: Mapping[int, np.ndarray] | None = None, bars: Sequence[float] | None = None) -> np.ndarray:
    """The whole book: page k starts at ``k * pace_seconds``; the transition into it is
    ``crossfades[k]``: a ``Join``, or the seconds of an equal-power crossfade centred on that start
    (the first page fades in over 10 ms, the last fades out over ``end_fade_seconds``). Clips are
    ``([channels, samples], loop)`` at ``sample_rate``; looping clips repeat to fill their page.
    ``stingers[k]``: the ``[2, samples]`` stinger played into page k, where its join has one.
    ``bars[k]``: the seconds a bar of clip k lasts (0: no bar grid; see PageMixer.add).
    Returns ``[2, samples]``."""
    return mix_book(clips, crossfades, pace_seconds, sample_rate, end_fade_seconds, stingers, bars)[0]


def mix_book(clips: Sequence[tuple[np.ndarray, bool]], crossfades: Sequence[float | Join], pace_seconds: float,
             sample_rate: int, end_fade_seconds: float = 3.0, stingers: Mapping[int, np.ndarray] | None = None,
             bars: Sequence[float] | None = None) -> tuple[np.ndarray, list[int]]:
    """``mix_pages``, and the sample of each clip its page entered at (``PageMixer.offsets``)."""
    if len(clips) != len(crossfades):
        raise ValueError("crossfades: one per clip expected")
    pieces: list[np.ndarray] = []
    mixer = PageMixer(crossfades, pace_seconds, sample_rate, pieces.append, end_fade_seconds)
    stingers = stingers or {}
    for k, (samples, loop) in enumerate(clips):
        mixer.add(samples, loop, stingers.get(k + 1), bars[k] if bars is not None else 0.0)
    book = np.concatenate(pieces, axis=1) if pieces else np.zeros((2, 0), dtype=np.float32)
    return book, mixer.offsets


class PageMixer:
    """``mix_pages`` as a stream: pages are added in order, and each stretch of the book is handed
    to ``sink`` (``[2, samples]`` float32, in order) as soon as no later page can overlap it, so the
    whole book is never held in memory and can be encoded while later pages still render."""

    def __init__(self, crossfades: Sequence[float | Join], pace_seconds: float, sample_rate: int,
                 sink: Callable[[np.ndarray], None], end_fade_seconds: float = 3.0) -> None:
        n = len(crossfades)
        self.sample_rate, self.sink, self.next = sample_rate, sink, 0
        self.pace = int(round(pace_seconds * sample_rate))
        self.end_fade = int(round(end_fade_seconds * sample_rate))
        self.total = self.pace * n + self.end_fade
        joins = [j if isinstance(j, Join) else Join.crossfade(j) for j in crossfades]
        if n:
            joins[0] = Join(0.0, 0.0, 0.0, 0.0)
        samples = self._samples
        # per page: where it begins and how it fades in; where the page before ends and how it fades out
        self.begins = [k * self.pace + samples(j.in_begin) for k, j in enumerate(joins)]
        self.fade_ins = [samples(j.fade_in) for j in joins]
        self.out_ends = [samples(j.out_end) for j in joins]
        self.fade_outs = [samples(j.fade_out) for j in joins]
        self.stingers = [j.stinger > 0 for j in joins]
        begins = self.begins
        # everything before the earliest start of what is still to come is final: the pages after
        # page k, and the stingers after the one into page k + 1 (added with page k)
        starts = [min([begins[k]] + ([k * self.pace] if self.stingers[k] else [])) for k in range(n)]
        self.final = [min(begins[k + 1:k + 2] + starts[k + 2:], default=self.total) for k in range(n)]
        self.flushed = 0
        self.buffer = np.zeros((2, 0), dtype=np.float32)  # the book from ``flushed`` on
        # the page before's last stretch, not yet faded, where it and the next page's fade-in
        # coincide (a crossfade): (where it starts, its samples)
        self.held: tuple[int, np.ndarray] | None = None
        # per page added, the sample of its clip it entered at; and of the last page added: that
        # sample, its clip's length and its bar in samples (0: no bar grid)
        self.offsets: list[int] = []
        self.entered: tuple[int, int, float] = (0, 1, 0.0)

    def _entry_offset(self, k: int, length: int, bar: float) -> int:
        """The sample of page k's clip (``length`` samples, bars of ``bar`` samples) it enters at in a
        crossfade: where the page before's clip then is, within its bar, when the two have bars of one
        length (a scene's pages share tempo and metre), so their beats fall together while they
        overlap rather than a fraction of a beat apart; 0 (its beginning) otherwise."""
        offset, before_length, before_bar = self.entered
        if not bar or not before_bar or abs(bar - before_bar) > 1e-3 * self.sample_rate:
            return 0
        position = (offset + self.begins[k] - self.begins[k - 1]) % before_length
        return int(round(position % bar)) % length

    def _samples(self, seconds: float) -> int:
        return int(round(seconds * self.sample_rate))

    def _place(self, segment: np.ndarray, begin: int) -> None:
        """Add ``segment`` to the book from sample ``begin`` on (never before what was flushed)."""
        end = begin + segment.shape[1]
        if end - self.flushed > self.buffer.shape[1]:
            grown = np.zeros((2, end - self.flushed), dtype=np.float32)
            grown[:, :self.buffer.shape[1]] = self.buffer
            self.buffer = grown
        self.buffer[:, begin - self.flushed:end - self.flushed] += segment

    def add(self, samples: np.ndarray, loop: bool, stinger: np.ndarray | None = None, bar: float = 0.0) -> None:
        """The next page's ``[2, samples]`` clip; ``stinger``: the ``[2, samples]`` stinger that
        closes its music into the next page, when that page's join has one (it plays from the
        next page's start); ``bar``: the seconds a bar of the clip lasts (0: it has no bar grid). A
        looping clip that crossfades in from one with bars as long enters on that one's bar grid."""
        k, n = self.next, len(self.begins)
        if k >= n:
            raise ValueError(f"clips: more than the {n} pages the crossfades were given for")
        wanted = k + 1 < n and self.stingers[k + 1]
        if wanted != (stinger is not None):
            raise ValueError(f"stinger: the join into page {k + 1} {'has' if wanted else 'has no'} stinger, "
                             f"and {'none was' if wanted else 'one was'} given")
        begin = self.begins[k]
        fade_in = self.fade_ins[k] if k else int(0.01 * self.sample_rate)
        if k == n - 1:
            end, fade_out = self.total, self.end_fade
        else:
            end = (k + 1) * self.pace + self.out_ends[k + 1]
            fade_out = min(self.fade_outs[k + 1], end - begin)
        bar_samples = bar * self.sample_rate if loop and samples.shape[1] else 0.0
        offset = self._entry_offset(k, samples.shape[1], bar_samples) if self.held is not None else 0
        self.offsets.append(offset)
        self.entered = (offset, max(1, samples.shape[1]), bar_samples)
        segment = _looped(np.roll(samples, -offset, axis=1) if offset else samples, end - begin, loop).copy()
        held, self.held = self.held, None
        if held is not None:
            # a crossfade: the law holds the sum's loudness on the path between the two, moment by moment
            gain_in, gain_out = steady_crossfade_gains(held[1], segment[:, :fade_in], self.sample_rate)
            self._place(held[1] * gain_out, held[0])
            segment[:, :fade_in] *= gain_in
        elif fade_in > 0:
            segment[:, :fade_in] *= equal_power(fade_in)[0]
        if fade_out > 0 and k + 1 < n and end - fade_out == self.begins[k + 1] and fade_out == self.fade_ins[k + 1] \
                and not self.stingers[k + 1]:
            self.held = (end - fade_out, segment[:, -fade_out:].copy())
            segment = segment[:, :-fade_out]
        elif fade_out > 0:
            segment[:, -fade_out:] *= equal_power(fade_out)[1]
        self._place(segment, begin)
        if stinger is not None:
            self._place(_looped(stinger, min(stinger.shape[1], self.total - (k + 1) * self.pace), False),
                        (k + 1) * self.pace)
        self.next += 1
        cut = self.final[k] - self.flushed
        if cut > self.buffer.shape[1]:  # a silence before the next page: it is part of the book too
            self.buffer = np.pad(self.buffer, ((0, 0), (0, cut - self.buffer.shape[1])))
        if cut > 0:
            self.sink(self.buffer[:, :cut])
            self.buffer = self.buffer[:, cut:].copy()
            self.flushed += cut


# ---------------------------------------------------------------------------------------------
# building


def build_soundtrack(book_id: str, condition: Condition, captions: CaptionSheet, run: RunFolder,
                     engine_name: str, options: SoundtrackSettings | None = None,
                     progress: Progress | None = None, *, render: RenderOptions | None = None,
                     order: Sequence[int] | None = None, force: Collection[int] = (),
                     only: Collection[int] | None = None, at_most: int | None = None,
                     on_clip: Callable[[Clip], None] | None = None, engine: Engine | None = None,
                     transitions: TransitionSheet | None = None) -> Soundtrack:
    """Render every page's clip (reusing clips made from the same inputs) and write the soundtrack.

    ``transitions`` say how the music moves at each scene change (None: the scene crossfade); a
    "continue" lets an engine that continues carry the last page's audio into the new scene.

    ``order`` lists pages to render first (the page on screen and the next two); the rest follow in
    page order. ``force`` re-renders those pages even if unchanged. ``on_clip`` is called as each
    page's file lands. ``render`` carries engine options (device, SoundFont, library folder, ...);
    its ``seconds`` and ``seed`` are taken from the settings. ``engine`` replaces the registry's
    (tests). ``progress(stage, done, total)`` reports "music" per page and "soundtrack" at the end.
    ``only`` renders just those pages (and the pages they continue from); the cue sheet then lists
    what is done and the whole-book file waits for a render that completes the book. ``at_most``
    renders no more than that many of the pages still to do, in that order (a reader's step: the
    page on screen and the next ones), so a short step never starts a page it would throw away.
    """
    settings = replace(options or SoundtrackSettings(), engine=engine_name)
    engine = engine or load_engine(engine_name)
    warm_up(engine, render)  # ready by the first clip
    progress = progress or (lambda stage, done, total: None)
    work = clip_work(captions, run, engine, settings, render, transitions, book_id=book_id, order=order,
                     force=force, only=only)
    sheet, after, hashes, render = work.sheet, work.after, work.hashes, work.render
    record, existing, done, pending = work.record, work.existing, work.done, list(work.pending)
    jobs = stinger_jobs(sheet, hashes, transitions, settings, engine, render)
    stingers = reused_stingers(run, jobs, record.data.stingers if record is not None else ())
    if at_most is not None:
        pending = pending[:max(at_most, 1)]
    complete = len(done) + len(pending) == len(sheet)
    total = len(sheet)
    progress("music", len(done), total)
    previous = continued_audio(run, pending, after, done)

    # The whole-book file is mixed and encoded on its own thread while pages still render; pages
    # kept from an earlier run are read back from their files when the mix reaches them. When every
    # page is kept and the file was made from them with these settings, it is kept too.
    make_whole = settings.whole_file and complete
    kept = _kept_whole_file(record, run, hashes, settings, transitions) if make_whole and not pending else None
    whole = _WholeFile(run, sheet, settings, {p: (run.path / c.file, c.loop, c.bar_seconds()) for p, c in done.items()},
                       transitions,
                       {scene: run.path / c.file for scene, c in stingers.items()}) \
        if make_whole and kept is None else None
    try:
        if pending:
            def write(rendered: Rendered) -> SoundtrackCue:
                cue = next(c for c in sheet if c.page == rendered.page)
                keep_aside(run, existing.get(cue.page), hashes[cue.page])
                return write_clip(run, cue, rendered, settings, hashes[cue.page],
                                  whole.add if whole is not None else None)

            def written(clip: SoundtrackCue) -> None:
                done[clip.page] = clip
                _write_sheet(run, book_id, condition, sheet, done, settings, transitions, complete=False,
                             stingers=stingers)
                progress("music", len(done), total)
                if on_clip is not None:
                    on_clip(clip_of(clip, settings))

            render_and_write(engine, pending, render, {c.page: after[c.page] for c in pending}, previous,
                              write, written)
        _make_stingers(run, engine, render, settings, jobs, done, stingers, whole)
        soundtrack = _write_sheet(run, book_id, condition, sheet, done, settings, transitions, complete=complete,
                                  whole=kept, stingers=stingers)
        if whole is not None:
            progress("soundtrack", 0, 1)
            soundtrack = whole.finish(soundtrack)
            progress("soundtrack", 1, 1)
    finally:
        if whole is not None:
            whole.close()
    return soundtrack


@dataclass(frozen=True)
class ClipWork:
    """What stage 5 has to do for a book: the pages in order, the page each continues from, each
    clip's hash, the render options, the cue sheet as it stands, the pages whose clips are already
    made (``done``, reused or taken back) and the pages still to render (``pending``, in order)."""

    sheet: list[Cue]
    after: dict[int, int | None]
    hashes: dict[int, str]
    render: RenderOptions
    record: StageRecord[Soundtrack] | None
    existing: dict[int, SoundtrackCue]
    done: dict[int, SoundtrackCue]
    pending: tuple[Cue, ...]


def clip_work(captions: CaptionSheet, run: RunFolder, engine: Engine, settings: SoundtrackSettings,
              render: RenderOptions | None, transitions: TransitionSheet | None, *, book_id: str,
              order: Sequence[int] | None = None, force: Collection[int] = (),
              only: Collection[int] | None = None) -> ClipWork:
    """The pages still to render and the clips already made, as ``build_soundtrack`` sees them (a
    batch shares the same view, so a clip it lands is one a reader or ``m2m render`` reuses)."""
    if not captions.cues:
        raise ValueError("captions: no cues; nothing to render")
    sheet, after, hashes, render = clip_plan(book_id, captions, settings.engine, engine, settings, render, transitions)
    record = _existing(run)
    existing = _existing_cues(record)
    done = reused_clips(run, sheet, hashes, existing, force)
    wanted = None if only is None else with_predecessors(only, after)
    pending = tuple(c for c in render_order(sheet, order)
                    if c.page not in done and (wanted is None or c.page in wanted))
    return ClipWork(sheet, after, hashes, render, record, existing, done, pending)


def record_clips(run: RunFolder, book_id: str, condition: Condition, work: ClipWork,
                 done: Mapping[int, SoundtrackCue], settings: SoundtrackSettings,
                 transitions: TransitionSheet | None, stingers: Mapping[int, StingerClip] | None = None) -> Soundtrack:
    """Write the cue sheet for the clips ``done`` so far, the book not yet complete (a batch calls
    it as each clip lands; ``build_soundtrack`` completes the book, its stingers and its whole-book file).
    ``stingers``: scene -> this run's stingers made so far (default: those the cue sheet listed before)."""
    if stingers is None:
        stingers = {s.scene: s for s in work.record.data.stingers} if work.record else {}
    return _write_sheet(run, book_id, condition, work.sheet, done, settings, transitions, complete=False,
                        stingers=stingers)


def _make_stingers(run: RunFolder, engine: Engine, render: RenderOptions, settings: SoundtrackSettings,
                   jobs: Mapping[int, StingerJob], done: Mapping[int, SoundtrackCue],
                   stingers: dict[int, StingerClip], whole: _WholeFile | None) -> None:
    """Render and write the stingers not yet made whose old page's clip is (into ``stingers``),
    handing each to the whole-book mix."""
    for scene, job in sorted(jobs.items()):
        if scene in stingers or job.cue.page not in done:
            continue
        previous = read_audio(run.path / done[job.cue.page].file) if engine.continues else None
        clip, samples = write_stinger(run, job, render_stinger(engine, job, render, previous), settings)
        stingers[scene] = clip
        if whole is not None:
            whole.add_stinger(scene, samples)


class _WholeFile:
    """The whole book at the reading pace, mixed (``PageMixer``) and encoded as OGG on one thread
    while pages arrive in any order; written to a temporary file and renamed when complete."""

    def __init__(self, run: RunFolder, sheet: Sequence[Cue], settings: SoundtrackSettings,
                 on_disk: Mapping[int, tuple[Path, bool, float]], transitions: TransitionSheet | None,
                 stingers_on_disk: Mapping[int, Path] | None = None) -> None:
        self.run, self.settings, self.transitions = run, settings, transitions
        self.pages = [c.page for c in sheet]
        fades = page_joins(sheet, settings, transitions)
        # page index k -> the scene whose stinger plays into page k + 1
        self.stinger_after = {k - 1: cue.scene for k, (cue, join) in enumerate(zip(sheet, fades, strict=True))
                              if join.stinger > 0}
        self.on_disk = dict(on_disk)
        self.stingers_on_disk = dict(stingers_on_disk or {})
        self.arrived: dict[int, tuple[np.ndarray, bool, float]] = {}
        self.arrived_stingers: dict[int, np.ndarray] = {}
        self.lock = threading.Lock()
        self.path = run.audio_dir / "soundtrack.ogg"
        self.tmp = self.path.with_name(".soundtrack.tmp.ogg")
        self.mp3: list[np.ndarray] | None = [] if settings.mp3 else None
        self.file: soundfile.SoundFile | None = None
        self.mixer = PageMixer(fades, settings.pace_seconds, settings.sample_rate, self._sink)
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="m2m-whole")
        self.work: list[Future] = [self.worker.submit(self._advance)]  # pages kept from before

    def add(self, page: int, samples: np.ndarray, loop: bool, bar: float = 0.0) -> None:
        """A page's normalised ``[2, samples]`` clip at the settings' rate, and the seconds a bar of it
        lasts (0: no bar grid), from any thread, in any order."""
        with self.lock:
            self.arrived[page] = (samples, loop, bar)
            self.work.append(self.worker.submit(self._advance))

    def add_stinger(self, scene: int, samples: np.ndarray) -> None:
        """The normalised ``[2, samples]`` stinger into ``scene`` (any thread)."""
        with self.lock:
            self.arrived_stingers[scene] = samples
            self.work.append(self.worker.submit(self._advance))

    def _stinger(self, k: int) -> tuple[bool, np.ndarray | None]:
        """(ready, the stinger after page index ``k``): not ready while it is still being made."""
        scene = self.stinger_after.get(k)
        if scene is None:
            return True, None
        with self.lock:
            samples = self.arrived_stingers.get(scene)
        if samples is None and scene in self.stingers_on_disk:
            samples = stereo_at(read_audio(self.stingers_on_disk[scene]), self.settings.sample_rate)
        return samples is not None, samples

    def _advance(self) -> None:
        while self.mixer.next < len(self.pages):
            k = self.mixer.next
            page = self.pages[k]
            ready, stinger = self._stinger(k)
            if not ready:
                return
            with self.lock:
                item = self.arrived.pop(page, None)
            if item is None and page in self.on_disk:
                path, loop, bar = self.on_disk.pop(page)
                item = (stereo_at(read_audio(path), self.settings.sample_rate), loop, bar)
            if item is None:
                return
            samples, loop, bar = item
            self.mixer.add(samples, loop, stinger, bar)

    def _sink(self, samples: np.ndarray) -> None:
        if self.file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = soundfile.SoundFile(self.tmp, "w", self.settings.sample_rate, 2, format="OGG",
                                            subtype="VORBIS")
        write_blocks(self.file, np.clip(samples, -1.0, 1.0).T)
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
            input_hash=_whole_file_key({c.page: c.hash for c in done.cues}, self.transitions),
            settings=_settings_json(settings),
            warnings=_warnings(done.cues, done.stingers)))
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


# How the pages are mixed into the whole book; a new law makes every whole-book file made by an older
# one be mixed again. 2: crossfades follow the pages' correlation; 3: measured by the
# quarter second; 4: a page crossfading in from one of its bar length enters on its grid;
# 5: the sum held on the path between the two pages' own powers (steady_crossfade_gains).
MIX_LAW = "steady-5"


def _whole_file_key(hashes: Mapping[int, str], transitions: TransitionSheet | None) -> str:
    """What the whole-book file is made from: the clips, the mixing law and, where chosen, the scene
    transitions."""
    if transitions is None:
        return hash_inputs(sorted(hashes.items()), MIX_LAW)
    return hash_inputs(sorted(hashes.items()), transitions, MIX_LAW)


def _kept_whole_file(record: StageRecord[Soundtrack] | None, run: RunFolder, hashes: Mapping[int, str],
                     settings: SoundtrackSettings, transitions: TransitionSheet | None) -> Soundtrack | None:
    """The previous whole-book file when it was made from these very clips with these settings."""
    if record is None or not record.data.file or record.edited:
        return None
    same = record.provenance.input_hash == _whole_file_key(hashes, transitions) \
        and record.provenance.settings == _settings_json(settings)
    return record.data if same and intact(run.path / record.data.file, record.data.file_hash) else None


def _write_sheet(run: RunFolder, book_id: str, condition: Condition, sheet: Sequence[Cue],
                 done: Mapping[int, SoundtrackCue], settings: SoundtrackSettings,
                 transitions: TransitionSheet | None, complete: bool, whole: Soundtrack | None = None,
                 stingers: Mapping[int, StingerClip] | None = None) -> Soundtrack:
    """Write ``soundtrack.json`` for the pages done so far; ``whole``: a whole-book file kept as it
    is; ``stingers``: scene -> the stinger made into it so far (each page entered by one names it)."""
    cues = []
    stingers = stingers or {}
    entries = page_entries(sheet, settings, transitions)
    for k, cue in enumerate(sheet):
        if cue.page not in done:
            continue
        entry = entries[cue.page]
        stinger = stingers.get(cue.scene) if entry.stinger > 0 else None
        cues.append(replace(done[cue.page], start=round(k * settings.pace_seconds, 4), crossfade=entry.fade,
                            transition=entry.transition, silence=entry.silence,
                            stinger=stinger.file if stinger else "", stinger_seconds=entry.stinger if stinger else 0.0))
    made = tuple(stingers[scene] for scene in sorted(stingers))
    soundtrack = Soundtrack(book_id, condition, tuple(cues), tuple(clip_of(c, settings) for c in cues),
                            settings, seconds=round(len(sheet) * settings.pace_seconds, 4), complete=complete,
                            file=whole.file if whole else "", file_hash=whole.file_hash if whole else "",
                            stingers=made)
    run.write("soundtrack", soundtrack, Provenance(
        stage="soundtrack", backend=settings.engine,
        input_hash=_whole_file_key({c.page: c.hash for c in cues}, transitions),
        settings=_settings_json(settings), warnings=_warnings(cues, made)))
    return soundtrack


def _warnings(cues: Sequence[SoundtrackCue], stingers: Sequence[StingerClip]) -> tuple[str, ...]:
    """The run file's warnings: every page's and every stinger's, each once."""
    return tuple(dict.fromkeys([w for c in cues for w in c.warnings] + [w for s in stingers for w in s.warnings]))


def _settings_json(settings: SoundtrackSettings) -> dict[str, Any]:
    return to_jsonable(settings)
