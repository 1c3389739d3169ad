"""The stinger clips a "stinger" transition plays (stage 5 for scene changes, beside the pages).

A stinger closes the old scene's music with a short cadence in its own key, on its own instruments,
before the new scene starts. It is a clip of its own, made by the book's engine from a cue built
on the old scene's last page: that page's plan and a caption in words ("a short final cadence in
A major, acoustic grand piano and flute, resolving"). The composer writes the cadence as MIDI
(``m2m.music.cadence``); an engine without a symbolic stinger (MusicGen) is asked in words, from
the old page's audio where it continues, and the run files warn that it may not honour them.

Each stinger is loudness-matched like the pages and written as ``audio/stinger-NNN.ogg`` (NNN the
scene it leads into), recorded in ``soundtrack.json``'s ``stingers`` with a hash of what made it (its
cue, length, engine, settings and the old page's clip hash), so a rerun reuses it and an edit that
changes any of them renders it again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from m2m.audio import write_audio_atomic
from m2m.cues import CaptionSheet, Cue, Plan, TransitionSheet
from m2m.music import load_engine
from m2m.music.base import Audio, Engine, Rendered, RenderOptions
from m2m.music.cadence import ring_out
from m2m.music.plans import DRUMS
from m2m.music.render import (
    ENCODER_HEADROOM_DB,
    SoundtrackSettings,
    clip_plan,
    cue_identity,
    finish_clip,
    intact,
    write_midi,
)
from m2m.runs import RunFolder, file_hash, hash_inputs

# Bump when a stinger made the same way would now sound different.
STINGER_VERSION = "stinger-1"
# An engine asked in words: its music is faded to silence over the stinger's last half, since a
# text-to-music model does not stop on a cadence by itself.
WORDS_RING_OUT = 0.5


@dataclass(frozen=True)
class StingerJob:
    """A stinger the transitions ask for: into ``scene``, closing ``cue`` (built on the old scene's
    last page, ``cue.page``), ``seconds`` long, and the hash its clip carries."""

    scene: int
    cue: Cue
    seconds: float
    hash: str


@dataclass(frozen=True)
class StingerClip:
    """A stinger as ``soundtrack.json`` lists it: ``file`` relative to the run folder, seconds, the
    caption it was asked for in, and, like a page's record, hashes, loudness and what made it."""

    scene: int
    page: int
    file: str
    seconds: float
    caption: str
    hash: str
    file_hash: str
    engine: str
    backend: str = ""
    lufs: float = 0.0
    true_peak_db: float = 0.0
    midi: str | None = None
    warnings: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


def stinger_caption(plan: Plan) -> str:
    """The stinger in words, for a text-to-music model and for people reading the run files."""
    instruments = [name.lower() for name in plan.instruments if name.lower() != DRUMS][:3] or ["the same instruments"]
    return (f"a short final cadence in {plan.key} {plan.mode}, {', '.join(instruments)}, at {plan.tempo} BPM, "
            "resolving to the tonic and ringing out")


def stinger_cue(last: Cue) -> Cue:
    """The cue a stinger is made from: the old scene's last page, its plan, the stinger's caption."""
    return Cue.planned(last.page, last.scene, stinger_caption(last.plan), last.plan)


def stinger_jobs(sheet: Sequence[Cue], hashes: Mapping[int, str], transitions: TransitionSheet | None,
                 settings: SoundtrackSettings, engine: Engine, render: RenderOptions) -> dict[int, StingerJob]:
    """Scene -> the stinger into it, for every scene change where the transition is a stinger.
    ``sheet`` is in page order and ``hashes`` its clip hashes; a stinger lasts the transition's
    seconds, never more than half a page at the reading pace (as the mix plays it)."""
    jobs: dict[int, StingerJob] = {}
    if transitions is None:
        return jobs
    for before, cue in zip(sheet, sheet[1:], strict=False):
        chosen = transitions.into(cue.scene) if before.scene != cue.scene else None
        if chosen is None or chosen.kind != "stinger":
            continue
        seconds = round(min(chosen.seconds, settings.pace_seconds / 2), 4)
        made_from = stinger_cue(before)
        options = replace(render, seconds=seconds)
        key = hash_inputs(STINGER_VERSION, cue_identity(made_from), seconds, settings.engine,
                          getattr(engine, "version", ""), options.settings(), settings.target_lufs,
                          settings.true_peak_db, ENCODER_HEADROOM_DB, hashes[before.page])
        jobs[cue.scene] = StingerJob(cue.scene, made_from, seconds, key)
    return jobs


