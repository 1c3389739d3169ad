"""`m2m batch` figures: throughput (pages/s) with 1 and 2 Ray workers on the same books, as a ratio,
and Ray's overhead against the plain single-process `m2m render` on one book.

Each run starts from an empty runs folder (nothing reused) with the composer and the offline
director. Wall times include planning and the Ray instance's start, which is also timed on its own.
Prints figures, asserts nothing about time; the machine is shared, so ratios are the figures to read.
Run: ``.venv/bin/python bench/batch.py [--books 3] [--repeat 2]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "manga109"


def catalogue_of(root: Path, books: int) -> Path:
    """A Manga109 root with ``books`` copies of the example book under other titles."""
    (root / "annotations").mkdir(parents=True)
    (root / "images").mkdir()
    names = [f"Copy{i + 1}" for i in range(books)]
    xml = (EXAMPLE / "annotations" / "ShiokazeDays.xml").read_text(encoding="utf-8")
    for name in names:
        (root / "annotations" / f"{name}.xml").write_text(xml, encoding="utf-8")
        (root / "images" / name).symlink_to((EXAMPLE / "images" / "ShiokazeDays").resolve())
    (root / "books.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    return root


def batch_seconds(root: Path, runs: Path, workers: int, only: list[str] | None = None) -> tuple[float, int]:
    from m2m.batch.catalogue import catalogue
    from m2m.batch.driver import BatchOptions, run_batch
    from m2m.pipeline import Settings

    shutil.rmtree(runs, ignore_errors=True)
    report = run_batch(catalogue(root, only or ()), Settings(runs_root=runs), BatchOptions(workers=workers))
    if report.failed:
        raise RuntimeError(f"a book failed: {[b.error for b in report.books if b.error]}")
    return report.wall_seconds, report.pages_rendered


def render_seconds(root: Path, runs: Path, name: str) -> tuple[float, int]:
    from m2m.book import load_book
    from m2m.pipeline import Settings, render_book

    shutil.rmtree(runs, ignore_errors=True)
    started = time.perf_counter()
    soundtrack = render_book(load_book(root, name), Settings(runs_root=runs))
    return time.perf_counter() - started, len(soundtrack.cues)


def ray_start_seconds(workers: int) -> float:
    from m2m.batch.driver import BatchOptions, ray_session

    started = time.perf_counter()
    with ray_session(BatchOptions(workers=workers)):
        pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--books", type=int, default=3, help="copies of the 16-page example book (default 3)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each figure (medians are printed)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="m2m-bench-batch-") as tmp:
        root = catalogue_of(Path(tmp) / "root", args.books)
        runs = Path(tmp) / "runs"
        start = [ray_start_seconds(2) for _ in range(args.repeat)]
        print(f"Ray local instance start + shutdown: {statistics.median(start):.2f} s (median of {args.repeat})")

        rates = {}
        for workers in (1, 2):
            results = [batch_seconds(root, runs, workers) for _ in range(args.repeat)]
            pages = results[0][1]
            rates[workers] = statistics.median(p / s for s, p in results)
            print(f"batch, {workers} worker{'s' if workers > 1 else ''}: {pages} pages of {args.books} books in "
                  f"{', '.join(f'{s:.1f}' for s, _ in results)} s -> {rates[workers]:.2f} pages/s")
        print(f"throughput, 2 workers / 1 worker: {rates[2] / rates[1]:.2f}x (2 cores: at most 2x)")

        plain = [render_seconds(root, runs, "Copy1") for _ in range(args.repeat)]
        one_book = {w: [batch_seconds(root, runs, w, ["Copy1"]) for _ in range(args.repeat)] for w in (1, 2)}
        plain_s = statistics.median(s for s, _ in plain)
        print(f"one book ({plain[0][1]} pages): m2m render {', '.join(f'{s:.1f}' for s, _ in plain)} s")
        for workers, results in one_book.items():
            batch_s = statistics.median(s for s, _ in results)
            print(f"one book, batch with {workers} worker{'s' if workers > 1 else ''}: "
                  f"{', '.join(f'{s:.1f}' for s, _ in results)} s -> {batch_s / plain_s:.2f}x m2m render's time "
                  f"({(batch_s - statistics.median(start)) / plain_s:.2f}x without Ray's start)")


if __name__ == "__main__":
    main()
