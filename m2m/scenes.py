"""Stage 1: scene boundaries from the book's dialogue transcript.

A scene is a run of consecutive pages sharing time, place and cast (the paper's definition). The
director proposes scenes over a window of pages; this module splits long books into overlapping
windows, checks every answer (pages in range, increasing, the window covered), merges the windows and
builds the :class:`ScenePlan`. It also scores a plan against ground truth (boundary precision, recall
and F1 with a page of tolerance), which ``m2m eval-scenes`` prints.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from m2m.book import Book, Page
from m2m.llm import Meter
from m2m.prompts import quote
from m2m.runs import Producer, Staged, produced_by


@dataclass(frozen=True)
class Scene:
    """A run of consecutive pages that share time, place and cast. ``lines`` are text ids in reading order."""

    index: int
    pages: tuple[int, ...]
    lines: tuple[str, ...] = ()
    summary: str = ""


@dataclass(frozen=True)
class ScenePlan:
    scenes: tuple[Scene, ...]

    def scene_of(self, page: int) -> Scene:
        for scene in self.scenes:
            if page in scene.pages:
                return scene
        raise ValueError(f"page: {page} belongs to no scene")


@dataclass(frozen=True)
class SceneSpan:
    """A director's answer for one scene: its first and last page (page indexes, inclusive)."""

    first_page: int
    last_page: int
    summary: str = ""


class SceneDirector(Producer, Protocol):
    """What stage 1 asks of a director (:class:`m2m.director.Director` is one). Every method adds
    its calls to ``meter``."""

    @property
    def window_lines(self) -> int | None:
        """Most dialogue lines one boundary request can take (None: the whole book at once)."""
        ...

    def scene_boundaries(self, book: Book, pages: Sequence[Page], meter: Meter) -> list[SceneSpan]:
        """Scenes covering exactly ``pages`` (consecutive pages of the book), in order."""
        ...


# ---------------------------------------------------------------------------------------------
# The stage


def detect_scenes(book: Book, director: SceneDirector) -> Staged[ScenePlan]:
    """Split the book into scenes from its dialogue (stage 1)."""
    meter = Meter()
    pages = book.pages
    if not pages:
        raise ValueError(f"book: {book.id!r} has no pages")
    limit = director.window_lines
    windows = [(0, len(pages))] if limit is None else page_windows(pages, limit)
    answers: list[list[SceneSpan]] = []
    for start, stop in windows:
        window = pages[start:stop]
        spans = director.scene_boundaries(book, window, meter)
        check_spans(spans, [p.index for p in window])
        answers.append(spans)
    spans = merge_windows(pages, windows, answers)
    plan = plan_from_spans(book, spans)
    provenance = produced_by(
        director, "scenes", "scene_boundaries", meter.as_usage(),
        warnings=(f"split into {len(windows)} overlapping windows of at most {limit} lines",)
        if len(windows) > 1 else ())
    return Staged(plan, provenance)


def page_windows(pages: Sequence[Page], max_lines: int, overlap: float = 0.25) -> list[tuple[int, int]]:
    """Overlapping windows of page positions ``[start, stop)`` holding at most ``max_lines`` lines each.

    A page with more lines than the limit still gets a window of its own; consecutive windows share
    about ``overlap`` of their lines so a boundary near a window's edge is seen in context by the next.
    """
    counts = [max(1, len(p.texts)) for p in pages]  # a silent page still costs a transcript line
    windows: list[tuple[int, int]] = []
    start = 0
    while True:
        stop, total = start, 0
        while stop < len(pages) and (stop == start or total + counts[stop] <= max_lines):
            total += counts[stop]
            stop += 1
        windows.append((start, stop))
        if stop >= len(pages):
            return windows
        # Step back so the next window starts `overlap` of the lines before this one ends.
        back, kept = stop, 0
        while back - 1 > start + 1 and kept + counts[back - 1] <= overlap * max_lines:
            back -= 1
            kept += counts[back]
        if back == stop and stop - start > 1:
            back = stop - 1  # always share at least one page
        start = max(back, start + 1)


def check_spans(spans: Sequence[SceneSpan], pages: Sequence[int]) -> None:
    """A window's scenes must run in order over exactly its pages: first to last, no gaps, no overlaps."""
    if not spans:
        raise ValueError("scenes: the answer has no scenes")
    if not pages:
        raise ValueError("pages: the window is empty")
    first, last = pages[0], pages[-1]
    expected = first
    for n, span in enumerate(spans):
        if span.first_page < first or span.last_page > last:
            raise ValueError(f"scenes[{n}]: pages {span.first_page}-{span.last_page} are outside "
                             f"the pages given ({first}-{last})")
        if span.last_page < span.first_page:
            raise ValueError(f"scenes[{n}]: last_page {span.last_page} comes before first_page {span.first_page}")
        if span.first_page != expected:
            what = "leaves a gap" if span.first_page > expected else "overlaps the previous scene"
            raise ValueError(f"scenes[{n}]: first_page {span.first_page} {what}; it should be {expected}")
        expected = span.last_page + 1
    if expected != last + 1:
        raise ValueError(f"scenes: the last scene ends at page {expected - 1}, but the pages run to {last}")


