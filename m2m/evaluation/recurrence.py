"""Leitmotif recurrence, heard in the audio: is a character's theme in the clips of the pages where
they speak most, is it absent where they are not themed, and does it come back across scenes?

The yardstick is the m2m plan's themes (``Cue.theme`` in the book's m2m ``04-captions.json``), so
the baseline and random conditions, which have no themes of their own, are asked the same question
of the same pages: does this character's motif sound here?

The detector matches the motif against a pitch salience map of the clip: a constant-Q spectrogram,
one bin per semitone, each frame standardised across pitch so the voice that stands out scores
high. The motif is placed as the composer plays it, its scale steps realised in the page's mode
(transposition-invariant: every root is tried, so a key the music missed does not matter) at the
page's planned tempo (its rhythm in beats), and slid over every frame. Its score is how far its
best placement stands above all its placements (a z-score), so a motif whose shape fits any
texture gains nothing. The motif counts as found only when it stands out more than every one of
``DECOYS`` decoy motifs drawn the way themes are drawn and matched the same way on the same clip:
with no theme there, the real motif beats all the decoys by chance about once in ``DECOYS + 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from m2m.cues import CaptionSheet, Motif, Theme
from m2m.evaluation.features import ANALYSIS_RATE
from m2m.evaluation.sources import REFERENCE_CONDITION, RunInput
from m2m.music.base import load_table, stable_seed
from m2m.music.theory import SCALES
from m2m.runs import RunFolder

HOP = 256  # samples at ANALYSIS_RATE: 11.6 ms frames, fine enough for a sixteenth at 200 BPM
LOWEST_MIDI, PITCHES = 48, 48  # C3 to B6: where the themes are played (the composer's melody range, an octave either side)
DECOYS = 19  # with no theme in a clip the real motif beats every decoy about 1 time in 20
ONSET_FRAMES = 3  # 35 ms: how long a struck note takes to rise
NOTE_BODY = 0.8  # the part of each note's length its score is read over (the tail may already be released)


@dataclass(frozen=True)
class MotifScore:
    """How far a motif's best placement in a clip stands out (``z``), and where: seconds into the clip."""

    z: float
    at_seconds: float


@dataclass(frozen=True)
class ThemeCheck:
    """One page asked about one character's theme. ``themed``: the yardstick plays the theme here.
    ``found``: the motif's ``z`` beat every decoy's (``decoy_best`` is the best of them)."""

    page: int
    scene: int
    character: str
    themed: bool
    found: bool
    z: float
    decoy_best: float
    at_seconds: float


@dataclass(frozen=True)
class CharacterRecurrence:
    """A character's theme over the run: on how many pages it is themed, the pages and (reference)
    scenes where it was found, and whether it recurs (found in two scenes or more)."""

    character: str
    name: str
    instrument: str
    themed_pages: int
    found_pages: tuple[int, ...]
    scenes_found: tuple[int, ...]
    recurs: bool


@dataclass(frozen=True)
class Recurrence:
    """A run's leitmotif figures. ``recall``: themed checks found; ``false_alarm_rate``: checks of a
    character on pages not themed for them that found the motif anyway. ``available`` False with
    ``note`` when the yardstick has no themes."""

    available: bool
    note: str
    checks: tuple[ThemeCheck, ...] = ()
    characters: tuple[CharacterRecurrence, ...] = ()
    themed_checks: int = 0
    other_checks: int = 0
    recall: float | None = None
    false_alarm_rate: float | None = None
    recurring_characters: int = 0


# ---------------------------------------------------------------------------------------------
# the detector


def pitch_salience(mono: np.ndarray) -> np.ndarray:
    """``[PITCHES, frames]``: the log constant-Q magnitude of a mono clip at ``ANALYSIS_RATE``, one
    bin per semitone from ``LOWEST_MIDI``, standardised across pitch in every frame."""
    import librosa

    cqt = np.abs(librosa.cqt(np.asarray(mono, dtype=np.float32), sr=ANALYSIS_RATE, hop_length=HOP,
                             fmin=float(librosa.midi_to_hz(LOWEST_MIDI)), n_bins=PITCHES, bins_per_octave=12))
    level = np.log1p(100.0 * cqt / max(float(cqt.max()), 1e-12))
    return (level - level.mean(axis=0)) / np.maximum(level.std(axis=0), 1e-6)


