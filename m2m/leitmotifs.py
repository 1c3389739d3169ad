"""Leitmotifs: each recurring character gets a short theme of their own, which sounds on the pages
where they speak most, in every scene's key, mode and tempo.

A character recurs when they speak in two scenes or more. Their theme is a motif drawn once per
book and character (the same draw every run), played by a solo instrument of their own; captions
name it ("the flute theme of Aki"), so a text-to-music model is asked for it too. Part of stage 4:
both directors' captions get themes the same way (m2m/directives.py), and ``04-captions.json``
records them, editable like everything else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from m2m.book import Book
from m2m.cues import Cue, Theme, caption_fingerprint
from m2m.music.base import stable_seed
from m2m.music.motif import scene_motif
from m2m.scenes import ScenePlan

# Solo voices that carry a theme over any accompaniment, each one character's (in order of first
# appearance, so the book's first recurring character gets the flute).
THEME_INSTRUMENTS: tuple[str, ...] = ("Flute", "Oboe", "Clarinet", "Violin", "French Horn", "Cello", "Trumpet",
                                      "Vibraphone")


def recurring_characters(book: Book, scenes: ScenePlan) -> list[str]:
    """The ids of the characters who speak in two scenes or more, in order of first appearance."""
    seen: dict[str, set[int]] = {}
    for scene in scenes.scenes:
        for index in scene.pages:
            for text in book.pages[index].texts:
                if text.speaker is not None:
                    seen.setdefault(text.speaker, set()).add(scene.index)
    return [character for character, where in seen.items() if len(where) >= 2]


def book_themes(book: Book, scenes: ScenePlan) -> dict[str, Theme]:
    """Character id -> their theme: a motif drawn from the book and the character, and an instrument."""
    themes = {}
    for order, character in enumerate(recurring_characters(book, scenes)):
        rng = np.random.default_rng(stable_seed(book.id, "theme", character))
        themes[character] = Theme(character, book.character_name(character),
                                  THEME_INSTRUMENTS[order % len(THEME_INSTRUMENTS)], scene_motif(rng))
    return themes


def page_speaker(book: Book, page: int, among: Mapping[str, Theme]) -> str | None:
    """Of the characters with a theme, the one with the most lines on the page (first to speak on a tie)."""
    lines = Counter(t.speaker for t in book.pages[page].texts if t.speaker in among)
    if not lines:
        return None
    most = max(lines.values())
    return next(t.speaker for t in book.pages[page].texts if lines.get(t.speaker) == most)


def with_themes(book: Book, scenes: ScenePlan, cues: Sequence[Cue]) -> list[Cue]:
    """The cues with their page's leitmotif, named at the end of the caption (a caption the director
    wrote stays the director's: its plan still stands)."""
    themes = book_themes(book, scenes)
    out = []
    for cue in cues:
        speaker = page_speaker(book, cue.page, themes)
        if speaker is None:
            out.append(cue)
            continue
        theme = themes[speaker]
        caption = f"{cue.caption.rstrip()} {theme.phrase[0].upper()}{theme.phrase[1:]} sounds."
        planned = caption_fingerprint(caption) if not cue.caption_edited else cue.planned_with
        out.append(replace(cue, caption=caption, planned_with=planned, theme=theme))
    return out
