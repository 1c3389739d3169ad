"""Stage 2: facial emotion per face, aggregated per page and per scene (KangaiSet's 7 classes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

EMOTIONS: tuple[str, ...] = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")


@dataclass(frozen=True)
class FaceEmotion:
    """One face's class probabilities (over EMOTIONS). ``warning`` says why a face was skipped or doubtful."""

    page: int
    face_id: str
    character: str
    probabilities: dict[str, float]
    backend: str
    warning: str | None = None


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


def render_distribution(probabilities: Mapping[str, float], top: int = 3) -> str:
    """The paper's text form, e.g. "57% neutral, 13% surprise, 13% fear".

    Percentages use largest-remainder rounding so the full set sums to 100; the top classes are
    taken by percentage, ties broken by EMOTIONS order so the same input always gives the same text.
    """
    total = sum(max(0.0, probabilities.get(e, 0.0)) for e in EMOTIONS)
    if total <= 0:
        return "100% neutral"
    exact = {e: 100.0 * max(0.0, probabilities.get(e, 0.0)) / total for e in EMOTIONS}
    rounded = {e: int(v) for e, v in exact.items()}
    by_remainder = sorted(EMOTIONS, key=lambda e: (-(exact[e] - rounded[e]), EMOTIONS.index(e)))
    for e in by_remainder[: 100 - sum(rounded.values())]:
        rounded[e] += 1
    ranked = sorted((e for e in EMOTIONS if rounded[e] > 0), key=lambda e: (-rounded[e], EMOTIONS.index(e)))
    return ", ".join(f"{rounded[e]}% {e}" for e in ranked[:top])
