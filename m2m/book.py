"""The book: pages, dialogue, speakers and faces, loaded from the Manga109 layout or the simple format.

Two formats come in (see README "Input formats"):

* Manga109 layout: ``<root>/books.txt``, ``<root>/annotations/<book>.xml``,
  ``<root>/images/<book>/NNN.jpg``, optional Manga109Dialog speakers in
  ``<root>/relationships/<book>.xml`` and optional English glosses in ``<root>/glosses/<book>.json``.
* The simple format: a folder, ``.cbz`` or ``.zip`` holding page images and ``transcript.json``
  (schema: ``m2m/schemas/transcript.schema.json``).

Every problem is a :class:`BookError` (a ValueError) that names the file and the element.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import re
import shutil
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from PIL import Image, UnidentifiedImageError

from m2m import archive

BBox = tuple[int, int, int, int]
"""A box in image pixels: (xmin, ymin, xmax, ymax)."""

Direction = Literal["rtl", "ltr"]

IMAGE_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
"""Pillow format name -> MIME type, for the only image types a book may hold."""

TRANSCRIPT_SCHEMA = Path(__file__).with_name("schemas") / "transcript.schema.json"


class BookError(ValueError):
    """A book that can't be loaded; the message names the file and the element."""


@dataclass(frozen=True)
class Character:
    id: str
    name: str


@dataclass(frozen=True)
class Frame:
    id: str
    page: int
    bbox: BBox


@dataclass(frozen=True)
class Body:
    id: str
    page: int
    bbox: BBox
    character: str


@dataclass(frozen=True)
class Face:
    id: str
    page: int
    bbox: BBox
    character: str


@dataclass(frozen=True)
class Text:
    """One line of dialogue. ``speaker`` is a character id, or None when unknown."""

    id: str
    page: int
    bbox: BBox | None
    text: str
    speaker: str | None = None
    gloss: str | None = None


@dataclass(frozen=True)
class Page:
    """One image of the book (in Manga109 a two-page spread). ``texts`` are in reading order."""

    index: int
    image: str
    width: int
    height: int
    frames: tuple[Frame, ...] = ()
    faces: tuple[Face, ...] = ()
    texts: tuple[Text, ...] = ()
    bodies: tuple[Body, ...] = ()


@dataclass(frozen=True)
class Book:
    id: str
    title: str
    pages: tuple[Page, ...]
    characters: tuple[Character, ...] = ()
    direction: Direction = "rtl"
    source: str = ""
    format: Literal["manga109", "simple"] = "manga109"

    def character_name(self, character_id: str | None) -> str:
        """The character's name, or "unknown" for a line with no known speaker."""
        if character_id is None:
            return "unknown"
        for character in self.characters:
            if character.id == character_id:
                return character.name
        return character_id

    def dialogue(self) -> tuple[Text, ...]:
        """Every line of the book in reading order."""
        return tuple(text for page in self.pages for text in page.texts)


def find_label_file(book: Book) -> Path | None:
    """The book's emotion label file (KangaiSet style, read by ``m2m.emotion_backends.annotations``),
    if it has one: ``<root>/ground_truth/<book>.json`` beside a Manga109 root, ``<folder>/ground_truth.json``
    in a simple-format book."""
    if not book.source:
        return None
    root = Path(book.source)
    candidates = [root / "ground_truth" / f"{book.id}.json", root / "ground_truth" / f"{book.title}.json",
                  root / "ground_truth.json"]
    return next((c for c in candidates if c.is_file()), None)


@dataclass(frozen=True)
class LoadLimits:
    """Caps for untrusted input (uploads)."""

    max_pages: int = 500
    max_image_pixels: int = 40_000_000
    archive: archive.ArchiveLimits = field(default_factory=archive.ArchiveLimits)


# ---------------------------------------------------------------------------------------------
# Entry point


def load_book(path: str | Path, name: str | None = None, *, workdir: Path | None = None,
              limits: LoadLimits | None = None) -> Book:
    """Load a book from a Manga109 root (``name`` picks the title) or the simple format.

    Archives (``.zip``/``.cbz``) are extracted safely into ``workdir``, or, when None, into a new
    temporary folder that is removed when the process exits (or at once if the book fails to
    load); the returned book's image paths point there.
    """
    limits = limits or LoadLimits()
    root = Path(path)
    if not root.exists():
        raise BookError(f"{root}: no such file or folder")
    if root.is_file():
        if root.suffix.lower() not in {".zip", ".cbz"}:
            raise BookError(f"{root}: not a folder, .zip or .cbz archive")
        extracted = archive.extract_archive(root, workdir, limits.archive)
        try:
            book = _load_folder(_single_subfolder(extracted), Path(path), name, limits)
        except BaseException as e:
            shutil.rmtree(extracted, ignore_errors=True)
            if isinstance(e, ValueError):
                # name the archive the person gave, not the temporary folder it was unpacked into
                raise BookError(str(e).replace(str(extracted), f"{path} (inside)")) from e
            raise
        if workdir is None:
            atexit.register(shutil.rmtree, extracted, True)
        return book
    return _load_folder(root, root, name, limits)


def _load_folder(root: Path, given: Path, name: str | None, limits: LoadLimits) -> Book:
    if (root / "annotations").is_dir() or (root / "books.txt").is_file():
        return load_manga109(root, name, limits=limits)
    if (root / "transcript.json").is_file():
        return load_simple(root, limits=limits)
    raise BookError(f"{given}: neither a Manga109 root (books.txt, annotations/) "
                    "nor a simple-format book (transcript.json)")


