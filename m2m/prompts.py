"""What an LLM step sends: its prompt file, the book's text as data, a page image as a data URL.

A prompt file (``prompts/<step>.txt``) holds a system text and a user template; the template is
filled with the step's data, in which book text is quoted as JSON string literals so dialogue stays
data and never reads as instructions. This is the part of a step that a person edits and that run
files hash, so it lives apart from the client that sends it (:mod:`m2m.llm`: transport, retries,
validation, the answer cache); the offline director reads its tables from the same folder.
"""

from __future__ import annotations

import base64
import io
import json
import re
import string
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from m2m.runs import file_hash

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
"""The prompt files, one per LLM step (``prompts/`` at the repository root)."""


@dataclass(frozen=True)
class Prompt:
    """A prompt file: the system text and a user template (``$name`` fields, filled safely).

    The file holds ``=== system ===`` and ``=== user ===`` sections. The user template is filled with
    ``string.Template``: substituted values are never re-read as template text, so dialogue can't
    smuggle in fields or instructions.
    """

    path: Path
    system: str
    user: str
    hash: str

    def render(self, **values: str) -> str:
        try:
            return string.Template(self.user).substitute(values)
        except KeyError as e:
            raise ValueError(f"{self.path}: the user template needs ${e.args[0]}, which the step didn't give") from e


_SECTION = re.compile(r"^=== (system|user) ===[ \t]*$", re.MULTILINE)


def load_prompt(name: str, prompts_dir: Path = PROMPTS_DIR) -> Prompt:
    """Read ``prompts/<name>`` (e.g. "scene_boundaries.txt")."""
    path = Path(prompts_dir) / name
    if not path.is_file():
        raise ValueError(f"prompt: {path} not found")
    text = path.read_text(encoding="utf-8")
    parts = _SECTION.split(text)
    sections = {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    if "system" not in sections or "user" not in sections:
        raise ValueError(f"{path}: a prompt file needs '=== system ===' and '=== user ===' sections")
    return Prompt(path=path, system=sections["system"], user=sections["user"], hash=file_hash(path))


def image_data_url(path: str | Path, max_side: int = 1024) -> str:
    """A page image as a ``data:image/jpeg;base64,...`` URL, downscaled so its longer side is <= max_side px."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((max_side, max_side))
            buffer = io.BytesIO()
            im.save(buffer, format="JPEG", quality=85)
    except OSError as e:
        raise ValueError(f"image: can't read {path}: {e}") from e
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def quote(text: str) -> str:
    """A piece of book text as a JSON string literal: quotes and newlines escaped, so it stays data."""
    return json.dumps(" ".join(text.split()), ensure_ascii=False)
