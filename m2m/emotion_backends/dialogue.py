"""The ``dialogue`` backend (embedded default): a face's emotion from the Japanese dialogue, via ML-Ask.

ML-Ask finds emotion words in a line and tags them with ten classes; ``mlask_mapping.json`` maps those
onto KangaiSet's seven (the table and its reasons: ``m2m/data/emotions/README.md``). Faces get the
emotion of their character's lines on the page, else of the page's dialogue, else of the scene's,
else neutral.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from m2m.book import Book, Page, Text
from m2m.emotions import DATA_DIR, EMOTIONS, BackendResult, EmotionOptions, FaceEmotion
from m2m.scenes import Scene, ScenePlan

MAPPING_FILE = DATA_DIR / "mlask_mapping.json"
MLASK_CLASSES = ("yorokobi", "ikari", "aware", "kowagari", "haji", "suki", "iya", "takaburi", "yasuragi", "odoroki")


@dataclass(frozen=True)
class PunctuationCue:
    pattern: re.Pattern[str]
    distribution: dict[str, float]


@dataclass(frozen=True)
class MappingTable:
    """ML-Ask class (full name) -> weights over EMOTIONS; ``names`` maps pymlask's spellings to full names."""

    names: dict[str, str]
    mapping: dict[str, dict[str, float]]
    no_emotion: dict[str, float]
    cues: tuple[PunctuationCue, ...]
    path: str
    sha256: str


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
    raw_bytes = Path(path).read_bytes()
    try:
        data = json.loads(raw_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a valid JSON mapping table: {e}") from e
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
    cues = []
    for i, cue in enumerate(data.get("punctuation_cues", [])):
        try:
            pattern = re.compile(cue["pattern"])
        except (KeyError, re.error) as e:
            raise ValueError(f"{path}: punctuation_cues[{i}].pattern: {e}") from e
        cues.append(PunctuationCue(pattern, _distribution(cue.get("distribution"),
                                                          f"{path}: punctuation_cues[{i}].distribution")))
    return MappingTable(names=names, mapping=mapping,
                        no_emotion=_distribution(data.get("no_emotion", {"neutral": 1.0}), f"{path}: no_emotion"),
                        cues=tuple(cues), path=str(path), sha256=hashlib.sha256(raw_bytes).hexdigest()[:16])


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
    """One line's distribution over EMOTIONS and the ML-Ask classes (with matched words) behind it."""

    distribution: dict[str, float]
    mlask: dict[str, tuple[str, ...]]
    cue: bool = False


def mlask_emotions(text: str) -> dict[str, tuple[str, ...]]:
    """ML-Ask's raw answer for a line: its class names (as pymlask spells them) -> matched words."""
    flat = "".join(text.split())  # speech bubbles break lines anywhere; MeCab wants one sentence
    if not flat:
        return {}
    analyzer = _analyzer()
    with analyzer.lock:
        result = analyzer.mlask.analyze(flat)
    return {str(k): tuple(v) for k, v in (result.get("emotion") or {}).items()}


def line_emotion(text: str, table: MappingTable | None = None) -> LineEmotion:
    table = table or load_mapping()
    found = mlask_emotions(text)
    weights = dict.fromkeys(EMOTIONS, 0.0)
    named: dict[str, tuple[str, ...]] = {}
    for raw_name, words in found.items():
        name = table.names.get(raw_name)
        if name is None:
            continue  # a class a newer pymlask might add; the table doesn't know where it goes
        named[name] = words
        for emotion, w in table.mapping[name].items():
            weights[emotion] += w * max(1, len(words))
    total = sum(weights.values())
    if total > 0:
        return LineEmotion({e: w / total for e, w in weights.items()}, named)
    for cue in table.cues:
        if cue.pattern.search(text):
            return LineEmotion(dict(cue.distribution), {}, cue=True)
    return LineEmotion(dict(table.no_emotion), {})


def _mean(distributions: Sequence[Mapping[str, float]]) -> dict[str, float]:
    return {e: sum(d[e] for d in distributions) / len(distributions) for e in EMOTIONS}


def _lines(n: int) -> str:
    return f"{n} line{'s' if n != 1 else ''}"


class DialogueBackend:
    """Faces take the emotion of the dialogue around them (see the module docstring for the order)."""

    name = "dialogue"

    def __init__(self, mapping: str | None = None) -> None:
        self._table = load_mapping(str(mapping) if mapping else str(MAPPING_FILE))

    def settings(self) -> dict[str, Any]:
        return {"mapping_file": self._table.path, "mapping_sha256": self._table.sha256, "analyzer": "ML-Ask (pymlask) + MeCab ipadic"}

    def predict(self, book: Book, scenes: ScenePlan, options: EmotionOptions) -> BackendResult:
        texts = {t.id: t for t in book.dialogue()}
        cache: dict[str, LineEmotion] = {}

        def emotion_of(text: Text) -> dict[str, float]:
            if text.id not in cache:
                cache[text.id] = line_emotion(text.text, self._table)
            return cache[text.id].distribution

        faces: list[FaceEmotion] = []
        warnings: list[str] = []
        for page in book.pages:
            if not page.faces:
                continue
            scene = _scene_of(scenes, page.index)
            scene_lines = _scene_texts(scene, texts, book) if scene is not None else []
            for face in page.faces:
                probabilities, evidence = _face_distribution(face.character, page, scene_lines, emotion_of)
                faces.append(FaceEmotion(page=page.index, face_id=face.id, character=face.character,
                                         probabilities=probabilities, backend=self.name, evidence=evidence))
        empty = [t.id for t in texts.values() if not t.text.strip()]
        if empty:
            warnings.append(f"{len(empty)} empty text boxes counted as neutral")
        return BackendResult(tuple(faces), tuple(warnings))


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


def _face_distribution(character: str, page: Page, scene_lines: Sequence[Text],
                       emotion_of) -> tuple[dict[str, float], str]:
    own = [t for t in page.texts if t.speaker is not None and t.speaker == character]
    if own:
        return _mean([emotion_of(t) for t in own]), f"{_lines(len(own))} by this character on the page"
    if page.texts:
        return _mean([emotion_of(t) for t in page.texts]), f"the page's dialogue ({_lines(len(page.texts))})"
    if scene_lines:
        return _mean([emotion_of(t) for t in scene_lines]), f"the scene's dialogue ({_lines(len(scene_lines))})"
    return {e: (1.0 if e == "neutral" else 0.0) for e in EMOTIONS}, "no dialogue in the scene: neutral"
