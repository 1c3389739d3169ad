"""Stages 3 and 4: a music directive per scene, then a music caption (and plan) per page.

The director writes the words; this module runs it scene by scene, checks what comes back (one
directive per scene; one cue for every page of a scene, plans within range, General MIDI instruments)
and records what produced it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from m2m.book import Book
from m2m.emotions import EmotionReport, render_distribution
from m2m.llm import Meter
from m2m.runs import Provenance, Staged
from m2m.scenes import Scene, ScenePlan

if TYPE_CHECKING:
    from m2m.director import Director

TEMPO_RANGE = (40, 220)
"""Beats per minute a plan may ask for."""

KEYS: tuple[str, ...] = ("C", "C#", "Db", "D", "D#", "Eb", "E", "F", "F#", "Gb", "G", "G#", "Ab", "A", "A#",
                         "Bb", "B")
"""Tonic names a plan may use."""


def _gm_instruments() -> tuple[str, ...]:
    from m2m.midi import pretty_midi

    return tuple(pretty_midi.constants.INSTRUMENT_MAP)


GM_INSTRUMENTS: tuple[str, ...] = _gm_instruments()
"""The 128 General MIDI program names, as pretty_midi spells them ("Acoustic Grand Piano", ...)."""

_GM_BY_NORMAL = {"".join(ch for ch in name.lower() if ch.isalnum()): name for name in GM_INSTRUMENTS}


def canonical_instrument(name: str) -> str:
    """The General MIDI spelling of an instrument name (case, spaces and punctuation ignored)."""
    normal = "".join(ch for ch in name.lower() if ch.isalnum())
    try:
        return _GM_BY_NORMAL[normal]
    except KeyError as e:
        raise ValueError(f"instruments: {name!r} is not a General MIDI instrument name "
                         "(e.g. 'Acoustic Grand Piano', 'String Ensemble 1')") from e


@dataclass(frozen=True)
class Plan:
    """The caption's intent as fields, for engines that compose symbolically.

    tempo in BPM; key a tonic name ("C", "F#", "Bb"); energy from 0 (still) to 1 (driving);
    instruments are General MIDI instrument names ("Acoustic Grand Piano", "String Ensemble 1", ...).
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
    """One page's music: a free-text caption for a text-to-music model, and the same intent as a plan.

    ``planned_with`` is a hash of the caption the director wrote the plan with. A person who edits
    the caption (in the app or in the file) leaves it behind, which is how the composer knows the
    caption's words now speak for the page where they contradict the plan; while the two are as the
    director wrote them, the plan's structured values stand. None (files from before): the caption
    is read as if edited.
    """

    page: int
    scene: int
    caption: str
    plan: Plan
    planned_with: str | None = None

    @classmethod
    def planned(cls, page: int, scene: int, caption: str, plan: Plan) -> Cue:
        """A cue as a director wrote it: the caption and plan agree by construction."""
        return cls(page, scene, caption, plan, caption_fingerprint(caption))

    @property
    def caption_edited(self) -> bool:
        return self.planned_with is None or self.planned_with != caption_fingerprint(self.caption)


