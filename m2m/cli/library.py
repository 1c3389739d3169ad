"""``m2m library build --engine composer --out DIR --count N``: a clip library for the random condition."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("library", help="clip libraries for the random condition")
    commands = parser.add_subparsers(dest="library_command", required=True)
    build = commands.add_parser("build", help="render N clips from varied random plans into a folder")
    build.add_argument("--engine", default="composer", help="the music engine (default: composer)")
    build.add_argument("--out", required=True, type=Path, help="the library folder to write")
    build.add_argument("--count", type=int, default=24, help="how many clips (default 24)")
    build.add_argument("--seconds", type=float, default=24.0, help="clip length in seconds (default 24)")
    build.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    build.add_argument("--allow-download", action="store_true", help="let MusicGen fetch missing weights")
    build.set_defaults(func=run_build)


def run_build(args: argparse.Namespace) -> int:
    from m2m.music import engine_options, load_engine
    from m2m.music.base import RenderOptions
    from m2m.music.library_builder import build_library

    engine = load_engine(args.engine)
    if engine.name == "library":
        raise ValueError("engine: a library is built by another engine (composer, musicgen-*)")
    options = RenderOptions(seconds=args.seconds, seed=args.seed,
                            engine_options=engine_options(engine, allow_download=args.allow_download))

    def progress(done: int, total: int) -> None:
        print(f"\r{done}/{total} clips", end="", file=sys.stderr, flush=True)

    library = build_library(engine, args.out, args.count, options, progress)
    print(file=sys.stderr)
    print(f"{len(library.clips)} clips by {library.engine} in {args.out}")
    return 0
