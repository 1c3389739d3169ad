"""A scene's closing cadence (a stinger, m2m/stingers.py), written as MIDI from the old scene's last plan.

The stinger is the old scene's music ending: its key and mode, its instruments in the roles the
page's piece gave them (``m2m.music.arrangement``), at its tempo. A dominant seventh (a plagal
subdominant when the music is still) moves to the tonic, which is struck together and left to ring:
the bass on the roots, the pads and keyboards voicing the chords with smooth voice leading, the top
voice stepping from the leading tone (or the fourth) onto the tonic (or the third), pitched
percussion on the tonic and a cymbal when the scene was driving. Nothing here sounds:
``m2m.music.composer`` renders it through FluidSynth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from m2m.cues import Cue
from m2m.midi import pretty_midi
from m2m.music.arrangement import arrange, instrument_family
from m2m.music.base import load_table
from m2m.music.composition import _MIX
from m2m.music.plans import ResolvedPlan, program_of, resolve_plan
from m2m.music.theory import Chord, nearest, parse_numeral, tonic_pitch_class, voice_chord

# Below this energy the cadence is plagal (IV-I, the "amen"): a dominant's pull is too strong for a still scene.
PLAGAL_BELOW = 0.3
# The approach chord takes two beats, but never more than this share of the stinger.
APPROACH_SHARE = 0.35
# The struck tonic is released here (share of the stinger), so its release and reverb ring out within it.
RELEASE_SHARE = 0.8
CRASH = 49  # General MIDI crash cymbal


@dataclass(frozen=True)
class Cadence:
    """A written cadence: the MIDI, its chords (Roman numerals), length in seconds and the roles played."""

    midi: pretty_midi.PrettyMIDI
    numerals: tuple[str, str]
    seconds: float
    tempo: int
    roles: tuple[tuple[str, str], ...]


def cadence_numerals(mode: str, energy: float) -> tuple[str, str]:
    """The approach chord and the tonic: V7-I (V7-i, a major dominant in minor too), IV-I when still."""
    tonic = "I" if mode == "major" else "i"
    if energy < PLAGAL_BELOW:
        return ("IV" if mode == "major" else "iv"), tonic
    return "V7", tonic


def compose_cadence(cue: Cue, seconds: float) -> tuple[Cadence, ResolvedPlan]:
    """The closing cadence of ``cue``'s music (plan reconciled with its caption), ``seconds`` long."""
    if not 0.5 <= seconds <= 30.0:
        raise ValueError(f"seconds: a cadence of {seconds} s is outside 0.5..30 s")
    resolved = resolve_plan(cue)
    plan = resolved.plan
    tonic = tonic_pitch_class(plan.key)
    numerals = cadence_numerals(plan.mode, plan.energy)
    approach, home = (parse_numeral(n, tonic, plan.mode) for n in numerals)
    beat = 60.0 / plan.tempo
    strike = min(2 * beat, APPROACH_SHARE * seconds)  # when the tonic is struck
    release = RELEASE_SHARE * seconds
    loud = int(round(62 + 40 * plan.energy))
    roles, _ = arrange(plan, resolved.family)
    ranges = load_table("instruments.json")["ranges"]
    midi = pretty_midi.PrettyMIDI(initial_tempo=float(plan.tempo))
    for role, inst in roles:
        notes = _role_notes(role, inst, approach, home, tonic, plan.mode, ranges)
        if notes is None:
            continue
        track = pretty_midi.Instrument(program=max(0, program_of(inst)), is_drum=role == "drums",
                                       name=f"cadence {role}: {inst}")
        volume, pan, reverb, chorus = _MIX[role]
        for number, value in ((7, volume), (10, pan), (91, reverb), (93, chorus), (64, 0)):
            track.control_changes.append(pretty_midi.ControlChange(number, value, 0.0))
        before, after = notes
        for pitch in before:
            track.notes.append(pretty_midi.Note(loud - 14, pitch, 0.0, strike))
        for pitch in after:
            track.notes.append(pretty_midi.Note(min(127, loud), pitch, strike, release))
        midi.instruments.append(track)
    return Cadence(midi, numerals, seconds, plan.tempo, tuple(roles)), resolved


def _role_notes(role: str, inst: str, approach: Chord, home: Chord, tonic: int, mode: str,
                ranges: dict[str, list[int]]) -> tuple[list[int], list[int]] | None:
    """(pitches of the approach chord, pitches of the tonic) for one role; None: the role rests."""
    if role in ("melody", "melody2", "theme"):
        low, high = ranges["low_melody"] if instrument_family(inst) in ("low_solo", "bass") else ranges["melody"]
        if role == "melody2":
            low, high = low - 12, high - 12
        # the leading tone rises to the tonic; over IV the fourth falls to the third
        plagal = approach.numeral.lower() == "iv"
        first_pc = (tonic + 5) % 12 if plagal else (tonic + 11) % 12
        last_pc = (tonic + (4 if mode == "major" else 3)) % 12 if plagal else tonic
        centre = (low + high) / 2
        first = nearest([p for p in range(low, high + 1) if p % 12 == first_pc], centre)
        last = nearest([p for p in range(low, high + 1) if p % 12 == last_pc], first + (-1 if plagal else 1))
        return [first], [last]
    if role in ("pad", "pad2", "arp", "comp"):
        low, high = ranges["pad"] if role in ("pad", "pad2") else (ranges["arp"][0], ranges["arp"][0] + 24)
        if role == "pad2":
            low, high = low + 12, high + 12
        first = voice_chord(approach, None, low, high)
        return list(first), list(voice_chord(home, first, low, high))
    if role in ("bass", "hits"):
        low, high = ranges[role]
        roots = [nearest([p for p in range(low, high + 1) if p % 12 == c.root], (low + high) / 2)
                 for c in (approach, home)]
        return ([roots[0]], [roots[1]]) if role == "bass" else ([], [roots[1]])
    if role == "drums":
        return [], [CRASH]
    return None


def ring_out(samples: np.ndarray, sample_rate: int, seconds: float, share: float) -> np.ndarray:
    """``samples`` (``[channels, samples]``) cut or padded to ``seconds``, its last ``share`` faded
    to silence on a cosine, so the stinger ends at zero whatever the engine left ringing."""
    n = int(round(seconds * sample_rate))
    out = np.zeros((samples.shape[0], n), dtype=np.float32)
    out[:, :min(n, samples.shape[1])] = samples[:, :n]
    fade = max(1, int(round(share * n)))
    out[:, n - fade:] *= (0.5 + 0.5 * np.cos(np.pi * (np.arange(fade) + 1) / fade)).astype(np.float32)
    return out