def check_scene_plan(plan: ScenePlan, book: Book) -> None:
    """Scenes numbered 0, 1, ... that cover every page of ``book`` once, in reading order, as runs of
    consecutive pages: what every later stage assumes (a hand-edited ``01-scenes.json`` may not)."""
    order = [page.index for page in book.pages]
    covered = [page for scene in plan.scenes for page in scene.pages]
    if not plan.scenes:
        raise ValueError("scenes: none; every page must belong to a scene")
    for n, scene in enumerate(plan.scenes):
        if scene.index != n:
            raise ValueError(f"scenes[{n}]: index {scene.index}; scenes are numbered 0, 1, 2 ... in order")
        if not scene.pages:
            raise ValueError(f"scenes[{n}]: no pages")
    unknown = sorted(set(covered) - set(order))
    if unknown:
        raise ValueError(f"scenes: page {unknown[0]} is not a page of the book (its pages are {order[0]}-{order[-1]})")
    if covered != order:
        missing = sorted(set(order) - set(covered))
        repeated = sorted({p for p in covered if covered.count(p) > 1})
        what = (f"page {missing[0]} belongs to no scene" if missing else
                f"page {repeated[0]} is in more than one scene" if repeated else "pages are out of reading order")
        raise ValueError(f"scenes: {what}; the scenes must cover pages {order[0]}-{order[-1]} once, in order")


def merge_windows(pages: Sequence[Page], windows: Sequence[tuple[int, int]],
                  answers: Sequence[Sequence[SceneSpan]]) -> list[SceneSpan]:
    """One list of scenes from overlapping windows.

    Each window is trusted for the pages between the midpoints of its overlaps with its neighbours,
    where it saw the most context on both sides; scene starts are taken from there.
    """
    indexes = [p.index for p in pages]
    starts: dict[int, str] = {indexes[0]: ""}
    for n, ((start, stop), spans) in enumerate(zip(windows, answers, strict=True)):
        own_from = start if n == 0 else (start + windows[n - 1][1]) // 2
        own_to = stop if n == len(windows) - 1 else (windows[n + 1][0] + stop) // 2
        for span in spans:
            position = indexes.index(span.first_page)
            if position == start and n > 0:
                continue  # a window's first scene starts where the window was cut, not at a boundary
            if own_from <= position < own_to:
                starts[span.first_page] = span.summary
    ordered = sorted(starts)
    merged: list[SceneSpan] = []
    for n, first in enumerate(ordered):
        last = indexes[indexes.index(ordered[n + 1]) - 1] if n + 1 < len(ordered) else indexes[-1]
        merged.append(SceneSpan(first, last, starts[first]))
    return merged


def plan_from_spans(book: Book, spans: Sequence[SceneSpan]) -> ScenePlan:
    scenes = []
    for n, span in enumerate(spans):
        pages = tuple(p.index for p in book.pages if span.first_page <= p.index <= span.last_page)
        lines = tuple(t.id for p in book.pages if p.index in pages for t in p.texts)
        scenes.append(Scene(index=n, pages=pages, lines=lines, summary=span.summary))
    return ScenePlan(tuple(scenes))


# ---------------------------------------------------------------------------------------------
# The transcript the directors read


def transcript(book: Book, pages: Sequence[Page], *, glosses: bool = True) -> str:
    """The dialogue as ``PAGE <n> <speaker>: "<text>"`` lines, one per balloon, in reading order.

    Text is quoted as a JSON string so a line of dialogue can't pose as a new line of the transcript
    or as an instruction. A page without dialogue says so: silent pages often open a scene.
    """
    out: list[str] = []
    for page in pages:
        if not page.texts:
            out.append(f"PAGE {page.index} (no dialogue)")
        for text in page.texts:
            line = f"PAGE {page.index} {book.character_name(text.speaker)}: {quote(text.text)}"
            if glosses and text.gloss:
                line += f"  (English: {quote(text.gloss)})"
            out.append(line)
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# Scoring against ground truth


@dataclass(frozen=True)
class BoundaryScore:
    """Scene-boundary agreement: a boundary is the first page of every scene but the first."""

    precision: float
    recall: float
    f1: float
    predicted: tuple[int, ...]
    truth: tuple[int, ...]
    tolerance: int


def boundaries(plan: ScenePlan) -> tuple[int, ...]:
    return tuple(scene.pages[0] for scene in plan.scenes[1:] if scene.pages)


def score_boundaries(predicted: Sequence[int], truth: Sequence[int], tolerance: int = 1) -> BoundaryScore:
    """Precision, recall and F1 with each true boundary matched at most once within ``tolerance`` pages."""
    unmatched = sorted(truth)
    hits = 0
    for page in sorted(predicted):
        near = [t for t in unmatched if abs(t - page) <= tolerance]
        if near:
            unmatched.remove(min(near, key=lambda t: (abs(t - page), t)))
            hits += 1
    precision = hits / len(predicted) if predicted else (1.0 if not truth else 0.0)
    recall = hits / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return BoundaryScore(precision, recall, f1, tuple(sorted(predicted)), tuple(sorted(truth)), tolerance)


def ground_truth_path(book: Book) -> Path | None:
    """``<root>/ground_truth/<Book>.json`` beside a Manga109-layout book, when it exists."""
    if not book.source:
        return None
    root = Path(book.source)
    for name in (book.id, book.title):
        candidate = root / "ground_truth" / f"{name}.json"
        if candidate.is_file():
            return candidate
    return None


def load_ground_truth(path: Path) -> tuple[int, ...]:
    """The true boundaries from a ground-truth file: ``{"scenes": [{"first_page", "last_page", ...}]}``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        firsts = sorted(int(scene["first_page"]) for scene in data["scenes"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a ground-truth file with scenes[].first_page ({e})") from e
    return tuple(firsts[1:])
