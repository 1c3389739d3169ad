"""The book: pages, dialogue, speakers and faces, loaded from the Manga109 layout or the simple format.

Two formats come in (see README "Input formats"):

* Manga109 layout: ``<root>/books.txt``, ``<root>/annotations/<book>.xml``,
  ``<root>/images/<book>/NNN.jpg``, optional Manga109Dialog speakers in
  ``<root>/relationships/<book>.xml`` and optional English glosses in ``<root>/glosses/<book>.json``.
* The simple format: a folder, ``.cbz`` or ``.zip`` holding page images and ``transcript.json``
  (schema: ``m2m/schemas/transcript.schema.json``).

Every problem is a :class:`BookError` (a ValueError) that names the file and the element.

This module is the entry point: :func:`load_book` tells the formats apart and unpacks archives
(safely, :mod:`m2m.archive`). The rest lives along its seams, and every name is importable from here
too: the data (:mod:`m2m.book_data`), the two readers (:mod:`m2m.manga109`, :mod:`m2m.simple_format`),
the checks on a page's image and boxes (:mod:`m2m.page_images`) and the reading order of a page's
lines (:mod:`m2m.reading_order`).
"""

from __future__ import annotations

import atexit
import shutil
from pathlib import Path

from m2m import archive
from m2m.book_data import (
    BBox,
    Body,
    Book,
    BookError,
    Character,
    Direction,
    Face,
    Frame,
    LoadLimits,
    Page,
    Text,
)
from m2m.manga109 import load_manga109, manga109_titles
from m2m.page_images import IMAGE_FORMATS, check_image
from m2m.reading_order import reading_order
from m2m.simple_format import TRANSCRIPT_SCHEMA, load_simple


def load_book(path: str | Path, name: str | None = None, *, workdir: Path | None = None,
              limits: LoadLimits | None = None) -> Book:
    """Load a book from a Manga109 root (``name`` picks the title) or the simple format.

    Archives (``.zip``/``.cbz``) are extracted safely into ``workdir``, or, when None, into a new
    temporary folder that is removed when the process exits (or at once if the book fails to
    load); the returned book's image paths point there.
    """
    limits = limits or LoadLimits()
    root = Path(path)
    if not root.exists():
        raise BookError(f"{root}: no such file or folder")
    if root.is_file():
        if root.suffix.lower() not in {".zip", ".cbz"}:
            raise BookError(f"{root}: not a folder, .zip or .cbz archive")
        extracted = archive.extract_archive(root, workdir, limits.archive)
        try:
            book = _load_folder(_single_subfolder(extracted), Path(path), name, limits)
        except BaseException as e:
            shutil.rmtree(extracted, ignore_errors=True)
            if isinstance(e, ValueError):
                # name the archive the person gave, not the temporary folder it was unpacked into
                raise BookError(str(e).replace(str(extracted), f"{path} (inside)")) from e
            raise
        if workdir is None:
            atexit.register(shutil.rmtree, extracted, True)
        return book
    return _load_folder(root, root, name, limits)


def _load_folder(root: Path, given: Path, name: str | None, limits: LoadLimits) -> Book:
    if (root / "annotations").is_dir() or (root / "books.txt").is_file():
        return load_manga109(root, name, limits=limits)
    if (root / "transcript.json").is_file():
        return load_simple(root, limits=limits)
    raise BookError(f"{given}: neither a Manga109 root (books.txt, annotations/) "
                    "nor a simple-format book (transcript.json)")


def _single_subfolder(root: Path) -> Path:
    """Archives often wrap everything in one folder; look inside it."""
    entries = [p for p in root.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return root


def find_label_file(book: Book) -> Path | None:
    """The book's emotion label file (KangaiSet style, read by ``m2m.emotion_backends.annotations``),
    if it has one: ``<root>/ground_truth/<book>.json`` beside a Manga109 root, ``<folder>/ground_truth.json``
    in a simple-format book."""
    if not book.source:
        return None
    root = Path(book.source)
    candidates = [root / "ground_truth" / f"{book.id}.json", root / "ground_truth" / f"{book.title}.json",
                  root / "ground_truth.json"]
    return next((c for c in candidates if c.is_file()), None)


__all__ = ["IMAGE_FORMATS", "TRANSCRIPT_SCHEMA", "BBox", "Body", "Book", "BookError", "Character", "Direction", "Face",
           "Frame", "LoadLimits", "Page", "Text", "check_image", "find_label_file", "load_book", "load_manga109",
           "load_simple", "manga109_titles", "reading_order"]
