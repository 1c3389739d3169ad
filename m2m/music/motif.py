"""A scene's motif and each page's variation of it: what keeps the music of a scene recognisably one.

Every page of a scene states the scene's motif and then varies it; a new scene draws a new motif.
The motif is a short figure in scale steps, not pitches, so the page's composer can realise it in
any key over any chord. It lives apart from the composer because it is a figure of its own: drawn
once per scene, transformed per page, and independent of the chords and instruments it is played over.
"""

from __future__ import annotations

import numpy as np

from m2m.cues import Motif  # (onset beats, length beats, scale step from the first note) per note
from m2m.music.base import load_table

VARIATIONS: tuple[str, ...] = ("invert", "retro", "rhythm", "lift")


def scene_motif(rng: np.random.Generator) -> Motif:
    """A motif drawn from the motif table's rhythms and step weights, within about an octave."""
    table = load_table("motifs.json")
    rhythm = table["rhythms"][int(rng.integers(len(table["rhythms"])))]
    steps, weights = zip(*table["steps"], strict=True)
    p = np.asarray(weights, dtype=float) / sum(weights)
    degree, motif = 0, []
    for i, (onset, length) in enumerate(rhythm):
        if i > 0:
            step = int(rng.choice(steps, p=p))
            if abs(degree + step) > 5:  # keep the motif within about an octave
                step = -step
            if i >= 2 and abs(motif[-1][2] - motif[-2][2]) >= 3:  # after a leap, step back
                step = -int(np.sign(motif[-1][2] - motif[-2][2]))
            degree += step
        motif.append((float(onset), float(length), degree))
    return tuple(motif)


def vary_motif(motif: Motif, how: str) -> Motif:
    """A page's variation of the scene motif (same rhythm family, recognisably the same figure)."""
    if how == "invert":
        return tuple((o, d, -s) for o, d, s in motif)
    if how == "retro":
        degrees = [s for _, _, s in motif][::-1]
        return tuple((o, d, degrees[i] - degrees[0]) for i, (o, d, _) in enumerate(motif))
    if how == "rhythm":  # split the longest note into two, the second a step higher
        longest = max(range(len(motif)), key=lambda i: motif[i][1])
        out = []
        for i, (o, d, s) in enumerate(motif):
            if i == longest and d >= 1.0:
                out += [(o, d / 2, s), (o + d / 2, d / 2, s + 1)]
            else:
                out.append((o, d, s))
        return tuple(out)
    return tuple((o, d, s + 2) for o, d, s in motif)  # "lift": the motif a third higher