def caption_fingerprint(caption: str) -> str:
    """A short hash of a caption's text (whitespace at the ends ignored)."""
    return hashlib.sha256(caption.strip().encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class DirectiveSheet:
    """``03-directives.json``: one directive per scene."""

    directives: tuple[Directive, ...]

    def directive(self, scene: int) -> Directive:
        for directive in self.directives:
            if directive.scene == scene:
                return directive
        raise ValueError(f"scene: no directive for scene {scene}")


@dataclass(frozen=True)
class CaptionSheet:
    """``04-captions.json``: one cue per page, in page order."""

    cues: tuple[Cue, ...]

    def cue(self, page: int) -> Cue:
        for cue in self.cues:
            if cue.page == page:
                return cue
        raise ValueError(f"page: no caption for page {page}")


def check_plan(plan: Plan, where: str = "plan") -> Plan:
    """The plan with instrument names made canonical; a ValueError names the first bad field."""
    low, high = TEMPO_RANGE
    if not low <= plan.tempo <= high:
        raise ValueError(f"{where}.tempo: {plan.tempo} BPM is outside {low}-{high}")
    if plan.key not in KEYS:
        raise ValueError(f"{where}.key: {plan.key!r} is not one of {', '.join(KEYS)}")
    if plan.mode not in ("major", "minor"):
        raise ValueError(f"{where}.mode: {plan.mode!r} is not 'major' or 'minor'")
    if not 0.0 <= plan.energy <= 1.0:
        raise ValueError(f"{where}.energy: {plan.energy} is outside 0-1")
    if not plan.instruments:
        raise ValueError(f"{where}.instruments: empty; name at least one General MIDI instrument")
    instruments = tuple(dict.fromkeys(canonical_instrument(name) for name in plan.instruments))
    return Plan(plan.tempo, plan.key, plan.mode, instruments, float(plan.energy), plan.mood)


# ---------------------------------------------------------------------------------------------
# What the directors are told about emotions


def emotion_sentence(emotions: EmotionReport | None, *, scene: int | None = None, page: int | None = None) -> str:
    """The paper's emotions line: "The faces have the following emotions: 57% neutral, 13% surprise, 13% fear."."""
    if emotions is None:
        return "No face emotions are available."
    table = emotions.scenes if scene is not None else emotions.pages
    key = scene if scene is not None else page
    distribution = table.get(key) if key is not None else None
    if distribution is None or distribution.faces == 0:
        return "No faces are visible." if page is not None else "No faces were found in this scene."
    return f"The faces have the following emotions: {render_distribution(distribution.probabilities)}."


# ---------------------------------------------------------------------------------------------
# Stage 3


def write_directives(book: Book, scenes: ScenePlan, emotions: EmotionReport | None,
                     director: Director) -> Staged[DirectiveSheet]:
    """One music directive per scene (stage 3)."""
    meter = Meter()
    directives = []
    for scene in scenes.scenes:
        text = director.scene_directive(book, scene, emotions, meter).strip()
        if not text:
            raise ValueError(f"directive: the {director.backend} director wrote an empty directive for scene {scene.index}")
        directives.append(Directive(scene.index, text))
    provenance = _provenance("directives", "scene_directive", director, meter)
    return Staged(DirectiveSheet(tuple(directives)), provenance)


# ---------------------------------------------------------------------------------------------
# Stage 4


def write_captions(book: Book, scenes: ScenePlan, emotions: EmotionReport | None, directives: DirectiveSheet,
                   director: Director) -> Staged[CaptionSheet]:
    """A caption and plan for every page, scene by scene (stage 4): one request per scene."""
    meter = Meter()
    cues: list[Cue] = []
    for scene in scenes.scenes:
        directive = directives.directive(scene.index).text
        scene_cues = director.page_captions(book, scene, emotions, directive, meter)
        cues.extend(check_scene_cues(scene, scene_cues))
    provenance = _provenance("captions", "page_captions", director, meter)
    return Staged(CaptionSheet(tuple(sorted(cues, key=lambda c: c.page))), provenance)


def check_scene_cues(scene: Scene, cues: Sequence[Cue]) -> list[Cue]:
    """Exactly one cue per page of the scene, each with a caption and a valid plan."""
    pages = [cue.page for cue in cues]
    missing = sorted(set(scene.pages) - set(pages))
    extra = sorted(set(pages) - set(scene.pages))
    if missing or extra or len(pages) != len(set(pages)):
        raise ValueError(f"captions: scene {scene.index} covers pages {list(scene.pages)}; "
                         f"answer has {pages} (missing {missing}, not in scene {extra})")
    checked = []
    for cue in cues:
        if not cue.caption.strip():
            raise ValueError(f"captions: the caption for page {cue.page} is empty")
        checked.append(Cue.planned(cue.page, scene.index, cue.caption.strip(),
                                   check_plan(cue.plan, f"page {cue.page} plan")))
    return checked


def _provenance(stage: str, step: str, director: Director, meter: Meter) -> Provenance:
    return Provenance(stage=stage, backend=director.backend, input_hash="", settings=director.settings_record(),
                      prompt_file=director.prompt_name(step), prompt_hash=director.prompt_hash(step),
                      usage=meter.as_usage())
