"""Ratings written per second by the study store with 1 and 8 concurrent writers.

Each writer is a thread acting as one participant who submits every (stimulus, label) of a
six-stimulus study, then resubmits them (updates), exactly as the study page would. Every submit is
a committed, fsynced transaction (synchronous=FULL), so the figure is bounded by the disk's
fsync rate, not by Python. Prints figures; asserts nothing about time.

    .venv/bin/python bench/study_store.py [--ratings-per-writer N] [--dir PATH]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from m2m.study import RatingsStore, Scores, Screening, Stimulus, Study

CONDITION_FOLDERS = {c: f"runs/bench/{c}" for c in ("m2m", "baseline", "random")}


def bench_study() -> Study:
    stimuli = tuple(Stimulus(f"s{i}", "bench", tuple(range(4 * i, 4 * i + 4)), CONDITION_FOLDERS) for i in range(6))
    return Study("bench", "Store benchmark", "within-scene", "symbolic", stimuli, "consent")


def run(store_dir: Path, writers: int, ratings_per_writer: int) -> float:
    """Ratings per second with ``writers`` threads each submitting ``ratings_per_writer`` ratings."""
    study = bench_study()
    keys = [(s.id, label) for s in study.stimuli for label in "ABC"]
    with RatingsStore(store_dir / f"bench-{writers}.sqlite3") as store:
        participants = [store.register(study, Screening(4, 4, "fluent")).id for _ in range(writers)]
        barrier = threading.Barrier(writers + 1)
        errors: list[BaseException] = []

        def write(pid: str) -> None:
            barrier.wait()
            try:
                for i in range(ratings_per_writer):
                    stimulus, label = keys[i % len(keys)]
                    score = i % 5 + 1
                    store.submit(study, pid, stimulus, label, Scores(score, score, score))
            except BaseException as e:  # reported after the run; a benchmark with errors has no figure
                errors.append(e)

        threads = [threading.Thread(target=write, args=(pid,)) for pid in participants]
        for t in threads:
            t.start()
        barrier.wait()
        start = time.perf_counter()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        if errors:
            raise RuntimeError(f"{len(errors)} writer(s) failed; first: {errors[0]!r}") from errors[0]
        stored = len(store.ratings(study.id))
        expected = writers * min(ratings_per_writer, len(keys))
        if stored != expected:
            raise RuntimeError(f"expected {expected} stored ratings, found {stored}")
    return writers * ratings_per_writer / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings-per-writer", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3, help="runs per setting; the median is printed")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the database (default: a temp folder)")
    args = parser.parse_args()
    results: dict[int, float] = {}
    for writers in (1, 8):
        # fsync time varies with whatever else uses the disk, so the median of a few runs is printed.
        rates = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
                rates.append(run(Path(tmp), writers, args.ratings_per_writer))
        results[writers] = statistics.median(rates)
        print(f"{writers} writer(s): {results[writers]:8.0f} ratings/s (median of {args.repeat}; min {min(rates):.0f}, max {max(rates):.0f})")
    print(f"8 writers / 1 writer: {results[8] / results[1]:.2f}x (writes serialise in SQLite; WAL keeps readers free)")


if __name__ == "__main__":
    main()
