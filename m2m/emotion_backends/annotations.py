"""The ``annotations`` backend: emotion labels from a KangaiSet-style file beside the book.

The file is JSON: ``{"faces": [{"page": 3, "face_id": "00000a1b", "character": "...", "emotion": "fear"}],
"scenes": [{"first_page": 0, "last_page": 4, "label": "..."}]}`` (``scenes`` optional, used by
``m2m emotions eval``). A Manga109 root keeps it at ``<root>/ground_truth/<book>.json``; a simple-format
book at ``<folder>/ground_truth.json``. Labels are one-hot; faces without a label are skipped with a warning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m2m.book import Book, find_label_file
from m2m.emotions import EMOTIONS, BackendResult, EmotionOptions, FaceEmotion, parse_label
from m2m.scenes import Scene, ScenePlan


@dataclass(frozen=True)
class FaceLabel:
    page: int | None
    face_id: str
    emotion: str
    character: str = ""


@dataclass(frozen=True)
class GroundTruth:
    """A book's labelled faces and (optionally) its labelled scenes as inclusive page ranges."""

    path: str
    faces: tuple[FaceLabel, ...]
    scenes: tuple[tuple[int, int, str], ...] = ()

    def label_of(self, page: int, face_id: str) -> FaceLabel | None:
        for label in self.faces:
            if label.face_id == face_id and (label.page is None or label.page == page):
                return label
        return None

    def scene_plan(self, book: Book) -> ScenePlan | None:
        """The labelled scenes as a ScenePlan over the book's pages, or None when the file has none."""
        if not self.scenes:
            return None
        pages = [p.index for p in book.pages]
        scenes = []
        for i, (first, last, label) in enumerate(sorted(self.scenes)):
            scene_pages = tuple(p for p in pages if first <= p <= last)
            lines = tuple(t.id for p in book.pages if p.index in scene_pages for t in p.texts)
            scenes.append(Scene(index=i, pages=scene_pages, lines=lines, summary=label))
        return ScenePlan(tuple(scenes))


def read_ground_truth(path: str | Path) -> GroundTruth:
    """Parse a label file; a malformed one is a ValueError naming the file and the entry."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ValueError(f"{path}: label file not found") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a valid JSON label file: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("faces", []), list):
        raise ValueError(f"{path}: expected an object with a 'faces' list")
    faces = tuple(_face_label(entry, f"{path}: faces[{i}]") for i, entry in enumerate(data.get("faces", [])))
    scenes = []
    for i, entry in enumerate(data.get("scenes", []) or []):
        where = f"{path}: scenes[{i}]"
        try:
            first, last = int(entry["first_page"]), int(entry["last_page"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{where}: needs integer first_page and last_page ({e})") from e
        if last < first:
            raise ValueError(f"{where}: last_page {last} is before first_page {first}")
        scenes.append((first, last, str(entry.get("label", ""))))
    return GroundTruth(str(path), faces, tuple(scenes))


def _face_label(entry: Any, where: str) -> FaceLabel:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object, got {entry!r}")
    face_id = entry.get("face_id", entry.get("id"))
    if face_id in (None, ""):
        raise ValueError(f"{where}: face_id is missing")
    page = entry.get("page")
    try:
        page = None if page is None else int(page)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}.page: {page!r} is not a page number") from e
    return FaceLabel(page=page, face_id=str(face_id), emotion=parse_label(entry.get("emotion"), f"{where}.emotion"),
                     character=str(entry.get("character", "")))


class AnnotationsBackend:
    """One-hot labels from the book's label file (or ``path``)."""

    name = "annotations"

    def __init__(self, path: str | None = None) -> None:
        self._path = path

    def settings(self) -> dict[str, Any]:
        return {"label_file": self._path or "<book source>/ground_truth/<book id>.json"}

    def predict(self, book: Book, scenes: ScenePlan, options: EmotionOptions) -> BackendResult:
        path = Path(self._path) if self._path else find_label_file(book)
        if path is None:
            raise ValueError(f"book {book.id}: no label file for the annotations backend "
                             f"(looked for ground_truth/{book.id}.json under {book.source or 'an unknown source'})")
        truth = read_ground_truth(path)
        faces = []
        for page in book.pages:
            for face in page.faces:
                label = truth.label_of(page.index, face.id)
                if label is None:
                    faces.append(FaceEmotion(page=page.index, face_id=face.id, character=face.character,
                                             probabilities={}, backend=self.name,
                                             warning=f"no label in {path.name}; skipped"))
                    continue
                faces.append(FaceEmotion(page=page.index, face_id=face.id, character=face.character,
                                         probabilities={e: float(e == label.emotion) for e in EMOTIONS},
                                         backend=self.name, evidence=f"label in {path.name}"))
        known = {(p.index, f.id) for p in book.pages for f in p.faces} | {(None, f.id) for p in book.pages for f in p.faces}
        stray = [lab.face_id for lab in truth.faces if (lab.page, lab.face_id) not in known]
        warnings = (f"{len(stray)} labels in {path.name} match no face of the book (e.g. {stray[0]})",) if stray else ()
        return BackendResult(tuple(faces), warnings)
