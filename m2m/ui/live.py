"""What the server last told each reader's page, so the page can always catch up by asking.

Gradio delivers an event's answer over the session's event stream, and an answer can be lost (a
stream that closes as an event joins, a proxy that drops it) or overtaken by an older one. A reader
whose clips, panels or status line depend on every answer arriving is only as dependable as that
stream. So each reader's session has a ``Live``: a version counter stamped on every reader value the
server sends, what its status line last said, where the reader is and whether music is being made
for it. The page pulls its current state through one cheap call (``ReaderApp.reader_state``, a
gr.HTML server function: a plain HTTP request, not an event) and applies only what is newer than what
it shows; what lives in other components (the side panels, the status line) it compares by digest
and asks for again when it differs. A lost answer then costs at most one pull.

``Lives`` finds a reader's session by the token its page was given; no gradio here.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

STALL_S = 6.0
"""How long music may be missing with no generation step running before the page is told the
generation has stalled (the answer that started its timer was lost) and asks for it to go on."""


def digest(parts: Any) -> str:
    """A short, stable digest of what a page shows (the side panels, the status line), which the page
    compares with the server's to tell whether an answer it should have had is missing."""
    return hashlib.sha1(repr(parts).encode("utf-8", "surrogatepass")).hexdigest()[:16]


class Live:
    """One reader's session as it is now: shared by every copy of its frozen Session, written by its
    concurrent events (turns, generation steps, edits) and read by its page's pulls.

    Turns run side by side and may arrive or finish out of order (each carries the reader's sequence
    number); an older one must not replace the panels of a newer one. A generation step reads ``page``
    as it goes, so the panels refreshed when a clip lands are those of the page on screen."""

    def __init__(self) -> None:
        self.token = secrets.token_urlsafe(18)
        self.seq = 0
        self.page: int | None = None
        self.version = 0
        self.message = ""
        self.stopped = False
        self.status = ""
        self.said_key = ""
        self.busy = 0
        self.active_at = time.monotonic()
        self._lock = threading.Lock()

    def __deepcopy__(self, memo: dict) -> Live:  # gr.State copies its initial value per session
        return Live()

    # -- where the reader is ---------------------------------------------------------------------

    def turned(self, seq: int, page: int) -> bool:
        """Record a turn; False when a newer one was recorded already (``seq`` 0: no order, accept)."""
        with self._lock:
            if seq and seq <= self.seq:
                return False
            self.seq, self.page = max(seq, self.seq), page
            return True

    def newest(self, seq: int) -> bool:
        return not seq or seq == self.seq

    def restart(self, page: int | None = None) -> None:
        """A book was opened (at ``page`` 0) or the settings changed: the generation starts afresh, and
        no failure stopped it."""
        with self._lock:
            if page is not None:
                self.page = page
            self.stopped, self.message = False, ""
            self.active_at = time.monotonic()

    def at(self, page: int) -> int:
        """The page on screen, or ``page`` (the event's input) before the reader reported any."""
        return page if self.page is None else self.page

    # -- what the server said ----------------------------------------------------------------------

    def stamp(self, message: str, stopped: bool) -> int:
        """A new version for a reader value about to be built (so a higher version was always built
        later, from the run as it stood then), remembering its message for the pulls' values."""
        with self._lock:
            self.version += 1
            self.message, self.stopped = message, stopped
            return self.version

    def said(self, status_html: str, key: str) -> None:
        """The status line just sent, and its digest."""
        self.status, self.said_key = status_html, key

    # -- whether music is being made -------------------------------------------------------------

    @contextmanager
    def working(self) -> Iterator[None]:
        """Around a generation step or an edit's rendering."""
        with self._lock:
            self.busy += 1
            self.active_at = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                self.busy -= 1
                self.active_at = time.monotonic()

    def stalled(self, work_left: bool) -> bool:
        """Music is missing, nothing is making it and nothing has for a while, and no failure stopped it:
        the answer that should have kept the generation going never arrived."""
        return (work_left and not self.stopped and not self.busy
                and time.monotonic() - self.active_at > STALL_S)


class Lives:
    """token -> the reader's latest Session (anything with a ``live``), for the pulls.

    Bounded, and forgetful of sessions nobody has pulled for a while: a closed tab's entry goes when
    its page unloads (``drop``), or at the latest when ``capacity`` newer sessions came, or after ``idle_s``."""

    def __init__(self, capacity: int = 500, idle_s: float = 3600) -> None:
        self.capacity = capacity
        self.idle_s = idle_s
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, session: Any) -> None:
        with self._lock:
            self._entries[session.live.token] = (time.monotonic(), session)
            self._entries.move_to_end(session.live.token)
            self._trim()

    def get(self, token: str) -> Any | None:
        with self._lock:
            entry = self._entries.get(token)
            if entry is None:
                return None
            self._entries[token] = (time.monotonic(), entry[1])
            self._entries.move_to_end(token)
            return entry[1]

    def drop(self, token: str) -> None:
        with self._lock:
            self._entries.pop(token, None)

    def __len__(self) -> int:
        return len(self._entries)

    def _trim(self) -> None:
        """Forget the oldest entries over capacity or unseen for too long (never the newest: just put)."""
        now = time.monotonic()
        while len(self._entries) > 1:
            token, (seen, _) = next(iter(self._entries.items()))
            if len(self._entries) <= self.capacity and now - seen <= self.idle_s:
                break
            del self._entries[token]
