"""How smooth the music is where one page gives way to the next, measured on the book as played.

Every join sits at a page's start in the whole-book mix (``k * pace``), where the equal-power
crossfade into page k is centred. Either side of it we take the seconds a listener hears just
before and just after the turn and compare them: their short-term loudness (BS.1770 over the
window, m2m/loudness.py) and their mean log-mel spectrum. A long crossfade blends the two sides, so
it scores smoother than a hard cut, which is the point: the crossfade is part of what is played.
Clicks are looked for at the join's edges (where a fade starts, its centre, where it ends) and at
every loop seam inside a page, as a sample-to-sample step far above the steps of the music around it.

A scene change the director played as a cut, a silence or a stinger is a break meant to be heard:
smoothness is scored over the seamless joins (every join within a scene, and scene changes played
as continue or crossfade), and the deliberate breaks are reported apart. Clicks count everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from m2m.loudness import loudness_lufs
from m2m.soundtrack import Join as PlayedJoin

WINDOW_SECONDS = 3.0  # EBU R 128's short-term window: "the last/first ~3 s" either side of a join
CLICK_SPAN_SECONDS = 0.005  # how close to an edge a step counts as the edge's
CLICK_CONTEXT_SECONDS = 1.0  # the music around an edge its steps are compared with
CLICK_DB = 6.0  # a step this far above the 99.9th-percentile step around it is a click
SILENCE_LUFS = -70.0  # BS.1770's absolute gate: a silent window reads as this, not -inf
MEL_BANDS = 64
END_FADE_SECONDS = 3.0  # the whole book's closing fade (soundtrack.mix_pages): the last page plays through it
SEAMLESS_KINDS = ("", "continue", "crossfade")  # "": a join within a scene


@dataclass(frozen=True)
class Join:
    """The turn from ``page_before`` to ``page_after`` at ``at_seconds`` of the played book.

    ``scene_change``: the pages lie in different reference scenes. ``kind``: the transition the
    run's director chose into the page ("" within a scene); ``deliberate``: a kind meant as a break
    (anything but continue and crossfade: a cut, a silence, a stinger), scored apart from the
    seamless joins. ``crossfade_seconds``: the page before's fade-out; ``silence_seconds``: the gap
    before the page. ``loudness_jump_lu``: the absolute difference of the two sides' short-term
    loudness; ``spectral_distance_db``: the RMS difference of their mean log-mel spectra;
    ``click_db``: the largest step at the join's edges over the steps of the music around it (a
    click above ``CLICK_DB``).
    """

    page_before: int
    page_after: int
    at_seconds: float
    crossfade_seconds: float
    scene_change: bool
    loudness_jump_lu: float
    spectral_distance_db: float
    click_db: float
    kind: str = ""
    deliberate: bool = False
    silence_seconds: float = 0.0


@dataclass(frozen=True)
class Seam:
    """Where a page's looping clip starts over inside the page's stretch of the book."""

    page: int
    at_seconds: float
    click_db: float


@dataclass(frozen=True)
class Spread:
    """Mean and worst (largest) of a measure; None when there is nothing to measure."""

    mean: float | None
    worst: float | None


@dataclass(frozen=True)
class Breaks:
    """The deliberate breaks of a run (cuts, silences, stingers: any kind but continue and
    crossfade), with their own figures: a break is meant to be heard, so its loudness jump and
    spectral distance say how big it is, not how rough; it must still not click."""

    count: int
    kinds: tuple[str, ...]  # in book order
    loudness_jump_lu: Spread
    spectral_distance_db: Spread
    click_db: Spread
    clicks: int


@dataclass(frozen=True)
class Transitions:
    """Every join and loop seam of a run, with the summaries the table shows.

    ``loudness_jump_lu`` and ``spectral_distance_db`` are over the seamless joins only (every join
    within a scene, and scene changes played as continue or crossfade); ``counted`` says which.
    ``click_db`` and ``clicks`` are over every join (a deliberate cut must not click either) and,
    for ``clicks``, every loop seam. ``breaks``: the deliberate breaks, apart."""

    joins: tuple[Join, ...]
    seams: tuple[Seam, ...]
    loudness_jump_lu: Spread
    spectral_distance_db: Spread
    click_db: Spread
    clicks: int  # joins and seams above CLICK_DB
    seam_click_db: Spread
    seamless: int = 0
    counted: str = ""
    breaks: Breaks = Breaks(0, (), Spread(None, None), Spread(None, None), Spread(None, None), 0)
    # the same two measures in the middle of each page, where no join is near: how much the music
    # moves on its own from one 3 s to the next, the floor a join's figures are read against
    inside_loudness_jump_lu: Spread = Spread(None, None)
    inside_spectral_distance_db: Spread = Spread(None, None)


def spread(values: Sequence[float]) -> Spread:
    if not values:
        return Spread(None, None)
    return Spread(round(float(np.mean(values)), 3), round(float(np.max(values)), 3))


def short_term_lufs(samples: np.ndarray, sample_rate: int) -> float:
    """BS.1770 loudness of a short ``[channels, samples]`` window; a silent one reads as -70."""
    lufs = loudness_lufs(samples, sample_rate)
    return max(lufs, SILENCE_LUFS) if np.isfinite(lufs) else SILENCE_LUFS


def mean_log_mel(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """The mean log-mel spectrum (dB re full scale, floored at -100 dB) of ``[channels, samples]``."""
    import librosa

    mel = librosa.feature.melspectrogram(y=samples.mean(axis=0), sr=sample_rate, n_fft=2048, hop_length=512,
                                         n_mels=MEL_BANDS)
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).mean(axis=1)


def click_db(book: np.ndarray, sample_rate: int, edges: Sequence[int]) -> float:
    """The largest sample-to-sample step within ``CLICK_SPAN_SECONDS`` of any of ``edges`` (sample
    positions), in dB over the 99.9th percentile of the steps in the second either side (the edges'
    own spans left out): music's own transients set the bar, so only a step beyond them scores high."""
    span, context = int(CLICK_SPAN_SECONDS * sample_rate), int(CLICK_CONTEXT_SECONDS * sample_rate)
    lo, hi = max(0, min(edges) - context), min(book.shape[1] - 1, max(edges) + context)
    if hi - lo < 2:
        return 0.0
    steps = np.abs(np.diff(book[:, lo:hi + 1], axis=1)).max(axis=0)  # step from sample i to i+1
    near = np.zeros(steps.size, dtype=bool)
    for edge in edges:
        near[max(0, edge - span - lo):max(0, edge + span - lo)] = True
    if not near.any() or near.all():
        return 0.0
    bar = float(np.percentile(steps[~near], 99.9))
    return round(float(20 * np.log10(max(float(steps[near].max()), 1e-9) / max(bar, 1e-9))), 2)


