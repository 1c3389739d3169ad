"""Stage 2: facial emotion per face, aggregated per page and per scene (KangaiSet's 7 classes).

``recognise_emotions(book, scenes, backend)`` asks a backend for one :class:`FaceEmotion` per face
annotation, then averages the face probabilities per page and per scene. Backends live in
``m2m/emotion_backends/`` and are found through a small registry:

* ``clip-finetuned``: an ``open_clip`` image encoder with a classification head (``m2m emotions train``);
* ``clip-zeroshot``: ``open_clip`` against text prompts per class (``m2m/data/emotions/zeroshot_prompts.json``);
* ``dialogue`` (the embedded default, offline): the scene's Japanese dialogue through ML-Ask;
* ``annotations``: labels from a KangaiSet-style file beside the book.

Only the image backends import torch, so the offline default stays light.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from m2m.book import Book, find_label_file
from m2m.runs import Provenance, Staged
from m2m.scenes import ScenePlan

EMOTIONS: tuple[str, ...] = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")

DATA_DIR = Path(__file__).with_name("data") / "emotions"
"""Prompt templates, the ML-Ask mapping table and label aliases (see its README.md)."""

DEFAULT_EMOTION_BACKEND = "dialogue"

# name -> "module:Class". Imported on demand so the dialogue default never pulls in torch.
_BACKENDS: tuple[tuple[str, str], ...] = (
    ("clip-finetuned", "m2m.emotion_backends.clip:FinetunedClipBackend"),
    ("clip-zeroshot", "m2m.emotion_backends.clip:ZeroShotClipBackend"),
    ("dialogue", "m2m.emotion_backends.dialogue:DialogueBackend"),
    ("annotations", "m2m.emotion_backends.annotations:AnnotationsBackend"),
)


@dataclass(frozen=True)
class FaceEmotion:
    """One face's class probabilities (over EMOTIONS). ``warning`` says why a face was skipped or doubtful.

    A skipped face (unreadable image, empty box, no label) has empty ``probabilities`` and is left
    out of the page and scene averages. ``evidence`` says briefly what the label came from (e.g.
    "2 lines by this character in the panel (1 emotive)", "face crop"), for the side panels.
    """

    page: int
    face_id: str
    character: str
    probabilities: dict[str, float]
    backend: str
    warning: str | None = None
    evidence: str = ""

    @property
    def skipped(self) -> bool:
        return not self.probabilities

    @property
    def label(self) -> str | None:
        """The most probable class (ties go to the earlier class in EMOTIONS), None when skipped."""
        if self.skipped:
            return None
        return max(EMOTIONS, key=lambda e: (self.probabilities.get(e, 0.0), -EMOTIONS.index(e)))


@dataclass(frozen=True)
class Distribution:
    """Mean class probabilities over ``faces`` faces (all zero weight -> neutral when faces == 0)."""

    probabilities: dict[str, float]
    faces: int


@dataclass(frozen=True)
class EmotionReport:
    """``02-emotions.json``: per face, per page, per scene."""

    backend: str
    faces: tuple[FaceEmotion, ...]
    pages: dict[int, Distribution]
    scenes: dict[int, Distribution]


@dataclass(frozen=True)
class EmotionOptions:
    """Per-call settings. ``backend_options`` go to :func:`load_emotion_backend` when the backend is a name.

    Crops: the face box grows by ``padding`` (a fraction of its longer side) on every side, becomes a
    square around the face's centre (page context, white beyond the page edge) and is resized to
    ``crop_size`` pixels. None lets the backend choose: a fine-tuned checkpoint records the padding
    it was trained with, and the crop size is the model's input size. Faces under ``tiny_face``
    pixels on their shorter side are classified but flagged as doubtful.
    """

    batch_size: int = 32
    padding: float | None = None
    crop_size: int | None = None
    tiny_face: int = 16
    backend_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size: {self.batch_size!r} must be at least 1")
        if self.padding is not None and not 0.0 <= self.padding <= 2.0:
            raise ValueError(f"padding: {self.padding!r} must be between 0 and 2 (a fraction of the face size)")
        if self.crop_size is not None and self.crop_size < 8:
            raise ValueError(f"crop_size: {self.crop_size!r} must be at least 8 pixels")
        if self.tiny_face < 0:
            raise ValueError(f"tiny_face: {self.tiny_face!r} must not be negative")


@dataclass(frozen=True)
class BackendResult:
    """What a backend returns: one entry per face annotation of the book, plus run-level warnings."""

    faces: tuple[FaceEmotion, ...]
    warnings: tuple[str, ...] = ()


@runtime_checkable
class EmotionBackend(Protocol):
    """A loaded backend. Holds no per-request state: options come with each call."""

    name: str

    def settings(self) -> dict[str, Any]:
        """JSON-able settings that identify the model (checkpoint, model name, prompt file hash...)."""
        ...

    def predict(self, book: Book, scenes: ScenePlan, options: EmotionOptions) -> BackendResult: ...


# ---------------------------------------------------------------------------------------------
# Registry


def available_emotion_backends() -> tuple[str, ...]:
    return tuple(name for name, _ in _BACKENDS)


def load_emotion_backend(name: str, **options: Any) -> EmotionBackend:
    """Build a backend by name. Options are the backend class's keyword arguments, e.g.
    ``load_emotion_backend("clip-finetuned", checkpoint="ckpt.pt")``. Models are loaded once per
    process and shared, so calling this per request is cheap.
    """
    target = dict(_BACKENDS).get(name)
    if target is None:
        raise ValueError(f"backend: {name!r} is not an emotion backend; choose one of "
                         f"{', '.join(available_emotion_backends())}")
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    try:
        return cls(**options)
    except TypeError as e:
        raise ValueError(f"backend {name!r}: bad options {sorted(options)}: {e}") from e


@dataclass(frozen=True)
class EmotionModel:
    """Where the image backends' weights come from, as a reader or command chose it: ``checkpoint``
    (clip-finetuned: a file from ``m2m emotions train`` or a repo id), the torch ``device`` (None: the
    GPU when there is one), and whether missing weights may download. One value serves every backend;
    each takes the fields it has a use for (:meth:`options_for`)."""

    checkpoint: str | None = None
    device: str | None = None
    allow_download: bool = False

    def options_for(self, backend: str) -> dict[str, Any]:
        """The keyword arguments backend ``backend``'s class takes from this model choice."""
        return backend_options_for(backend, checkpoint=self.checkpoint, device=self.device,
                                   allow_download=self.allow_download)


