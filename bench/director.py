"""Benchmark the director (stages 1, 3, 4 and the baseline) on a book: boundary F1, time, calls, variety.

    .venv/bin/python bench/director.py [PATH] [--book NAME] [--llm offline|openai]

Prints figures, asserts nothing. PATH defaults to the bundled example book.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from m2m.baseline import caption_pages, describe_pages
from m2m.book import load_book
from m2m.directives import write_captions, write_directives
from m2m.director import DIRECTORS, load_director
from m2m.llm import LLMSettings
from m2m.scenes import boundaries, detect_scenes, ground_truth_path, load_ground_truth, score_boundaries

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "manga109"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=str(EXAMPLE))
    parser.add_argument("--book", default=None)
    parser.add_argument("--llm", choices=DIRECTORS, default="offline")
    args = parser.parse_args()
    book = load_book(args.path, args.book)
    director = load_director(args.llm, LLMSettings.from_env() if args.llm == "openai" else None)
    print(f"{book.title}: {len(book.pages)} pages, {len(book.dialogue())} lines; director {director.backend}")

    timings: dict[str, float] = {}

    def timed(name, fn):
        start = time.perf_counter()
        staged = fn()
        timings[name] = time.perf_counter() - start
        usage = staged.provenance.usage
        print(f"  {name:<13} {timings[name] * 1000:8.1f} ms  calls {usage.get('calls', 0)}  "
              f"tokens {usage.get('prompt_tokens', 0)}+{usage.get('completion_tokens', 0)}  cached {usage.get('cached', 0)}")
        return staged.data

    plan = timed("scenes", lambda: detect_scenes(book, director))
    sheet = timed("directives", lambda: write_directives(book, plan, None, director))
    captions = timed("captions", lambda: write_captions(book, plan, None, sheet, director))
    descriptions = timed("descriptions", lambda: describe_pages(book, director))
    baseline = timed("baseline", lambda: caption_pages(book, descriptions, director))

    truth_file = ground_truth_path(book)
    if truth_file is not None:
        score = score_boundaries(boundaries(plan), load_ground_truth(truth_file))
        print(f"boundaries: predicted {list(score.predicted)}, truth {list(score.truth)}  "
              f"P {score.precision:.3f}  R {score.recall:.3f}  F1 {score.f1:.3f} (±1 page)")
    for name, sheet_ in (("m2m", captions), ("baseline", baseline)):
        cues = sheet_.cues
        unique = len({c.caption for c in cues}) / len(cues)
        keys_per_scene = [len({c.plan.key for c in cues if c.page in s.pages}) for s in plan.scenes]
        tempo_spread = statistics.pstdev([c.plan.tempo for c in cues])
        print(f"{name:<9} unique captions {unique:.0%}  keys per scene {keys_per_scene}  "
              f"tempo sd {tempo_spread:.1f} BPM  mean words {statistics.mean(len(c.caption.split()) for c in cues):.1f}")


if __name__ == "__main__":
    main()
