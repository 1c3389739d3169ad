"""The order a reader reads a page's lines in: spread halves, rows of panels, then balloons in a panel.

Manga109 annotations list texts in no reading order, so :mod:`m2m.manga109` sorts them here; a
simple-format transcript lists its lines in order already and is left as written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from m2m.book_data import BBox, Direction, Frame, Text


def reading_order(texts: Iterable[Text], frames: Sequence[Frame], width: int, height: int,
                  direction: Direction) -> list[Text]:
    """Sort texts as a reader reads them.

    A wide image is a two-page spread: the right page comes first in a right-to-left book. On a page,
    panels are read row by row from the top, rows right to left (RTL); inside a panel, balloons are
    read from the corner the eye enters (top-right for RTL). A text outside every panel is its own panel.
    """
    texts = list(texts)
    rtl = direction == "rtl"
    spread = width > height

    def half_of(box: BBox) -> int:
        if not spread:
            return 0
        right = (box[0] + box[2]) / 2 >= width / 2
        return 0 if right == rtl else 1

    # A text outside every panel stands as a panel of its own.
    homes = {t.id: _containing_frame(t.bbox, frames) or Frame(f"text:{t.id}", t.page, t.bbox)
             for t in texts if t.bbox is not None}
    all_frames = list(frames) + [f for f in homes.values() if f.id.startswith("text:")]
    frame_rank = {f.id: rank for rank, f in enumerate(_order_frames(all_frames, rtl, half_of))}

    def key(t: Text) -> tuple[int, int]:
        if t.bbox is None:
            return (0, 0)  # no box: keep the given order (sorted() is stable)
        # Distance from the corner where the eye enters the panel (top-right for RTL).
        corner = t.bbox[1] + ((width - t.bbox[2]) if rtl else t.bbox[0])
        return (frame_rank[homes[t.id].id], corner)

    return sorted(texts, key=key)


def _order_frames(frames: Sequence[Frame], rtl: bool, half_of: Callable[[BBox], int]) -> list[Frame]:
    ordered: list[Frame] = []
    for half in (0, 1):
        rows: list[list[Frame]] = []
        for f in sorted((f for f in frames if half_of(f.bbox) == half), key=lambda f: f.bbox[1]):
            if rows and _overlaps_row(f.bbox, rows[-1]):
                rows[-1].append(f)
            else:
                rows.append([f])
        for row in rows:
            ordered.extend(sorted(row, key=lambda f: -f.bbox[2] if rtl else f.bbox[0]))
    return ordered


def _overlaps_row(box: BBox, row: list[Frame]) -> bool:
    """A panel belongs to the current row when it shares most of its height with the row's span."""
    top = min(f.bbox[1] for f in row)
    bottom = max(f.bbox[3] for f in row)
    overlap = min(bottom, box[3]) - max(top, box[1])
    return overlap > 0.5 * min(box[3] - box[1], bottom - top)


def _containing_frame(box: BBox, frames: Sequence[Frame]) -> Frame | None:
    best, best_area = None, 0
    for f in frames:
        w = min(box[2], f.bbox[2]) - max(box[0], f.bbox[0])
        h = min(box[3], f.bbox[3]) - max(box[1], f.bbox[1])
        if w > 0 and h > 0 and w * h > best_area:
            best, best_area = f, w * h
    return best
