"""The random condition's clip library, rendered by the batch's Ray workers.

The library engine (the paper's random condition) draws every book's pages from one library of
clips made by the batch's music engine. A batch makes it once, before any page, with one Ray task per
clip that declares what its engine needs (as page tasks do); each task renders into a scratch folder
of its own and hands the file back as bytes, which the driver writes into the library being built.
So a MusicGen library is made on the cluster's GPUs, not on the machine the batch runs on, and the
library is the same one `m2m library build` makes (the plans are drawn in order from the seed).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from m2m.batch.clips import write_bytes_atomic
from m2m.cues import Cue
from m2m.music import load_engine
from m2m.music.base import Engine, RenderOptions
from m2m.music.library import LibraryClip
from m2m.music.library_builder import render_library_clip


def library_clip_bytes(engine_name: str, cue: Cue, options: RenderOptions) -> tuple[LibraryClip, bytes, int]:
    """One library clip, rendered on a worker: its index entry, its file's bytes and the worker's pid."""
    engine = load_engine(engine_name)  # once per worker process: load_engine keeps it
    with tempfile.TemporaryDirectory(prefix="m2m-library-") as scratch:
        clip = render_library_clip(engine, cue, options, Path(scratch))
        return clip, (Path(scratch) / clip.file).read_bytes(), os.getpid()


class RayClipMaker:
    """Library clips as Ray tasks (``task_options``: their resources and retries), each written into
    the library folder as it lands; the workers' pids go into ``pids``."""

    def __init__(self, ray: Any, task_options: dict[str, Any], pids: set[int]) -> None:
        self.ray, self.pids = ray, pids
        self.task = ray.remote(library_clip_bytes).options(**task_options)

    def __call__(self, engine: Engine, cues: Sequence[Cue], options: RenderOptions,
                 out: Path) -> Iterator[tuple[int, LibraryClip]]:
        index = {self.task.remote(engine.name, cue, options): cue.page for cue in cues}
        pending = list(index)
        try:
            while pending:
                ready, pending = self.ray.wait(pending, num_returns=1)
                for ref in ready:
                    clip, data, pid = self.ray.get(ref)
                    write_bytes_atomic(out / clip.file, data)
                    self.pids.add(pid)
                    yield index[ref], clip
        finally:  # stopped (or a clip failed): the rest is not wanted
            for ref in pending:
                self.ray.cancel(ref, force=True)
