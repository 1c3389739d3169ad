"""Which instrument plays which role in a page's piece, and which drum style backs it.

The plan names instruments; a texture needs roles (melody, pad, arpeggio, bass, hits, drums). This
module matches the two from the instrument and mood tables, apart from the composer that writes the
notes, because it is a question about the plan (what plays) rather than about the music (what is played).
"""

from __future__ import annotations

from typing import Any

from m2m.cues import Plan
from m2m.music.base import load_table
from m2m.music.plans import DRUMS, program_of


def instrument_family(instrument: str) -> str:
    """The instrument table's family of a General MIDI instrument ("drums" for the drum kit)."""
    if instrument == DRUMS:
        return "drums"
    program = program_of(instrument)
    for first, last, family in load_table("instruments.json")["families"]:
        if first <= program <= last:
            return family
    raise ValueError(f"plan.instruments: no family for program {program}")


def arrange(plan: Plan, family: str) -> tuple[tuple[tuple[str, str], ...], str | None]:
    """Roles for the plan's instruments, filling gaps from the mood's defaults.

    Every planned instrument plays. Roles a texture needs and no planned instrument can cover are
    given to the mood family's default instrument. Returns ((role, instrument), ...) and the drum style.
    """
    mood = load_table("moods.json")["families"][family]
    caps = load_table("instruments.json")["capabilities"]
    energy = plan.energy
    pitched = [i for i in plan.instruments if i != DRUMS]
    roles: dict[str, str] = {}
    layers: list[tuple[str, str]] = []
    # the least flexible instruments choose first, so a piano is left free to cover what remains
    for inst in sorted(pitched, key=lambda i: len(caps[instrument_family(i)])):
        options = caps[instrument_family(inst)]
        free = next((r for r in options if r not in roles), None)
        if free is not None:
            roles[free] = inst
        else:
            layer = {"melody": "melody2", "pad": "pad2", "arp": "comp", "bass": "bass", "hits": "hits"}[options[0]]
            if layer not in roles and layer not in dict(layers):
                layers.append((layer, inst))
            else:
                layers.append(("pad2" if "pad2" not in dict(layers) else "melody2", inst))
    needed = ["melody", "bass"] + (["pad"] if energy < 0.85 or "pad" in roles else []) + \
        (["arp"] if energy >= 0.3 else [])
    for role in needed:
        if role in roles:
            continue
        # a planned instrument that can also play this role takes it (a solo piano plays all parts)
        cover = next((i for i in pitched if role in caps[instrument_family(i)] and len(pitched) <= 2), None)
        if cover is not None and not (role == "pad" and instrument_family(cover) in ("keys", "pluck")):
            roles[role] = cover
        elif role != "arp" or energy >= 0.45 or not pitched:
            roles[role] = mood["defaults"][role]
    drum_style = None
    if DRUMS in plan.instruments or energy >= mood["drum_threshold"]:
        drum_style = _drum_style(family, energy)
    ordered = [(r, roles[r]) for r in ("melody", "pad", "arp", "bass", "hits") if r in roles]
    result = ordered + [(r, i) for r, i in layers if (r, i) not in ordered]
    if drum_style is not None:
        result.append(("drums", DRUMS))
    return tuple(result), drum_style


def _drum_style(family: str, energy: float) -> str:
    table = load_table("drums.json")
    mood_style = load_table("moods.json")["families"][family]["drums"]
    if mood_style in ("tension", "epic") and energy >= 0.45:
        return mood_style
    return next(style for limit, style in table["by_energy"] if energy < limit)


# ---------------------------------------------------------------------------------------------
# A leitmotif's orchestration in a scene of each mood (theme_voices.json; m2m/leitmotifs.py chooses)


def voice_table(mood: str) -> dict[str, Any]:
    """The theme table's entry for a mood family (its default for a family it does not list)."""
    table = load_table("theme_voices.json")
    return table["moods"].get(mood, table["default"])


def articulation(name: str) -> dict[str, Any]:
    """An articulation of the theme table: ``length`` (share of each note that sounds), ``accent``
    (velocity on notes starting a beat) and ``words``; a ValueError names the valid ones."""
    table = load_table("theme_voices.json")["articulations"]
    if name not in table:
        raise ValueError(f"theme.articulation: {name!r} is not one of {', '.join(table)}")
    return table[name]
