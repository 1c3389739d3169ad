"""The offline director's transitions at scene changes: a rule over the music on both sides.

A surge of energy (or a startled first page that is loud) cuts; a fall of energy leaves a breath of
silence; the same key at the same pace carries on; a flip of mode into a key that is not the
relative one (A major into C# minor), the energy holding, closes the old scene with a stinger: a
short cadence in its own key, since a dissolve would smear two tonal centres that share no tonic;
anything else crossfades, longer the further apart the two scenes' music is (a slow dissolve
between distant keys and tempi).
"""

from __future__ import annotations

from collections.abc import Mapping

from m2m.cues import Plan, Transition
from m2m.music.theory import tonic_pitch_class

SURGE = 0.35  # an energy jump this large at a scene change is a dramatic page
STARTLED = 0.5  # this much surprise + fear + anger on the first page's faces is a shock
SILENCE_SECONDS = 1.5
CONTINUE_SECONDS = 3.0
STINGER_BEATS = 6  # two beats of the dominant, then the tonic struck and left to ring
STINGER_SECONDS = (2.0, 3.5)  # the stinger's length whatever the tempo


def startle(faces: Mapping[str, float] | None) -> float:
    """How shocked the faces of a page are: surprise, fear and anger together (0 without faces)."""
    if not faces:
        return 0.0
    return sum(faces.get(name, 0.0) for name in ("surprise", "fear", "anger"))


def distance(last: Plan, first: Plan) -> float:
    """How far apart two pages' music is, 0 (same key, mode and tempo) to 1."""
    tempo = abs(first.tempo - last.tempo) / max(first.tempo, last.tempo)
    return min(1.0, 2.0 * tempo + (0.3 if first.key != last.key else 0.0) + (0.2 if first.mode != last.mode else 0.0))


def relative(last: Plan, first: Plan) -> bool:
    """Whether the two keys are relative major and minor (C major and A minor: the same notes)."""
    major, minor = (last, first) if last.mode == "major" else (first, last)
    return (tonic_pitch_class(major.key) - tonic_pitch_class(minor.key)) % 12 == 3


def cadence_worthy(last: Plan, first: Plan) -> bool:
    """The old scene's music should end on a cadence before the new one: its mode flips into a key
    that is not the relative one, and the energy holds (a surge cuts, a fall leaves a silence)."""
    return first.mode != last.mode and not relative(last, first) and abs(first.energy - last.energy) < SURGE


def stinger_seconds(tempo: int) -> float:
    """How long the closing cadence lasts at the old scene's tempo (BPM), within STINGER_SECONDS."""
    low, high = STINGER_SECONDS
    return round(min(high, max(low, STINGER_BEATS * 60.0 / tempo)), 1)


def transition_between(scene: int, last: Plan, first: Plan, first_faces: Mapping[str, float] | None) -> Transition:
    """The transition into ``scene``, whose first page's plan is ``first``, from ``last``."""
    jump = first.energy - last.energy
    shock = startle(first_faces)
    where = f"{last.key} {last.mode} at {last.tempo} BPM to {first.key} {first.mode} at {first.tempo} BPM"
    if jump >= SURGE or (shock >= STARTLED and first.energy >= 0.6):
        because = (f"energy leaps from {last.energy:.2f} to {first.energy:.2f}" if jump >= SURGE
                   else f"{shock:.0%} of the first page's faces are startled")
        return Transition(scene, "cut", 0.0, f"A dramatic page: {because}, so the music cuts on the turn.")
    if jump <= -SURGE:
        return Transition(scene, "silence", SILENCE_SECONDS,
                          f"The intensity falls away (energy {last.energy:.2f} to {first.energy:.2f}): "
                          f"a breath of silence before the quieter scene.")
    if cadence_worthy(last, first):
        seconds = stinger_seconds(last.tempo)
        return Transition(scene, "stinger", seconds,
                          f"The {last.key} {last.mode} scene closes on a {seconds:g} s cadence before "
                          f"{first.key} {first.mode}: keys this far apart would smear in a dissolve.")
    if first.key == last.key and first.mode == last.mode and distance(last, first) <= 0.2:
        return Transition(scene, "continue", CONTINUE_SECONDS,
                          f"Same key and nearly the same pace ({where}): the music carries on into the new scene.")
    seconds = round(3.0 + 5.0 * distance(last, first), 1)
    return Transition(scene, "crossfade", seconds,
                      f"A {seconds:g} s crossfade from {where}: the further apart, the slower the dissolve.")
