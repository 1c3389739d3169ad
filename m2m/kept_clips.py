"""Page clips a run folder made before, kept by their hash after other settings replaced them.

A reader who tries another engine (or emotion backend, or director) and comes back gets the music
made earlier instead of waiting for it again: minutes of MusicGen on a GPU. When a clip with another
hash is about to replace a page's files, they move into ``audio/.kept/`` named by their hash, with
their cue sheet entry beside them as JSON; when that hash is wanted again, they move back. A few
versions per page are kept, the older ones deleted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from m2m.jsonio import write_json_atomic

KEPT = ".kept"
VERSIONS_PER_PAGE = 3


def keep(audio_dir: Path, clip_hash: str, files: list[Path], entry: dict[str, Any]) -> None:
    """Move a page's ``files`` (its clip and the copies made with it) into the store under
    ``clip_hash``, ``entry`` (its cue, as JSON types) beside them."""
    store = audio_dir / KEPT
    store.mkdir(parents=True, exist_ok=True)
    for path in files:
        if path.is_file():
            os.replace(path, store / f"{clip_hash}{path.suffix}")
    write_json_atomic(_index(audio_dir, clip_hash), entry)
    _prune(store, int(entry["page"]))


def _index(audio_dir: Path, clip_hash: str) -> Path:
    return audio_dir / KEPT / f"{clip_hash}.json"


def is_kept(audio_dir: Path, clip_hash: str) -> bool:
    return _index(audio_dir, clip_hash).is_file()


def take_back(audio_dir: Path, clip_hash: str) -> dict[str, Any] | None:
    """The kept cue of ``clip_hash`` with its files moved back to the places it names, or None when
    none is kept. Other files of the page's name are copies made from the clip these replace (the
    reader's FLAC twin): they are deleted, to be made again from these."""
    store = audio_dir / KEPT
    index = _index(audio_dir, clip_hash)
    try:
        entry = json.loads(index.read_text(encoding="utf-8"))
        clip = audio_dir.parent / entry["file"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    restored = set()
    for key in ("file", "mp3", "midi"):
        name = entry.get(key)
        if not name:
            continue
        kept, target = store / f"{clip_hash}{Path(name).suffix}", audio_dir.parent / name
        if kept.is_file():
            os.replace(kept, target)
            restored.add(target)
    for stale in clip.parent.glob(f"{clip.stem}.*"):
        if stale not in restored:
            stale.unlink(missing_ok=True)
    index.unlink(missing_ok=True)
    return entry


def _prune(store: Path, page: int) -> None:
    """Delete all but the newest ``VERSIONS_PER_PAGE`` kept versions of ``page``."""
    versions = []
    for index in store.glob("*.json"):
        try:
            if int(json.loads(index.read_text(encoding="utf-8"))["page"]) == page:
                versions.append((index.stat().st_mtime_ns, index))
        except (OSError, ValueError, KeyError, TypeError):  # unreadable: nothing could take it back
            for path in store.glob(f"{index.stem}.*"):
                path.unlink(missing_ok=True)
    for _, index in sorted(versions, reverse=True)[VERSIONS_PER_PAGE:]:
        for path in store.glob(f"{index.stem}.*"):
            path.unlink(missing_ok=True)
