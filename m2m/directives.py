"""Stages 3 and 4: a music directive per scene, then a music caption (and plan) per page.

The director writes the words; this module runs it scene by scene, checks what comes back (one
directive per scene; one cue for every page of a scene, plans within range, General MIDI instruments)
and records what produced it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from m2m.book import Book
from m2m.cues import CaptionSheet, Cue, check_plan
from m2m.cues import Plan as Plan  # noqa: F401 - tests/ui still import Plan from here; drop once they use m2m.cues
from m2m.emotions import EmotionReport, render_distribution
from m2m.leitmotifs import with_themes
from m2m.llm import Meter
from m2m.runs import Producer, Staged, produced_by
from m2m.scenes import Scene, ScenePlan


@dataclass(frozen=True)
class Directive:
    scene: int
    text: str


@dataclass(frozen=True)
class DirectiveSheet:
    """``03-directives.json``: one directive per scene."""

    directives: tuple[Directive, ...]

    def directive(self, scene: int) -> Directive:
        for directive in self.directives:
            if directive.scene == scene:
                return directive
        raise ValueError(f"scene: no directive for scene {scene}")


class MusicDirector(Producer, Protocol):
    """What stages 3 and 4 ask of a director (:class:`m2m.director.Director` is one). Every method
    adds its calls to ``meter``."""

    def scene_directive(self, book: Book, scene: Scene, emotions: EmotionReport | None, meter: Meter) -> str:
        ...

    def page_captions(self, book: Book, scene: Scene, emotions: EmotionReport | None, directive: str,
                      meter: Meter) -> list[Cue]:
        """One cue for every page of ``scene``."""
        ...


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
                     director: MusicDirector) -> Staged[DirectiveSheet]:
    """One music directive per scene (stage 3)."""
    meter = Meter()
    directives = []
    for scene in scenes.scenes:
        text = director.scene_directive(book, scene, emotions, meter).strip()
        if not text:
            raise ValueError(f"directive: the {director.backend} director wrote an empty directive for scene {scene.index}")
        directives.append(Directive(scene.index, text))
    provenance = produced_by(director, "directives", "scene_directive", meter.as_usage())
    return Staged(DirectiveSheet(tuple(directives)), provenance)


# ---------------------------------------------------------------------------------------------
# Stage 4


def write_captions(book: Book, scenes: ScenePlan, emotions: EmotionReport | None, directives: DirectiveSheet,
                   director: MusicDirector) -> Staged[CaptionSheet]:
    """A caption and plan for every page, scene by scene (stage 4): one request per scene."""
    meter = Meter()
    cues: list[Cue] = []
    for scene in scenes.scenes:
        directive = directives.directive(scene.index).text
        scene_cues = director.page_captions(book, scene, emotions, directive, meter)
        cues.extend(check_scene_cues(scene, scene_cues))
    cues = with_themes(book, scenes, cues)  # the recurring characters' leitmotifs
    provenance = produced_by(director, "captions", "page_captions", meter.as_usage())
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
