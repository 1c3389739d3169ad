"""JSON round trips for the frozen dataclasses that cross stage boundaries.

pydantic's TypeAdapter validates stdlib dataclasses (tuples, unions, nested types) both ways, so every
stage output serialises losslessly without a hand-written converter per class.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

T = TypeVar("T")


@cache
def _adapter(cls: type) -> TypeAdapter:
    return TypeAdapter(cls)


def to_jsonable(obj: Any) -> Any:
    """A dataclass (or container of them) as plain JSON types."""
    return _adapter(type(obj)).dump_python(obj, mode="json")


def from_jsonable(cls: type[T], data: Any, *, source: str = "data") -> T:
    """Rebuild `cls` from JSON types; a mismatch is a ValueError naming the source and the field."""
    try:
        return _adapter(cls).validate_python(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise ValueError(f"{source}: field {where!r}: {first['msg']} (got {first.get('input')!r})") from e


def dumps(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), ensure_ascii=False, indent=2)


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON through a temporary file and a rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(path)
