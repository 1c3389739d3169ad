"""Ratings as files: CSV and JSON Lines, written atomically and read back exactly."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path

from .questionnaire import CRITERIA
from .records import LEGACY_RATING_FIELDS, RATING_FIELDS, Rating, check_listened_s, check_score


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write via a temp file and rename, so readers (and the Hub uploader) never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_ratings_csv(ratings: Iterable[Rating], path: str | os.PathLike[str]) -> Path:
    """CSV with a header row of ``RATING_FIELDS``; ``read_ratings_csv`` reads it back exactly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(RATING_FIELDS)
    for rating in ratings:
        # None as an empty cell: "not recorded", which read_ratings_csv turns back into None.
        writer.writerow(["" if getattr(rating, name) is None else getattr(rating, name) for name in RATING_FIELDS])
    return write_text_atomic(path, buffer.getvalue())


def write_ratings_jsonl(ratings: Iterable[Rating], path: str | os.PathLike[str]) -> Path:
    """One JSON object per line, keys ``RATING_FIELDS``."""
    return write_text_atomic(path, "".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in ratings))


def read_ratings_csv(path: str | os.PathLike[str]) -> tuple[Rating, ...]:
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) not in (RATING_FIELDS, LEGACY_RATING_FIELDS):
            raise ValueError(f"{str(path)!r}: header must be {list(RATING_FIELDS)}, got {reader.fieldnames}")
        return tuple(_rating_from_record(f"{path}:{i + 2}", row) for i, row in enumerate(reader))


def read_ratings_jsonl(path: str | os.PathLike[str]) -> tuple[Rating, ...]:
    ratings = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{number} is not valid JSON: {e}") from e
                ratings.append(_rating_from_record(f"{path}:{number}", record))
    return tuple(ratings)


def _rating_from_record(where: str, record: Mapping[str, object]) -> Rating:
    if not isinstance(record, Mapping) or set(record) not in (set(RATING_FIELDS), set(LEGACY_RATING_FIELDS)):
        raise ValueError(f"{where}: a rating needs exactly the fields {list(RATING_FIELDS)}")
    values: dict[str, object] = {}
    for name in RATING_FIELDS:
        value = record.get(name)
        if name == "listened_s":
            values[name] = _listened_from_record(where, value)
            continue
        if name in CRITERIA:
            try:
                value = int(value)  # type: ignore[arg-type]
            except (TypeError, ValueError) as e:
                raise ValueError(f"{where}: {name} must be an integer, got {record[name]!r}") from e
            check_score(name, value)
        elif not isinstance(value, str):
            raise ValueError(f"{where}: {name} must be a string, got {value!r}")
        values[name] = value
    return Rating(**values)  # type: ignore[arg-type]


def _listened_from_record(where: str, value: object) -> float | None:
    """An exported listening time: a number (JSONL), its text (CSV), or empty/null/absent for None."""
    if value is None or value == "":
        return None
    try:
        seconds = float(value) if isinstance(value, str) else value
        return check_listened_s(seconds)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from e
