"""Which books a batch runs: every title of a Manga109 root, or every simple-format book (a folder
with ``transcript.json``, a ``.zip`` or a ``.cbz``) in a folder, narrowed by ``--books``.

Nothing is loaded here: a book that fails to load fails alone, when the batch reaches it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from m2m.book_data import BookError
from m2m.manga109 import manga109_titles

ARCHIVES = (".zip", ".cbz")


@dataclass(frozen=True)
class BookRef:
    """One book of a catalogue: ``name`` as the report and ``--books`` say it, ``path`` and
    ``book`` as ``load_book(path, book)`` takes them."""

    name: str
    path: Path
    book: str | None = None


def is_manga109_root(root: Path) -> bool:
    return (root / "books.txt").is_file() or (root / "annotations").is_dir()


def catalogue(root: Path, only: Sequence[str] = ()) -> list[BookRef]:
    """The books under ``root`` in a stable order; ``only`` (names, or files listing one name a line)
    keeps those, in the catalogue's order, and a name the root lacks is an error that lists some it has."""
    if not root.is_dir():
        raise BookError(f"{root}: not a folder (a Manga109 root, or a folder of simple-format books)")
    books = _manga109_books(root) if is_manga109_root(root) else _simple_books(root)
    if not books:
        raise BookError(f"{root}: no books (neither books.txt/annotations/ nor folders with transcript.json, "
                        ".zip or .cbz files)")
    wanted = wanted_names(only)
    if not wanted:
        return books
    known = {b.name for b in books}
    missing = [name for name in wanted if name not in known]
    if missing:
        some = ", ".join(sorted(known)[:8])
        raise BookError(f"--books: {', '.join(missing)} not in {root} (it has: {some}{' …' if len(known) > 8 else ''})")
    return [b for b in books if b.name in wanted]


def wanted_names(only: Sequence[str]) -> list[str]:
    """``--books`` arguments as names: a file's lines (blank lines and ``#`` comments skipped), or the name."""
    names: list[str] = []
    for item in only:
        path = Path(item)
        if path.is_file():
            lines = path.read_text(encoding="utf-8-sig").splitlines()
            names += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        else:
            names.append(item)
    return list(dict.fromkeys(names))


def _manga109_books(root: Path) -> list[BookRef]:
    return [BookRef(title, root, title) for title in manga109_titles(root)]


def _simple_books(root: Path) -> list[BookRef]:
    books = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and (entry / "transcript.json").is_file():
            books.append(BookRef(entry.name, entry))
        elif entry.is_file() and entry.suffix.lower() in ARCHIVES:
            books.append(BookRef(entry.name, entry))  # with its suffix: a folder may share the stem
    return books
