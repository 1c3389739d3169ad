"""Where a study lives and who may see its results: the study folder, its files, the researcher token.

A study is a folder holding ``study.json`` and the page images ``m2m study prepare`` copied beside
it, named by ``$M2M_STUDY_DIR``; the researcher's view and routes need ``$M2M_STUDY_ADMIN_TOKEN``.
The HTTP API (``study_api``) and the Study tab (``study_tab``) both find them here.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

MANIFEST_NAME = "study.json"
PAGES_DIR = "pages"
RESULTS_DIR = "results"
STUDY_DIR_ENV = "M2M_STUDY_DIR"
ADMIN_TOKEN_ENV = "M2M_STUDY_ADMIN_TOKEN"
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp")


def manifest_path(study_dir: str | os.PathLike[str]) -> Path:
    """``<study_dir>/study.json``, or the path itself when it already names a manifest file."""
    path = Path(study_dir)
    return path if path.suffix == ".json" else path / MANIFEST_NAME


def study_folder(study_dir: str | os.PathLike[str]) -> Path:
    """The folder that holds the manifest (run folders and page images are relative to it)."""
    return manifest_path(study_dir).parent


def page_image_path(study_dir: str | os.PathLike[str], book_id: str, page: int) -> Path:
    """``<study_dir>/pages/<book_id>/NNN.<jpg|jpeg|png|webp>``: ``m2m study prepare`` copies the pages there.

    Returns the ``.jpg`` name when no file exists, so the asset route answers 404 for it.
    """
    folder = study_folder(study_dir) / PAGES_DIR / book_id
    for suffix in IMAGE_SUFFIXES:
        candidate = folder / f"{page:03d}{suffix}"
        if candidate.is_file():
            return candidate
    return folder / f"{page:03d}.jpg"


def study_dir_from_env(env: Mapping[str, str] | None = None) -> Path | None:
    """``$M2M_STUDY_DIR`` when it is set and holds a manifest; None (no study) otherwise."""
    env = os.environ if env is None else env
    raw = env.get(STUDY_DIR_ENV, "").strip()
    if not raw:
        return None
    return study_folder(raw) if manifest_path(raw).is_file() else None


def admin_token_from_env(env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    token = env.get(ADMIN_TOKEN_ENV, "").strip()
    return token or None


def admin_allowed(given: str | None, expected: str | None) -> bool:
    """Constant-time token check; always False when no admin token is configured."""
    if not expected or not given:
        return False
    return secrets.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
