"""What the reader needs from the pipeline, as a protocol, so tests can hand the UI a fake.

The real implementation is the module ``m2m.pipeline`` itself (modules satisfy protocols
structurally). Everything the UI reads from a run comes through ``open_run``'s view.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from m2m.book import Book

ProgressFn = Callable[[str, int, int], None]


class ClipLike(Protocol):
    path: Path
    seconds: float
    engine: str
    caption: str
    scene: int
    version: str


class RunViewLike(Protocol):
    scenes: Any
    emotions: Any
    directives: Any
    captions: Any
    provenance: Mapping[str, Any]
    clips: Mapping[int, ClipLike]


class Service(Protocol):
    """The pipeline's functions the reader calls; ``Settings`` builds a settings object."""

    Settings: type

    def plan_book(self, book: Book, settings: Any, progress: ProgressFn = ...) -> Any: ...

    def render_pages(self, book: Book, settings: Any, pages: Sequence[int], progress: ProgressFn = ...) -> Any: ...

    def open_run(self, book: Book, settings: Any) -> RunViewLike: ...

    def edit_caption(self, book: Book, settings: Any, page: int, caption: str) -> Any: ...

    def edit_directive(self, book: Book, settings: Any, scene: int, text: str) -> Any: ...


def default_service() -> Any:
    """The reader's service over the real pipeline (imported here, not at module import, so the UI
    package stays light): page-by-page rendering, the run as it stands, and edits."""
    from m2m import pipeline
    from m2m.ui.adapter import PipelineAdapter

    return PipelineAdapter(pipeline)
