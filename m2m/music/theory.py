"""Keys, scales, Roman-numeral chords and voice leading for the symbolic composer.

Pitches are MIDI note numbers (60 = middle C); pitch classes are 0..11 with C = 0.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Literal

Mode = Literal["major", "minor"]

_NATURAL = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),  # natural minor; a major V comes from the numeral's case
}
_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6, "vii": 7}
_NUMERAL = re.compile(r"^(?P<acc>[b#]?)(?P<roman>[ivIV]+)(?P<suffix>.*)$")
_SUFFIXES: dict[str, tuple[int, ...]] = {
    # intervals above the root, for a major (upper-case) numeral; minor numerals lower the third.
    "": (0, 4, 7), "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "sus4": (0, 5, 7), "sus2": (0, 2, 7),
    "add9": (0, 4, 7, 14), "6": (0, 4, 7, 9), "dim": (0, 3, 6), "dim7": (0, 3, 6, 9),
}


def tonic_pitch_class(key: str) -> int:
    """"C" → 0, "F#" → 6, "Bb" → 10; a ValueError names a key that is not a note name."""
    text = key.strip()
    if not text or text[0].upper() not in _NATURAL:
        raise ValueError(f"plan.key: {key!r} is not a note name (C, C#, Db, ... B)")
    pc = _NATURAL[text[0].upper()]
    for ch in text[1:]:
        if ch in "#♯":
            pc += 1
        elif ch in "b♭":
            pc -= 1
        else:
            raise ValueError(f"plan.key: {key!r} is not a note name (C, C#, Db, ... B)")
    return pc % 12


@dataclass(frozen=True)
class Chord:
    """A chord as a root pitch class and the intervals (semitones) of its tones above the root."""

    numeral: str
    root: int
    intervals: tuple[int, ...]

    @property
    def pitch_classes(self) -> tuple[int, ...]:
        return tuple(sorted({(self.root + i) % 12 for i in self.intervals}))


def parse_numeral(numeral: str, tonic: int, mode: Mode) -> Chord:
    """A Roman numeral ("vi7", "bVII", "V", "IVmaj7") read in ``mode`` on ``tonic`` (pitch class)."""
    m = _NUMERAL.match(numeral)
    if not m or m.group("roman").lower() not in _ROMAN:
        raise ValueError(f"progression: {numeral!r} is not a Roman numeral chord")
    roman, suffix = m.group("roman"), m.group("suffix")
    if suffix not in _SUFFIXES:
        raise ValueError(f"progression: {numeral!r} has an unknown suffix {suffix!r}")
    degree = _ROMAN[roman.lower()] - 1
    root = SCALES[mode][degree] + {"b": -1, "#": 1, "": 0}[m.group("acc")]
    intervals = list(_SUFFIXES[suffix])
    if roman.islower() and suffix not in ("dim", "dim7", "sus4", "sus2"):
        intervals = [3 if i == 4 else i for i in intervals]  # "vi7" is a minor seventh chord
    # The diatonic vii and ii in minor are diminished; spell them so unless written otherwise.
    if roman.islower() and suffix == "" and (SCALES[mode][(degree + 4) % 7] - SCALES[mode][degree]) % 12 == 6:
        intervals = [0, 3, 6]
    return Chord(numeral, (tonic + root) % 12, tuple(intervals))


def scale_pitches(tonic: int, mode: Mode, low: int, high: int) -> list[int]:
    """All pitches of the scale between ``low`` and ``high`` inclusive (MIDI notes)."""
    pcs = {(tonic + s) % 12 for s in SCALES[mode]}
    return [p for p in range(low, high + 1) if p % 12 in pcs]


def nearest(pitches: list[int], target: float) -> int:
    return min(pitches, key=lambda p: (abs(p - target), p))


def voice_chord(chord: Chord, previous: tuple[int, ...] | None, low: int, high: int,
                voices: int = 4) -> tuple[int, ...]:
    """A close, smoothly led voicing of ``chord`` in ``[low, high]``.

    Among voicings that cover the chord's tones, the one with the least total motion from
    ``previous`` wins (common tones stay, other voices move by step), with penalties for muddy
    close intervals low down and for drifting away from the middle of the range.
    """
    pcs = chord.pitch_classes
    candidates = [p for p in range(low, high + 1) if p % 12 in pcs]
    centre = (low + high) / 2
    best: tuple[float, tuple[int, ...]] | None = None
    for combo in itertools.combinations(candidates, voices):
        if combo[-1] - combo[0] > 19:  # keep the voicing within about an octave and a half
            continue
        covered = {p % 12 for p in combo}
        missing = len(set(pcs) - covered)
        # a fifth may be left out of a seventh chord; anything else must be there
        if missing > (1 if len(pcs) >= 4 else 0):
            continue
        cost = 6.0 * missing
        if previous is not None and len(previous) == voices:
            cost += sum(abs(a - b) for a, b in zip(combo, previous, strict=True))
        else:
            cost += 0.5 * abs(sum(combo) / voices - centre)
        cost += sum(3.0 for a, b in itertools.pairwise(combo) if b - a < 3 and a < 55)
        cost += 0.15 * abs(sum(combo) / voices - centre)
        if combo[0] % 12 != chord.root:
            cost += 0.5  # prefer root position in the pad, the bass carries inversions anyway
        if best is None or cost < best[0]:
            best = (cost, combo)
    if best is None:  # the range is too narrow for that many voices: fall back to fewer
        if voices > 2:
            return voice_chord(chord, None, low, high, voices - 1)
        raise ValueError(f"range: no voicing of {chord.numeral} between MIDI {low} and {high}")
    return best[1]


KK_MAJOR = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
KK_MINOR = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def estimate_key(chroma: list[float] | tuple[float, ...]) -> tuple[int, Mode, float]:
    """Krumhansl–Kessler key finding: the (tonic pitch class, mode, correlation) best fitting a
    12-bin chroma profile (C first)."""
    import numpy as np

    c = np.asarray(chroma, dtype=float)
    best = (0, "major", -2.0)
    for mode, profile in (("major", KK_MAJOR), ("minor", KK_MINOR)):
        p = np.asarray(profile)
        for tonic in range(12):
            r = float(np.corrcoef(c, np.roll(p, tonic))[0, 1])
            if r > best[2]:
                best = (tonic, mode, r)
    return best  # type: ignore[return-value]
