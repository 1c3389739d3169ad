"""Reading a book in the simple format: a folder of page images and ``transcript.json``.

The transcript (schema: ``m2m/schemas/transcript.schema.json``) lists the pages in order and each
page's lines in reading order, with optional speakers, boxes, glosses and faces. It is validated
against the schema first, so the code below reads fields the schema guarantees; image paths are
resolved inside the book's folder only, since the folder may come from an uploaded archive.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from m2m import archive
from m2m.book_data import BBox, Book, BookError, Character, Face, LoadLimits, Page, Text, safe_id
from m2m.page_images import check_box, check_image

TRANSCRIPT_SCHEMA = Path(__file__).with_name("schemas") / "transcript.schema.json"


def load_simple(root: Path, *, limits: LoadLimits | None = None) -> Book:
    limits = limits or LoadLimits()
    transcript_path = root / "transcript.json"
    try:
        data = json.loads(transcript_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise BookError(f"{transcript_path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from e
    except UnicodeDecodeError as e:
        raise BookError(f"{transcript_path}: not UTF-8 text") from e
    import jsonschema  # here, not at the top: 0.1 s of import that Manga109 books and other commands skip

    schema = json.loads(TRANSCRIPT_SCHEMA.read_text(encoding="utf-8"))
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "(root)"
        raise BookError(f"{transcript_path}: at {where}: {e.message}") from e
    if not data["pages"]:
        raise BookError(f"{transcript_path}: empty book (no pages)")
    if len(data["pages"]) > limits.max_pages:
        raise BookError(f"{transcript_path}: {len(data['pages'])} pages, more than the limit of {limits.max_pages}")
    names: dict[str, str] = {}  # speaker name -> character id

    def character_id(name: str) -> str:
        return names.setdefault(name, f"{len(names) + 1:08x}")

    for declared in data.get("characters", []):
        character_id(declared)
    pages: list[Page] = []
    for index, page_data in enumerate(data["pages"]):
        pages.append(_simple_page(root, index, page_data, character_id, transcript_path, limits))
    characters = tuple(Character(cid, name) for name, cid in names.items())
    title = data.get("title") or root.name
    return Book(id=safe_id(title) + "-" + _content_hash(transcript_path)[:8], title=title, pages=tuple(pages),
                characters=characters, direction=data.get("direction", "rtl"), source=str(root), format="simple")


def _simple_page(root: Path, index: int, page_data: dict, character_id: Callable[[str], str],
                 transcript_path: Path, limits: LoadLimits) -> Page:
    where = f"{transcript_path}: pages/{index}"
    image = archive.safe_child(root, page_data["image"], where)
    if not image.is_file():
        raise BookError(f"{image}: missing image for {where}")
    width, height = check_image(image, limits)
    texts: list[Text] = []
    for n, line in enumerate(page_data.get("lines", [])):
        box = _simple_box(line.get("box"), width, height, f"{where}/lines/{n}")
        speaker = line.get("speaker")
        texts.append(Text(id=f"p{index:03d}l{n:03d}", page=index, bbox=box, text=line["text"].strip(),
                          speaker=character_id(speaker) if speaker else None, gloss=line.get("gloss")))
    faces: list[Face] = []
    for n, face in enumerate(page_data.get("faces", [])):
        box = _simple_box(face["box"], width, height, f"{where}/faces/{n}")
        faces.append(Face(id=f"p{index:03d}f{n:03d}", page=index, bbox=box,  # type: ignore[arg-type]
                          character=character_id(face["character"]) if face.get("character") else "unknown"))
    # Lines are listed in reading order by the person who wrote the transcript.
    return Page(index=index, image=str(image), width=width, height=height, faces=tuple(faces), texts=tuple(texts))


def _simple_box(box: list[int] | None, width: int, height: int, where: str) -> BBox | None:
    if box is None:
        return None
    check_box(box, width, height, where)
    return (int(box[0]), int(box[1]), int(box[2]), int(box[3]))


def _content_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
