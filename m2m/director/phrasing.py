"""How the offline director words its choices: picks that are the same for the same book and page,
styles that keep their instrument promises, mood adjectives, articles and instrument lists.

Directives, page captions and the baseline's captions are all worded this way, so the helpers live
apart from the stage rules in :mod:`m2m.director.offline` and :mod:`m2m.director.offline_baseline`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any


def _stable(*parts: object) -> int:
    """A hash that is the same in every process (Python's hash() of str is salted per run)."""
    return int(hashlib.sha256("|".join(map(str, parts)).encode("utf-8")).hexdigest()[:8], 16)


def pick(options: Sequence[Any], *parts: object) -> Any:
    """One of ``options``, chosen by a stable hash of ``parts`` (book id, page or scene index, purpose)."""
    return options[_stable(*parts) % len(options)]


def style_for(styles: Sequence[str], instruments: Sequence[str], promises: Mapping[str, Any], *parts: object) -> str:
    """A style whose instrument words the instruments keep ("lo-fi piano piece" only with a piano, see
    the tables' ``style_promises``); any of them when none fits."""
    names = " ".join(instruments).lower()

    def kept(style: str) -> bool:
        return all(any(gm in names for gm in keeping) for word, keeping in promises.items()
                   if word != "about" and word in style.lower())

    return pick([s for s in styles if kept(s)] or list(styles), *parts)


def pick_adjective(table: Mapping[str, Any], energy: float, style: str, *parts: object) -> str:
    """A mood adjective for the energy (the "strong" list from 0.6 up), never one the style already says."""
    options = [w for w in (table["strong"] if energy >= 0.6 else table["soft"]) if w not in style]
    return pick(options or table["soft"], *parts, "adj")


def plural(n: int, noun: str) -> str:
    """A count with its noun: "1 panel", "3 panels"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def article(word: str) -> str:
    return "An" if word[:1].lower() in "aeiou" else "A"


def instrument_phrase(instrument_words: Mapping[str, str], instruments: Sequence[str]) -> str:
    """GM names in the words a caption uses ("strings", from the tables' ``instrument_words``), as a list."""
    words = [instrument_words.get(i, i.lower()) for i in instruments]
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]
