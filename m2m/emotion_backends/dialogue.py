"""The ``dialogue`` backend (embedded default): a face's emotion from the Japanese dialogue, via ML-Ask.

ML-Ask finds emotion words in a line and tags them with ten classes; ``mlask_mapping.json`` maps those
onto KangaiSet's seven, and ``dialogue_cues.json`` catches colloquial lines ML-Ask finds nothing in.
A face takes the emotion of the lines in its panel, else on its page, else in its scene (the table,
the cues and the order, with reasons: ``m2m/data/emotions/README.md``).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from m2m.book import BBox, Book, Face, Page, Text
from m2m.emotions import DATA_DIR, EMOTIONS, BackendResult, EmotionOptions, FaceEmotion
from m2m.scenes import Scene, ScenePlan

MAPPING_FILE = DATA_DIR / "mlask_mapping.json"
CUES_FILE = DATA_DIR / "dialogue_cues.json"
MLASK_CLASSES = ("yorokobi", "ikari", "aware", "kowagari", "haji", "suki", "iya", "takaburi", "yasuragi", "odoroki")


@dataclass(frozen=True)
class Cue:
    pattern: re.Pattern[str]
    distribution: dict[str, float]


@dataclass(frozen=True)
class MappingTable:
    """ML-Ask class (full name) -> weights over EMOTIONS; ``names`` maps pymlask's spellings to full names."""

    names: dict[str, str]
    mapping: dict[str, dict[str, float]]
    no_emotion: dict[str, float]
    emotive_weight: float
    path: str
    sha256: str


@dataclass(frozen=True)
class CueTable:
    cues: tuple[Cue, ...]
    path: str
    sha256: str


NO_CUES = CueTable((), "", "")


def _read_json(path: str) -> tuple[dict, str]:
    try:
        raw = Path(path).read_bytes()
        data = json.loads(raw.decode("utf-8"))
    except FileNotFoundError as e:
        raise ValueError(f"{path}: file not found") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data, hashlib.sha256(raw).hexdigest()[:16]


def _distribution(raw: Any, where: str) -> dict[str, float]:
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{where}: expected an object of class -> weight, got {raw!r}")
    unknown = set(raw) - set(EMOTIONS)
    if unknown:
        raise ValueError(f"{where}: {sorted(unknown)} are not classes; use {', '.join(EMOTIONS)}")
    weights = {e: float(raw.get(e, 0.0)) for e in EMOTIONS}
    if any(w < 0 for w in weights.values()) or abs(sum(weights.values()) - 1.0) > 1e-6:
        raise ValueError(f"{where}: weights {raw!r} must be non-negative and sum to 1")
    return weights


@lru_cache(maxsize=8)
def load_mapping(path: str = str(MAPPING_FILE)) -> MappingTable:
    """Read and check a mapping table: all ten ML-Ask classes, weights over EMOTIONS summing to 1."""
    data, sha = _read_json(path)
    mapping_raw = data.get("mapping")
    if not isinstance(mapping_raw, dict):
        raise ValueError(f"{path}: mapping: expected an object of ML-Ask class -> weights")
    missing = [c for c in MLASK_CLASSES if c not in mapping_raw]
    if missing:
        raise ValueError(f"{path}: mapping: missing ML-Ask classes {missing}")
    mapping = {c: _distribution(mapping_raw[c], f"{path}: mapping.{c}") for c in MLASK_CLASSES}
    names = {str(k): str(v) for k, v in data.get("mlask_names", {}).items()}
    names.update({c: c for c in MLASK_CLASSES})
    bad = sorted(v for v in names.values() if v not in MLASK_CLASSES)
    if bad:
        raise ValueError(f"{path}: mlask_names: {bad} are not ML-Ask classes ({', '.join(MLASK_CLASSES)})")
    weight = data.get("emotive_weight", 1.0)
    if not isinstance(weight, int | float) or weight <= 0:
        raise ValueError(f"{path}: emotive_weight: {weight!r} must be a positive number")
    return MappingTable(names=names, mapping=mapping,
                        no_emotion=_distribution(data.get("no_emotion", {"neutral": 1.0}), f"{path}: no_emotion"),
                        emotive_weight=float(weight), path=str(path), sha256=sha)


@lru_cache(maxsize=8)
def load_cues(path: str = str(CUES_FILE)) -> CueTable:
    """Read and compile a cue table (regular expression -> distribution over EMOTIONS)."""
    data, sha = _read_json(path)
    cues = []
    for i, cue in enumerate(data.get("cues", [])):
        where = f"{path}: cues[{i}]"
        try:
            pattern = re.compile(cue["pattern"])
        except (KeyError, TypeError, re.error) as e:
            raise ValueError(f"{where}.pattern: {e}") from e
        cues.append(Cue(pattern, _distribution(cue.get("distribution"), f"{where}.distribution")))
    return CueTable(tuple(cues), str(path), sha)


