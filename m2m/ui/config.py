"""Where the app reads books from and writes runs to, and the limits it serves under."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class AppConfig:
    """One app instance's folders and limits.

    ``examples_root`` is a Manga109-layout folder; its ``books.txt`` names the book that opens by
    default. Uploaded books are extracted under ``uploads_root``; runs go under ``runs_root``. Only these
    three folders are served to browsers.
    """

    examples_root: Path = REPO_ROOT / "examples" / "manga109"
    runs_root: Path = REPO_ROOT / "runs"
    uploads_root: Path = REPO_ROOT / "runs" / ".uploads"
    max_upload: str = "200mb"
    """Gradio's ``max_file_size`` (a string like "200mb")."""
    render_concurrency: int = 2
    """How many generation steps run at once across all readers (the machine's cores)."""
    tick_s: float = 0.4
    """How often a reader's session asks for the next clip while some are missing (seconds)."""
    study_only: bool = False
    """Serve the listening study alone: no reader, whose settings name the conditions a participant
    rates blind and whose music would play the study's clips by name (M2M_STUDY_ONLY=1)."""

    @classmethod
    def from_env(cls) -> AppConfig:
        """Defaults, with folders overridable by M2M_EXAMPLES, M2M_RUNS and M2M_UPLOADS, and the study
        alone with M2M_STUDY_ONLY=1."""
        runs = Path(os.environ.get("M2M_RUNS", cls.runs_root)).resolve()
        return cls(examples_root=Path(os.environ.get("M2M_EXAMPLES", cls.examples_root)).resolve(),
                   runs_root=runs,
                   uploads_root=Path(os.environ.get("M2M_UPLOADS", runs / ".uploads")).resolve(),
                   study_only=os.environ.get("M2M_STUDY_ONLY", "").strip().lower() in ("1", "true", "yes"))

    def served_paths(self) -> list[str]:
        return [str(self.examples_root), str(self.runs_root), str(self.uploads_root)]
