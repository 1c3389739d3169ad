"""What the study records: screening answers, participants, scores and ratings.

Each record checks itself as it is made (a ValueError names the field), so the store, the API and
the file readers share one set of rules; ``m2m.study.store`` keeps them, ``m2m.study.exports``
writes and reads them as CSV and JSON Lines.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

from .questionnaire import (
    CRITERIA,
    JAPANESE_LEVELS,
    PAPER_JAPANESE_LEVELS,
    PAPER_MIN_INTEREST,
    SCORE_MAX,
    SCORE_MIN,
    SCREENING_KEYS,
)

# A version is four pages: six hours on one is not a listening time but a tab left open (or a forged
# request); the API refuses it instead of letting it skew the report's medians.
MAX_LISTENED_S = 21_600.0


@dataclass(frozen=True)
class Screening:
    """Screening answers: interest in manga and music (1 not interested .. 5 very interested), Japanese level."""

    manga_interest: int
    music_interest: int
    japanese: str

    def __post_init__(self) -> None:
        for name in ("manga_interest", "music_interest"):
            check_score(name, getattr(self, name))
        if self.japanese not in JAPANESE_LEVELS:
            raise ValueError(f"japanese must be one of {list(JAPANESE_LEVELS)}, got {self.japanese!r}")

    @classmethod
    def from_mapping(cls, answers: Mapping[str, object]) -> Screening:
        """From a submitted form; exactly the keys ``SCREENING_KEYS``."""
        check_keys("screening", answers, SCREENING_KEYS)
        return cls(**{key: answers[key] for key in SCREENING_KEYS})  # type: ignore[arg-type]

    def meets_paper_criteria(self) -> bool:
        """The paper's inclusion rule: interest in manga and music above 2, fluent in Japanese."""
        return not screening_reasons(self)


def screening_reasons(screening: Screening) -> tuple[str, ...]:
    """Why a participant falls outside the paper's inclusion rule; empty when they meet it."""
    reasons = []
    for key, name in (("manga_interest", "manga"), ("music_interest", "music")):
        value = getattr(screening, key)
        if value < PAPER_MIN_INTEREST:
            reasons.append(f"interest in {name} {value}, needs above {PAPER_MIN_INTEREST - 1}")
    if screening.japanese not in PAPER_JAPANESE_LEVELS:
        reasons.append(f"Japanese {screening.japanese}, needs fluent or native")
    return tuple(reasons)


@dataclass(frozen=True)
class Participant:
    id: str
    study: str
    number: int
    created: str
    screening: Screening


@dataclass(frozen=True)
class Scores:
    """One version's ratings, each an int from 1 (very low) to 5 (very high)."""

    relevancy: int
    quality: int
    consistency: int

    def __post_init__(self) -> None:
        for name in CRITERIA:
            check_score(name, getattr(self, name))


@dataclass(frozen=True)
class Rating:
    """A stored rating. ``created``/``updated`` are ISO-8601 UTC timestamps of first and last submission."""

    participant: str
    study: str
    stimulus: str
    label: str
    condition: str
    relevancy: int
    quality: int
    consistency: int
    created: str
    updated: str
    # Seconds on the version's listening screen with the study's audio running, summed over visits;
    # None when not recorded (an old client or a row from before schema 3).
    listened_s: float | None = None


RATING_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Rating))

PARTICIPANT_FIELDS: tuple[str, ...] = ("id", "study", "number", "created", *SCREENING_KEYS)

SUBMISSION_KEYS: tuple[str, ...] = ("stimulus", "label", *CRITERIA)

# Keys a submission may leave out: older browsers do not send a listening time.
OPTIONAL_SUBMISSION_KEYS: tuple[str, ...] = ("listened_s",)

# Old exports (made before listened_s existed) still read back, with listened_s None.
LEGACY_RATING_FIELDS: tuple[str, ...] = tuple(name for name in RATING_FIELDS if name not in OPTIONAL_SUBMISSION_KEYS)


def check_score(name: str, value: object) -> None:
    # bool is an int subclass; True would silently become a score of 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer from {SCORE_MIN} to {SCORE_MAX}, got {value!r}")
    if not SCORE_MIN <= value <= SCORE_MAX:
        raise ValueError(f"{name} must be from {SCORE_MIN} to {SCORE_MAX}, got {value!r}")


def check_listened_s(value: object) -> float | None:
    """A submitted listening time as a float of seconds, or None when absent; ValueError otherwise.

    JSON allows NaN and Infinity through Python's decoder, and bool is an int subclass: both refused."""
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"listened_s must be a number of seconds from 0 to {MAX_LISTENED_S:g}, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_LISTENED_S:
        raise ValueError(f"listened_s must be a finite number of seconds from 0 to {MAX_LISTENED_S:g}, got {value!r}")
    return seconds


def check_keys(what: str, payload: object, expected: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    if not isinstance(payload, Mapping):
        raise ValueError(f"{what} must be an object with keys {list(expected)}, got {type(payload).__name__}")
    if "condition" in payload:
        raise ValueError(f"{what} must not name a condition (got condition={payload['condition']!r}); the server resolves it from the label")
    missing = [key for key in expected if key not in payload]
    if missing:
        raise ValueError(f"{what} is missing {missing}")
    unknown = sorted(str(key) for key in payload if key not in expected and key not in optional)
    if unknown:
        raise ValueError(f"{what} has unknown field(s) {unknown}")