@dataclass(frozen=True)
class _Analyzer:
    mlask: Any
    lock: threading.Lock  # a MeCab tagger keeps its lattice inside; one parse at a time


@lru_cache(maxsize=1)
def _analyzer() -> _Analyzer:
    """ML-Ask over MeCab with the ``ipadic`` package's dictionary (ML-Ask reads IPADIC features)."""
    try:
        import ipadic
        import mlask
    except ImportError as e:
        raise ValueError("the dialogue emotion backend needs pymlask, mecab-python3 and ipadic "
                         "(pip install pymlask mecab-python3 ipadic)") from e
    try:
        return _Analyzer(mlask.MLAsk(ipadic.MECAB_ARGS), threading.Lock())
    except RuntimeError as e:
        raise ValueError(f"could not start MeCab with the ipadic dictionary ({ipadic.MECAB_ARGS}): {e}") from e


@dataclass(frozen=True)
class LineEmotion:
    """One line's distribution over EMOTIONS and what it came from.

    ``mlask``: ML-Ask classes found (full names) -> matched words; ``cues``: how many of m2m's cues
    matched (only consulted when ML-Ask found nothing). ``emotive`` when either found something.
    """

    distribution: dict[str, float]
    mlask: dict[str, tuple[str, ...]]
    cues: int = 0

    @property
    def emotive(self) -> bool:
        return bool(self.mlask) or self.cues > 0


def _flat(text: str) -> str:
    return "".join(text.split())  # speech bubbles break lines anywhere; MeCab wants one sentence


# Parts of speech (IPADIC) of a word used as a discourse marker: いや as "no, ..." (接続詞), いやいや
# as "no, no" (副詞), いやあ as "well" (感動詞). ML-Ask's dictionary lists いや as dislike (嫌), which
# is right only for the noun/adjective (いやだ, いやな予感); as a marker the line has no dislike in it.
_MARKER_POS = ("接続詞", "副詞", "感動詞")


def _marker_only(analyzer: _Analyzer, flat: str) -> set[str]:
    """Surface forms that MeCab tags only as discourse markers in ``flat`` (いや、いやだ: not いや,
    which is also a noun there). The caller holds the analyzer's lock."""
    markers, others = set(), set()
    for line in analyzer.mlask.mecab.parse(flat).splitlines():
        surface, _, features = line.partition("\t")
        (markers if features.split(",", 1)[0] in _MARKER_POS else others).add(surface)
    return markers - others


def mlask_emotions(text: str) -> dict[str, tuple[str, ...]]:
    """ML-Ask's answer for a line: its class names (as pymlask spells them) -> matched words, less
    the dislike (``iya``) words that the line uses as discourse markers."""
    flat = _flat(text)
    if not flat:
        return {}
    analyzer = _analyzer()
    with analyzer.lock:
        result = analyzer.mlask.analyze(flat)
        found = {str(k): tuple(v) for k, v in (result.get("emotion") or {}).items()}
        if "iya" in found:
            markers = _marker_only(analyzer, flat)
            found["iya"] = tuple(w for w in found["iya"] if w not in markers)
    return {k: v for k, v in found.items() if v}


def line_emotion(text: str, table: MappingTable | None = None, cues: CueTable | None = None) -> LineEmotion:
    """One line's emotion: ML-Ask through the mapping table, else the cues, else ``no_emotion`` (neutral)."""
    table = table or load_mapping()
    cues = load_cues() if cues is None else cues
    weights = dict.fromkeys(EMOTIONS, 0.0)
    named: dict[str, tuple[str, ...]] = {}
    for raw_name, words in mlask_emotions(text).items():
        name = table.names.get(raw_name)
        if name is None:
            continue  # a class a newer pymlask might add; the table doesn't know where it goes
        named[name] = words
        for emotion, w in table.mapping[name].items():
            weights[emotion] += w * max(1, len(words))
    matched = 0
    if not named:
        flat = _flat(text)
        for cue in cues.cues:
            if cue.pattern.search(flat):
                matched += 1
                for emotion, w in cue.distribution.items():
                    weights[emotion] += w
    total = sum(weights.values())
    if total <= 0:
        return LineEmotion(dict(table.no_emotion), {})
    return LineEmotion({e: w / total for e, w in weights.items()}, named, matched)


def _lines(n: int) -> str:
    return f"{n} line{'s' if n != 1 else ''}"


