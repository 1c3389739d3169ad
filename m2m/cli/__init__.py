"""The ``m2m`` command line. Each command group lives in its own module with a ``register()``.

Every command that takes a book takes it the same way: ``PATH [--book NAME]``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# Modules that add subcommands; each has register(subparsers) and sets args.func.
COMMAND_MODULES = ("m2m.cli.inspect",)
OPTIONAL_COMMAND_MODULES = ("m2m.cli.plan", "m2m.cli.emotions", "m2m.cli.render", "m2m.cli.library", "m2m.cli.study",
                            "m2m.cli.evaluate", "m2m.cli.batch", "m2m.cli.themes")


def add_book_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a Manga109 root, or a folder/.zip/.cbz in the simple format")
    parser.add_argument("--book", default=None, help="the book's name in a Manga109 root (from books.txt)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m2m", description="Background music for manga (M2M-Gen).")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    for name in OPTIONAL_COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue  # that command group isn't part of this build yet
        module.register(subparsers)
    return parser


def explain(error: Exception) -> str:
    """The message for an error the user can fix. A file-system error says which path and what is wrong
    with it in words ("[Errno 20] Not a directory: '…'" reads as a crash), and where to look."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        path = os.fsdecode(error.filename)
        return (f"{error.strerror.lower()}: {path} (a path this command reads or writes: check it, "
                "the --out folder and the free disk space)")
    return str(error)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # `m2m inspect book | head`: the reader left; not an error. Python would complain again when
        # it flushes stdout at exit, so stdout points at /dev/null from here on.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, OSError) as e:
        # Bad input (or a broken ratings database) is the user's to fix: say what and where, no traceback.
        print(f"m2m {args.command}: error: {explain(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"m2m {args.command}: interrupted; finished work is kept, run the same command to go on",
              file=sys.stderr)
        return 130

