"""``m2m evaluate RUN... [--json PATH] [--chart PATH]``: objective figures of runs, conditions side by side.

A RUN is a run folder (``runs/<book>/<condition>/``) or a book folder (``runs/<book>/``: all its conditions).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from m2m.evaluation.clap import DEFAULT_CLAP_MODEL

    parser = subparsers.add_parser(
        "evaluate", help="objective figures of runs: transitions, scene contrast, plan adherence, levels, CLAP")
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN",
                        help="a run folder (runs/<book>/<condition>/) or a book folder (runs/<book>/: every condition)")
    parser.add_argument("--json", type=Path, default=None,
                        help="where to write the figures (default: <first run's book folder>/evaluation.json)")
    parser.add_argument("--chart", type=Path, default=None, help="also draw the figures as a PNG here")
    parser.add_argument("--clap-model", default=DEFAULT_CLAP_MODEL,
                        help=f"CLAP model in the Hugging Face cache (never downloaded; default {DEFAULT_CLAP_MODEL})")
    parser.add_argument("--fad-reference", type=Path, default=None,
                        help="a folder of reference audio for the Fréchet audio distance (needs the CLAP model)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from m2m.evaluation.evaluate import default_json_path, evaluate
    from m2m.evaluation.report import chart, table, write_json

    evaluation = evaluate(args.runs, clap_model=args.clap_model, fad_reference=args.fad_reference,
                          progress=lambda message: print(message, file=sys.stderr, flush=True))
    print(table(evaluation))
    path = write_json(evaluation, args.json or default_json_path(evaluation))
    print(f"\nfigures: {path}")
    if args.chart is not None:
        print(f"chart: {chart(evaluation, args.chart)}")
    return 0
