"""``m2m inspect PATH [--book NAME]``: print a book's pages, characters, dialogue and faces."""

from __future__ import annotations

import argparse

from m2m.book import Book, load_book


def register(subparsers: argparse._SubParsersAction) -> None:
    from m2m.cli import add_book_arguments

    parser = subparsers.add_parser("inspect", help="print a book: pages, characters, dialogue, faces")
    add_book_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(describe_book(load_book(args.path, args.book)))
    return 0


def describe_book(book: Book) -> str:
    lines = [
        f"{book.title}  (id {book.id}, {book.format} format, read {'right-to-left' if book.direction == 'rtl' else 'left-to-right'})",
        f"{len(book.pages)} pages, {len(book.dialogue())} lines, {sum(len(p.faces) for p in book.pages)} faces",
        "Characters: " + (", ".join(f"{c.name} ({c.id})" for c in book.characters) or "none"),
    ]
    for page in book.pages:
        lines.append(f"\nPage {page.index}  {page.width}x{page.height}  {len(page.frames)} frames  {page.image}")
        for face in page.faces:
            lines.append(f"  face {face.id}: {book.character_name(face.character)} at {face.bbox}")
        for text in page.texts:
            flat = " ".join(text.text.split())
            gloss = f"   ({text.gloss})" if text.gloss else ""
            lines.append(f"  {book.character_name(text.speaker)}: {flat}{gloss}")
    return "\n".join(lines)
