"""What a loaded book is: pages, panels, faces, bodies, lines of dialogue and characters, as frozen data.

Both readers (:mod:`m2m.manga109`, :mod:`m2m.simple_format`) build these and :mod:`m2m.book`, which
imports the readers, re-exports them; so they live below all three, and a reader never imports the
entry point that imports it. :class:`BookError` and :class:`LoadLimits` are here too, being what
every reader raises and obeys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from m2m import archive

BBox = tuple[int, int, int, int]
"""A box in image pixels: (xmin, ymin, xmax, ymax)."""

Direction = Literal["rtl", "ltr"]


class BookError(ValueError):
    """A book that can't be loaded; the message names the file and the element."""


@dataclass(frozen=True)
class Character:
    id: str
    name: str


@dataclass(frozen=True)
class Frame:
    id: str
    page: int
    bbox: BBox


@dataclass(frozen=True)
class Body:
    id: str
    page: int
    bbox: BBox
    character: str


@dataclass(frozen=True)
class Face:
    id: str
    page: int
    bbox: BBox
    character: str


@dataclass(frozen=True)
class Text:
    """One line of dialogue. ``speaker`` is a character id, or None when unknown."""

    id: str
    page: int
    bbox: BBox | None
    text: str
    speaker: str | None = None
    gloss: str | None = None


@dataclass(frozen=True)
class Page:
    """One image of the book (in Manga109 a two-page spread). ``texts`` are in reading order."""

    index: int
    image: str
    width: int
    height: int
    frames: tuple[Frame, ...] = ()
    faces: tuple[Face, ...] = ()
    texts: tuple[Text, ...] = ()
    bodies: tuple[Body, ...] = ()


@dataclass(frozen=True)
class Book:
    id: str
    title: str
    pages: tuple[Page, ...]
    characters: tuple[Character, ...] = ()
    direction: Direction = "rtl"
    source: str = ""
    format: Literal["manga109", "simple"] = "manga109"

    def character_name(self, character_id: str | None) -> str:
        """The character's name, or "unknown" for a line with no known speaker."""
        if character_id is None:
            return "unknown"
        for character in self.characters:
            if character.id == character_id:
                return character.name
        return character_id

    def dialogue(self) -> tuple[Text, ...]:
        """Every line of the book in reading order."""
        return tuple(text for page in self.pages for text in page.texts)


@dataclass(frozen=True)
class LoadLimits:
    """Caps for untrusted input (uploads)."""

    max_pages: int = 500
    max_image_pixels: int = 40_000_000
    archive: archive.ArchiveLimits = field(default_factory=archive.ArchiveLimits)


def safe_id(name: str) -> str:
    """A book id safe as a folder name: letters, digits, '-', '_' (others become '-')."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")
    return slug or "book"
