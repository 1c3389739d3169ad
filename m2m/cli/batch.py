"""``m2m batch ROOT [--books FILE|NAME...] [--address ADDR] [--workers N] ...``: a whole catalogue on Ray.

ROOT is a Manga109 root (every title of books.txt) or a folder of simple-format books (folders with
transcript.json, .zip and .cbz files). Every other choice is ``m2m render``'s. The exit status is 0
when every book finished, 1 when some failed (the report says which and why), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from m2m.cli.render import add_render_arguments, render_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("batch", help="every book of a catalogue through the pipeline, on Ray")
    parser.add_argument("root", type=Path, help="a Manga109 root, or a folder of simple-format books/archives")
    parser.add_argument("--books", nargs="+", default=(), metavar="FILE|NAME",
                        help="only these books: names, or files listing one name a line")
    parser.add_argument("--address", default=None,
                        help="join this Ray cluster (e.g. ray://head:10001 or head:6379; `ray start --head` "
                             "prints it); default: a local Ray instance for this run")
    parser.add_argument("--workers", type=int, default=None,
                        help="local: CPUs Ray may use (default: all); with --address: page tasks in flight at most")
    parser.add_argument("--plan-concurrency", type=int, default=8,
                        help="books planned at once (LLM calls wait on the network; default 8)")
    parser.add_argument("--report-dir", type=Path, default=None,
                        help="where batch-<time>.json goes (default: <out>/batches)")
    add_render_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from m2m.batch.catalogue import catalogue
    from m2m.batch.driver import BatchOptions, run_batch
    from m2m.batch.report import summary_table

    books = catalogue(args.root, args.books)
    settings = render_settings(args)
    options = BatchOptions(address=args.address, workers=args.workers, plan_concurrency=args.plan_concurrency,
                           library_clips=args.library_clips, report_dir=args.report_dir)
    print(f"{len(books)} book{'s' if len(books) != 1 else ''} from {args.root} "
          f"({settings.condition}, {settings.engine}) on {'Ray at ' + args.address if args.address else 'a local Ray'}",
          flush=True)
    bars = {"books": tqdm(total=len(books), unit="book", position=0, dynamic_ncols=True, desc="books"),
            "pages": tqdm(total=0, unit="page", position=1, dynamic_ncols=True, desc="pages")}

    def progress(kind: str, done: int, total: int) -> None:
        if kind == "library" and kind not in bars:  # the random condition's clips, made before any page
            bars[kind] = tqdm(total=total, unit="clip", position=2, dynamic_ncols=True, desc="library")
        bar = bars.get(kind)
        if bar is not None and (bar.n != done or bar.total != total):
            bar.total, bar.n = total, done
            bar.refresh()

    try:
        report = run_batch(books, settings, options, progress)
    except KeyboardInterrupt:
        for bar in bars.values():
            bar.close()
        print("stopped: the pages that landed are kept; run the same command to go on", flush=True)
        return 130
    for bar in bars.values():
        bar.close()
    print(summary_table(report))
    print(f"report: {report.path}")
    return 0 if report.failed == 0 else 1
