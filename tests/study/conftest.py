"""Fixtures for the listening-study tests: a small study manifest and a fresh ratings store."""

from __future__ import annotations

from pathlib import Path

import pytest

from m2m.study import RatingsStore, Screening, Stimulus, Study

BOOK = "TestBook"


def make_study(study_id: str = "within-1", n_stimuli: int = 6) -> Study:
    """Six stimuli of four consecutive pages, like the paper's six scenes."""
    stimuli = tuple(
        Stimulus(
            id=f"s{i + 1}",
            book_id=BOOK,
            pages=tuple(range(10 * i, 10 * i + 4)),
            versions={c: f"../runs/{BOOK}/{c}" for c in ("m2m", "baseline", "random")},
        )
        for i in range(n_stimuli)
    )
    return Study(
        id=study_id,
        title="Within-scene study",
        design="within-scene",
        engine="symbolic",
        stimuli=stimuli,
        consent_text="I agree to take part; my answers are stored anonymously.",
    )


FLUENT = Screening(manga_interest=4, music_interest=5, japanese="fluent")


@pytest.fixture
def study() -> Study:
    return make_study()


@pytest.fixture
def store(tmp_path: Path):
    with RatingsStore(tmp_path / "data" / "study.sqlite3") as s:
        yield s
