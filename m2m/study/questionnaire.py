"""The study's questions and answer scales, read from ``questionnaire.json``.

The wording lives in a data file so it can be translated or adjusted without touching code; the
keys are fixed here because they are columns of the ratings store.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from .manifest import CONDITIONS

# Paper, section IV.A: three criteria, each on a 5-point Likert scale from 1 (very low) to 5 (very high).
CRITERIA: tuple[str, ...] = ("relevancy", "quality", "consistency")
SCORE_MIN = 1
SCORE_MAX = 5
SCREENING_KEYS: tuple[str, ...] = ("manga_interest", "music_interest", "japanese")
JAPANESE_LEVELS: tuple[str, ...] = ("none", "basic", "conversational", "fluent", "native")

DEFAULT_QUESTIONNAIRE = Path(__file__).with_name("questionnaire.json")

# Paper, section IV.A: participants were included when their interest in manga and in music was
# above 2 (of 5) and they were fluent in Japanese. ``Screening.meets_paper_criteria`` is the same rule
# as a yes/no; ``m2m.study.records.screening_reasons`` says which part failed, for the report.
PAPER_MIN_INTEREST = 3
PAPER_JAPANESE_LEVELS: tuple[str, ...] = ("fluent", "native")
PAPER_SCREENING_RULE = "interest in manga and in music above 2 on the 1-5 scale, and fluent or native Japanese"


@dataclass(frozen=True)
class Criterion:
    key: str
    name: str
    question: str


@dataclass(frozen=True)
class Questionnaire:
    """Texts shown to participants; ``scale[0]`` describes score 1, ``scale[4]`` score 5.

    ``report_condition_names`` is for analysis reports only: participants never see a condition.
    """

    criteria: tuple[Criterion, ...]
    scale: tuple[str, ...]
    screening: Mapping[str, str]
    interest_scale: tuple[str, ...]
    japanese_levels: Mapping[str, str]
    report_condition_names: Mapping[str, str]


def load_questionnaire(path: str | os.PathLike[str] = DEFAULT_QUESTIONNAIRE) -> Questionnaire:
    """Read and check the questionnaire file; ValueError names the field that does not fit the schema."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"questionnaire {str(path)!r} cannot be read: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"questionnaire {str(path)!r} must be a JSON object")
    criteria = tuple(
        Criterion(key=str(c.get("key")), name=str(c.get("name")), question=str(c.get("question")))
        for c in _objects(data, "criteria")
    )
    if tuple(c.key for c in criteria) != CRITERIA:
        raise ValueError(f"questionnaire.criteria keys must be {list(CRITERIA)}, got {[c.key for c in criteria]}")
    screening = {str(s.get("key")): str(s.get("question")) for s in _objects(data, "screening")}
    if tuple(screening) != SCREENING_KEYS:
        raise ValueError(f"questionnaire.screening keys must be {list(SCREENING_KEYS)}, got {list(screening)}")
    levels = _field(data, "japanese_levels", dict)
    if tuple(levels) != JAPANESE_LEVELS:
        raise ValueError(f"questionnaire.japanese_levels keys must be {list(JAPANESE_LEVELS)}, got {list(levels)}")
    names = _field(data, "report_condition_names", dict)
    if set(names) != set(CONDITIONS):
        raise ValueError(f"questionnaire.report_condition_names keys must be {list(CONDITIONS)}, got {list(names)}")
    return Questionnaire(
        criteria=criteria,
        scale=_five_point(data, "scale"),
        screening=MappingProxyType(screening),
        interest_scale=_five_point(data, "interest_scale"),
        japanese_levels=MappingProxyType({k: str(v) for k, v in levels.items()}),
        report_condition_names=MappingProxyType({c: str(names[c]) for c in CONDITIONS}),
    )


def _field(data: dict, name: str, kind: type) -> object:
    value = data.get(name)
    if not isinstance(value, kind):
        raise ValueError(f"questionnaire.{name} must be a JSON {kind.__name__}, got {value!r}")
    return value


def _objects(data: dict, name: str) -> list[dict]:
    items = _field(data, name, list)
    for i, item in enumerate(items):  # type: ignore[arg-type]
        if not isinstance(item, dict):
            raise ValueError(f"questionnaire.{name}[{i}] must be a JSON object, got {item!r}")
    return items  # type: ignore[return-value]


def _five_point(data: dict, name: str) -> tuple[str, ...]:
    scale = _field(data, name, dict)
    expected = [str(score) for score in range(SCORE_MIN, SCORE_MAX + 1)]
    if list(scale) != expected:
        raise ValueError(f"questionnaire.{name} keys must be {expected}, got {list(scale)}")
    return tuple(str(scale[key]) for key in expected)

