"""The reader component's value: the book's pages and the run's clips, as plain JSON for the browser.

The browser never sees a server path it could not fetch anyway: images and clips are addressed through
Gradio's file route, which only serves the folders the app allows (see AppConfig.served_paths).
A clip's URL carries its version hash, so an edited page's new clip is a new URL and the reader picks
it up without a reload.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from m2m.book import Book
from m2m.cues import enter_json
from m2m.ui.fallback_audio import fallback_url

FILE_ROUTE = "gradio_api/file="
"""Relative to the page, so the app also works below a path prefix (a Space, a proxy)."""


def file_url(path: str | Path, version: str | None = None) -> str:
    url = FILE_ROUTE + quote(str(Path(path).resolve()))
    return f"{url}?v={quote(version)}" if version else url


def book_manifest(book: Book) -> dict[str, Any]:
    """The part of the reader's value that changes only when another book opens."""
    return {
        "id": book.id,
        "title": book.title,
        "direction": book.direction,
        "pages": [{"index": p.index, "image": file_url(p.image), "width": p.width, "height": p.height}
                  for p in book.pages],
    }


def clips_manifest(clips: Mapping[int, Any]) -> dict[str, dict[str, Any]]:
    """page -> {url, fallback, version, engine, seconds, bar}; JSON object keys are strings.
    ``fallback`` is the clip as FLAC, for a browser that cannot decode the OGG (``fallback_audio``).
    ``bar`` is a bar of the clip in seconds (0: no bar grid): a crossfade between two clips of one bar
    length enters on the old one's grid."""
    return {str(page): {"url": file_url(c.path, c.version), "fallback": fallback_url(c.path, c.version),
                        "version": c.version, "engine": c.engine, "seconds": round(float(c.seconds), 3),
                        "bar": round(float(getattr(c, "bar", 0.0)), 6)}
            for page, c in sorted(clips.items())}


def entrances_manifest(entrances: Mapping[int, Any]) -> dict[str, dict[str, Any]]:
    """page -> {fade, enter?}: how the music enters each planned page from the one before, whether or
    not its clip is made yet (a turn there before it lands keeps the move for when it does).
    ``fade`` is the cue sheet's crossfade into the page (the scene crossfade where the two lie in
    different scenes; 0 for the first page), which a plain turn from there plays.
    ``enter`` is the transition chosen into a scene's first page ({kind, fade, silence} in seconds;
    a stinger adds its ``seconds``, its clip's ``stinger`` URL and ``stinger_fallback``, the FLAC),
    which the reader plays on a turn from the page before."""
    out: dict[str, dict[str, Any]] = {}
    for page, e in sorted(entrances.items()):
        entry: dict[str, Any] = {"fade": round(float(e.crossfade), 3)}
        enter = enter_json(e.transition, e.crossfade, e.silence, e.stinger_seconds)
        if enter is not None:
            entry["enter"] = enter
        # the old scene's closing cadence, played on the turn before this page's music enters
        # (no url while it is not made yet: the reader then waits out its length)
        if enter is not None and enter["kind"] == "stinger" and e.stinger is not None:
            enter["stinger"] = file_url(e.stinger, e.stinger_version)
            enter["stinger_fallback"] = fallback_url(e.stinger, e.stinger_version)
        out[str(page)] = entry
    return out


def reader_value(book: Book, run_key: str, clips: Mapping[int, Any], *, crossfade_s: float,
                 planned: bool, message: str = "", start_page: int = 0, stopped: bool = False,
                 version: int = 0, token: str = "", entrances: Mapping[int, Any] | None = None) -> dict[str, Any]:
    """Everything the reader shows. ``run_key`` names the run (book and condition): when it changes,
    the reader drops its decoded clips and fetches the new run's. ``stopped``: generation failed and
    will not go on by itself (``message`` says why). ``version`` orders the values of one session
    (the reader drops an older one that arrives late); ``token`` is what its pulls name it by.
    ``entrances``: how the music enters each planned page (``entrances_manifest``), clip made or not."""
    return {
        "version": version,
        "sync": token,
        "book": book_manifest(book),
        "run": run_key,
        "clips": clips_manifest(clips),
        "entrances": entrances_manifest(entrances or {}),
        "crossfade_s": crossfade_s,
        "status": {"planned": planned, "ready": len(clips), "total": len(book.pages), "message": message,
                   "stopped": stopped},
        "start_page": start_page,
    }


def render_order(pages: Sequence[int], current: int, ready: Iterable[int], ahead: int = 2) -> list[int]:
    """The pages still to render, most urgent first.

    The page on screen and the next ``ahead`` pages come first (the reader is about to hear them), then
    the previous page (a reader who turns back), then the rest in reading order from the current page
    on, then the pages before it. ``pages`` is the book's reading order.
    """
    done = set(ready)
    if current not in pages:
        current = pages[0] if pages else 0
    at = pages.index(current) if pages else 0
    urgent = list(pages[at: at + ahead + 1]) + ([pages[at - 1]] if at > 0 else [])
    rest = list(pages[at + ahead + 1:]) + list(pages[: max(0, at - 1)])
    ordered = list(dict.fromkeys(urgent + rest))
    return [p for p in ordered if p not in done]
