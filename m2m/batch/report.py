"""A batch's outcome: one record per book, the totals, a table for the terminal and a JSON file.

``audio_seconds`` counts the music rendered in this run (reused clips are counted apart, as
``reused``), so the real-time factor says how fast this run made music: audio seconds made per
second of wall time (above 1: faster than it plays).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from m2m.jsonio import to_jsonable, write_json_atomic

BookStatus = Literal["done", "failed", "interrupted"]


@dataclass
class BookResult:
    """One book of the batch; ``error`` says why it failed (the batch went on)."""

    name: str
    source: str
    status: BookStatus = "interrupted"
    error: str = ""
    book_id: str = ""
    run: str = ""
    pages: int = 0
    rendered: int = 0
    reused: int = 0
    audio_seconds: float = 0.0
    plan_seconds: float = 0.0  # stages 1-4 on the driver
    worker_seconds: float = 0.0  # page tasks' render + encode time on the workers, summed
    finish_seconds: float = 0.0  # the cue sheet completed and the whole-book file mixed, on the driver
    soundtrack: str = ""
    planned: tuple[str, ...] = ()  # the plan stages this run computed (the rest came from disk)


@dataclass
class BatchReport:
    """The whole batch, as ``batch-<time>.json`` holds it."""

    started: str
    condition: str
    engine: str
    director: str
    ray_address: str
    cluster_cpus: float
    cluster_gpus: float
    books: list[BookResult] = field(default_factory=list)
    wall_seconds: float = 0.0
    worker_pids: tuple[int, ...] = ()  # the processes that rendered pages (a killed one's retries ran elsewhere)
    path: str = ""  # where this report is written

    @property
    def done(self) -> int:
        return sum(b.status == "done" for b in self.books)

    @property
    def failed(self) -> int:
        return sum(b.status == "failed" for b in self.books)

    @property
    def pages_rendered(self) -> int:
        return sum(b.rendered for b in self.books)

    @property
    def audio_seconds(self) -> float:
        return sum(b.audio_seconds for b in self.books)

    def real_time_factor(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def totals(self) -> dict[str, float | int]:
        return {"books": len(self.books), "done": self.done, "failed": self.failed,
                "interrupted": sum(b.status == "interrupted" for b in self.books),
                "pages": sum(b.pages for b in self.books), "pages_rendered": self.pages_rendered,
                "pages_reused": sum(b.reused for b in self.books),
                "audio_hours": round(self.audio_seconds / 3600, 4), "wall_seconds": round(self.wall_seconds, 2),
                "real_time_factor": round(self.real_time_factor(), 3)}

    def write(self, path: Path) -> Path:
        write_json_atomic(path, {"totals": self.totals(), **to_jsonable(self)})
        return path


def summary_table(report: BatchReport) -> str:
    """The books and the totals, as the terminal shows them at the end of a batch."""
    rows = [("book", "status", "pages", "rendered", "reused", "audio s", "note")]
    for b in report.books:
        rows.append((b.name, b.status, str(b.pages), str(b.rendered), str(b.reused), f"{b.audio_seconds:.0f}",
                     _short(b.error) if b.error else (b.soundtrack or "")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows]
    t = report.totals()
    lines += ["", f"books: {t['done']} done, {t['failed']} failed, {t['interrupted']} interrupted of {t['books']}; "
              f"pages: {t['pages_rendered']} rendered, {t['pages_reused']} reused of {t['pages']}; "
              f"audio: {report.audio_seconds / 3600:.2f} h made in {_duration(report.wall_seconds)} "
              f"(real-time factor {report.real_time_factor():.1f}x: audio seconds per wall second)"]
    return "\n".join(lines)


def _short(text: str, width: int = 90) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[:width - 1] + "…"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
