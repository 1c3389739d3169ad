"""What the offline director reads from a book: each page's dialogue statistics and the emotions of
a page or scene as a distribution over :data:`m2m.emotions.EMOTIONS`.

Stages 1, 3 and 4 and the baseline all start from these same readings, so they live apart from the
rules that turn them into scene boundaries, directives and captions (:mod:`m2m.director.offline`,
:mod:`m2m.director.offline_baseline`). The word lists and weights come from the director's tables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from m2m.book import Page
from m2m.emotions import EMOTIONS, EmotionReport

_EXCLAIM = re.compile(r"[!！]")
_QUESTION = re.compile(r"[?？]")
_ELLIPSIS = re.compile(r"(…|\.\.\.|‥|・・・)\s*[」』]?$")


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


# ---------------------------------------------------------------------------------------------
# What a page's dialogue says


@dataclass(frozen=True)
class PageCues:
    """Dialogue statistics of one page. Fractions are of the page's lines; intensity is 0-1."""

    index: int
    lines: int
    mean_chars: float
    exclamation: float
    question: float
    ellipsis: float
    intensity: float
    lexicon: dict[str, int]
    speakers: frozenset[str]
    faces: frozenset[str]
    first_text: str
    last_text: str


def _lower_text(page_texts: Sequence[str]) -> str:
    return " ".join(page_texts).lower()


def word_hits(text: str, words: Sequence[str]) -> int:
    """Occurrences of any of ``words``: substrings for Japanese, whole words for Latin script."""
    count = 0
    for word in words:
        if word.isascii():
            count += len(re.findall(rf"\b{re.escape(word)}\b", text))
        else:
            count += text.count(word)
    return count


def page_cues(page: Page, tables: Mapping[str, Any]) -> PageCues:
    texts = [t.text for t in page.texts]
    both = [f"{t.text} {t.gloss or ''}" for t in page.texts]
    n = len(texts)
    weights = tables["intensity"]
    if n:
        exclamation = sum(bool(_EXCLAIM.search(t)) for t in texts) / n
        question = sum(bool(_QUESTION.search(t)) for t in texts) / n
        ellipsis = sum(bool(_ELLIPSIS.search(t.strip())) for t in texts) / n
        mean_chars = sum(len(t) for t in texts) / n
        density = min(n / weights["lines_for_full_density"], 1.0)
        rapid = 1.0 - min(mean_chars / weights["chars_for_calm_line"], 1.0)
        intensity = (weights["exclamation"] * exclamation + weights["question"] * question
                     + weights["density"] * density + weights["rapid"] * rapid)
    else:
        exclamation = question = ellipsis = mean_chars = 0.0
        intensity = weights["silent_page"]
    joined = _lower_text(both)
    lexicon = {emotion: word_hits(joined, words) for emotion, words in tables["lexicon"].items()}
    return PageCues(index=page.index, lines=n, mean_chars=mean_chars, exclamation=exclamation, question=question,
                    ellipsis=ellipsis, intensity=clamp(intensity, 0.0, 1.0), lexicon=lexicon,
                    speakers=frozenset(t.speaker for t in page.texts if t.speaker),
                    faces=frozenset(f.character for f in page.faces if f.character and f.character != "unknown"),
                    first_text=_lower_text(both[:3]), last_text=_lower_text(both[-3:]))


# ---------------------------------------------------------------------------------------------
# Emotions as a distribution over EMOTIONS


def normalise(weights: Mapping[str, float]) -> dict[str, float]:
    total = sum(max(0.0, weights.get(e, 0.0)) for e in EMOTIONS)
    if total <= 0:
        return {e: 1.0 if e == "neutral" else 0.0 for e in EMOTIONS}
    return {e: max(0.0, weights.get(e, 0.0)) / total for e in EMOTIONS}


def lexicon_distribution(cues: Sequence[PageCues]) -> dict[str, float] | None:
    """Lexicon hits as a distribution; neutral weighs in with the number of lines so a single word in a
    long conversation only tints it. None when the dialogue is empty."""
    lines = sum(c.lines for c in cues)
    if not lines:
        return None
    counts: dict[str, float] = {e: float(sum(c.lexicon.get(e, 0) for c in cues)) for e in EMOTIONS}
    counts["neutral"] = 1.0 + 0.2 * lines
    return normalise(counts)


def blend(parts: Sequence[tuple[float, Mapping[str, float] | None]]) -> dict[str, float]:
    mixed = {e: 0.0 for e in EMOTIONS}
    for weight, dist in parts:
        if dist is not None:
            for e in EMOTIONS:
                mixed[e] += weight * dist.get(e, 0.0)
    return normalise(mixed)


def face_distribution(emotions: EmotionReport | None, table: str, key: int) -> dict[str, float] | None:
    """The faces' distribution for page or scene ``key`` (``table`` "pages" or "scenes"); None without faces."""
    if emotions is None:
        return None
    distribution = getattr(emotions, table).get(key)
    if distribution is None or distribution.faces == 0:
        return None
    return normalise(distribution.probabilities)


def mood_of(distribution: Mapping[str, float]) -> tuple[str, float]:
    """The mood table to use (an emotion name) and how strongly it shows (0-1).

    Faces are neutral most of the time (the paper's own example reads "57% neutral"), so the strongest
    non-neutral emotion colours the music once it holds a fair share.
    """
    others = {e: distribution.get(e, 0.0) for e in EMOTIONS if e != "neutral"}
    top = max(others, key=lambda e: (others[e], -EMOTIONS.index(e)))
    if sum(others.values()) < 0.25 or others[top] < 0.12:
        return "neutral", distribution.get("neutral", 1.0)
    return top, others[top]
