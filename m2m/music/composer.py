"""The embedded default engine: a symbolic composer, MIDI through FluidSynth.

The piece is written in ``m2m.music.composition`` (chords, texture, melody from the scene's motif,
``m2m.music.motif``, over the roles ``m2m.music.arrangement`` gives the plan's instruments); this
module is the engine around it: find the SoundFont, render the MIDI, fold it into a loop, ride its
level so every 3 s of it sounds as loud as the whole (``m2m.loudness.ride_level``), and say how it
was made. Pages render in a thread pool, since FluidSynth runs outside the GIL.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from m2m.cues import Cue
from m2m.loudness import loudness_lufs, ride_level
from m2m.midi import pretty_midi
from m2m.music.arrangement import arrange
from m2m.music.base import DEFAULT_SAMPLE_RATE, Audio, EngineInfo, Rendered, RenderOptions
from m2m.music.cadence import compose_cadence, ring_out
from m2m.music.composition import BEATS_PER_BAR, Note, Piece, compose
from m2m.music.plans import ResolvedPlan
from m2m.music.synth import (
    SOUNDFONT_CANDIDATES,
    SoundFont,
    SoundFontCache,
    find_soundfont,
    fold_loop,
    keep_headroom,
    render_midi,
)

MIN_THEME_GAIN = 0.25  # -12 dB: the most a theme is turned down to sit in its page
MAX_THEME_GAIN = 2.0  # +6 dB: the most a theme is turned up to fill the bars the melody leaves it
THEME_TRACK = "theme:"  # how composition.py names the leitmotif's track


def split_theme(midi: pretty_midi.PrettyMIDI) -> tuple[pretty_midi.PrettyMIDI, pretty_midi.PrettyMIDI]:
    """(everything but the leitmotif's track, the leitmotif's track alone), tempo and meter kept."""
    band, theme = copy.deepcopy(midi), copy.deepcopy(midi)
    band.instruments = [i for i in band.instruments if not i.name.startswith(THEME_TRACK)]
    theme.instruments = [i for i in theme.instruments if i.name.startswith(THEME_TRACK)]
    return band, theme


def theme_gain(accompaniment: np.ndarray, solo: np.ndarray, rate: int, themed_bars: Sequence[int], bar: int,
               bars: int) -> float:
    """The gain for ``solo`` (``[2, samples]``, like ``accompaniment``) that makes the ``themed_bars``
    (bar index; ``bar`` samples each, ``bars`` in the piece) as loud as the other bars, within
    ``MIN_THEME_GAIN``..``MAX_THEME_GAIN``; 1 where there is nothing to match."""
    others = [b for b in range(bars) if b not in themed_bars]
    if not themed_bars or not others:
        return 1.0

    def stretch(x: np.ndarray, which: Sequence[int]) -> np.ndarray:
        return np.concatenate([x[:, b * bar:(b + 1) * bar] for b in which], axis=1)

    target = loudness_lufs(stretch(accompaniment, others), rate)
    band, voice = stretch(accompaniment, themed_bars), stretch(solo, themed_bars)

    def level(gain: float) -> float:
        return loudness_lufs(band + np.float32(gain) * voice, rate)

    if not np.isfinite(target) or not np.isfinite(level(1.0)):
        return 1.0
    if level(MIN_THEME_GAIN) >= target:
        return MIN_THEME_GAIN
    if level(MAX_THEME_GAIN) <= target:
        return MAX_THEME_GAIN
    # the level rises with the gain: halve the bracket in log2 of the gain (its own scale) to within 0.1%
    low, high = np.log2(MIN_THEME_GAIN), np.log2(MAX_THEME_GAIN)
    for _ in range(14):
        middle = (low + high) / 2
        low, high = (middle, high) if level(2.0 ** middle) < target else (low, middle)
    return round(float(2.0 ** ((low + high) / 2)), 4)


# the names this module had before the piece was written elsewhere, so importers need not change
__all__ = ["BEATS_PER_BAR", "ComposerEngine", "Note", "Piece", "arrange", "compose"]


@dataclass(frozen=True)
class ComposerOptions:
    """The composer's own options: ``soundfont`` replaces the SoundFont search (None: FluidR3_GM,
    then the small fallback)."""

    soundfont: Path | None = None

    def settings(self) -> dict[str, Any]:
        return {"soundfont": str(self.soundfont) if self.soundfont else None}


class ComposerEngine:
    """The ``composer`` engine. ``soundfonts`` replaces the SoundFont search list (for tests);
    ``workers`` is how many pages render at once in ``render_many`` (threads: FluidSynth runs
    outside the GIL); ``sample_rate`` is the rate of a render whose options name none. The engine
    holds no per-reader state; options come with each call."""

    name = "composer"
    # in every clip's hash: a change to what the same cue sounds like (here: a soft leitmotif turned
    # up to its page's level, theme_gain) makes clips made before it render again instead of playing
    # on beside new ones
    version = "4"
    continues = False
    options_type = ComposerOptions

    def __init__(self, soundfonts: Sequence[Path] = SOUNDFONT_CANDIDATES, sample_rate: int = DEFAULT_SAMPLE_RATE,
                 workers: int | None = None) -> None:
        self.soundfonts = tuple(soundfonts)
        self.sample_rate = sample_rate
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        # keeps the SoundFont's samples loaded between renders (a resource, not per-reader state)
        self.soundfont_cache = SoundFontCache()

    def soundfont(self, options: RenderOptions) -> SoundFont:
        return find_soundfont(options.options_for(ComposerOptions).soundfont, self.soundfonts)

    def prepare(self, options: RenderOptions) -> None:
        """Load the SoundFont for as many renders as run at once, ahead of the first (a cold load of
        FluidR3 is about 0.2 s of CPU that would otherwise wait in front of the first page)."""
        self.soundfont_cache.preload(self.soundfont(options), self.workers)

    def unridden_loop(self, cue: Cue, options: RenderOptions) -> tuple[Piece, ResolvedPlan, SoundFont, np.ndarray]:
        """The page's piece, its plan, the SoundFont and the piece synthesised and folded into a
        ``[2, samples]`` loop at the options' rate, before its level is ridden."""
        soundfont = self.soundfont(options)  # fail before composing when there is none
        piece, resolved = compose(cue, options.seconds, options.seed)
        rate = options.sample_rate or self.sample_rate  # FluidSynth renders at any rate: none to resample
        if cue.theme is not None:
            raw = self.balanced_theme(piece, soundfont, rate)
        else:
            raw = render_midi(piece.midi, soundfont, rate, seconds=piece.seconds, cache=self.soundfont_cache)
        return piece, resolved, soundfont, fold_loop(raw, int(round(piece.seconds * rate)))

    def render(self, cue: Cue, options: RenderOptions) -> Rendered:
        piece, resolved, soundfont, loop = self.unridden_loop(cue, options)
        rate = options.sample_rate or self.sample_rate
        # the page turn can catch the loop anywhere in its phrases: hold its level there (ride_level)
        audio = ride_level(loop, rate)
        warnings = list(resolved.warnings)
        if soundfont.fallback:
            warnings.append("soundfont: using the small TimGM6mb fallback; `apt-get install "
                            "fluid-soundfont-gm` for FluidR3_GM")
        if resolved.from_caption:
            warnings.append(f"plan: {', '.join(resolved.from_caption)} taken from the edited caption")
        info = EngineInfo(
            engine=self.name, soundfont=soundfont.label, warnings=tuple(warnings),
            details={"tempo": piece.tempo, "key": resolved.plan.key, "mode": resolved.plan.mode,
                     "bars": piece.bars, "progression": list(piece.progression), "mood": piece.family,
                     "roles": [list(r) for r in piece.roles], "drums": piece.drum_style,
                     "energy": resolved.plan.energy, "from_caption": list(resolved.from_caption)})
        if options.progress is not None:
            options.progress(1, 1)
        return Rendered(cue.page, Audio(audio, rate), True, info, piece.midi)

    def render_stinger(self, cue: Cue, seconds: float, options: RenderOptions) -> Rendered:
        """The closing cadence of ``cue``'s music, ``seconds`` long (``m2m.music.cadence``): composed
        and synthesised like a page, on the same SoundFont, but played once and left to ring out."""
        soundfont = self.soundfont(options)
        cadence, resolved = compose_cadence(cue, seconds)
        rate = options.sample_rate or self.sample_rate
        raw = render_midi(cadence.midi, soundfont, rate, seconds=seconds, tail_seconds=0.0,
                          cache=self.soundfont_cache)
        warnings = list(resolved.warnings)
        if soundfont.fallback:
            warnings.append("soundfont: using the small TimGM6mb fallback")
        info = EngineInfo(engine=self.name, soundfont=soundfont.label, warnings=tuple(warnings),
                          details={"cadence": "-".join(cadence.numerals), "key": resolved.plan.key,
                                   "mode": resolved.plan.mode, "tempo": cadence.tempo,
                                   "roles": [list(r) for r in cadence.roles]})
        # the synth's releases and reverb ring within the stinger; the last tenth only makes sure it ends at zero
        return Rendered(cue.page, Audio(ring_out(raw, rate, seconds, 0.1), rate), False, info, cadence.midi)

    def balanced_theme(self, piece: Piece, soundfont: SoundFont, rate: int) -> np.ndarray:
        """The piece with its leitmotif as loud as the music around it: the band and the theme are
        rendered apart (FluidSynth's output is linear, so their sum is the piece) and the theme is
        set so the bars it plays in sound as loud (BS.1770) as the bars it does not. A solo wind
        sustains where the melody it stands in for decays, so at the melody's velocity it can lift
        its bars by 3-5 LU; a soft voice (a clarinet under strings) over the arpeggio that rests for
        it can leave them 1-3 LU down. Either way the page opening with it would start louder or
        quieter than the page before it ends, and its first bar would stand apart from the rest."""
        band, theme = split_theme(piece.midi)
        render = partial(render_midi, soundfont=soundfont, sample_rate=rate, seconds=piece.seconds,
                         cache=self.soundfont_cache, headroom=False)
        accompaniment, solo = render(band), render(theme)
        bar = int(round(BEATS_PER_BAR * 60.0 / piece.tempo * rate))
        themed = sorted({int(round(n.start * rate)) // bar for n in theme.instruments[0].notes}) if theme.instruments else []
        gain = theme_gain(accompaniment, solo, rate, themed, bar, piece.bars)
        return keep_headroom(accompaniment + np.float32(gain) * solo)

    def render_many(self, cues: Sequence[Cue], options: RenderOptions, *,
                    after: Mapping[int, int | None] | None = None, previous: Mapping[int, Audio] | None = None,
                    on_rendered: Callable[[Rendered], None] | None = None) -> list[Rendered]:
        if not cues:
            return []
        self.soundfont(options)  # a missing SoundFont fails once, before any work starts
        out = []
        # pages are independent: they start in the given order (the page on screen first) and are
        # handed over in that order as they finish
        with ThreadPoolExecutor(max_workers=min(self.workers, len(cues))) as pool:
            futures = [pool.submit(self.render, cue, options) for cue in cues]
            try:
                for future in futures:
                    rendered = future.result()
                    if on_rendered is not None:
                        on_rendered(rendered)
                    out.append(rendered)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return out
