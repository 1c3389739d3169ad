"""m2m: background music for manga, generated from the book itself (M2M-Gen)."""

from m2m.book import Book, BookError, load_book

__all__ = ["Book", "BookError", "load_book"]
__version__ = "0.1.0"
