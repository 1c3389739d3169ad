"""Ratings store: durability, UPSERT, refusals, schema migrations, concurrency, export."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from m2m.study import (
    RatingsStore,
    Scores,
    Screening,
    StoreError,
    condition_for,
    read_ratings_csv,
    read_ratings_jsonl,
)
from m2m.study.manifest import save_study
from m2m.study.store import SCHEMA_VERSION, default_store_path, migrate

from .conftest import FLUENT, make_study

ROOT = Path(__file__).resolve().parents[2]


def test_wal_mode_and_schema_version(store: RatingsStore) -> None:
    assert store.journal_mode() == "wal"
    assert store.schema_version() == SCHEMA_VERSION == 3
    with sqlite3.connect(store.path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_default_path_follows_env() -> None:
    assert default_store_path({"M2M_DATA_DIR": "/var/m2m"}) == Path("/var/m2m/study.sqlite3")
    assert default_store_path({}) == Path("data/study.sqlite3")


def test_register_numbers_participants_per_study(store: RatingsStore, study) -> None:
    numbers = [store.register(study, FLUENT).number for _ in range(3)]
    other = store.register(make_study("other"), FLUENT)
    assert numbers == [0, 1, 2] and other.number == 0
    again = store.participant(other.id)
    assert again == other and again.screening == FLUENT


def test_screening_validation_and_paper_criteria() -> None:
    assert FLUENT.meets_paper_criteria()
    assert not Screening(2, 5, "native").meets_paper_criteria()
    assert not Screening(5, 5, "conversational").meets_paper_criteria()
    with pytest.raises(ValueError, match="japanese must be one of"):
        Screening(3, 3, "some")
    with pytest.raises(ValueError, match="music_interest must be from 1 to 5, got 6"):
        Screening(3, 6, "none")
    with pytest.raises(ValueError, match="missing"):
        Screening.from_mapping({"manga_interest": 3, "music_interest": 3})
    assert Screening.from_mapping({"manga_interest": 3, "music_interest": 4, "japanese": "basic"}) == Screening(3, 4, "basic")


def test_submit_resolves_condition_server_side(store: RatingsStore, study) -> None:
    p = store.register(study, FLUENT)
    rating = store.submit(study, p.id, "s2", "B", Scores(4, 3, 5))
    assert rating.condition == condition_for(study, p.number, "s2", "B")
    assert (rating.relevancy, rating.quality, rating.consistency) == (4, 3, 5)
    assert store.rated(study.id, p.id) == {("s2", "B")}


def test_resubmission_updates_never_duplicates(store: RatingsStore, study) -> None:
    p = store.register(study, FLUENT)
    first = store.submit(study, p.id, "s1", "A", Scores(1, 1, 1))
    second = store.submit_payload(study, p.id, {"stimulus": "s1", "label": "A", "relevancy": 5, "quality": 4, "consistency": 3})
    rows = store.ratings(study.id)
    assert len(rows) == 1
    assert rows[0] == second
    assert (second.relevancy, second.quality, second.consistency) == (5, 4, 3)
    assert second.created == first.created and second.updated >= first.updated
    assert second.condition == first.condition


def _snapshot(store: RatingsStore) -> tuple[list[str], bytes, bytes]:
    with sqlite3.connect(store.path) as raw:
        dump = list(raw.iterdump())
    wal = Path(f"{store.path}-wal")
    return dump, store.path.read_bytes(), wal.read_bytes() if wal.exists() else b""


GOOD = {"stimulus": "s1", "label": "A", "relevancy": 3, "quality": 3, "consistency": 3}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"relevancy": 0}, "relevancy must be from 1 to 5, got 0"),
        ({"quality": 6}, "quality must be from 1 to 5, got 6"),
        ({"consistency": 3.0}, "consistency must be an integer from 1 to 5, got 3.0"),
        ({"relevancy": "4"}, "relevancy must be an integer"),
        ({"quality": True}, "quality must be an integer"),
        ({"consistency": None}, "consistency must be an integer"),
        ({"stimulus": "s99"}, "stimulus 's99' is not part of study"),
        ({"label": "D"}, "label must be one of"),
        ({"label": "a"}, "label must be one of"),
        ({"condition": "m2m"}, "must not name a condition"),
        ({"extra": 1}, r"unknown field\(s\) \['extra'\]"),
    ],
)
def test_refused_payload_leaves_store_unchanged(store: RatingsStore, study, change: dict, message: str) -> None:
    p = store.register(study, FLUENT)
    store.submit_payload(study, p.id, GOOD)
    before = _snapshot(store)
    with pytest.raises(ValueError, match=message):
        store.submit_payload(study, p.id, GOOD | change)
    assert _snapshot(store) == before


def test_refused_participants_leave_store_unchanged(store: RatingsStore, study) -> None:
    p = store.register(study, FLUENT)
    stranger = store.register(make_study("other"), FLUENT)
    store.submit_payload(study, p.id, GOOD)
    before = _snapshot(store)
    with pytest.raises(ValueError, match="participant 'nobody' is not registered"):
        store.submit_payload(study, "nobody", GOOD)
    with pytest.raises(ValueError, match="is registered for study 'other', not 'within-1'"):
        store.submit_payload(study, stranger.id, GOOD)
    with pytest.raises(ValueError, match="missing"):
        store.submit_payload(study, p.id, {"stimulus": "s1", "label": "A"})
    with pytest.raises(TypeError):
        store.submit(study, p.id, "s1", "A", Scores(3, 3, 3), condition="m2m")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="scores must be Scores"):
        store.submit(study, p.id, "s1", "A", {"relevancy": 3})  # type: ignore[arg-type]
    assert _snapshot(store) == before


def test_server_secret_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with RatingsStore(path) as first:
        secret = first.server_secret()
        assert len(secret) == 32 and first.server_secret() == secret
    with RatingsStore(path) as second:
        assert second.server_secret() == secret


def test_migration_from_version_1_keeps_data(tmp_path: Path, study) -> None:
    path = tmp_path / "old.sqlite3"
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA journal_mode = WAL")
    assert migrate(raw, target=1) == 1
    raw.execute("INSERT INTO participants VALUES ('old-p', 'within-1', 0, '2024-01-01T00:00:00+00:00', 4, 4, 'native')")
    raw.execute(
        "INSERT INTO ratings VALUES ('old-p', 'within-1', 's1', 'A', ?, 2, 3, 4, '2024-01-01T00:00:00+00:00', '2024-01-01T00:00:00+00:00')",
        (condition_for(study, 0, "s1", "A"),),
    )
    assert raw.execute("SELECT name FROM sqlite_master WHERE name = 'meta'").fetchone() is None
    raw.close()
    with RatingsStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert [(r.participant, r.relevancy, r.quality, r.consistency) for r in store.ratings()] == [("old-p", 2, 3, 4)]
        assert len(store.server_secret()) == 32  # table added by migration 2
        store.submit(study, "old-p", "s1", "A", Scores(5, 5, 5))
        assert len(store.ratings()) == 1


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    with sqlite3.connect(path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this code supports"):
        RatingsStore(path)


def test_fifty_concurrent_submitters_store_each_rating_once(store: RatingsStore, study) -> None:
    participants = [store.register(study, FLUENT) for _ in range(50)]
    barrier = threading.Barrier(len(participants))
    errors: list[BaseException] = []

    def rate(index: int) -> None:
        pid = participants[index].id
        try:
            barrier.wait()
            # Every rating twice: the second pass must update, not add.
            for round_ in (1, 2):
                for stimulus in study.stimuli:
                    for label in "ABC":
                        score = (index + round_) % 5 + 1
                        store.submit(study, pid, stimulus.id, label, Scores(score, score, round_))
        except BaseException as e:  # collected; the main thread asserts there were none
            errors.append(e)

    threads = [threading.Thread(target=rate, args=(i,)) for i in range(len(participants))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = store.ratings(study.id)
    assert len(rows) == 50 * 18
    assert len({(r.participant, r.stimulus, r.label) for r in rows}) == 50 * 18
    numbers = {p.id: (i, p.number) for i, p in enumerate(participants)}
    for r in rows:
        index, number = numbers[r.participant]
        assert r.relevancy == (index + 2) % 5 + 1 and r.consistency == 2
        assert r.condition == condition_for(study, number, r.stimulus, r.label)


WRITER = textwrap.dedent(
    """
    import sys
    from m2m.study import RatingsStore, Scores, load_study

    store_path, study_path, *participants = sys.argv[1:]
    study = load_study(study_path)
    store = RatingsStore(store_path)
    for i, pid in enumerate(participants):
        for stimulus in study.stimuli:
            for label in "ABC":
                score = (i + len(stimulus.id) + ord(label)) % 5 + 1
                store.submit(study, pid, stimulus.id, label, Scores(score, score, score))
                # The acknowledgement goes out only after submit returned, i.e. after COMMIT.
                print("ACK", pid, stimulus.id, label, score, sep="\t", flush=True)
    print("DONE", flush=True)
    """
)


def test_killed_writer_loses_no_acknowledged_rating(tmp_path: Path, study) -> None:
    store_path = tmp_path / "study.sqlite3"
    study_path = save_study(study, tmp_path / "study.json")
    with RatingsStore(store_path) as store:
        pids = [store.register(study, FLUENT).id for _ in range(40)]
    script = tmp_path / "writer.py"
    script.write_text(WRITER, encoding="utf-8")
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(store_path), str(study_path), *pids],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    acked: dict[tuple[str, str, str], int] = {}
    other_output: list[str] = []  # anything a library prints must not break the protocol
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 5 or fields[0] != "ACK":
                other_output.append(line)
                continue
            _, pid, stimulus, label, score = fields
            acked[(pid, stimulus, label)] = int(score)
            if len(acked) == 200:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    assert len(acked) == 200, other_output  # killed mid-stream: 40 x 18 = 720 were planned
    with RatingsStore(store_path) as store:
        with sqlite3.connect(store_path) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {(r.participant, r.stimulus, r.label): r.relevancy for r in store.ratings()}
    for key, score in acked.items():
        assert stored.get(key) == score, key
    assert len(stored) < 40 * 18


def test_export_round_trip(tmp_path: Path, store: RatingsStore, study) -> None:
    for i in range(3):
        p = store.register(study, FLUENT)
        for stimulus in study.stimuli[:2]:
            for label in "ABC":
                store.submit(study, p.id, stimulus.id, label, Scores(i + 1, 5 - i, 3))
    store.register(make_study("other"), FLUENT)
    ratings = store.ratings(study.id)
    assert len(ratings) == 18
    assert read_ratings_csv(store.export_csv(tmp_path / "out" / "ratings.csv", study.id)) == ratings
    assert read_ratings_jsonl(store.export_jsonl(tmp_path / "out" / "ratings.jsonl", study.id)) == ratings
    lines = (tmp_path / "out" / "ratings.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["condition"] in ("m2m", "baseline", "random")
    people = store.export_participants_jsonl(tmp_path / "out" / "participants.jsonl")
    records = [json.loads(line) for line in people.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 4 and records[0]["japanese"] == "fluent"


def test_read_csv_refuses_bad_scores(tmp_path: Path, store: RatingsStore, study) -> None:
    p = store.register(study, FLUENT)
    store.submit(study, p.id, "s1", "A", Scores(3, 3, 3))
    path = store.export_csv(tmp_path / "r.csv")
    text = path.read_text(encoding="utf-8").replace(",3,3,3,", ",9,3,3,")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="relevancy must be from 1 to 5, got 9"):
        read_ratings_csv(path)


def test_hub_sync_is_off_without_configuration(tmp_path: Path) -> None:
    from m2m.study.hub import HubSyncConfig, hub_config_from_env

    assert hub_config_from_env({}) is None
    assert hub_config_from_env({"M2M_STUDY_HF_REPO": "lab/m2m-study"}) is None
    assert hub_config_from_env({"HF_TOKEN": "hf_x"}) is None
    config = hub_config_from_env({"M2M_STUDY_HF_REPO": "lab/m2m-study", "HF_TOKEN": "hf_secret", "M2M_DATA_DIR": str(tmp_path)})
    assert config == HubSyncConfig("lab/m2m-study", "hf_secret", tmp_path / "hub")
    assert "hf_secret" not in repr(config)
    preferred = hub_config_from_env(
        {"M2M_STUDY_HF_REPO": "lab/r", "HF_TOKEN": "a", "M2M_STUDY_HF_TOKEN": "b", "M2M_STUDY_HF_EVERY_MINUTES": "2.5"}
    )
    assert preferred is not None and preferred.token == "b" and preferred.every_minutes == 2.5
    with pytest.raises(ValueError, match="M2M_STUDY_HF_EVERY_MINUTES must be a number"):
        hub_config_from_env({"M2M_STUDY_HF_REPO": "lab/r", "HF_TOKEN": "a", "M2M_STUDY_HF_EVERY_MINUTES": "soon"})
    with pytest.raises(ValueError, match="repo_id must look like 'owner/name'"):
        HubSyncConfig("no-owner", "t", tmp_path)
