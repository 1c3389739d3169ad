"""Listening time per rating: schema 3 column, validation, UPSERT, exports, and the report section."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from m2m.study import RatingsStore, Scores, condition_for, read_ratings_csv, read_ratings_jsonl
from m2m.study.analysis import RUSHED_BELOW_S, analyse, ratings_frame, render_report
from m2m.study.records import Rating, check_listened_s
from m2m.study.store import MIGRATIONS, SCHEMA_VERSION

from .conftest import FLUENT

OLD = "2024-01-01T00:00:00+00:00"


def make_schema_2_database(path: Path, study) -> None:
    """A database as the previous release left it: migrations 1 and 2 only, one rating in it."""
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA journal_mode = WAL")
    for version, statements in enumerate(MIGRATIONS[:2], start=1):
        for statement in statements:
            raw.execute(statement)
        raw.execute(f"PRAGMA user_version = {version}")
    raw.execute(f"INSERT INTO participants VALUES ('old-p', '{study.id}', 0, '{OLD}', 4, 4, 'native')")
    raw.execute("INSERT INTO ratings VALUES ('old-p', ?, 's1', 'A', ?, 2, 3, 4, ?, ?)",
                (study.id, condition_for(study, 0, "s1", "A"), OLD, OLD))
    raw.close()


def test_a_schema_2_database_migrates_and_keeps_its_rows(tmp_path: Path, study) -> None:
    path = tmp_path / "old.sqlite3"
    make_schema_2_database(path, study)
    with RatingsStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION == 3
        (old,) = store.ratings()
        assert (old.participant, old.relevancy, old.quality, old.consistency, old.listened_s) == ("old-p", 2, 3, 4, None)
        # The old row takes a listening time on its next submission.
        assert store.submit(study, "old-p", "s1", "A", Scores(5, 5, 5), listened_s=12.5).listened_s == 12.5
        assert len(store.ratings()) == 1
    with sqlite3.connect(path) as raw:
        columns = {row[1]: row[2] for row in raw.execute("PRAGMA table_info(ratings)")}
    assert columns["listened_s"] == "REAL"


def test_listening_time_is_stored_updated_and_kept_when_not_sent(store: RatingsStore, study) -> None:
    p = store.register(study, FLUENT)
    assert store.submit(study, p.id, "s1", "A", Scores(3, 3, 3)).listened_s is None
    assert store.submit(study, p.id, "s1", "B", Scores(3, 3, 3), listened_s=7).listened_s == 7.0
    # "Change": the new measurement replaces the old one...
    assert store.submit(study, p.id, "s1", "B", Scores(4, 4, 4), listened_s=31.25).listened_s == 31.25
    # ...but a resubmission that measured nothing (a reload, then Change) does not erase it.
    changed = store.submit_payload(study, p.id, {"stimulus": "s1", "label": "B", "relevancy": 2, "quality": 2, "consistency": 2})
    assert (changed.relevancy, changed.listened_s) == (2, 31.25)
    via_payload = store.submit_payload(study, p.id, {"stimulus": "s1", "label": "C", "relevancy": 2, "quality": 2,
                                                     "consistency": 2, "listened_s": 0})
    assert via_payload.listened_s == 0.0
    assert len(store.ratings()) == 3


@pytest.mark.parametrize("bad", [-0.5, 21_600.5, math.nan, math.inf, True, "12", [3]])
def test_bad_listening_times_are_refused_and_change_nothing(store: RatingsStore, study, bad: object) -> None:
    p = store.register(study, FLUENT)
    with pytest.raises(ValueError, match="listened_s must be"):
        store.submit_payload(study, p.id, {"stimulus": "s1", "label": "A", "relevancy": 2, "quality": 2,
                                           "consistency": 2, "listened_s": bad})
    assert store.ratings() == ()


def test_check_listened_s_bounds() -> None:
    assert check_listened_s(None) is None
    assert check_listened_s(0) == 0.0 and check_listened_s(21_600) == 21_600.0
    assert isinstance(check_listened_s(3), float)


def test_exports_carry_listening_time_and_old_exports_still_read(tmp_path: Path, store: RatingsStore, study) -> None:
    p = store.register(study, FLUENT)
    store.submit(study, p.id, "s1", "A", Scores(3, 3, 3), listened_s=42.5)
    store.submit(study, p.id, "s1", "B", Scores(3, 3, 3))
    ratings = store.ratings(study.id)
    csv_path = store.export_csv(tmp_path / "r.csv", study.id)
    jsonl_path = store.export_jsonl(tmp_path / "r.jsonl", study.id)
    assert csv_path.read_text(encoding="utf-8").splitlines()[0].endswith(",listened_s")
    assert [json.loads(line)["listened_s"] for line in jsonl_path.read_text(encoding="utf-8").splitlines()] == [42.5, None]
    assert read_ratings_csv(csv_path) == ratings
    assert read_ratings_jsonl(jsonl_path) == ratings

    # An export made before the column existed reads back with listened_s None.
    legacy = tmp_path / "legacy.csv"
    lines = csv_path.read_text(encoding="utf-8").splitlines()
    legacy.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n", encoding="utf-8")
    assert [r.listened_s for r in read_ratings_csv(legacy)] == [None, None]
    bad = tmp_path / "bad.csv"
    bad.write_text(csv_path.read_text(encoding="utf-8").replace(",42.5", ",-1"), encoding="utf-8")
    with pytest.raises(ValueError, match="listened_s must be"):
        read_ratings_csv(bad)


def balanced(listened: dict[str, float | None]) -> list[Rating]:
    """Three participants, one stimulus, every condition; listening time per condition."""
    scores = {"m2m": (5, 4, 4), "baseline": (3, 3, 2), "random": (1, 2, 1)}
    rows = []
    for i in range(3):
        for label, condition in zip("ABC", scores, strict=True):
            r, q, c = scores[condition]
            rows.append(Rating(f"p{i}", "within-1", "s1", label, condition, max(1, r - i % 2), q, c, OLD, OLD,
                               None if listened[condition] is None else listened[condition] + i))
    return rows


def section(markdown: str) -> str:
    return markdown.split("## Listening time", 1)[1]


def test_report_shows_median_listening_time_and_rushed_ratings() -> None:
    analysis = analyse(ratings_frame(balanced({"m2m": 40.0, "baseline": 1.0, "random": None})))
    m2m, baseline, random_ = analysis.listening
    assert (m2m.condition, m2m.ratings, m2m.recorded, m2m.median_s, m2m.rushed) == ("m2m", 3, 3, 41.0, 0)
    assert (baseline.median_s, baseline.rushed) == (2.0, 3)
    assert random_.recorded == 0 and math.isnan(random_.median_s)
    text = section(render_report(analysis, "Study"))
    assert f"less than {RUSHED_BELOW_S:g} s" in text
    assert "| 41.0 | 0 of 3 |" in text and "| 2.0 | 3 of 3 |" in text
    assert "| 3 | 0 | not recorded | not recorded |" in text


def test_report_without_the_column_says_not_recorded_and_analyses_the_same_people() -> None:
    rows = balanced({"m2m": None, "baseline": None, "random": None})
    frame = ratings_frame(rows).drop(columns=["listened_s"])
    without = analyse(frame)
    with_times = analyse(ratings_frame(balanced({"m2m": 3.0, "baseline": 3.0, "random": 3.0})))
    assert without.participants == with_times.participants and without.summaries == with_times.summaries
    assert section(render_report(without, "Study")).count("not recorded") == 6
    assert isinstance(frame, pd.DataFrame)
