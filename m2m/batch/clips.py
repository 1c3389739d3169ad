"""One page's clip (or one scene change's stinger) as a unit of batch work: rendered where a worker
is, landed where the run folder is.

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
from m2m.stingers import StingerClip, StingerJob, render_stinger, write_stinger


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
    land_files(run, clip.files, clip.record.file, clip.record.file_hash)
    return clip.record


@dataclass(frozen=True)
class StingerTask:
    """Everything a worker needs to render one stinger (m2m.stingers): the job, its engine and
    settings; ``previous`` is the old page's audio, for an engine that continues from it."""

    book_id: str
    condition: Condition
    job: StingerJob
    engine: str
    render: RenderOptions
    settings: SoundtrackSettings
    previous: Audio | None = field(default=None, repr=False)


@dataclass(frozen=True)
class LandedStinger:
    """A rendered stinger: its ``soundtrack.json`` record, its files' bytes, and who made it."""

    record: StingerClip
    files: dict[str, bytes] = field(repr=False)
    worker_pid: int = 0
    render_seconds: float = 0.0


def render_stinger_clip(task: StingerTask) -> LandedStinger:
    """Render and encode ``task``'s stinger (on a worker), as ``m2m render`` would."""
    import time

    started = time.perf_counter()
    engine = load_engine(task.engine)
    rendered = render_stinger(engine, task.job, task.render, task.previous)
    with tempfile.TemporaryDirectory(prefix="m2m-stinger-") as scratch:
        run = RunFolder(scratch, task.book_id, task.condition)
        record, _ = write_stinger(run, task.job, rendered, task.settings)
        files = {name: (run.path / name).read_bytes() for name in (record.file, record.midi) if name}
    return LandedStinger(record, files, os.getpid(), time.perf_counter() - started)


def land_stinger(run: RunFolder, stinger: LandedStinger) -> StingerClip:
    """Write a worker's stinger into ``run``; its record once the audio on disk is the one it names."""
    land_files(run, stinger.files, stinger.record.file, stinger.record.file_hash)
    return stinger.record


def land_files(run: RunFolder, files: dict[str, bytes], audio: str, audio_hash: str) -> None:
    """Each file through a temporary name and a rename, then the audio's hash checked against the
    worker's, so no half-written or corrupted clip is ever listed as made."""
    for name, data in files.items():
        write_bytes_atomic(run.path / name, data)
    written = file_hash(run.path / audio)
    if written != audio_hash:
        raise OSError(f"{run.path / audio}: written as {written}, the worker made {audio_hash}")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.landing")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
