"""Stage 4b: how the music moves at each scene change, chosen by the director with a reason.

Within a scene pages continue (the engine's continuation, a short crossfade). At a scene change the
director looks at the music on both sides (the last page's cue, the first page's cue, the faces)
and picks one of:

    continue   the new scene's music continues from the old one's audio, with a crossfade
    crossfade  an equal-power crossfade of a chosen length (longer: a slow dissolve)
    silence    the old music fades out, a short silence, then the new scene starts
    cut        the new music starts at once (a 50 ms fade, so no click): a dramatic page

``04-transitions.json`` holds one per scene change, editable like every other run file; the whole-
book file (m2m/soundtrack.py) and the reader (m2m/ui/static/reader.js) play them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, get_args

from m2m.book import Book
from m2m.cues import CaptionSheet, Cue
from m2m.emotions import EmotionReport
from m2m.llm import Meter
from m2m.runs import Producer, Staged, produced_by
from m2m.scenes import Scene, ScenePlan

TransitionKind = Literal["continue", "crossfade", "silence", "cut"]
KINDS: tuple[str, ...] = get_args(TransitionKind)
# A cut still fades over this long: an instant switch between two waveforms clicks.
CUT_SECONDS = 0.05
# The longest transition a director may ask for (the soundtrack also keeps it within a page).
MAX_SECONDS = 12.0


@dataclass(frozen=True)
class Transition:
    """How the music moves into ``scene``'s first page. ``seconds``: the crossfade's length
    (continue, crossfade), the silence's (silence), or 0 (cut). ``why``: the director's reason."""

    scene: int
    kind: TransitionKind
    seconds: float
    why: str


@dataclass(frozen=True)
class TransitionSheet:
    """``04-transitions.json``: one transition per scene change (scenes 1 on)."""

    transitions: tuple[Transition, ...]

    def into(self, scene: int) -> Transition | None:
        for transition in self.transitions:
            if transition.scene == scene:
                return transition
        return None


class TransitionDirector(Producer, Protocol):
    """What stage 4b asks of a director (:class:`m2m.director.Director` is one)."""

    def scene_transition(self, book: Book, before: Scene, after: Scene, last: Cue, first: Cue,
                         emotions: EmotionReport | None, meter: Meter) -> Transition:
        """How the music moves from ``before``'s last page (``last``) into ``after``'s first (``first``)."""
        ...


def check_transition(transition: Transition, scene: int) -> Transition:
    """The transition, if it is one the soundtrack can play into ``scene``; a clear error otherwise."""
    if transition.scene != scene:
        raise ValueError(f"transition: for scene {transition.scene}, expected scene {scene}")
    if transition.kind not in KINDS:
        raise ValueError(f"transition into scene {scene}: kind {transition.kind!r} is not one of {', '.join(KINDS)}")
    if not 0.0 <= transition.seconds <= MAX_SECONDS:
        raise ValueError(f"transition into scene {scene}: {transition.seconds} s is outside 0..{MAX_SECONDS:g} s")
    if transition.kind != "cut" and transition.seconds <= 0.0:
        raise ValueError(f"transition into scene {scene}: a {transition.kind} needs a length above 0 s")
    if not transition.why.strip():
        raise ValueError(f"transition into scene {scene}: the reason is empty")
    return transition


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
