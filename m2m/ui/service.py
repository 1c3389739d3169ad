"""What the reader needs from the pipeline, as a protocol, so tests can hand the UI a fake.

The real implementation is ``m2m.ui.adapter.PipelineAdapter``: the typed ``m2m.pipeline`` calls,
one at a time per run folder. Everything the UI reads from a run comes through ``open_run``'s view
(``m2m.pipeline.RunView``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from m2m.book import Book

if TYPE_CHECKING:
    from m2m.pipeline import RunView

ProgressFn = Callable[[str, int, int], None]


class Service(Protocol):
    """The pipeline's functions the reader calls; ``Settings`` builds a settings object."""

    Settings: type

    def plan_book(self, book: Book, settings: Any, progress: ProgressFn = ...) -> Any: ...

    def render_pages(self, book: Book, settings: Any, pages: Sequence[int], progress: ProgressFn = ...) -> Any: ...

    def open_run(self, book: Book, settings: Any) -> RunView: ...

    def edit_caption(self, book: Book, settings: Any, page: int, caption: str) -> Any: ...

    def edit_directive(self, book: Book, settings: Any, scene: int, text: str) -> Any: ...

    def edit_theme(self, book: Book, settings: Any, page: int, voice: str, steps: str) -> Any: ...

    def edit_transition(self, book: Book, settings: Any, scene: int, kind: str, seconds: float | None,
                        why: str) -> Any: ...


def default_service() -> Any:
    """The reader's service over the real pipeline (imported here, not at module import, so the UI
    package stays light): page-by-page rendering, the run as it stands, and edits."""
    from m2m.ui.adapter import PipelineAdapter

    return PipelineAdapter()