class DialogueBackend:
    """Faces take the emotion of the dialogue around them (see the module docstring for the order).

    ``cues``: a cue file, or "" to use ML-Ask alone; ``panels=False`` ignores frames (page level only);
    ``emotive_weight`` overrides the mapping table's.
    """

    name = "dialogue"

    def __init__(self, mapping: str | None = None, cues: str | None = None, panels: bool = True,
                 emotive_weight: float | None = None) -> None:
        self._table = load_mapping(str(mapping) if mapping else str(MAPPING_FILE))
        self._cues = NO_CUES if cues == "" else load_cues(str(cues) if cues else str(CUES_FILE))
        self._panels = panels
        if emotive_weight is not None and emotive_weight <= 0:
            raise ValueError(f"emotive_weight: {emotive_weight!r} must be positive")
        self._weight = self._table.emotive_weight if emotive_weight is None else float(emotive_weight)

    def settings(self) -> dict[str, Any]:
        return {"analyzer": "ML-Ask (pymlask) + MeCab ipadic", "mapping_file": self._table.path,
                "mapping_sha256": self._table.sha256, "cues_file": self._cues.path or None,
                "cues_sha256": self._cues.sha256 or None, "panels": self._panels, "emotive_weight": self._weight}

    def predict(self, book: Book, scenes: ScenePlan, options: EmotionOptions) -> BackendResult:
        texts = {t.id: t for t in book.dialogue()}
        cache: dict[str, LineEmotion] = {}

        def emotion_of(text: Text) -> LineEmotion:
            if text.id not in cache:
                cache[text.id] = line_emotion(text.text, self._table, self._cues)
            return cache[text.id]

        faces: list[FaceEmotion] = []
        for page in book.pages:
            if not page.faces:
                continue
            scene = _scene_of(scenes, page.index)
            scene_lines = _scene_texts(scene, texts, book) if scene is not None else []
            for face in page.faces:
                probabilities, evidence = self._face_distribution(face, page, scene_lines, emotion_of)
                faces.append(FaceEmotion(page=page.index, face_id=face.id, character=face.character,
                                         probabilities=probabilities, backend=self.name, evidence=evidence))
        return BackendResult(tuple(faces))

    def _face_distribution(self, face: Face, page: Page, scene_lines: Sequence[Text],
                           emotion_of: Callable[[Text], LineEmotion]) -> tuple[dict[str, float], str]:
        said = [t for t in page.texts if t.text.strip()]
        own = [t for t in said if t.speaker is not None and t.speaker == face.character]
        steps: list[tuple[list[Text], str]] = []
        panel = _panel_of(face.bbox, page) if self._panels else None
        if panel is not None:
            in_panel = [t for t in said if t.bbox is not None and _panel_of(t.bbox, page) == panel]
            steps += [([t for t in in_panel if t in own], "by this character in the panel"),
                      (in_panel, "in the panel")]
        steps += [(own, "by this character on the page"), (said, "on the page"),
                  ([t for t in scene_lines if t.text.strip()], "in the scene")]
        for lines, where in steps:
            if lines:
                found = [emotion_of(t) for t in lines]
                emotive = sum(le.emotive for le in found)
                return self._weighted_mean(found), f"{_lines(len(lines))} {where} ({emotive} emotive)"
        return {e: (1.0 if e == "neutral" else 0.0) for e in EMOTIONS}, "no dialogue in the scene: neutral"

    def _weighted_mean(self, found: Sequence[LineEmotion]) -> dict[str, float]:
        weights = [self._weight if le.emotive else 1.0 for le in found]
        total = sum(weights)
        return {e: sum(w * le.distribution[e] for w, le in zip(weights, found, strict=True)) / total
                for e in EMOTIONS}


def _scene_of(scenes: ScenePlan, page: int) -> Scene | None:
    for scene in scenes.scenes:
        if page in scene.pages:
            return scene
    return None


def _scene_texts(scene: Scene, texts: Mapping[str, Text], book: Book) -> list[Text]:
    """The scene's lines: its listed text ids, or every line on its pages when it lists none."""
    if scene.lines:
        return [texts[i] for i in scene.lines if i in texts]
    pages = set(scene.pages)
    return [t for p in book.pages if p.index in pages for t in p.texts]


def _panel_of(box: BBox, page: Page) -> str | None:
    """The frame holding the box's centre (the smallest, when frames nest), or None."""
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    holding = [f for f in page.frames if f.bbox[0] <= cx <= f.bbox[2] and f.bbox[1] <= cy <= f.bbox[3]]
    if not holding:
        return None
    return min(holding, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])).id