def backend_options_for(name: str, **candidates: Any) -> dict[str, Any]:
    """The ``candidates`` that backend ``name`` takes (keyword arguments of its class), None values
    dropped: one set of settings (checkpoint, device, allow_download) serves every backend."""
    target = dict(_BACKENDS).get(name)
    if target is None:
        return {}
    module_name, class_name = target.split(":")
    parameters = inspect.signature(getattr(importlib.import_module(module_name), class_name)).parameters
    return {k: v for k, v in candidates.items() if v is not None and k in parameters}


def choose_emotion_backend(book: Book) -> str:
    """The embedded default for a book: its annotated labels when it has a label file, else dialogue."""
    return "annotations" if find_label_file(book) is not None else DEFAULT_EMOTION_BACKEND


# ---------------------------------------------------------------------------------------------
# The stage


def recognise_emotions(book: Book, scenes: ScenePlan, backend: str | EmotionBackend,
                       options: EmotionOptions | None = None) -> Staged[EmotionReport]:
    """Classify every face of ``book`` and average per page and per scene.

    Bad faces (empty or off-page boxes, unreadable images, missing labels) become per-face warnings
    in the report, never exceptions. Provenance: stage "emotions", the backend's name and settings,
    the run-level warnings; ``input_hash`` is left for the pipeline to fill.
    """
    options = options or EmotionOptions()
    if isinstance(backend, str):
        backend = load_emotion_backend(backend, **options.backend_options)
    result = backend.predict(book, scenes, options)
    faces = tuple(_normalised(f) for f in result.faces)
    pages, scene_dists, orphan_pages = aggregate(book, scenes, faces)
    warnings = list(result.warnings)
    if orphan_pages:
        warnings.append(f"pages {', '.join(map(str, orphan_pages))} belong to no scene; "
                        "their faces count only in the page averages")
    skipped = sum(f.skipped for f in faces)
    if skipped:
        warnings.append(f"{skipped} of {len(faces)} faces were skipped (see each face's warning)")
    report = EmotionReport(backend=backend.name, faces=faces, pages=pages, scenes=scene_dists)
    settings = {"batch_size": options.batch_size, "padding": options.padding, "crop_size": options.crop_size,
                "tiny_face": options.tiny_face, **backend.settings()}
    provenance = Provenance(stage="emotions", backend=backend.name, input_hash="", settings=settings,
                            warnings=tuple(warnings))
    return Staged(report, provenance)


def _normalised(face: FaceEmotion) -> FaceEmotion:
    """Probabilities over exactly EMOTIONS, summing to 1 (a backend's rounding never leaks out)."""
    if face.skipped:
        return face
    unknown = set(face.probabilities) - set(EMOTIONS)
    if unknown:
        raise ValueError(f"probabilities: face {face.face_id} has unknown classes {sorted(unknown)}; "
                         f"expected {', '.join(EMOTIONS)}")
    values = {e: float(face.probabilities.get(e, 0.0)) for e in EMOTIONS}
    if any(not math.isfinite(v) or v < 0 for v in values.values()):
        raise ValueError(f"probabilities: face {face.face_id} has negative or non-finite values {values}")
    total = sum(values.values())
    if total <= 0:
        return replace(face, probabilities={})
    return replace(face, probabilities={e: v / total for e, v in values.items()})


def mean_distribution(faces: Sequence[FaceEmotion]) -> Distribution:
    """The mean of the classified faces' probabilities; no classified face -> neutral, faces=0."""
    counted = [f for f in faces if not f.skipped]
    if not counted:
        return Distribution({e: (1.0 if e == "neutral" else 0.0) for e in EMOTIONS}, 0)
    return Distribution({e: sum(f.probabilities.get(e, 0.0) for f in counted) / len(counted) for e in EMOTIONS},
                        len(counted))


