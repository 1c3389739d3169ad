"""``m2m render PATH [--book NAME] [--engine E] [--condition C] [--out runs/]``: every stage not already done."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from m2m.book import load_book
from m2m.music import available_engines
from m2m.pipeline import Settings, render_book
from m2m.runs import CONDITIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    from m2m.cli import add_book_arguments

    parser = subparsers.add_parser("render", help="run every stage and write the run folder with its music")
    add_book_arguments(parser)
    parser.add_argument("--engine", default="composer", choices=available_engines(), help="music engine")
    parser.add_argument("--condition", default="m2m", choices=CONDITIONS, help="m2m, baseline or random")
    parser.add_argument("--llm", default="offline", choices=("offline", "openai"), help="the director")
    parser.add_argument("--emotions", default="dialogue", help="emotion backend")
    parser.add_argument("--pace", type=float, default=20.0, help="reading pace, seconds per page")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="runs folder")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: the GPU when there is one)")
    parser.add_argument("--allow-download", action="store_true", help="let MusicGen fetch missing weights")
    parser.add_argument("--no-whole-file", dest="whole_file", action="store_false",
                        help="write the page clips and the cue sheet only, not the whole book as one file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    book = load_book(args.path, args.book)
    settings = Settings(director=args.llm, engine=args.engine, condition=args.condition,
                        emotion_backend=args.emotions, runs_root=args.out, seconds_per_page=args.pace,
                        device=args.device, allow_download=args.allow_download, whole_file=args.whole_file)
    with tqdm(total=1, unit="step", dynamic_ncols=True) as bar:
        def progress(stage: str, done: int, total: int) -> None:
            bar.set_description(stage)
            bar.total = max(total, 1)
            bar.n = done
            bar.refresh()

        soundtrack = render_book(book, settings, progress)
    folder = settings.runs_root / book.id / settings.condition
    print(f"{book.title}: {len(soundtrack.cues)} pages of music ({soundtrack.cues[0].engine}) in {folder}")
    if soundtrack.file:
        print(f"whole soundtrack at {settings.seconds_per_page:g} s a page: {folder / soundtrack.file} "
              f"({soundtrack.seconds:.0f} s)")
    return 0
