"""The run folder: ``runs/<book-id>/<condition>/``, one readable, editable JSON file per stage.

Each file is ``{"provenance": {...}, "payload_hash": "...", "data": {...}}``. The payload hash is
taken when the program writes the file, so a file whose data no longer matches it was edited by a
person: it is kept, and because downstream stages hash their inputs, everything after it reruns.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

from m2m.jsonio import from_jsonable, to_jsonable, write_json_atomic

T = TypeVar("T")

Stage = Literal["scenes", "emotions", "directives", "captions", "transitions", "descriptions", "soundtrack"]
Condition = Literal["m2m", "baseline", "random"]
CONDITIONS: tuple[Condition, ...] = ("m2m", "baseline", "random")

STAGE_FILES: dict[str, str] = {
    "scenes": "01-scenes.json",
    "emotions": "02-emotions.json",
    "directives": "03-directives.json",
    "descriptions": "03-descriptions.json",  # the baseline's page descriptions
    "captions": "04-captions.json",
    "transitions": "04-transitions.json",  # how the music moves at each scene change
    "soundtrack": "soundtrack.json",
}


@dataclass(frozen=True)
class Provenance:
    """What produced a run file. ``fallback`` says why another backend ran than the one asked for."""

    stage: str
    backend: str
    input_hash: str
    settings: dict[str, Any] = field(default_factory=dict)
    prompt_file: str | None = None
    prompt_hash: str | None = None
    fallback: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    created: str = ""


class Producer(Protocol):
    """Whoever wrote a stage's text (a director), as far as its run file records it."""

    @property
    def backend(self) -> str:
        """What run files record: "offline" or "openai:<model>"."""
        ...

    def settings_record(self) -> dict[str, Any]:
        """Settings safe to write to a run file (never a key)."""
        ...

    def prompt_name(self, step: str) -> str | None:
        """The prompt or data file behind ``step``, relative to the repository ("prompts/...")."""
        ...

    def prompt_hash(self, step: str) -> str | None:
        ...


def produced_by(producer: Producer, stage: str, step: str, usage: dict[str, int],
                warnings: tuple[str, ...] = ()) -> Provenance:
    """The provenance of ``stage`` written by ``producer`` at prompt ``step``; ``input_hash`` is left
    for the pipeline to fill."""
    return Provenance(stage=stage, backend=producer.backend, input_hash="", settings=producer.settings_record(),
                      prompt_file=producer.prompt_name(step), prompt_hash=producer.prompt_hash(step),
                      usage=usage, warnings=warnings)


@dataclass(frozen=True)
class StageRecord(Generic[T]):
    data: T
    provenance: Provenance
    edited: bool


def hash_inputs(*parts: Any) -> str:
    """A stable hash of JSON-able values or dataclasses (the inputs and settings of a stage)."""
    canonical = json.dumps([to_jsonable(p) if hasattr(p, "__dataclass_fields__") else p for p in parts],
                           sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


class RunFolder:
    """One book's run for one condition."""

    def __init__(self, runs_root: Path | str, book_id: str, condition: Condition = "m2m") -> None:
        if condition not in CONDITIONS:
            raise ValueError(f"condition: {condition!r} is not one of {', '.join(CONDITIONS)}")
        self.path = Path(runs_root) / book_id / condition
        self.condition = condition

    @property
    def audio_dir(self) -> Path:
        return self.path / "audio"

    def file(self, stage: str) -> Path:
        try:
            return self.path / STAGE_FILES[stage]
        except KeyError as e:
            raise ValueError(f"stage: {stage!r} is not one of {', '.join(STAGE_FILES)}") from e

    def write(self, stage: str, data: Any, provenance: Provenance) -> None:
        payload = to_jsonable(data)
        if not provenance.created:
            provenance = replace(provenance, created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        write_json_atomic(self.file(stage), {
            "provenance": to_jsonable(provenance),
            "payload_hash": _payload_hash(payload),
            "data": payload,
        })

    def save_edit(self, stage: str, data: Any) -> None:
        """Save a person's edit of a stage: the file keeps its provenance and is marked edited, so
        the run keeps it and reruns every stage after it (as when the JSON is edited by hand)."""
        path = self.file(stage)
        if not path.is_file():
            raise ValueError(f"{stage}: {path.name} doesn't exist yet; run the plan first")
        raw = json.loads(path.read_text(encoding="utf-8"))
        write_json_atomic(path, {"provenance": raw["provenance"], "payload_hash": "edited",
                                 "data": to_jsonable(data)})

    def read(self, stage: str, cls: type[T]) -> StageRecord[T] | None:
        """The stage's record, or None when the file is absent. A broken file is a ValueError."""
        path = self.file(stage)
        if not path.is_file():
            return None
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from e
        if not isinstance(raw, dict) or "data" not in raw or "provenance" not in raw:
            raise ValueError(f"{path}: not a run file (expected 'provenance' and 'data')")
        data = from_jsonable(cls, raw["data"], source=str(path))
        provenance = from_jsonable(Provenance, raw["provenance"], source=f"{path} provenance")
        edited = raw.get("payload_hash") != _payload_hash(raw["data"])
        return StageRecord(data, provenance, edited)

    def reusable(self, stage: str, cls: type[T], input_hash: str) -> StageRecord[T] | None:
        """The stored record when it can stand: edited by a person, or made from the same inputs."""
        record = self.read(stage, cls)
        if record is not None and (record.edited or record.provenance.input_hash == input_hash):
            return record
        return None


def _payload_hash(payload: Any) -> str:
    return hash_inputs(payload)


@dataclass(frozen=True)
class Staged(Generic[T]):
    """A stage function's answer: its data and what produced it (the pipeline fills in input_hash)."""

    data: T
    provenance: Provenance
