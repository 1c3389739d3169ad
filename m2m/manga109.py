"""Reading a book in the Manga109 layout (see README "Input formats").

``<root>/books.txt`` lists the books, ``<root>/annotations/<book>.xml`` holds each page's panels,
faces, bodies and texts, and ``<root>/images/<book>/NNN.jpg`` the page images. Two optional files
add what the annotations lack: Manga109Dialog speakers in ``<root>/relationships/<book>.xml``
(which body says which text) and English glosses in ``<root>/glosses/<book>.json``. Every id is
checked to be unique and every reference to resolve, so a later stage can trust the book.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from m2m.book_data import (
    BBox,
    Body,
    Book,
    BookError,
    Character,
    Direction,
    Face,
    Frame,
    LoadLimits,
    Page,
    Text,
    safe_id,
)
from m2m.page_images import check_box, check_image
from m2m.reading_order import reading_order


def manga109_titles(root: Path) -> list[str]:
    books_txt = root / "books.txt"
    if books_txt.is_file():
        # utf-8-sig: a books.txt saved by a Windows editor starts with a byte-order mark
        lines = [line.strip() for line in books_txt.read_text(encoding="utf-8-sig").splitlines()]
        titles = list(dict.fromkeys(line for line in lines if line))
        if not titles:
            raise BookError(f"{books_txt}: empty; list one book name per line (the annotations/<name>.xml stems)")
        return titles
    return sorted(p.stem for p in (root / "annotations").glob("*.xml"))


def load_manga109(root: Path, name: str | None = None, *, limits: LoadLimits | None = None) -> Book:
    limits = limits or LoadLimits()
    titles = manga109_titles(root)
    if name is None:
        if len(titles) != 1:
            raise BookError(f"{root}: lists {len(titles)} books ({', '.join(titles[:8])}); pick one with --book")
        name = titles[0]
    elif titles and name not in titles:
        raise BookError(f"{root}: no book named {name!r}; books.txt lists {', '.join(titles[:20])}")
    xml_path = root / "annotations" / f"{name}.xml"
    book_el = _parse_xml(xml_path)
    characters = _manga109_characters(book_el, xml_path)
    pages_el = book_el.find("pages")
    page_els = [] if pages_el is None else pages_el.findall("page")
    if not page_els:
        raise BookError(f"{xml_path}: empty book (no <page> elements)")
    if len(page_els) > limits.max_pages:
        raise BookError(f"{xml_path}: {len(page_els)} pages, more than the limit of {limits.max_pages}")
    seen_ids: dict[str, str] = {c.id: f"<character id={c.id}>" for c in characters}
    char_ids = {c.id for c in characters}
    raw_pages = [_manga109_page(el, xml_path, root / "images" / name, seen_ids, char_ids, limits)
                 for el in page_els]
    indices = [p.page.index for p in raw_pages]
    repeated = sorted({i for i in indices if indices.count(i) > 1})
    if repeated:
        raise BookError(f"{xml_path}: <page index={repeated[0]}> appears more than once; each page needs its own index")
    speakers = _manga109_speakers(root / "relationships" / f"{name}.xml", raw_pages)
    glosses = _read_glosses(root / "glosses" / f"{name}.json")
    direction: Direction = "rtl"  # Manga109 is Japanese manga
    pages = tuple(_finish_page(p, direction, speakers, glosses) for p in raw_pages)
    title = book_el.get("title") or name
    return Book(id=safe_id(name), title=title, pages=pages, characters=characters,
                direction=direction, source=str(root), format="manga109")


def _parse_xml(path: Path) -> ET.Element:
    if not path.is_file():
        raise BookError(f"{path}: annotation file not found")
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as e:
        line, col = e.position
        # expat's message already ends with ": line L, column C"; say the position once
        reason = re.sub(r":\s*line \d+, column \d+$", "", str(getattr(e, "msg", e)))
        raise BookError(f"{path}: malformed XML at line {line}, column {col}: {reason}") from e


def _manga109_characters(book_el: ET.Element, xml_path: Path) -> tuple[Character, ...]:
    chars_el = book_el.find("characters")
    result: list[Character] = []
    seen: set[str] = set()
    for el in [] if chars_el is None else chars_el.findall("character"):
        cid = _required(el, "id", xml_path)
        if cid in seen:
            raise BookError(f"{xml_path}: duplicate id {cid} in <character>")
        seen.add(cid)
        result.append(Character(id=cid, name=el.get("name") or cid))
    return tuple(result)


def _required(el: ET.Element, attr: str, path: Path) -> str:
    value = el.get(attr)
    if value is None or value == "":
        raise BookError(f"{path}: <{el.tag} id={el.get('id')}> has no {attr!r} attribute")
    return value


def _int_attr(el: ET.Element, attr: str, path: Path) -> int:
    raw = _required(el, attr, path)
    try:
        return int(float(raw))
    except ValueError as e:
        raise BookError(f"{path}: <{el.tag} id={el.get('id')}> {attr}={raw!r} is not a number") from e


def _bbox(el: ET.Element, path: Path, page: int, width: int, height: int) -> BBox:
    box = tuple(_int_attr(el, a, path) for a in ("xmin", "ymin", "xmax", "ymax"))
    check_box(box, width, height, f"{path}: <{el.tag} id={el.get('id')}> on page {page}")
    return box  # type: ignore[return-value]


@dataclass(frozen=True)
class _RawPage:
    page: Page
    body_character: dict[str, str]


def _manga109_page(el: ET.Element, xml_path: Path, image_dir: Path, seen_ids: dict[str, str],
                   char_ids: set[str], limits: LoadLimits) -> _RawPage:
    index = _int_attr(el, "index", xml_path)
    width = _int_attr(el, "width", xml_path)
    height = _int_attr(el, "height", xml_path)
    image = _find_page_image(image_dir, index)
    if image is None:
        raise BookError(f"{image_dir / f'{index:03d}.jpg'}: missing image for <page index={index}> of {xml_path.name}")
    check_image(image, limits)
    frames: list[Frame] = []
    faces: list[Face] = []
    bodies: list[Body] = []
    texts: list[Text] = []
    for child in el:
        if child.tag not in {"frame", "face", "body", "text"}:
            continue  # unknown tags (onomatopoeia, notes...) are not ours to judge
        cid = _required(child, "id", xml_path)
        if cid in seen_ids:
            raise BookError(f"{xml_path}: duplicate id {cid}: <{child.tag}> on page {index} and {seen_ids[cid]}")
        seen_ids[cid] = f"<{child.tag}> on page {index}"
        box = _bbox(child, xml_path, index, width, height)
        if child.tag == "frame":
            frames.append(Frame(cid, index, box))
        elif child.tag == "text":
            texts.append(Text(cid, index, box, (child.text or "").strip()))
        else:
            character = _required(child, "character", xml_path)
            if character not in char_ids:
                raise BookError(f"{xml_path}: <{child.tag} id={cid}> on page {index} refers to "
                                f"character {character}, which <characters> doesn't define")
            (faces if child.tag == "face" else bodies).append(
                (Face if child.tag == "face" else Body)(cid, index, box, character))  # type: ignore[arg-type]
    page = Page(index=index, image=str(image), width=width, height=height, frames=tuple(frames),
                faces=tuple(faces), texts=tuple(texts), bodies=tuple(bodies))
    return _RawPage(page, {b.id: b.character for b in bodies})


def _find_page_image(image_dir: Path, index: int) -> Path | None:
    for ext in (".jpg", ".jpeg", ".png", ".webp", ".JPG", ".PNG"):
        candidate = image_dir / f"{index:03d}{ext}"
        if candidate.is_file():
            return candidate
    return None


def _manga109_speakers(path: Path, raw_pages: list[_RawPage]) -> dict[str, str]:
    """text id -> character id, from a Manga109Dialog file (speaker_id is a body id)."""
    if not path.is_file():
        return {}  # a book without speaker files still loads; speakers stay unknown
    root = _parse_xml(path)
    text_ids = {t.id for p in raw_pages for t in p.page.texts}
    body_character = {k: v for p in raw_pages for k, v in p.body_character.items()}
    speakers: dict[str, str] = {}
    for el in root.iter("speaker_to_text"):
        text_id = _required(el, "text_id", path)
        body_id = _required(el, "speaker_id", path)
        if text_id not in text_ids:
            raise BookError(f"{path}: <speaker_to_text text_id={text_id}> refers to a text the annotations don't define")
        if body_id not in body_character:
            raise BookError(f"{path}: <speaker_to_text speaker_id={body_id}> refers to a body the annotations don't define")
        speakers[text_id] = body_character[body_id]
    return speakers


def _read_glosses(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise BookError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from e
    if not isinstance(data, dict):
        raise BookError(f"{path}: expected an object of text id -> English gloss")
    return {str(k): str(v) for k, v in data.items()}


def _finish_page(raw: _RawPage, direction: Direction, speakers: dict[str, str],
                 glosses: dict[str, str]) -> Page:
    page = raw.page
    ordered = reading_order(page.texts, page.frames, page.width, page.height, direction)
    texts = tuple(Text(t.id, t.page, t.bbox, t.text, speakers.get(t.id, t.speaker), glosses.get(t.id, t.gloss))
                  for t in ordered)
    return Page(page.index, page.image, page.width, page.height, page.frames, page.faces, texts, page.bodies)
