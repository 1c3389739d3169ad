"""The reader's service: the pipeline's reader calls, one at a time per run folder.

Readers of the same book and condition share its files, so each call that writes a run holds that
run folder's lock, and the clip library (shared by every book) is built under its own.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from m2m import pipeline
from m2m.book import Book
from m2m.conditions import condition_of
from m2m.music.base import Engine
from m2m.pipeline import ProgressFn, RunView, Settings


def _quiet(message: str, done: int, total: int) -> None:
    """No streamed progress: the reader shows the run's state after each step."""


class PipelineAdapter:
    """Implements m2m.ui.service.Service over ``m2m.pipeline``.

    ``library_clips``: how many clips the random condition's library gets when the reader has to
    build it (``m2m study prepare`` builds the same folder with as many). ``engine`` replaces the
    registry's music engine (tests)."""

    Settings = Settings

    def __init__(self, *, library_clips: int = 24, engine: Engine | None = None) -> None:
        self.library_clips = library_clips
        self.engine = engine
        self._locks: dict[Path, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def _lock(self, folder: Path) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(folder.resolve(), threading.Lock())

    def _run_lock(self, book: Book, settings: Settings) -> threading.Lock:
        """The run folder's lock: two readers of one run never write its files at once."""
        return self._lock(pipeline.run_folder(book, settings).path)

    def ensure_library(self, settings: Settings, progress: ProgressFn = _quiet) -> None:
        """Build the clip library the settings' condition draws from, on first use."""
        with self._lock(pipeline.library_dir(settings)):
            pipeline.ensure_library(settings, self.library_clips, progress)

    def plan_book(self, book: Book, settings: Settings, progress: ProgressFn = _quiet) -> None:
        """Stages 1-4 into the run folder; the reader reads the result with ``open_run``."""
        with self._run_lock(book, settings):
            pipeline.plan_book(book, settings, progress)

    def render_pages(self, book: Book, settings: Settings, pages: Sequence[int], progress: ProgressFn = _quiet,
                     *, force: Sequence[int] = ()) -> RunView:
        """``pipeline.render_pages``: ``len(pages)`` pages, ``pages`` first."""
        if condition_of(settings.condition).uses_library:
            self.ensure_library(settings, progress)
        with self._run_lock(book, settings):
            return pipeline.render_pages(book, settings, pages, progress, force=force, engine=self.engine)

    def open_run(self, book: Book, settings: Settings) -> RunView:
        return pipeline.open_run(book, settings, engine=self.engine)

    def edit_caption(self, book: Book, settings: Settings, page: int, caption: str) -> None:
        with self._run_lock(book, settings):
            pipeline.edit_caption(book, settings, page, caption)

    def edit_directive(self, book: Book, settings: Settings, scene: int, text: str) -> None:
        with self._run_lock(book, settings):
            pipeline.edit_directive(book, settings, scene, text)

    def edit_theme(self, book: Book, settings: Settings, page: int, voice: str, steps: str) -> None:
        with self._run_lock(book, settings):
            pipeline.edit_theme(book, settings, page, voice, steps)

    def edit_transition(self, book: Book, settings: Settings, scene: int, kind: str, seconds: float | None,
                        why: str) -> None:
        with self._run_lock(book, settings):
            pipeline.edit_transition(book, settings, scene, kind, seconds, why)
