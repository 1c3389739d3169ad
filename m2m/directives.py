"""Stages 3 and 4: a music directive per scene, then a music caption (and plan) per page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Plan:
    """The caption's intent as fields, for engines that compose symbolically.

    tempo in BPM; key a tonic name ("C", "F#", "Bb"); energy from 0 (still) to 1 (driving);
    instruments are General MIDI instrument names ("acoustic grand piano", "string ensemble 1", ...).
    """

    tempo: int
    key: str
    mode: Literal["major", "minor"]
    instruments: tuple[str, ...]
    energy: float
    mood: str = ""


@dataclass(frozen=True)
class Directive:
    scene: int
    text: str


@dataclass(frozen=True)
class Cue:
    """One page's music: a free-text caption for a text-to-music model, and the same intent as a plan."""

    page: int
    scene: int
    caption: str
    plan: Plan


@dataclass(frozen=True)
class DirectiveSheet:
    """``03-directives.json``: one directive per scene."""

    directives: tuple[Directive, ...]


@dataclass(frozen=True)
class CaptionSheet:
    """``04-captions.json``: one cue per page, in page order."""

    cues: tuple[Cue, ...]

    def cue(self, page: int) -> Cue:
        for cue in self.cues:
            if cue.page == page:
                return cue
        raise ValueError(f"page: no caption for page {page}")
