"""Synthetic runs for the evaluation tests: run folders written from tones and chords, in seconds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from m2m.audio import write_audio_atomic
from m2m.cues import CaptionSheet, Cue, Plan
from m2m.music.base import Clip
from m2m.music.render import SoundtrackCue, SoundtrackSettings
from m2m.runs import Condition, Provenance, RunFolder
from m2m.soundtrack import Soundtrack

RATE = 22050
PACE = 4.0


def tone(frequencies: Sequence[float], seconds: float = 4.5, level: float = 0.2, phase: float = 0.0,
         vibrato: float = 0.0) -> np.ndarray:
    """A stereo chord of sines (``[2, samples]``); ``vibrato`` wobbles the level so clips differ a little."""
    t = np.arange(int(seconds * RATE)) / RATE
    y = sum(np.sin(2 * np.pi * f * t + phase) for f in frequencies) / len(frequencies)
    y = y * (1 + vibrato * np.sin(2 * np.pi * 3 * t))
    return np.stack([y, y]).astype(np.float32) * level


def make_run(root: Path, clips: Sequence[np.ndarray], scenes: Sequence[int], crossfades: Sequence[float], *,
             condition: Condition = "m2m", book: str = "Book", plans: Sequence[Plan] | None = None,
             transitions: Sequence[str] | None = None) -> RunFolder:
    """A run folder with these clips (one per page), scenes, crossfades and transition kinds (into
    each page; "" within a scene), and a caption sheet whose plans default to 120 BPM in C major."""
    run = RunFolder(root, book, condition)
    settings = SoundtrackSettings(engine="test", pace_seconds=PACE, sample_rate=RATE, whole_file=False)
    cues, records = [], []
    kinds = transitions or [""] * len(clips)
    for page, (samples, scene, fade, kind) in enumerate(zip(clips, scenes, crossfades, kinds, strict=True)):
        file = f"audio/page-{page:03d}.wav"
        write_audio_atomic(run.path / file, samples, RATE)
        seconds = samples.shape[1] / RATE
        cues.append(SoundtrackCue(page, scene, file, page * PACE, seconds, True, fade, "test",
                                  f"music for page {page} of scene {scene}", f"h{page}", transition=kind))
        records.append(Clip(page, file, seconds, RATE, True))
    provenance = Provenance(stage="soundtrack", backend="test", input_hash="x")
    run.write("soundtrack", Soundtrack(book, condition, tuple(cues), tuple(records), settings), provenance)
    plans = plans or [Plan(120, "C", "major", ("Acoustic Grand Piano",), 0.5)] * len(clips)
    sheet = CaptionSheet(tuple(Cue(c.page, c.scene, c.caption, p) for c, p in zip(cues, plans, strict=True)))
    run.write("captions", sheet, Provenance(stage="captions", backend="test", input_hash="x"))
    return run