def aggregate(book: Book, scenes: ScenePlan, faces: Sequence[FaceEmotion]
              ) -> tuple[dict[int, Distribution], dict[int, Distribution], tuple[int, ...]]:
    """Per-page and per-scene distributions, and the pages (with faces) that no scene holds.

    A scene's distribution averages its faces, not its pages, so a crowded page weighs more than a
    page with one face: the paper's "57% neutral, 13% surprise" reads as a share of the faces seen.
    """
    by_page: dict[int, list[FaceEmotion]] = {p.index: [] for p in book.pages}
    for face in faces:
        by_page.setdefault(face.page, []).append(face)
    pages = {index: mean_distribution(group) for index, group in sorted(by_page.items())}
    scene_dists: dict[int, Distribution] = {}
    held: set[int] = set()
    for scene in scenes.scenes:
        held.update(scene.pages)
        scene_dists[scene.index] = mean_distribution([f for p in scene.pages for f in by_page.get(p, [])])
    orphans = tuple(p for p, group in sorted(by_page.items()) if group and p not in held)
    return pages, scene_dists, orphans


# ---------------------------------------------------------------------------------------------
# Text


def percentages(probabilities: Mapping[str, float]) -> dict[str, int]:
    """Whole percentages per class (EMOTIONS order) that sum to 100: largest-remainder rounding,
    except that equal values always get equal percentages (the leftover points go to a whole group
    of tied remainders or to none of it). No weight at all is 100% neutral. The reader's bars and
    the paper's text line both use these, so they agree."""
    total = sum(max(0.0, float(probabilities.get(e, 0.0))) for e in EMOTIONS)
    if total <= 0 or not math.isfinite(total):
        return {e: 100 if e == "neutral" else 0 for e in EMOTIONS}
    exact = {e: 100.0 * max(0.0, float(probabilities.get(e, 0.0))) / total for e in EMOTIONS}
    rounded = {e: math.floor(v + 1e-9) for e, v in exact.items()}
    leftover = 100 - sum(rounded.values())
    remainders = sorted(EMOTIONS, key=lambda e: (-(exact[e] - rounded[e]), EMOTIONS.index(e)))
    i = 0
    while leftover > 0 and i < len(remainders):
        r = exact[remainders[i]] - rounded[remainders[i]]
        group = [e for e in remainders[i:] if abs((exact[e] - rounded[e]) - r) < 1e-9]
        if len(group) > leftover or r < 1e-9:
            break
        for e in group:
            rounded[e] += 1
        leftover -= len(group)
        i += len(group)
    return rounded


def render_distribution(probabilities: Mapping[str, float], top: int = 3) -> str:
    """The paper's text form, e.g. "57% neutral, 13% surprise, 13% fear".

    Percentages use largest-remainder rounding so the full set sums to 100, except that equal
    values always get equal percentages (the leftover points go to a whole group of tied
    remainders or to none of it). The top ``top`` classes are shown, plus any class tied with the
    last one shown, so equal classes are never split arbitrarily; ties are listed in EMOTIONS order.
    No weight at all renders as "100% neutral".
    """
    if top < 1:
        raise ValueError(f"top: {top!r} must be at least 1")
    rounded = percentages(probabilities)
    ranked = sorted((e for e in EMOTIONS if rounded[e] > 0), key=lambda e: (-rounded[e], EMOTIONS.index(e)))
    shown = ranked[:top]
    if shown:
        shown += [e for e in ranked[top:] if rounded[e] == rounded[shown[-1]]]
    return ", ".join(f"{rounded[e]}% {e}" for e in shown)


def describe_distribution(distribution: Distribution, top: int = 3) -> str:
    """Like :func:`render_distribution`, but says "no faces" when nothing was seen."""
    if distribution.faces == 0:
        return "no faces"
    return render_distribution(distribution.probabilities, top)


# ---------------------------------------------------------------------------------------------
# Labels


@lru_cache(maxsize=1)
def _label_aliases() -> dict[str, str]:
    data = json.loads((DATA_DIR / "labels.json").read_text(encoding="utf-8"))
    aliases: dict[str, str] = {}
    for emotion, spellings in data["aliases"].items():
        if emotion not in EMOTIONS:
            raise ValueError(f"{DATA_DIR / 'labels.json'}: aliases: {emotion!r} is not one of {', '.join(EMOTIONS)}")
        for spelling in [emotion, *spellings]:
            aliases[spelling.strip().lower()] = emotion
    return aliases


def parse_label(raw: object, where: str = "label") -> str:
    """A KangaiSet-style label ("Happy", "happiness"...) as one of EMOTIONS; else a ValueError naming ``where``."""
    emotion = _label_aliases().get(str(raw).strip().lower())
    if emotion is None:
        raise ValueError(f"{where}: {raw!r} is not an emotion label; expected one of {', '.join(EMOTIONS)}")
    return emotion
