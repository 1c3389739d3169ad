"""Stage 4b: how the music moves at each scene change, chosen by the director with a reason.

Within a scene pages continue (the engine's continuation, a short crossfade). At a scene change the
director looks at the music on both sides (the last page's cue, the first page's cue, the faces)
and picks one of:

    continue   the new scene's music continues from the old one's audio, with a crossfade
    crossfade  an equal-power crossfade of a chosen length (longer: a slow dissolve)
    stinger    the old scene's music ends on a short closing cadence (a clip of its own, m2m/stingers.py),
               the old page fading out under it, then the new scene enters
    silence    the old music fades out, a short silence, then the new scene starts
    cut        the new music starts at once (a 50 ms fade, so no click): a dramatic page

``04-transitions.json`` holds one per scene change (``m2m.cues.TransitionSheet``: the music reads it),
editable like every other run file; the whole-book file (m2m/soundtrack.py) and the reader
(m2m/ui/static/reader.js) play them.
"""

from __future__ import annotations

from typing import Protocol

from m2m.book import Book
from m2m.cues import CaptionSheet, Cue, Transition, TransitionSheet, check_transition
from m2m.emotions import EmotionReport
from m2m.llm import Meter
from m2m.runs import Producer, Staged, produced_by
from m2m.scenes import Scene, ScenePlan


class TransitionDirector(Producer, Protocol):
    """What stage 4b asks of a director (:class:`m2m.director.Director` is one)."""

    def scene_transition(self, book: Book, before: Scene, after: Scene, last: Cue, first: Cue,
                         emotions: EmotionReport | None, meter: Meter) -> Transition:
        """How the music moves from ``before``'s last page (``last``) into ``after``'s first (``first``)."""
        ...


def choose_transitions(book: Book, scenes: ScenePlan, emotions: EmotionReport | None, captions: CaptionSheet,
                       director: TransitionDirector) -> Staged[TransitionSheet]:
    """One transition per scene change (stage 4b), each checked."""
    meter = Meter()
    chosen = []
    for before, after in zip(scenes.scenes, scenes.scenes[1:], strict=False):
        last, first = captions.cue(before.pages[-1]), captions.cue(after.pages[0])
        transition = director.scene_transition(book, before, after, last, first, emotions, meter)
        chosen.append(check_transition(transition, after.index))
    provenance = produced_by(director, "transitions", "scene_transition", meter.as_usage())
    return Staged(TransitionSheet(tuple(chosen)), provenance)


def check_transition_sheet(sheet: TransitionSheet, scenes: ScenePlan) -> None:
    """A (hand-edited) sheet: exactly one playable transition into every scene after the first."""
    wanted = [s.index for s in scenes.scenes[1:]]
    have = [t.scene for t in sheet.transitions]
    if sorted(have) != wanted:
        raise ValueError(f"transitions: expected one into each of scenes {wanted}, got {have}")
    for transition in sheet.transitions:
        check_transition(transition, transition.scene)
