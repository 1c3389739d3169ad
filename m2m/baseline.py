"""The paper's baseline: each page on its own, with no scene context.

Page image + that page's dialogue → a page description (``03-descriptions.json``) → a music caption
(``04-captions.json``), page by page. ``Cue.scene`` is the page index, because the baseline knows no
scenes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from m2m.book import Book, Page
from m2m.cues import CaptionSheet, Cue, check_plan
from m2m.llm import Meter
from m2m.runs import Producer, Staged, produced_by


@dataclass(frozen=True)
class PageDescription:
    """What a page shows and says, in words. ``features`` holds the measured image statistics when the
    offline director wrote it (brightness, ink, screentone, panels: fractions 0-1 and a count)."""

    page: int
    text: str
    features: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PageDescriptions:
    """``03-descriptions.json``: one description per page, in page order."""

    descriptions: tuple[PageDescription, ...]

    def description(self, page: int) -> PageDescription:
        for description in self.descriptions:
            if description.page == page:
                return description
        raise ValueError(f"page: no description for page {page}")


class PageDirector(Producer, Protocol):
    """What the baseline asks of a director (:class:`m2m.director.Director` is one). Every method
    adds its calls to ``meter``."""

    def describe_page(self, book: Book, page: Page, meter: Meter) -> PageDescription:
        ...

    def caption_page(self, book: Book, page: Page, description: PageDescription, meter: Meter) -> Cue:
        ...


def describe_pages(book: Book, director: PageDirector) -> Staged[PageDescriptions]:
    """Describe every page from its image and its dialogue (baseline step 1)."""
    meter = Meter()
    descriptions = []
    for page in book.pages:
        description = director.describe_page(book, page, meter)
        if description.page != page.index or not description.text.strip():
            raise ValueError(f"description: the {director.backend} director gave no description for page {page.index}")
        descriptions.append(description)
    provenance = produced_by(director, "descriptions", "baseline_describe", meter.as_usage())
    return Staged(PageDescriptions(tuple(descriptions)), provenance)


def caption_pages(book: Book, descriptions: PageDescriptions, director: PageDirector) -> Staged[CaptionSheet]:
    """A caption and plan per page from its description alone (baseline step 2)."""
    meter = Meter()
    cues = []
    for page in book.pages:
        cue = director.caption_page(book, page, descriptions.description(page.index), meter)
        if not cue.caption.strip():
            raise ValueError(f"captions: the {director.backend} director wrote an empty caption for page {page.index}")
        cues.append(Cue.planned(page.index, page.index, cue.caption.strip(),
                                check_plan(cue.plan, f"page {page.index} plan")))
    provenance = produced_by(director, "captions", "baseline_caption", meter.as_usage())
    return Staged(CaptionSheet(tuple(cues)), provenance)
