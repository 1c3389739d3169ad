"""From a cue to the plan the composer plays: validate the plan, read the caption, reconcile them.

A person may edit a page's caption and leave its plan alone. The caption is what people read and
change, so wherever an edited caption states something that the plan contradicts (a tempo, a key, an
instrument the plan lacks, a pace or energy word outside the plan's value) the caption wins; where the
two agree the plan's finer values stand. A caption as the director wrote it is not read against its
plan (``Cue.caption_edited``): the plan is the director's structured answer, and a genre word in
the prose ("a dark ambient cue") must not overrule the energy it planned.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace

from m2m.cues import Cue, Plan, without_theme
from m2m.midi import pretty_midi
from m2m.music.base import load_table
from m2m.music.theory import NOTE_NAMES, tonic_pitch_class

TEMPO_RANGE = (30, 240)  # BPM the composer accepts
MAX_CAPTION_CHARS = 2000
DRUMS = "drums"

# Pace and energy words: (lowest, highest) the word allows. Longest phrases are matched first.
_TEMPO_WORDS: dict[str, tuple[int, int]] = {
    "very slow": (40, 62), "slow": (50, 84), "slowly": (50, 84), "largo": (40, 60), "adagio": (55, 76),
    "andante": (72, 100), "moderate": (84, 116), "mid-tempo": (88, 116), "medium tempo": (88, 116),
    "upbeat": (110, 140), "fast": (120, 170), "quick": (120, 170), "rapid": (130, 180), "allegro": (112, 150),
    "very fast": (150, 200), "presto": (160, 200), "brisk": (112, 140),
}
_ENERGY_WORDS: dict[str, tuple[float, float]] = {
    "calm": (0.0, 0.35), "gentle": (0.0, 0.4), "quiet": (0.0, 0.3), "soft": (0.0, 0.4), "peaceful": (0.0, 0.3),
    "serene": (0.0, 0.3), "still": (0.0, 0.25), "ambient": (0.0, 0.35), "relaxed": (0.0, 0.4), "subdued": (0.0, 0.35),
    "intense": (0.7, 1.0), "energetic": (0.65, 1.0), "driving": (0.65, 1.0), "explosive": (0.8, 1.0),
    "frantic": (0.8, 1.0), "powerful": (0.65, 1.0), "aggressive": (0.75, 1.0), "epic": (0.6, 1.0),
    "lively": (0.5, 0.85), "bouncy": (0.45, 0.8), "building": (0.4, 0.8), "tense": (0.35, 0.8),
}
_BPM = re.compile(r"(\d+(?:\.\d+)?)\s*(?:bpm|beats per minute|beats/min)", re.IGNORECASE)
_KEY = re.compile(r"\b([A-G])(?:\s*(#|♯|b|♭|-sharp|\s+sharp|-flat|\s+flat))?\s+(major|minor)\b")
_KEY_OF = re.compile(r"\bkey of ([A-G])(#|♯|b|♭)?\b")
_MODE = re.compile(r"\b(major|minor)[ -](?:key|tonality|mode|scale)\b", re.IGNORECASE)


@dataclass(frozen=True)
class CaptionHints:
    """What a caption says about the music, each field None (or empty) when it says nothing."""

    tempo: int | None = None
    tempo_range: tuple[int, int] | None = None
    key: str | None = None
    mode: str | None = None
    instruments: tuple[str, ...] = ()
    energy_range: tuple[float, float] | None = None
    mood: str | None = None
    warnings: tuple[str, ...] = ()


def gm_names() -> tuple[str, ...]:
    return tuple(name.lower() for name in pretty_midi.INSTRUMENT_MAP)


def resolve_instrument(name: str) -> str:
    """A General MIDI instrument name (lower case) or "drums" for ``name``; a ValueError suggests
    close names for an unknown one."""
    key = " ".join(name.lower().split())
    names = gm_names()
    if key in names or key == DRUMS:
        return key
    aliases = load_table("instruments.json")["aliases"]
    if key in aliases:
        return aliases[key]
    if key.endswith("s") and key[:-1] in aliases:
        return aliases[key[:-1]]
    close = difflib.get_close_matches(key, [*names, *aliases], n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else \
        " (use a General MIDI instrument name such as 'acoustic grand piano', or 'drums')"
    raise ValueError(f"plan.instruments: unknown instrument {name!r}{hint}")


def program_of(instrument: str) -> int:
    """The General MIDI program (0..127) of a resolved instrument name; -1 for the drum kit."""
    return -1 if instrument == DRUMS else gm_names().index(instrument)


def validate_plan(plan: Plan) -> Plan:
    """The plan with instruments resolved to General MIDI names; a ValueError names a bad field."""
    if not isinstance(plan.tempo, int | float) or not TEMPO_RANGE[0] <= plan.tempo <= TEMPO_RANGE[1]:
        raise ValueError(f"plan.tempo: {plan.tempo!r} BPM is outside {TEMPO_RANGE[0]}..{TEMPO_RANGE[1]}")
    tonic_pitch_class(plan.key)
    if plan.mode not in ("major", "minor"):
        raise ValueError(f"plan.mode: {plan.mode!r} is not 'major' or 'minor'")
    if not 0.0 <= float(plan.energy) <= 1.0:
        raise ValueError(f"plan.energy: {plan.energy!r} is outside 0..1")
    seen: list[str] = []
    for name in plan.instruments:
        resolved = resolve_instrument(name)
        if resolved not in seen:
            seen.append(resolved)
    return replace(plan, tempo=int(round(plan.tempo)), instruments=tuple(seen))


def mood_family(text: str) -> str | None:
    """The mood family (moods.json) whose keywords ``text`` mentions most, or None."""
    words = text.lower()
    scores: dict[str, int] = {}
    for family, spec in load_table("moods.json")["families"].items():
        hits = sum(1 for kw in spec["keywords"] if re.search(rf"\b{re.escape(kw)}\b", words))
        if hits:
            scores[family] = hits
    return max(scores, key=lambda f: (scores[f], f)) if scores else None


def _phrases(text: str, table: dict) -> list:
    """Values of the table's phrases found in text, longest phrases first, each span used once."""
    found, taken = [], []
    for phrase in sorted(table, key=len, reverse=True):
        for m in re.finditer(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", text):
            if any(m.start() < e and s < m.end() for s, e in taken):
                continue
            taken.append((m.start(), m.end()))
            found.append((m.start(), table[phrase]))
    return [v for _, v in sorted(found, key=lambda x: x[0])]


def parse_caption(caption: str) -> CaptionHints:
    """Tempo, key, mode, instruments, energy and mood as far as a free-text caption states them."""
    if len(caption) > MAX_CAPTION_CHARS:
        raise ValueError(f"caption: {len(caption)} characters, more than the {MAX_CAPTION_CHARS} allowed")
    warnings: list[str] = []
    lower = caption.lower()
    tempo = None
    if m := _BPM.search(caption):
        value = float(m.group(1))
        if TEMPO_RANGE[0] <= value <= TEMPO_RANGE[1]:
            tempo = int(round(value))
        else:
            warnings.append(f"caption: tempo {m.group(1)} BPM is outside {TEMPO_RANGE[0]}..{TEMPO_RANGE[1]}; ignored")
    ranges = _phrases(lower, _TEMPO_WORDS)
    tempo_range = ranges[0] if ranges else None
    key = mode = None
    if m := _KEY.search(caption):
        acc = (m.group(2) or "").strip().replace("-", "")
        acc = {"sharp": "#", "♯": "#", "flat": "b", "♭": "b"}.get(acc, acc)
        key, mode = m.group(1) + acc, m.group(3)
    elif m := _KEY_OF.search(caption):
        key = m.group(1) + {"♯": "#", "♭": "b"}.get(m.group(2) or "", m.group(2) or "")
    if mode is None and (m := _MODE.search(caption)):
        mode = m.group(1).lower()
    if key is not None:
        key = NOTE_NAMES[tonic_pitch_class(key)] if len(key) > 1 else key
    aliases = load_table("instruments.json")["aliases"]
    table = {name: name for name in gm_names()} | dict(aliases)
    instruments: list[str] = []
    for value in _phrases(lower, table):
        if value not in instruments:
            instruments.append(value)
    energies = _phrases(lower, _ENERGY_WORDS)
    energy_range = None
    if energies:
        energy_range = (min(lo for lo, _ in energies), max(hi for _, hi in energies))
        if energy_range[0] > energy_range[1]:  # contradictory words ("calm but intense"): keep the span
            energy_range = (energy_range[1], energy_range[0])
    return CaptionHints(tempo, tempo_range, key, mode, tuple(instruments), energy_range,
                        mood_family(caption), tuple(warnings))


@dataclass(frozen=True)
class ResolvedPlan:
    """The plan the composer plays, its mood family, and which fields came from the caption."""

    plan: Plan
    family: str
    from_caption: tuple[str, ...]
    warnings: tuple[str, ...]


def resolve_plan(cue: Cue) -> ResolvedPlan:
    """Reconcile a cue's plan with its caption (see the module docstring)."""
    plan = validate_plan(cue.plan)
    # The sentence naming the page's leitmotif speaks for the theme's voice, not the accompaniment's
    # ("... on a french horn, accented, tense" is no instrument or energy for the band).
    hints = parse_caption(without_theme(cue))
    if not cue.caption_edited:
        # As the director wrote them, the plan stands; the caption only names a mood the plan lacks.
        plan_family = mood_family(plan.mood) if plan.mood else None
        return ResolvedPlan(plan, plan_family or hints.mood or _fallback_family(plan), (), ())
    changed: list[str] = []
    # A number of BPM is exact: someone who wrote "120 BPM" over a plan at 119 means 120.
    if hints.tempo is not None and hints.tempo != plan.tempo:
        plan, changed = replace(plan, tempo=hints.tempo), [*changed, "tempo"]
    elif hints.tempo is None and hints.tempo_range and not hints.tempo_range[0] <= plan.tempo <= hints.tempo_range[1]:
        plan, changed = replace(plan, tempo=(hints.tempo_range[0] + hints.tempo_range[1]) // 2), [*changed, "tempo"]
    if hints.key is not None and tonic_pitch_class(hints.key) != tonic_pitch_class(plan.key):
        plan, changed = replace(plan, key=hints.key), [*changed, "key"]
    if hints.mode is not None and hints.mode != plan.mode:
        plan, changed = replace(plan, mode=hints.mode), [*changed, "mode"]
    if hints.instruments and not set(hints.instruments) <= set(plan.instruments):
        plan, changed = replace(plan, instruments=hints.instruments), [*changed, "instruments"]
    if hints.energy_range and not hints.energy_range[0] <= plan.energy <= hints.energy_range[1]:
        plan = replace(plan, energy=round(sum(hints.energy_range) / 2, 3))
        changed.append("energy")
    plan_family = mood_family(plan.mood) if plan.mood else None
    family = hints.mood if hints.mood and hints.mood != plan_family and cue.caption.strip() else None
    if family is not None and plan_family is not None:
        changed.append("mood")
    family = family or plan_family or _fallback_family(plan)
    return ResolvedPlan(plan, family, tuple(changed), hints.warnings)


def _fallback_family(plan: Plan) -> str:
    fallback = load_table("moods.json")["fallback"]
    if plan.energy >= 0.7:
        return fallback["high_energy"]
    if plan.energy <= 0.25:
        return fallback["low_energy"]
    return fallback[plan.mode]
