"""The reader's browser tests that edit, turn and upload, round after round, on a machine made busy.

    python bench/reader_stress.py                 # 20 rounds, two busy loops (one per core)
    python bench/reader_stress.py --rounds 3 --hogs 0

Each round is one fresh pytest run (a new app, a new browser) of the tests below, while ``--hogs``
processes spin on the CPU beside it, as a CI machine shared with other work is. Prints each round's
outcome and time, then the figure that matters: failed tests out of tests run (target 0), and which.
A failure's output is kept in ``test-artifacts/reader-stress/round-NN.log``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "test-artifacts" / "reader-stress"

TESTS = [
    "tests/ui/test_reader_browser.py::test_edit_caption_plays_new_clip",
    "tests/ui/test_reader_browser.py::test_the_panels_follow_a_burst_of_turns_to_its_last_page",
    "tests/ui/test_reader_browser.py::test_fast_turns_leave_one_source",
    "tests/ui/test_reader_browser.py::test_a_turn_the_server_never_ran_is_caught_up_by_the_pull",
    "tests/ui/test_reader_browser.py::test_upload_opens_the_book_and_plans_it",
    "tests/ui/test_reader_lost_answers.py",
]


def spin() -> None:
    """A busy loop: one core's worth of other work."""
    while True:
        pass


def one_round(number: int, timeout_s: float) -> tuple[int, int, list[str], float]:
    """(passed, failed, the failed tests' ids, seconds) of one pytest run of TESTS."""
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "browser", "-p", "no:cacheprovider",
                               *TESTS], cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
        out = done.stdout + done.stderr
    except subprocess.TimeoutExpired as e:
        out = f"timed out after {timeout_s:.0f} s\n{e.stdout or ''}"
    seconds = time.monotonic() - started
    passed = sum(int(n) for n in re.findall(r"(\d+) passed", out))
    failed = sum(int(n) for n in re.findall(r"(\d+) (?:failed|errors?)\b", out))
    names = re.findall(r"^(?:FAILED|ERROR) (\S+)", out, re.M)
    if failed or not passed:
        LOGS.mkdir(parents=True, exist_ok=True)
        (LOGS / f"round-{number:02d}.log").write_text(out, encoding="utf-8")
        failed = max(failed, 1)  # a run that passed nothing failed, whatever it printed
    return passed, failed, names, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--hogs", type=int, default=2, help="busy loops beside the tests (default: 2, one per core)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds a round may take")
    args = parser.parse_args()

    hogs = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.hogs)]
    for hog in hogs:
        hog.start()
    total_passed = total_failed = 0
    which: Counter[str] = Counter()
    times = []
    try:
        for number in range(1, args.rounds + 1):
            passed, failed, names, seconds = one_round(number, args.timeout)
            total_passed += passed
            total_failed += failed
            which.update(names)
            times.append(seconds)
            print(f"round {number:2d}: {passed} passed, {failed} failed, {seconds:5.1f} s"
                  + (f"  ({', '.join(names)})" if names else ""), flush=True)
    finally:
        for hog in hogs:
            hog.terminate()
    print(f"\n{args.rounds} rounds with {args.hogs} busy loops: {total_failed} failed of "
          f"{total_passed + total_failed} tests run; median round {sorted(times)[len(times) // 2]:.0f} s")
    for name, count in which.most_common():
        print(f"  {count} x {name}")


if __name__ == "__main__":
    main()
