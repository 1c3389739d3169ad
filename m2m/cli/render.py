"""``m2m render PATH [--book NAME] [--engine E] [--condition C] [--out runs/]``: every stage not already done."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from m2m import pipeline
from m2m.book import load_book
from m2m.cli.plan import (
    add_director_arguments,
    add_emotion_model_arguments,
    add_fallback_argument,
    director_settings,
)
from m2m.cli.study import ensure_library
from m2m.conditions import condition_of
from m2m.music import available_engines
from m2m.music.base import DEFAULT_SAMPLE_RATE, SAMPLE_RATES
from m2m.pipeline import Settings, no_progress, run_folder
from m2m.runs import CONDITIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    from m2m.cli import add_book_arguments

    parser = subparsers.add_parser("render", help="run every stage and write the run folder with its music")
    add_book_arguments(parser)
    add_render_arguments(parser)
    parser.set_defaults(func=run)


def add_render_arguments(parser: argparse.ArgumentParser) -> None:
    """What ``m2m render`` and ``m2m batch`` both choose: engine, condition, director, pace, output."""
    # The library engine is the random condition's (--condition random), which knows its library.
    parser.add_argument("--engine", default="composer", choices=[e for e in available_engines() if e != "library"],
                        help="music engine (the random condition draws from a library this engine makes)")
    parser.add_argument("--condition", default="m2m", choices=CONDITIONS, help="m2m, baseline or random")
    add_director_arguments(parser)
    add_fallback_argument(parser)
    parser.add_argument("--emotions", default=None,
                        help="emotion backend (default: the book's embedded default, as m2m plan)")
    parser.add_argument("--library-clips", type=int, default=24,
                        help="clips to make for the random condition's library when it has none (default 24)")
    parser.add_argument("--pace", type=float, default=20.0, help="reading pace, seconds per page")
    parser.add_argument("--sample-rate", type=int, default=DEFAULT_SAMPLE_RATE, choices=SAMPLE_RATES,
                        help=f"Hz, of the clips and the whole-book file (default {DEFAULT_SAMPLE_RATE}, MusicGen's own; "
                             "44100 keeps the composer's cymbals above 16 kHz at about a third more CPU)")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="runs folder")
    add_emotion_model_arguments(parser, with_device=False)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: the GPU when there is one)")
    parser.add_argument("--allow-download", action="store_true",
                        help="let MusicGen and the CLIP emotion backends fetch missing weights")
    parser.add_argument("--no-whole-file", dest="whole_file", action="store_false",
                        help="write the page clips and the cue sheet only, not the whole book as one file")


def render_settings(args: argparse.Namespace) -> Settings:
    """The pipeline settings ``add_render_arguments`` chose; a director fallback is said on the terminal
    (and in the run files)."""
    if args.library_clips < 1:
        raise ValueError(f"--library-clips must be a positive number, got {args.library_clips}")
    llm, fallback = director_settings(args, None)
    if fallback:
        print(f"note: {fallback}", flush=True)  # the run files say so too
    return Settings(director=args.llm, model=llm.model, api_key=llm.api_key, base_url=llm.base_url,
                    engine=args.engine, condition=args.condition, emotion_checkpoint=args.emotions_checkpoint,
                    emotion_backend=args.emotions, runs_root=args.out, seconds_per_page=args.pace,
                    device=args.device, allow_download=args.allow_download, whole_file=args.whole_file,
                    sample_rate=args.sample_rate)


def run(args: argparse.Namespace) -> int:
    book = load_book(args.path, args.book)
    settings = render_settings(args)
    if condition_of(settings.condition).uses_library:
        ensure_library(settings, args.library_clips, no_progress)
    with tqdm(total=1, unit="step", dynamic_ncols=True) as bar:
        def progress(stage: str, done: int, total: int) -> None:
            bar.set_description(stage)
            bar.total = max(total, 1)
            bar.n = done
            bar.refresh()

        # through the module: a stand-in installed for a test is the one called, whenever this was imported
        soundtrack = pipeline.render_book(book, settings, progress)
    folder = run_folder(book, settings).path
    print(f"{book.title}: {len(soundtrack.cues)} pages of music ({soundtrack.cues[0].engine}) in {folder}")
    if soundtrack.file:
        print(f"whole soundtrack at {settings.seconds_per_page:g} s a page: {folder / soundtrack.file} "
              f"({soundtrack.seconds:.0f} s)")
    return 0
