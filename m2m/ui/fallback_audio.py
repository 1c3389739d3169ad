"""FLAC copies of the page clips, for browsers that cannot decode OGG Vorbis.

Safari decodes OGG Vorbis only in recent releases, and some that claim to fail on it. When decoding a
clip fails, the reader (and the study's player) ask for a FLAC copy instead: lossless, so the loop
stays seamless (MP3 and AAC put encoder delay at the start, which would be a gap in every loop),
decoded by every current browser, and written by libsndfile, with no ffmpeg. A copy is made on the
first request, next to its clip, and made again when the clip changes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from m2m.soundtrack import read_audio, write_audio_atomic

ROUTE = "m2m/flac"
"""Relative to the page, like Gradio's file route, so the app also works below a path prefix."""

_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


def fallback_url(clip: str | Path, version: str | None = None) -> str:
    url = f"{ROUTE}?path={quote(str(Path(clip).resolve()))}"
    return f"{url}&v={quote(version)}" if version else url


def _lock_for(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(path, threading.Lock())


def flac_copy(clip: Path) -> Path:
    """The FLAC twin of an OGG clip (16-bit, same rate and channels), made when missing or older
    than the clip; ``write_audio_atomic`` renames it into place, so a reader never gets half a file."""
    target = clip.with_suffix(".flac")
    with _lock_for(target):  # two readers asking at once make it once
        if target.is_file() and target.stat().st_mtime_ns >= clip.stat().st_mtime_ns:
            return target
        audio = read_audio(clip)
        write_audio_atomic(target, audio.samples, audio.sample_rate)
    return target


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def fallback_routes(roots: Sequence[Path]) -> list:
    """The route that serves FLAC copies of clips under ``roots`` (the runs folder); anything else,
    a path outside them, not an ``.ogg`` or missing, is a 404 that names no server path."""
    from fastapi import APIRouter, HTTPException, Query
    from fastapi.responses import FileResponse

    allowed = [Path(r).resolve() for r in roots]
    router = APIRouter()

    @router.get(f"/{ROUTE}")
    def flac(path: str = Query(..., max_length=4096)) -> FileResponse:  # sync: runs on the thread pool
        clip = Path(path).resolve()
        if clip.suffix.lower() != ".ogg" or not _inside(clip, allowed) or not clip.is_file():
            raise HTTPException(status_code=404, detail="no such clip")
        try:
            copy = flac_copy(clip)
        except (OSError, RuntimeError, ValueError) as e:  # read_audio: ValueError for an unreadable clip
            raise HTTPException(status_code=500, detail=f"the clip could not be converted: {type(e).__name__}") from e
        # the URL carries the clip's version, so a copy can be cached as long as its URL lives
        return FileResponse(copy, media_type="audio/flac", headers={"Cache-Control": "private, max-age=86400"})

    return list(router.routes)
