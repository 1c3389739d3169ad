"""Ratings store: SQLite in WAL mode, one file, safe for many concurrent submitters.

Guarantees the study app relies on:

* A call that returns has committed (``synchronous=FULL``): the app may acknowledge a rating as
  soon as ``submit`` returns, and a crash or kill afterwards cannot lose it.
* A refused call (``ValueError``) changes nothing: every check runs before or inside the write
  transaction, which is rolled back on any error.
* A resubmission of the same (participant, study, stimulus, label) updates the row (UPSERT on a
  UNIQUE constraint); it never adds a second one.
* The condition behind a label is resolved here from the participant's Latin-square row; no caller
  can pass one in.

The schema version is ``PRAGMA user_version``; ``MIGRATIONS`` are applied in order on open.
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from .exports import write_ratings_csv, write_ratings_jsonl, write_text_atomic
from .manifest import Study
from .questionnaire import CRITERIA
from .records import (
    OPTIONAL_SUBMISSION_KEYS,
    PARTICIPANT_FIELDS,
    RATING_FIELDS,
    SUBMISSION_KEYS,
    Participant,
    Rating,
    Scores,
    Screening,
    check_keys,
    check_listened_s,
)
from .sessions import LABELS, condition_for, new_participant_id, new_secret

DEFAULT_FILENAME = "study.sqlite3"
DEFAULT_BUSY_TIMEOUT_MS = 10_000

# Each entry is one schema version: its statements run in one transaction, then user_version is
# set to its position (1-based). Never edit a released entry; append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: participants with their screening answers, and ratings.
    (
        """CREATE TABLE participants (
            id TEXT PRIMARY KEY,
            study TEXT NOT NULL,
            number INTEGER NOT NULL CHECK (number >= 0),
            created TEXT NOT NULL,
            manga_interest INTEGER NOT NULL CHECK (manga_interest BETWEEN 1 AND 5),
            music_interest INTEGER NOT NULL CHECK (music_interest BETWEEN 1 AND 5),
            japanese TEXT NOT NULL CHECK (japanese IN ('none', 'basic', 'conversational', 'fluent', 'native')),
            UNIQUE (study, number)
        )""",
        """CREATE TABLE ratings (
            participant TEXT NOT NULL REFERENCES participants (id),
            study TEXT NOT NULL,
            stimulus TEXT NOT NULL,
            label TEXT NOT NULL CHECK (label IN ('A', 'B', 'C')),
            condition TEXT NOT NULL CHECK (condition IN ('m2m', 'baseline', 'random')),
            relevancy INTEGER NOT NULL CHECK (relevancy BETWEEN 1 AND 5),
            quality INTEGER NOT NULL CHECK (quality BETWEEN 1 AND 5),
            consistency INTEGER NOT NULL CHECK (consistency BETWEEN 1 AND 5),
            created TEXT NOT NULL,
            updated TEXT NOT NULL,
            UNIQUE (participant, study, stimulus, label)
        )""",
    ),
    # 2: a server secret for session tokens (so tokens survive restarts), and a per-study index for export.
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL)",
        "CREATE INDEX ratings_by_study ON ratings (study, participant)",
    ),
    # 3: seconds the version was listened to before this rating (NULL: not recorded, e.g. rows from
    # before this column or an old browser). Bounds checked in SQL too, so no path can store junk.
    (
        "ALTER TABLE ratings ADD COLUMN listened_s REAL CHECK (listened_s IS NULL OR listened_s BETWEEN 0 AND 21600)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(OSError):
    """The database failed (disk, lock timeout, corrupt file); the input itself was fine. An OSError:
    it is an I/O failure, and the command line reports it as one (a message, no traceback)."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def default_store_path(env: Mapping[str, str] | None = None) -> Path:
    """``$M2M_DATA_DIR/study.sqlite3``, or ``./data/study.sqlite3`` when the variable is unset."""
    env = os.environ if env is None else env
    data_dir = env.get("M2M_DATA_DIR")
    return (Path(data_dir) if data_dir else Path("data")) / DEFAULT_FILENAME


