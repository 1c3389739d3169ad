"""One page's clip as a unit of batch work: rendered where a worker is, landed where the run folder is.

A worker renders and encodes the page exactly as ``m2m render`` would (``write_clip``, into a scratch
folder of its own) and hands back the files' bytes with the cue sheet's record, so workers need no
shared disk with the driver. The driver lands them: each file through a temporary name and a rename,
then its hash checked against the record before the cue sheet lists it, so no half-written clip is
ever taken as finished. This module knows nothing of Ray (m2m.batch.driver runs it there).
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import soundfile

from m2m.cues import Cue
from m2m.music import load_engine
from m2m.music.base import Audio, RenderOptions
from m2m.music.render import SoundtrackCue, SoundtrackSettings, keep_aside, write_clip
from m2m.runs import Condition, RunFolder, file_hash


@dataclass(frozen=True)
class ClipJob:
    """Everything a worker needs to render one page: no book, no run folder, no model."""

    book_id: str
    condition: Condition
    cue: Cue
    clip_hash: str
    engine: str
    render: RenderOptions
    settings: SoundtrackSettings
    after: int | None = None  # the page whose audio this one continues from


@dataclass(frozen=True)
class LandedClip:
    """A rendered page: its cue sheet record, its files' bytes by path in the run folder, and which
    process made it (the report's and the fault tests' evidence)."""

    record: SoundtrackCue
    files: dict[str, bytes] = field(repr=False)
    worker_pid: int = 0
    render_seconds: float = 0.0

    def audio(self) -> Audio:
        """The clip as the next page continues from it (as ``m2m render`` reads a finished clip back)."""
        data, rate = soundfile.read(io.BytesIO(self.files[self.record.file]), dtype="float32", always_2d=True)
        return Audio(data.T.copy(), int(rate))


def render_clip(job: ClipJob, previous: LandedClip | Audio | None = None) -> LandedClip:
    """Render and encode ``job``'s page (on a worker); ``previous`` is the page it continues from."""
    import time

    started = time.perf_counter()
    engine = load_engine(job.engine)  # once per worker process: load_engine keeps it
    before = previous.audio() if isinstance(previous, LandedClip) else previous
    if job.after is not None and before is None:  # its hash says it continues: never render it fresh
        raise ValueError(f"page {job.cue.page} continues from page {job.after}, whose audio was not given")
    after = {job.cue.page: job.after}
    prompts = {job.after: before} if before is not None and job.after is not None else {}
    rendered = engine.render_many([job.cue], job.render, after=after, previous=prompts)[0]
    with tempfile.TemporaryDirectory(prefix="m2m-clip-") as scratch:
        run = RunFolder(scratch, job.book_id, job.condition)
        record = write_clip(run, job.cue, rendered, job.settings, job.clip_hash)
        files = {name: (run.path / name).read_bytes() for name in (record.file, record.mp3, record.midi) if name}
    return LandedClip(record, files, os.getpid(), time.perf_counter() - started)


def land_clip(run: RunFolder, clip: LandedClip, current: SoundtrackCue | None) -> SoundtrackCue:
    """Write a worker's clip into ``run`` (the page's ``current`` clip put aside first, as a render
    would) and return its record once the audio on disk is the one the record names."""
    keep_aside(run, current, clip.record.hash)
    for name, data in clip.files.items():
        write_bytes_atomic(run.path / name, data)
    written = file_hash(run.path / clip.record.file)
    if written != clip.record.file_hash:
        raise OSError(f"{run.path / clip.record.file}: written as {written}, the worker made {clip.record.file_hash}")
    return clip.record


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.landing")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
