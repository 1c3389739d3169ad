"""The reader's service over the pipeline's current API (plan_book, render_book with on_clip).

``render_pages`` renders a few pages a step: the pipeline's soundtrack step is handed an engine that
renders only the asked-for pages and then ends the step (the cue sheet is written after every clip,
so nothing is lost, and no page is started only to be thrown away). Each generation step is then
short, and the next one follows the page on screen. One step at a time per run folder: readers of
the same book and condition share its files.
``open_run`` reads the run folder's files; the edits rewrite the stage files like a person would
(the run keeps an edited file and reruns what follows it).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from m2m.book import Book
from m2m.cues import CaptionSheet
from m2m.directives import DirectiveSheet
from m2m.emotions import EmotionReport
from m2m.pipeline import ProgressFn
from m2m.runs import Provenance, RunFolder
from m2m.scenes import ScenePlan


@dataclass(frozen=True)
class ClipInfo:
    path: Path
    seconds: float
    engine: str
    caption: str
    scene: int
    version: str


@dataclass(frozen=True)
class RunView:
    scenes: ScenePlan | None
    emotions: EmotionReport | None
    directives: DirectiveSheet | None
    captions: CaptionSheet | None
    provenance: dict[str, Provenance]
    clips: dict[int, ClipInfo]


class _Enough(Exception):
    """Ends a render step once its pages have landed."""


class _FirstPages:
    """An engine that renders only the first ``count`` pages it is handed, then ends the step.

    The soundtrack step hands the engine every pending page, the asked-for ones first. An engine that
    renders in a pool starts the next page as soon as a worker is free, so stopping it from a clip
    callback would throw away the pages in flight; this wrapper never starts them. When the slice is
    all that is left, the step finishes normally (the complete cue sheet and whole file are written).
    """

    def __init__(self, engine: Any, count: int) -> None:
        self._engine = engine
        self._count = max(1, count)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def render_many(self, cues: Sequence[Any], options: Any, *, after: Mapping[int, int | None] | None = None,
                    previous: Mapping[int, Any] | None = None,
                    on_rendered: Callable[[Any], None] | None = None) -> list[Any]:
        first = list(cues)[: self._count]
        out = self._engine.render_many(first, options, after=after, previous=previous, on_rendered=on_rendered)
        if len(cues) > len(first):
            raise _Enough
        return out


def _quiet(message: str, done: int, total: int) -> None:
    """No streamed progress: the reader shows the run's state after each step."""


class PipelineAdapter:
    """Implements m2m.ui.service.Service on top of ``m2m.pipeline``."""

    def __init__(self, pipeline: ModuleType, *, library_clips: int = 24) -> None:
        """``library_clips``: how many clips the random condition's library gets when the reader has
        to build it (the study's ``m2m study prepare`` builds the same folder with as many)."""
        self.pipeline = pipeline
        self.Settings = pipeline.Settings
        self.library_clips = library_clips
        self._locks: dict[Path, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def _run(self, book: Book, settings: Any) -> RunFolder:
        return RunFolder(settings.runs_root, book.id, settings.condition)

    def _lock(self, book: Book, settings: Any) -> threading.Lock:
        """The run folder's lock: two readers of one run never write its files at once."""
        return self._lock_of(self._run(book, settings).path)

    def _lock_of(self, folder: Path) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(folder.resolve(), threading.Lock())

    def ensure_library(self, settings: Any, progress: ProgressFn = _quiet) -> None:
        """The random condition draws from a clip library made by the settings' engine, once per engine
        and shared by every book: build it on first use, reporting ``progress("library", done, total)``.
        It is built beside its place and moved in when complete, so a stopped build leaves no half library."""
        with self._lock_of(self.pipeline.library_dir(settings)):
            self.pipeline.ensure_library(settings, self.library_clips, progress)

    def plan_book(self, book: Book, settings: Any, progress: ProgressFn = _quiet) -> None:
        """Stages 1-4 into the run folder; the reader reads the result with ``open_run``."""
        with self._lock(book, settings):
            self.pipeline.plan_book(book, settings, progress)

    def render_pages(self, book: Book, settings: Any, pages: Sequence[int], progress: ProgressFn = _quiet,
                     *, force: Sequence[int] = ()) -> RunView:
        """Render ``len(pages)`` pages, ``pages`` first (pages already on disk give their turn to the
        next missing ones in reading order); ``progress("music", done, total)`` as each lands."""
        from m2m.music import load_engine
        from m2m.soundtrack import build_soundtrack

        p = self.pipeline
        if settings.condition == "random":
            self.ensure_library(settings, progress)
        with self._lock(book, settings):
            # What pipeline.render_book does, with the engine wrapped so the step ends on time.
            plan = p.plan_book(book, settings, progress)
            name = p.engine_for(settings)
            # The reader plays page clips; the whole-book file is the command line's (m2m render), so
            # the app's CPU goes to the pages a reader is about to see.
            soundtrack = p.soundtrack_settings(replace(settings, whole_file=False))
            with contextlib.suppress(_Enough):
                build_soundtrack(book.id, settings.condition, plan.captions, plan.run, name, soundtrack,
                                 progress, render=p.render_options(settings), order=list(pages),
                                 force=list(force), engine=_FirstPages(load_engine(name), len(pages)))
        return self.open_run(book, settings)

    def open_run(self, book: Book, settings: Any) -> RunView:
        from m2m.soundtrack import Soundtrack
        run = self._run(book, settings)
        kinds = {"scenes": ScenePlan, "emotions": EmotionReport, "directives": DirectiveSheet,
                 "descriptions": dict, "captions": CaptionSheet, "soundtrack": Soundtrack}
        records = {stage: run.read(stage, cls) for stage, cls in kinds.items()}
        if settings.condition == "random":
            # The random condition has no plan of its own: its pages and scenes are the m2m plan's.
            plan = RunFolder(settings.runs_root, book.id, "m2m")
            records |= {stage: plan.read(stage, kinds[stage]) for stage in ("scenes", "emotions", "captions")}
        clips: dict[int, ClipInfo] = {}
        sheet = records["soundtrack"]
        captions = records["captions"]
        if sheet is not None and captions is not None:
            # Only clips made from this plan with these settings are this reader's music: a clip from
            # another engine, an older plan or an earlier upload of the book renders again.
            from m2m.music.render import clip_hashes
            current = clip_hashes(book.id, captions.data, self.pipeline.engine_for(settings),
                                  self.pipeline.soundtrack_settings(settings), self.pipeline.render_options(settings))
            for cue in sheet.data.cues:
                path = run.path / cue.file
                if path.is_file() and cue.hash == current.get(cue.page):
                    clips[cue.page] = ClipInfo(path, cue.seconds, cue.engine, cue.caption, cue.scene,
                                               cue.file_hash or cue.hash)
        data = {stage: (r.data if r else None) for stage, r in records.items()}
        return RunView(data["scenes"], data["emotions"], data["directives"], data["captions"],
                       {stage: r.provenance for stage, r in records.items() if r}, clips)

    def edit_caption(self, book: Book, settings: Any, page: int, caption: str) -> None:
        with self._lock(book, settings):
            self.pipeline.edit_caption(book, settings, page, caption)

    def edit_directive(self, book: Book, settings: Any, scene: int, text: str) -> None:
        with self._lock(book, settings):
            self.pipeline.edit_directive(book, settings, scene, text)