# --- schema ----------------------------------------------------------------------------------------


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Apply pending migrations up to ``target`` in order, each in its own transaction; returns the version.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Safe against another process
    migrating at the same time: the version is re-read under the write lock.
    """
    if not 0 <= target <= SCHEMA_VERSION:
        raise ValueError(f"target must be from 0 to {SCHEMA_VERSION}, got {target!r}")
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise StoreError(f"database schema version {current} is newer than this code supports ({SCHEMA_VERSION}); upgrade m2m")
    for version in range(current + 1, target + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if schema_version(conn) < version:
                for statement in MIGRATIONS[version - 1]:
                    conn.execute(statement)
                # PRAGMA takes no parameters; version is an int from range(), not input.
                conn.execute(f"PRAGMA user_version = {int(version)}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return schema_version(conn)


# --- the store -------------------------------------------------------------------------------------


class RatingsStore:
    """Participants and ratings of listening studies in one SQLite file.

    Thread-safe: connections come from a small pool (one per concurrent caller, reused), and
    writes in this process take a lock so they queue here instead of spinning on SQLite's busy
    handler. Other processes writing the same file are covered by ``busy_timeout``.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> None:
        if not isinstance(busy_timeout_ms, int) or busy_timeout_ms < 0:
            raise ValueError(f"busy_timeout_ms must be a non-negative integer, got {busy_timeout_ms!r}")
        self._path = Path(path) if path is not None else default_store_path()
        self._busy_timeout_ms = busy_timeout_ms
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = False
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with self._connection() as conn:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"cannot enable WAL mode on {str(self._path)!r} (journal_mode is {mode!r})")
                migrate(conn)
        except (sqlite3.Error, OSError) as e:
            self.close()
            raise StoreError(f"cannot open ratings store {str(self._path)!r}: {e}") from e
        except BaseException:
            self.close()
            raise

    @property
    def path(self) -> Path:
        return self._path

    def close(self) -> None:
        """Close every pooled connection. The store cannot be used afterwards."""
        with self._all_lock:
            self._closed = True
            connections, self._all = self._all, []
        for conn in connections:
            conn.close()

    def __enter__(self) -> RatingsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._open_connection()
        try:
            yield conn
        finally:
            # A connection left inside a transaction (a failed rollback) would block every writer;
            # it is dropped instead of going back to the pool.
            if self._closed or not _settled(conn):
                self._discard(conn)
            else:
                self._idle.put(conn)

    def _discard(self, conn: sqlite3.Connection) -> None:
        with self._all_lock:
            if conn in self._all:
                self._all.remove(conn)
        conn.close()

    def _open_connection(self) -> sqlite3.Connection:
        with self._all_lock:
            if self._closed:
                raise StoreError(f"ratings store {str(self._path)!r} is closed")
            # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE) so their extent is visible
            # here. check_same_thread is off because a pooled connection moves between threads, but
            # only one thread holds it at a time.
            try:
                conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=self._busy_timeout_ms / 1000)
                conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
                # FULL syncs the WAL on every commit: an acknowledged rating survives power loss, not just a crash.
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute("PRAGMA foreign_keys = ON")
            except sqlite3.Error as e:
                raise StoreError(f"cannot connect to {str(self._path)!r}: {e}") from e
            self._all.append(conn)
            return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed before the block's caller returns; rolled back on any error.

        BEGIN IMMEDIATE takes the write lock up front: a deferred transaction that reads first and
        writes later can fail with SQLITE_BUSY without waiting, even with a busy timeout.
        """
        with self._write_lock, self._connection() as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                raise StoreError(f"cannot start a write on {str(self._path)!r}: {e}") from e
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as error:
                try:
                    # A failed COMMIT may already have ended the transaction (e.g. disk full).
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                except sqlite3.Error as rollback_error:
                    raise StoreError(f"rollback failed on {str(self._path)!r}: {rollback_error}") from error
                if isinstance(error, sqlite3.Error):
                    raise StoreError(f"write to {str(self._path)!r} failed: {error}") from error
                raise

    def _read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple]:
        with self._connection() as conn:
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.Error as e:
                raise StoreError(f"read from {str(self._path)!r} failed: {e}") from e

    # --- schema and secrets ---

    def schema_version(self) -> int:
        with self._connection() as conn:
            return schema_version(conn)

    def journal_mode(self) -> str:
        return str(self._read("PRAGMA journal_mode")[0][0])

    def server_secret(self) -> bytes:
        """The secret for session tokens, created on first use and kept in the database."""
        rows = self._read("SELECT value FROM meta WHERE key = 'token_secret'")
        if rows:
            return bytes(rows[0][0])
        # First use: INSERT OR IGNORE, so two processes racing here end up with the same secret.
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('token_secret', ?)", (new_secret(),))
            return bytes(conn.execute("SELECT value FROM meta WHERE key = 'token_secret'").fetchone()[0])

    # --- participants ---

    def register(self, study: Study, screening: Screening) -> Participant:
        """Add an anonymous participant to a study. Numbers count 0, 1, 2, ... per study (Latin-square rows)."""
        if not isinstance(study, Study):
            raise ValueError(f"study must be a Study, got {type(study).__name__}")
        if not isinstance(screening, Screening):
            raise ValueError(f"screening must be a Screening, got {type(screening).__name__}")
        participant_id = new_participant_id()
        created = _now()
        with self._write() as conn:
            number = conn.execute("SELECT COALESCE(MAX(number) + 1, 0) FROM participants WHERE study = ?", (study.id,)).fetchone()[0]
            conn.execute(
                "INSERT INTO participants (id, study, number, created, manga_interest, music_interest, japanese) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (participant_id, study.id, number, created, screening.manga_interest, screening.music_interest, screening.japanese),
            )
        return Participant(participant_id, study.id, int(number), created, screening)

    def participant(self, participant_id: str) -> Participant:
        """The registered participant; ValueError naming the id when there is none."""
        rows = self._read(f"SELECT {', '.join(PARTICIPANT_FIELDS)} FROM participants WHERE id = ?", (participant_id,))
        if not rows:
            raise ValueError(f"participant {participant_id!r} is not registered")
        return _participant(rows[0])

    def participants(self, study_id: str | None = None) -> tuple[Participant, ...]:
        where, params = ("WHERE study = ?", (study_id,)) if study_id is not None else ("", ())
        rows = self._read(f"SELECT {', '.join(PARTICIPANT_FIELDS)} FROM participants {where} ORDER BY study, number", params)
        return tuple(_participant(row) for row in rows)

    # --- ratings ---

    def submit(self, study: Study, participant_id: str, stimulus_id: str, label: str, scores: Scores,
               listened_s: float | None = None) -> Rating:
        """Store (or update) one version's ratings; committed when this returns.

        ``listened_s`` (seconds listened, see ``check_listened_s``) replaces the stored one on an
        update; None keeps it, since a client that measured nothing says nothing about the listening.

        ValueError, with the store unchanged, for: a study/scores of the wrong type, a label not in
        A/B/C, a stimulus not in the study, a participant not registered for this study, a listening
        time that is not a finite number from 0 to ``MAX_LISTENED_S``.
        """
        if not isinstance(study, Study):
            raise ValueError(f"study must be a Study, got {type(study).__name__}")
        if not isinstance(scores, Scores):
            raise ValueError(f"scores must be Scores, got {type(scores).__name__}")
        if label not in LABELS:
            raise ValueError(f"label must be one of {list(LABELS)}, got {label!r}")
        study.stimulus(stimulus_id)
        listened = check_listened_s(listened_s)
        now = _now()
        with self._write() as conn:
            row = conn.execute("SELECT study, number FROM participants WHERE id = ?", (participant_id,)).fetchone()
            if row is None:
                raise ValueError(f"participant {participant_id!r} is not registered")
            if row[0] != study.id:
                raise ValueError(f"participant {participant_id!r} is registered for study {row[0]!r}, not {study.id!r}")
            condition = condition_for(study, int(row[1]), stimulus_id, label)
            key = (participant_id, study.id, stimulus_id, label)
            conn.execute(
                f"INSERT INTO ratings ({', '.join(RATING_FIELDS)}) VALUES ({', '.join('?' * len(RATING_FIELDS))}) "
                "ON CONFLICT (participant, study, stimulus, label) DO UPDATE SET "
                "relevancy = excluded.relevancy, quality = excluded.quality, "
                "consistency = excluded.consistency, updated = excluded.updated, "
                "listened_s = COALESCE(excluded.listened_s, ratings.listened_s)",
                (*key, condition, scores.relevancy, scores.quality, scores.consistency, now, now, listened),
            )
            stored = conn.execute(
                f"SELECT {', '.join(RATING_FIELDS)} FROM ratings WHERE participant = ? AND study = ? AND stimulus = ? AND label = ?",
                key,
            ).fetchone()
        return Rating(*stored)

    def submit_payload(self, study: Study, participant_id: str, payload: Mapping[str, object]) -> Rating:
        """``submit`` for a decoded JSON body with exactly the keys ``SUBMISSION_KEYS``, and optionally
        ``OPTIONAL_SUBMISSION_KEYS`` (``listened_s``; absent or null: not recorded).

        A body that carries a ``condition`` (or any other extra key) is refused: the browser never
        knows conditions, so one arriving means a tampered or confused client.
        """
        check_keys("submission", payload, SUBMISSION_KEYS, OPTIONAL_SUBMISSION_KEYS)
        scores = Scores(**{name: payload[name] for name in CRITERIA})  # type: ignore[arg-type]
        stimulus, label = payload["stimulus"], payload["label"]
        if not isinstance(stimulus, str):
            raise ValueError(f"stimulus must be a string, got {stimulus!r}")
        if not isinstance(label, str):
            raise ValueError(f"label must be a string, got {label!r}")
        return self.submit(study, participant_id, stimulus, label, scores, payload.get("listened_s"))  # type: ignore[arg-type]

    def ratings(self, study_id: str | None = None) -> tuple[Rating, ...]:
        where, params = ("WHERE study = ?", (study_id,)) if study_id is not None else ("", ())
        rows = self._read(f"SELECT {', '.join(RATING_FIELDS)} FROM ratings {where} ORDER BY rowid", params)
        return tuple(Rating(*row) for row in rows)

    def rated(self, study_id: str, participant_id: str) -> frozenset[tuple[str, str]]:
        """(stimulus, label) pairs this participant has rated: lets a reloaded page resume where it stopped."""
        rows = self._read("SELECT stimulus, label FROM ratings WHERE study = ? AND participant = ?", (study_id, participant_id))
        return frozenset((str(s), str(label)) for s, label in rows)

    # --- export ---

    def export_csv(self, path: str | os.PathLike[str], study_id: str | None = None) -> Path:
        return write_ratings_csv(self.ratings(study_id), path)

    def export_jsonl(self, path: str | os.PathLike[str], study_id: str | None = None) -> Path:
        return write_ratings_jsonl(self.ratings(study_id), path)

    def export_participants_jsonl(self, path: str | os.PathLike[str], study_id: str | None = None) -> Path:
        records = (_participant_record(p) for p in self.participants(study_id))
        return write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def _settled(conn: sqlite3.Connection) -> bool:
    """True when no transaction is open on ``conn`` (rolling back one that is, if possible)."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            return False
    return not conn.in_transaction


def _participant(row: tuple) -> Participant:
    pid, study, number, created, manga, music, japanese = row
    return Participant(str(pid), str(study), int(number), str(created), Screening(int(manga), int(music), str(japanese)))


def _participant_record(participant: Participant) -> dict[str, object]:
    return {
        "id": participant.id,
        "study": participant.study,
        "number": participant.number,
        "created": participant.created,
        **asdict(participant.screening),
    }