def _single_subfolder(root: Path) -> Path:
    """Archives often wrap everything in one folder; look inside it."""
    entries = [p for p in root.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return root


# ---------------------------------------------------------------------------------------------
# Manga109 layout


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
    return Book(id=_safe_id(name), title=title, pages=pages, characters=characters,
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
    _check_box(box, width, height, f"{path}: <{el.tag} id={el.get('id')}> on page {page}")
    return box  # type: ignore[return-value]


def _check_box(box: Sequence[int], width: int, height: int, where: str) -> None:
    xmin, ymin, xmax, ymax = box
    if not (0 <= xmin <= xmax <= width and 0 <= ymin <= ymax <= height):
        raise BookError(f"{where}: box {tuple(box)} is outside the {width}x{height} page")


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


# ---------------------------------------------------------------------------------------------
# Reading order


def reading_order(texts: Iterable[Text], frames: Sequence[Frame], width: int, height: int,
                  direction: Direction) -> list[Text]:
    """Sort texts as a reader reads them.

    A wide image is a two-page spread: the right page comes first in a right-to-left book. On a page,
    panels are read row by row from the top, rows right to left (RTL); inside a panel, balloons are
    read from the corner the eye enters (top-right for RTL). A text outside every panel is its own panel.
    """
    texts = list(texts)
    rtl = direction == "rtl"
    spread = width > height

    def half_of(box: BBox) -> int:
        if not spread:
            return 0
        right = (box[0] + box[2]) / 2 >= width / 2
        return 0 if right == rtl else 1

    # A text outside every panel stands as a panel of its own.
    homes = {t.id: _containing_frame(t.bbox, frames) or Frame(f"text:{t.id}", t.page, t.bbox)
             for t in texts if t.bbox is not None}
    all_frames = list(frames) + [f for f in homes.values() if f.id.startswith("text:")]
    frame_rank = {f.id: rank for rank, f in enumerate(_order_frames(all_frames, rtl, half_of))}

    def key(t: Text) -> tuple[int, int]:
        if t.bbox is None:
            return (0, 0)  # no box: keep the given order (sorted() is stable)
        # Distance from the corner where the eye enters the panel (top-right for RTL).
        corner = t.bbox[1] + ((width - t.bbox[2]) if rtl else t.bbox[0])
        return (frame_rank[homes[t.id].id], corner)

    return sorted(texts, key=key)


def _order_frames(frames: Sequence[Frame], rtl: bool, half_of) -> list[Frame]:
    ordered: list[Frame] = []
    for half in (0, 1):
        rows: list[list[Frame]] = []
        for f in sorted((f for f in frames if half_of(f.bbox) == half), key=lambda f: f.bbox[1]):
            if rows and _overlaps_row(f.bbox, rows[-1]):
                rows[-1].append(f)
            else:
                rows.append([f])
        for row in rows:
            ordered.extend(sorted(row, key=lambda f: -f.bbox[2] if rtl else f.bbox[0]))
    return ordered


def _overlaps_row(box: BBox, row: list[Frame]) -> bool:
    """A panel belongs to the current row when it shares most of its height with the row's span."""
    top = min(f.bbox[1] for f in row)
    bottom = max(f.bbox[3] for f in row)
    overlap = min(bottom, box[3]) - max(top, box[1])
    return overlap > 0.5 * min(box[3] - box[1], bottom - top)


def _containing_frame(box: BBox, frames: Sequence[Frame]) -> Frame | None:
    best, best_area = None, 0
    for f in frames:
        w = min(box[2], f.bbox[2]) - max(box[0], f.bbox[0])
        h = min(box[3], f.bbox[3]) - max(box[1], f.bbox[1])
        if w > 0 and h > 0 and w * h > best_area:
            best, best_area = f, w * h
    return best


# ---------------------------------------------------------------------------------------------
# Images


def check_image(path: Path, limits: LoadLimits | None = None) -> tuple[int, int]:
    """Open an image's header and check it is JPEG, PNG or WebP and not a decompression bomb.

    Returns (width, height) in pixels.
    """
    limits = limits or LoadLimits()
    try:
        with warnings.catch_warnings():
            # Pillow only warns about decompression bombs below twice its limit; for untrusted
            # books a warning is already a refusal.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                fmt, size = im.format, im.size
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise BookError(f"{path}: image too large (decompression bomb guard): {e}") from e
    except UnidentifiedImageError as e:
        raise BookError(f"{path}: not an image Pillow can read (JPEG, PNG or WebP expected)") from e
    except OSError as e:
        raise BookError(f"{path}: unreadable image: {e}") from e
    if fmt not in IMAGE_FORMATS:
        raise BookError(f"{path}: unsupported image type {fmt}; use JPEG, PNG or WebP")
    if size[0] * size[1] > limits.max_image_pixels:
        raise BookError(f"{path}: image of {size[0]}x{size[1]} pixels is larger than the limit of "
                        f"{limits.max_image_pixels} pixels")
    return size


# ---------------------------------------------------------------------------------------------
# The simple format


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
    return Book(id=_safe_id(title) + "-" + _content_hash(transcript_path)[:8], title=title, pages=tuple(pages),
                characters=characters, direction=data.get("direction", "rtl"), source=str(root), format="simple")


def _simple_page(root: Path, index: int, page_data: dict, character_id, transcript_path: Path,
                 limits: LoadLimits) -> Page:
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
    _check_box(box, width, height, where)
    return (int(box[0]), int(box[1]), int(box[2]), int(box[3]))


# ---------------------------------------------------------------------------------------------
# Small helpers


def _safe_id(name: str) -> str:
    """A book id safe as a folder name: letters, digits, '-', '_' (others become '-')."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")
    return slug or "book"


def _content_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