def current_stingers(book_id: str, captions: CaptionSheet, engine_name: str, settings: SoundtrackSettings,
                     render: RenderOptions | None, engine: Engine | None,
                     transitions: TransitionSheet | None) -> dict[int, StingerJob]:
    """Scene -> the stinger the transitions ask for now (as ``build_soundtrack`` would make it), so a
    stinger on disk with another hash is known not to be this run's (``engine`` replaces the registry's)."""
    settings = replace(settings, engine=engine_name)
    engine = engine or load_engine(engine_name)
    sheet, _, hashes, options = clip_plan(book_id, captions, engine_name, engine, settings, render, transitions)
    return stinger_jobs(sheet, hashes, transitions, settings, engine, options)


def reused_stingers(run: RunFolder, jobs: Mapping[int, StingerJob],
                    existing: Sequence[StingerClip]) -> dict[int, StingerClip]:
    """Scene -> its stinger already on disk, made from what the job asks (same hash, file intact)."""
    by_scene = {s.scene: s for s in existing}
    kept = {}
    for scene, job in jobs.items():
        old = by_scene.get(scene)
        if old is not None and old.hash == job.hash and intact(run.path / old.file, old.file_hash):
            kept[scene] = old
    return kept


def render_stinger(engine: Engine, job: StingerJob, render: RenderOptions, previous: Audio | None = None) -> Rendered:
    """The stinger's audio from ``engine``: its own symbolic stinger when it has one (the composer's
    ``render_stinger``), else a render of the stinger's cue in words (from ``previous``, the old
    page's audio, for an engine that continues), cut to length and faded to silence, with a warning."""
    options = replace(render, seconds=job.seconds, previous=previous if engine.continues else None,
                      progress=None)
    own = getattr(engine, "render_stinger", None)
    if own is not None:
        return own(job.cue, job.seconds, options)
    rendered = engine.render(job.cue, options)
    audio = rendered.audio
    warning = (f"stinger into scene {job.scene}: {engine.name} was asked for the cadence in words "
               f"({job.cue.caption!r}); the model may not end on one, so its music is faded out over the "
               f"stinger's last {WORDS_RING_OUT:.0%}")
    info = replace(rendered.info, warnings=(*rendered.info.warnings, warning),
                   details={**rendered.info.details, "asked_in_words": True})
    samples = ring_out(audio.samples, audio.sample_rate, job.seconds, WORDS_RING_OUT)
    return Rendered(rendered.page, Audio(samples, audio.sample_rate), False, info, rendered.midi)


def write_stinger(run: RunFolder, job: StingerJob, rendered: Rendered,
                  settings: SoundtrackSettings) -> tuple[StingerClip, np.ndarray]:
    """Normalise the stinger like a page (loudness target, true-peak ceiling) and write it as
    ``audio/stinger-NNN.ogg`` (and its MIDI when there is one); its record and the ``[2, samples]``
    normalised audio (for the whole-book mix)."""
    samples, loudness = finish_clip(rendered, settings)
    name = f"stinger-{job.scene:03d}"
    ogg = run.audio_dir / f"{name}.ogg"
    write_audio_atomic(ogg, samples, settings.sample_rate)
    midi = None
    if settings.write_midi and rendered.midi is not None:
        midi = write_midi(run, name, rendered.midi)
    info = rendered.info
    clip = StingerClip(scene=job.scene, page=job.cue.page, file=f"audio/{name}.ogg",
                       seconds=round(samples.shape[1] / settings.sample_rate, 4), caption=job.cue.caption,
                       hash=job.hash, file_hash=file_hash(ogg), engine=info.engine,
                       backend=info.model or info.soundfont, lufs=loudness.lufs,
                       true_peak_db=loudness.true_peak_db, midi=midi, warnings=info.warnings, details=info.details)
    return clip, samples