def pitch_onsets(salience: np.ndarray) -> np.ndarray:
    """``[PITCHES, frames]``: how much each pitch rose over the last ``ONSET_FRAMES`` (a note struck there),
    in units of its spread over the clip."""
    rise = np.maximum(salience - np.pad(salience, ((0, 0), (ONSET_FRAMES, 0)), mode="edge")[:, :-ONSET_FRAMES], 0.0)
    return rise / max(float(rise.std()), 1e-6)


def motif_semitones(motif: Motif, mode: str) -> list[int]:
    """Each note's semitones above the motif's tonic: its scale steps in ``mode``, as the composer plays them."""
    scale = SCALES[mode]
    return [12 * (step // len(scale)) + scale[step % len(scale)] for _, _, step in motif]


def motif_score(salience: np.ndarray, onsets: np.ndarray, motif: Motif, mode: str, tempo: float) -> MotifScore:
    """The motif's best placement in ``salience`` (any root, any start frame) against all its placements."""
    frames = salience.shape[1]
    frames_per_beat = 60.0 / tempo * ANALYSIS_RATE / HOP
    semis = motif_semitones(motif, mode)
    low, high = min(semis), max(semis)
    roots = PITCHES - (high - low)
    spans = [(int(round(o * frames_per_beat)), max(1, int(round(length * NOTE_BODY * frames_per_beat))))
             for o, length, _ in motif]
    starts = frames - max(a + n for a, n in spans) + 1
    if roots < 1 or starts < 1:
        return MotifScore(0.0, 0.0)
    total = np.concatenate([np.zeros((PITCHES, 1)), np.cumsum(salience, axis=1)], axis=1)
    struck = _local_max(onsets, ONSET_FRAMES)
    grid = np.zeros((roots, starts))
    for semi, (offset, length) in zip(semis, spans, strict=True):
        band = total[semi - low:semi - low + roots]
        grid += (band[:, offset + length:offset + length + starts] - band[:, offset:offset + starts]) / length
        grid += struck[semi - low:semi - low + roots, offset:offset + starts]
    grid /= len(semis)
    spread = float(grid.std())
    if spread < 1e-9:
        return MotifScore(0.0, 0.0)
    _, start = np.unravel_index(int(np.argmax(grid)), grid.shape)
    return MotifScore(round(float((grid.max() - grid.mean()) / spread), 3), round(start * HOP / ANALYSIS_RATE, 3))


def _local_max(x: np.ndarray, frames: int) -> np.ndarray:
    """Each frame's maximum over itself and the ``frames`` either side (a note's onset may sit a little off the grid)."""
    padded = np.pad(x, ((0, 0), (frames, frames)))
    return np.max([padded[:, k:k + x.shape[1]] for k in range(2 * frames + 1)], axis=0)


def decoy_motifs(motif: Motif, count: int = DECOYS) -> list[Motif]:
    """``count`` motifs with ``motif``'s rhythm and other contours, their steps drawn from the motif
    table's step weights as themes' are (m2m.music.motif.scene_motif): held notes and quick runs
    fit some textures better than others, so a decoy must share the rhythm to be a fair rival."""
    table = load_table("motifs.json")
    steps, weights = zip(*table["steps"], strict=True)
    p = np.asarray(weights, dtype=float) / sum(weights)
    contour = [s for _, _, s in motif]
    out: list[Motif] = []
    draw = 0
    while len(out) < count and draw < 50 * count:
        rng = np.random.default_rng(stable_seed("evaluation", "decoy", contour, draw))
        draw += 1
        degrees = [0]
        for _ in motif[1:]:
            step = int(rng.choice(steps, p=p))
            degrees.append(degrees[-1] + (step if abs(degrees[-1] + step) <= 5 else -step))
        decoy = tuple((o, length, d) for (o, length, _), d in zip(motif, degrees, strict=True))
        if _shape(decoy) != _shape(motif) and decoy not in out:
            out.append(decoy)
    return out


def _shape(motif: Motif) -> tuple[int, ...]:
    """The contour as steps between notes (the same figure from another first note is the same shape)."""
    return tuple(b[2] - a[2] for a, b in zip(motif, motif[1:], strict=False))


# ---------------------------------------------------------------------------------------------
# a run


@dataclass(frozen=True)
class Yardstick:
    """The caption sheet whose themes every run is asked about (None: the book has no m2m plan), and where it is."""

    sheet: CaptionSheet | None
    source: str


def reference_sheet(run: RunInput) -> Yardstick:
    """The book's m2m caption sheet, beside the run (``runs/<book>/m2m/04-captions.json``)."""
    folder = RunFolder(run.folder.path.parent.parent, run.book_id, REFERENCE_CONDITION)
    record = folder.read("captions", CaptionSheet)
    return Yardstick(record.data if record is not None else None, f"the m2m plan ({folder.file('captions')})")


def yardstick_themes(sheet: CaptionSheet | None) -> tuple[dict[int, Theme], dict[str, Theme]]:
    """(page -> the theme the m2m plan plays there, character -> their theme) from the m2m caption sheet."""
    if sheet is None:
        return {}, {}
    by_page = {c.page: c.theme for c in sheet.cues if c.theme is not None}
    return by_page, {t.character: t for t in by_page.values()}


def recurrence(pages: Sequence[int], scenes: Sequence[int], monos: Sequence[np.ndarray], reference: CaptionSheet | None,
               source: str) -> Recurrence:
    """Every page of the run (``pages``, reference ``scenes`` and mono clips at ``ANALYSIS_RATE``, in
    cue order) asked about every character's theme in ``reference`` (the m2m plan, named by ``source``)."""
    by_page, themes = yardstick_themes(reference)
    if not themes:
        return Recurrence(False, f"unavailable: no character has a theme in {source}")
    plans = {c.page: c.plan for c in reference.cues}
    decoys: dict[Motif, list[Motif]] = {}  # by motif, made when a motif is first asked about
    checks = []
    for page, scene, mono in zip(pages, scenes, monos, strict=True):
        plan = plans.get(page)
        if plan is None:
            continue
        salience = pitch_salience(mono)
        onsets = pitch_onsets(salience)
        for character, theme in themes.items():
            themed = by_page.get(page) is not None and by_page[page].character == character
            # a themed page is asked for the motif it plays (a person may have edited it there)
            motif = by_page[page].motif if themed else theme.motif
            if motif not in decoys:
                decoys[motif] = decoy_motifs(motif)
            decoy_best = max(motif_score(salience, onsets, d, plan.mode, plan.tempo).z for d in decoys[motif])
            score = motif_score(salience, onsets, motif, plan.mode, plan.tempo)
            checks.append(ThemeCheck(page, scene, character, themed, score.z > decoy_best, score.z, round(decoy_best, 3),
                                     score.at_seconds))
    return summarise(tuple(checks), themes)


def summarise(checks: tuple[ThemeCheck, ...], themes: dict[str, Theme]) -> Recurrence:
    """Recall, false-alarm rate and each character's recurrence from the page checks."""
    themed = [c for c in checks if c.themed]
    others = [c for c in checks if not c.themed]
    characters = []
    for character, theme in themes.items():
        found = [c for c in themed if c.character == character and c.found]
        scenes = tuple(sorted({c.scene for c in found}))
        characters.append(CharacterRecurrence(character, theme.name, theme.instrument,
                                              sum(c.character == character for c in themed),
                                              tuple(c.page for c in found), scenes, len(scenes) >= 2))
    return Recurrence(True, "", checks, tuple(characters), len(themed), len(others),
                      _rate([c.found for c in themed]), _rate([c.found for c in others]),
                      sum(c.recurs for c in characters))


def _rate(flags: Sequence[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None
