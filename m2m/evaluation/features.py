"""What each page's clip sounds like, as numbers: timbre (MFCC statistics), harmony (a chroma
profile), tempo and key; and from those, whether the music follows the scenes and the plan.

Everything is measured on the clip's mono mix at ``ANALYSIS_RATE`` so clips made at different rates
compare on the same footing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from m2m.cues import Plan
from m2m.music.base import resample
from m2m.music.theory import estimate_key, tonic_pitch_class

ANALYSIS_RATE = 22050
TEMPO_HOP = 128
TEMPO_TOLERANCE = 0.04  # MIREX's tempo accuracy: within 4% of the plan counts as a match
PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


@dataclass(frozen=True, eq=False)
class ClipFeatures:
    """One clip's description: MFCC 1-19 means and deviations (timbre; c0, the level, is left out
    because every clip is loudness-matched anyway), a 12-bin chroma profile (C first), the tempo."""

    timbre: np.ndarray
    chroma: np.ndarray
    tempo: float


def analysis_signal(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """``[channels, samples]`` as mono float32 at ``ANALYSIS_RATE``."""
    return resample(np.asarray(samples, dtype=np.float32).mean(axis=0), sample_rate, ANALYSIS_RATE)


def clip_features(mono: np.ndarray) -> ClipFeatures:
    """The features of a mono clip at ``ANALYSIS_RATE``."""
    import librosa

    mel = librosa.feature.melspectrogram(y=mono, sr=ANALYSIS_RATE, n_fft=2048, hop_length=512, n_mels=64)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel, ref=1.0, amin=1e-10), n_mfcc=20)[1:]
    # five octaves up from A1 (55 Hz): the bass names the key; above them little but overtones
    chroma = librosa.feature.chroma_cqt(y=mono, sr=ANALYSIS_RATE, hop_length=512, fmin=55.0, n_octaves=5).mean(axis=1)
    # a fine hop: the tempo comes from an autocorrelation lag in onset frames, and at 512 samples
    # neighbouring lags near 120 BPM lie 5% apart, more than the 4% a match allows
    onsets = librosa.onset.onset_strength(y=mono, sr=ANALYSIS_RATE, hop_length=TEMPO_HOP)
    tempo = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=onsets, sr=ANALYSIS_RATE,
                                                      hop_length=TEMPO_HOP))[0])
    return ClipFeatures(np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]), chroma / max(chroma.sum(), 1e-12),
                        tempo)


# ---------------------------------------------------------------------------------------------
# scenes: consistency within, contrast between


@dataclass(frozen=True)
class SceneContrast:
    """Mean distance between clips of the same scene (consistency: lower is steadier) and of
    different scenes (contrast), for timbre (Euclidean, MFCC units) and harmony (1 - the correlation
    of the chroma profiles), with contrast / consistency for each. ``ratio`` is the geometric mean
    of the two ratios (each is free of its measure's unit, so neither outweighs the other); above 1,
    the music changes more between scenes than within them. None, with ``note``, where undefined."""

    within_pairs: int
    between_pairs: int
    timbre_within: float | None
    timbre_between: float | None
    timbre_ratio: float | None
    harmony_within: float | None
    harmony_between: float | None
    harmony_ratio: float | None
    ratio: float | None
    note: str = ""


def timbre_distance(a: ClipFeatures, b: ClipFeatures) -> float:
    return float(np.linalg.norm(a.timbre - b.timbre))


def harmony_distance(a: ClipFeatures, b: ClipFeatures) -> float:
    if np.ptp(a.chroma) < 1e-12 or np.ptp(b.chroma) < 1e-12:
        return 0.0 if np.ptp(a.chroma) == np.ptp(b.chroma) else 1.0  # a flat profile correlates with nothing
    return float(1.0 - np.corrcoef(a.chroma, b.chroma)[0, 1])


def _ratio(between: float, within: float) -> float:
    # identical music everywhere (0 / 0) follows no scene: the ratio of no difference, 1
    if within < 1e-9:
        return 1.0 if between < 1e-9 else float("inf")
    return between / within


def scene_contrast(features: Sequence[ClipFeatures], scenes: Sequence[int]) -> SceneContrast:
    """Consistency within and contrast between the reference ``scenes`` (one per clip)."""
    pairs = list(combinations(range(len(features)), 2))
    within = [(i, j) for i, j in pairs if scenes[i] == scenes[j]]
    between = [(i, j) for i, j in pairs if scenes[i] != scenes[j]]
    if not within or not between:
        why = "no two pages share a scene" if not within else "the book is one scene"
        return SceneContrast(len(within), len(between), None, None, None, None, None, None, None, f"undefined: {why}")

    def mean(distance, chosen) -> float:
        return float(np.mean([distance(features[i], features[j]) for i, j in chosen]))

    tw, tb = mean(timbre_distance, within), mean(timbre_distance, between)
    hw, hb = mean(harmony_distance, within), mean(harmony_distance, between)
    tr, hr = _ratio(tb, tw), _ratio(hb, hw)
    ratio = float(np.sqrt(tr * hr)) if np.isfinite(tr * hr) else None
    note = "" if ratio is not None else "undefined: the pages of each scene are identical but the scenes differ"
    return SceneContrast(len(within), len(between), round(tw, 4), round(tb, 4), _finite(tr), round(hw, 4),
                         round(hb, 4), _finite(hr), None if ratio is None else round(ratio, 4), note)


def _finite(x: float) -> float | None:
    return round(x, 4) if np.isfinite(x) else None


# ---------------------------------------------------------------------------------------------
# the plan: tempo, key and mode


@dataclass(frozen=True)
class PlanCheck:
    """One page: the plan's tempo, key and mode against what its audio shows.

    ``tempo_error_bpm`` is to the nearest of the found tempo, its double and its half (a beat
    tracker often locks onto half or double the pulse); ``octave`` says that was a double or half.
    """

    page: int
    plan_tempo: int
    found_tempo: float
    tempo_error_bpm: float
    tempo_match: bool
    octave: bool
    plan_key: str
    found_key: str
    key_match: bool
    mode_match: bool


@dataclass(frozen=True)
class PlanAdherence:
    """A run's pages against their plan: the fraction whose tempo matches within 4% as found
    (``tempo_exact``) and allowing an octave error (``tempo_match``), the median tempo error, and
    the fractions whose key and mode (both) and mode alone match. ``available`` False with ``note``
    when the run has no plan to hold it to."""

    available: bool
    note: str
    pages: tuple[PlanCheck, ...] = ()
    tempo_exact: float | None = None
    tempo_match: float | None = None
    octave_errors: int = 0
    median_tempo_error_bpm: float | None = None
    key_match: float | None = None
    mode_match: float | None = None


def found_key(chroma: np.ndarray) -> tuple[int, str]:
    """Krumhansl-Schmuckler key finding (m2m.music.theory.estimate_key) on a chroma profile."""
    tonic, mode, _ = estimate_key(tuple(float(x) for x in chroma))
    return tonic, mode


def check_plan(page: int, plan: Plan, features: ClipFeatures) -> PlanCheck:
    tempo = features.tempo
    errors = {k: abs(tempo * k - plan.tempo) for k in (1.0, 2.0, 0.5)}
    factor = min(errors, key=lambda k: errors[k])
    tonic, mode = found_key(features.chroma)
    key_ok = tonic == tonic_pitch_class(plan.key) and mode == plan.mode
    return PlanCheck(page, plan.tempo, round(tempo, 2), round(errors[factor], 2),
                     errors[factor] <= TEMPO_TOLERANCE * plan.tempo, factor != 1.0,
                     f"{plan.key} {plan.mode}", f"{PITCH_NAMES[tonic]} {mode}", key_ok, mode == plan.mode)


def plan_adherence(plans: Sequence[tuple[int, Plan | None]], features: Sequence[ClipFeatures]) -> PlanAdherence:
    """Each page's (page, plan) against its clip's features; pages without a plan are left out."""
    checks = tuple(check_plan(page, plan, f) for (page, plan), f in zip(plans, features, strict=True)
                   if plan is not None)
    if not checks:
        return PlanAdherence(False, "unavailable: the run has no caption sheet with a plan")
    exact = [abs(c.found_tempo - c.plan_tempo) <= TEMPO_TOLERANCE * c.plan_tempo for c in checks]
    return PlanAdherence(True, "", checks, _fraction(exact), _fraction([c.tempo_match for c in checks]),
                         sum(c.octave and c.tempo_match for c in checks),
                         round(float(np.median([c.tempo_error_bpm for c in checks])), 2),
                         _fraction([c.key_match for c in checks]), _fraction([c.mode_match for c in checks]))


def _fraction(flags: Sequence[bool]) -> float:
    return round(sum(flags) / len(flags), 4)
