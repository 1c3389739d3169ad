"""The reader's service over the pipeline's current API (plan_book, render_book with on_clip).

``render_pages`` renders one page at a time: it asks ``render_book`` for the urgent pages first and
stops it cooperatively when the first clip lands (the cue sheet is written after every clip, so
nothing is lost). Each generation step is then short, and the next one follows the page on screen.
``open_run`` reads the run folder's files; the edits rewrite the stage files like a person would
(the run keeps an edited file and reruns what follows it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from m2m.book import Book
from m2m.directives import CaptionSheet, Cue, Directive, DirectiveSheet
from m2m.emotions import EmotionReport
from m2m.runs import Provenance, RunFolder
from m2m.scenes import ScenePlan
from m2m.ui.service import ProgressFn


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
    """Raised from render_book's on_clip to end a step once its page has landed."""


def _quiet(message: str, done: int, total: int) -> None:
    """No streamed progress: the reader shows the run's state after each step."""


class PipelineAdapter:
    """Implements m2m.ui.service.Service on top of ``m2m.pipeline``."""

    def __init__(self, pipeline: ModuleType) -> None:
        self.pipeline = pipeline
        self.Settings = pipeline.Settings

    def _run(self, book: Book, settings: Any) -> RunFolder:
        return RunFolder(settings.runs_root, book.id, settings.condition)

    def plan_book(self, book: Book, settings: Any, progress: ProgressFn = _quiet) -> RunView:
        self.pipeline.plan_book(book, settings, progress)
        return self.open_run(book, settings)

    def render_pages(self, book: Book, settings: Any, pages: Sequence[int], progress: ProgressFn = _quiet,
                     *, force: Sequence[int] = ()) -> RunView:
        wanted = set(pages)

        def landed(clip: Any) -> None:
            wanted.discard(clip.page)
            if not wanted:
                raise _Enough

        # _Enough: the pages asked for are on disk; the rest wait for the next step.
        with contextlib.suppress(_Enough):
            self.pipeline.render_book(book, settings, progress, order=list(pages), force=list(force),
                                      on_clip=landed)
        return self.open_run(book, settings)

    def open_run(self, book: Book, settings: Any) -> RunView:
        from m2m.soundtrack import Soundtrack
        run = self._run(book, settings)
        kinds = {"scenes": ScenePlan, "emotions": EmotionReport, "directives": DirectiveSheet,
                 "descriptions": dict, "captions": CaptionSheet, "soundtrack": Soundtrack}
        records = {stage: run.read(stage, cls) for stage, cls in kinds.items()}
        clips: dict[int, ClipInfo] = {}
        sheet = records["soundtrack"]
        if sheet is not None:
            for cue in sheet.data.cues:
                path = run.path / cue.file
                if path.is_file():
                    clips[cue.page] = ClipInfo(path, cue.seconds, cue.engine, cue.caption, cue.scene,
                                               cue.file_hash or cue.hash)
        data = {stage: (r.data if r else None) for stage, r in records.items()}
        return RunView(data["scenes"], data["emotions"], data["directives"], data["captions"],
                       {stage: r.provenance for stage, r in records.items() if r}, clips)

    def edit_caption(self, book: Book, settings: Any, page: int, caption: str) -> None:
        if not caption.strip():
            raise ValueError("caption: empty; say what the music should sound like")
        run = self._run(book, settings)
        record = run.read("captions", CaptionSheet)
        if record is None:
            raise ValueError("captions: the plan has not run yet")
        cues = tuple(Cue(c.page, c.scene, caption.strip(), c.plan) if c.page == page else c
                     for c in record.data.cues)
        self._write_edited(run, "captions", CaptionSheet(cues), record.provenance)

    def edit_directive(self, book: Book, settings: Any, scene: int, text: str) -> None:
        if not text.strip():
            raise ValueError("directive: empty; say what the scene's music should do")
        run = self._run(book, settings)
        record = run.read("directives", DirectiveSheet)
        if record is None:
            raise ValueError("directives: this run has none (the baseline), or the plan has not run yet")
        sheet = DirectiveSheet(tuple(Directive(d.scene, text.strip() if d.scene == scene else d.text)
                                     for d in record.data.directives))
        self._write_edited(run, "directives", sheet, record.provenance)
        # The captions follow from the directive: plan again (stages before it are reused).
        self.pipeline.plan_book(book, settings, _quiet)

    @staticmethod
    def _write_edited(run: RunFolder, stage: str, data: Any, provenance: Provenance) -> None:
        """Write like a person editing the file: the stored payload hash stays the old one, so the run
        sees the file as edited and keeps it."""
        import json
        path = run.file(stage)
        raw = json.loads(path.read_text(encoding="utf-8"))
        run.write(stage, data, replace(provenance))
        new = json.loads(path.read_text(encoding="utf-8"))
        new["payload_hash"] = raw.get("payload_hash", "")
        from m2m.jsonio import write_json_atomic
        write_json_atomic(path, new)