def join_edges(at: int, join: PlayedJoin, sample_rate: int, length: int) -> list[int]:
    """Where the join's gains change, as sample positions: the page before's fade-out start and end,
    this page's entry and the end of its fade-in (a crossfade's collapse to its start and its
    ends), and the page's start itself."""
    marks = (join.out_end - join.fade_out, join.out_end, join.in_begin, join.in_begin + join.fade_in, 0.0)
    return sorted({min(max(at + int(round(m * sample_rate)), 0), length - 1) for m in marks})


def either_side(book: np.ndarray, sample_rate: int, at: int) -> tuple[float, float]:
    """(loudness jump in LU, spectral distance in dB) between the ``WINDOW_SECONDS`` before sample
    ``at`` and those after it."""
    window = int(WINDOW_SECONDS * sample_rate)
    before, after = book[:, max(0, at - window):at], book[:, at:at + window]
    jump = abs(short_term_lufs(before, sample_rate) - short_term_lufs(after, sample_rate))
    distance = float(np.sqrt(np.mean((mean_log_mel(before, sample_rate) - mean_log_mel(after, sample_rate)) ** 2)))
    return round(jump, 3), round(distance, 3)


def measure_join(book: np.ndarray, sample_rate: int, at: int, join: PlayedJoin) -> tuple[float, float, float]:
    """(loudness jump in LU, spectral distance in dB, click in dB) of the join at sample ``at``."""
    return *either_side(book, sample_rate, at), click_db(book, sample_rate, join_edges(at, join, sample_rate,
                                                                                        book.shape[1]))


