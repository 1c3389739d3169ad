"""m2m: background music for manga, generated from the book itself (M2M-Gen).

    import m2m
    book = m2m.load_book("examples/manga109")
    soundtrack = m2m.render_book(book, m2m.Settings(engine="composer"))
    print(soundtrack.cues[0].caption, soundtrack.file)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from m2m.book import Book, BookError, load_book

if TYPE_CHECKING:
    from m2m.pipeline import PlanResult, Settings, plan_book, render_book

# The pipeline imports every stage (directors, LLM client, engines); it is loaded when one of its
# names is first asked for, so importing one part of the package (an engine, the book reader) loads
# only what that part needs.
_PIPELINE_NAMES = ("PlanResult", "Settings", "plan_book", "render_book")


def __getattr__(name: str) -> Any:
    if name in _PIPELINE_NAMES:
        from m2m import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'm2m' has no attribute {name!r}")


__all__ = ["Book", "BookError", "PlanResult", "Settings", "load_book", "plan_book", "render_book"]
__version__ = "0.1.0"
