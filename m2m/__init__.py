"""m2m: background music for manga, generated from the book itself (M2M-Gen).

    import m2m
    book = m2m.load_book("examples/manga109")
    soundtrack = m2m.render_book(book, m2m.Settings(engine="composer"))
    print(soundtrack.cues[0].caption, soundtrack.file)
"""

from m2m.book import Book, BookError, load_book
from m2m.pipeline import PlanResult, Settings, plan_book, render_book

__all__ = ["Book", "BookError", "PlanResult", "Settings", "load_book", "plan_book", "render_book"]
__version__ = "0.1.0"
