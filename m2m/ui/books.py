"""Opening books for the reader: the bundled example, and uploads (.zip/.cbz, simple or Manga109 layout).

Every refusal is a ValueError (BookError, ArchiveError) whose message the reader can act on. Server
folders in a message are replaced by the uploaded file's name: the browser needn't see them.
"""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

from m2m.book import Book, BookError, LoadLimits, load_book, manga109_titles

UPLOAD_TYPES = (".zip", ".cbz")


def open_example(root: Path, limits: LoadLimits) -> Book:
    """The first book ``books.txt`` lists in the bundled Manga109-layout folder."""
    if not (root / "books.txt").is_file():
        raise BookError(f"no example book: {root.name}/books.txt is missing")
    titles = manga109_titles(root)
    if not titles:
        raise BookError(f"no example book: {root.name}/books.txt lists no book")
    return load_book(root, titles[0], limits=limits)


def open_upload(upload: Path, uploads_root: Path, limits: LoadLimits) -> Book:
    """Extract and load an uploaded book into its own folder under ``uploads_root``.

    A refused book leaves nothing behind. The folder of an accepted book stays: its images are what
    the reader shows.
    """
    name = upload.name
    if upload.suffix.lower() not in UPLOAD_TYPES:
        raise BookError(f"{name}: upload a .zip or .cbz archive (got {upload.suffix or 'no extension'})")
    workdir = uploads_root / uuid.uuid4().hex
    try:
        return load_book(upload, workdir=workdir, limits=limits)
    except ValueError as e:
        shutil.rmtree(workdir, ignore_errors=True)
        raise BookError(_plain(str(e), workdir, upload)) from e


def _plain(message: str, workdir: Path, upload: Path) -> str:
    """The message with server paths replaced by the archive's name."""
    for folder in (str(workdir.resolve()), str(workdir)):
        message = re.sub(re.escape(folder) + r"/book-[^/\s:]+", upload.name, message)
        message = message.replace(folder, upload.name)
    for path in (str(upload.resolve()), str(upload)):
        message = message.replace(path, upload.name)
    return message