def loop_seams(clip_lengths: Sequence[int], loops: Sequence[bool], joins: Sequence[PlayedJoin], pace_seconds: float,
               sample_rate: int, end_fade_seconds: float = END_FADE_SECONDS,
               offsets: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """(cue index, sample position) of every loop seam in the book as ``soundtrack.mix_pages``
    places the pages: page k plays from its entry (a crossfade's start, or after a silence) to
    where the next page's join lets it go (the last page through the book's closing fade),
    repeating its clip when that is longer than the clip; ``offsets[k]``: the sample of its clip
    it entered at (on the page before's bar grid; None: every clip from its beginning)."""
    pace, n, seams = int(round(pace_seconds * sample_rate)), len(clip_lengths), []

    def samples(seconds: float) -> int:
        return int(round(seconds * sample_rate))

    for k, (length, loop) in enumerate(zip(clip_lengths, loops, strict=True)):
        begin = k * pace + (samples(joins[k].in_begin) if k else 0)
        end = (k + 1) * pace + (samples(joins[k + 1].out_end) if k + 1 < n else samples(end_fade_seconds))
        if loop and length > 0:
            first = begin + length - (offsets[k] if offsets is not None else 0)
            seams.extend((k, at) for at in range(first, end, length))
    return seams


def inside_pages(book: np.ndarray, sample_rate: int, joins: Sequence[PlayedJoin],
                 pace_seconds: float) -> tuple[list[float], list[float]]:
    """(loudness jumps, spectral distances) at the middle of every page whose 3 s either side of it
    lie clear of the fades into it and out of it (a short reading pace leaves none)."""
    window, jumps, distances = WINDOW_SECONDS, [], []
    for k in range(len(joins)):
        middle = (k + 0.5) * pace_seconds
        entered = k * pace_seconds + max(joins[k].in_begin + joins[k].fade_in, joins[k].stinger) if k else 0.0
        leaves = (k + 1) * pace_seconds + (joins[k + 1].out_end - joins[k + 1].fade_out) if k + 1 < len(joins) \
            else (k + 1) * pace_seconds
        at = int(round(middle * sample_rate))
        if middle - window < entered or middle + window > leaves or at + int(window * sample_rate) > book.shape[1]:
            continue
        jump, distance = either_side(book, sample_rate, at)
        jumps.append(jump)
        distances.append(distance)
    return jumps, distances


def is_deliberate(kind: str) -> bool:
    """A transition meant as a break: any kind but continue and crossfade ("" is within a scene)."""
    return kind not in SEAMLESS_KINDS


def measure_transitions(book: np.ndarray, sample_rate: int, pages: Sequence[int], scenes: Sequence[int],
                        joins: Sequence[PlayedJoin], kinds: Sequence[str], clip_lengths: Sequence[int],
                        loops: Sequence[bool], pace_seconds: float, offsets: Sequence[int] | None = None) -> Transitions:
    """Every join between consecutive pages and every loop seam of the played ``book`` (``[2, samples]``).

    ``pages``, ``scenes`` (reference), ``joins`` (how the mix entered each page:
    ``soundtrack.cue_join``), ``kinds`` (the transition chosen into each page, "" within a scene),
    ``clip_lengths`` (samples) and ``loops`` are per cue in order, as the cue sheet gives them;
    ``offsets`` the sample of each clip its page entered at (``soundtrack.mix_book``)."""
    pace = int(round(pace_seconds * sample_rate))
    measured = []
    for k in range(1, len(pages)):
        jump, distance, click = measure_join(book, sample_rate, k * pace, joins[k])
        measured.append(Join(pages[k - 1], pages[k], round(k * pace_seconds, 3), round(joins[k].fade_out, 4),
                             scenes[k] != scenes[k - 1], jump, distance, click, kinds[k], is_deliberate(kinds[k]),
                             round(joins[k].silence, 4)))
    seams = [Seam(pages[k], round(at / sample_rate, 3), click_db(book, sample_rate, [at]))
             for k, at in loop_seams(clip_lengths, loops, joins, pace_seconds, sample_rate, offsets=offsets)]
    smooth = [j for j in measured if not j.deliberate]
    breaks = [j for j in measured if j.deliberate]
    clicks = sum(j.click_db > CLICK_DB for j in measured) + sum(s.click_db > CLICK_DB for s in seams)
    counted = (f"loudness and spectrum over the {len(smooth)} seamless joins of {len(measured)} (within a scene, "
               f"and scene changes played as continue or crossfade); {len(breaks)} deliberate "
               f"break{'s' if len(breaks) != 1 else ''} apart; clicks at every join and loop seam")
    return Transitions(tuple(measured), tuple(seams), spread([j.loudness_jump_lu for j in smooth]),
                       spread([j.spectral_distance_db for j in smooth]), spread([j.click_db for j in measured]),
                       clicks, spread([s.click_db for s in seams]), len(smooth), counted,
                       Breaks(len(breaks), tuple(j.kind for j in breaks), spread([j.loudness_jump_lu for j in breaks]),
                              spread([j.spectral_distance_db for j in breaks]), spread([j.click_db for j in breaks]),
                              sum(j.click_db > CLICK_DB for j in breaks)),
                       *map(spread, inside_pages(book, sample_rate, joins, pace_seconds)))
