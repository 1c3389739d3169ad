"""Leitmotifs: each recurring character gets a short theme of their own, which sounds on the pages
where they speak most, in every scene's key, mode and tempo, orchestrated by the scene's mood.

A character recurs when they speak in two scenes or more. Their theme is a motif drawn once per
book and character (the same draw every run), with a solo instrument of their own. The motif's
notes never change from scene to scene (that is what makes it recognisable); the scene's mood
chooses who plays it and how (``m2m/data/music/theme_voices.json``): the character's own
instrument where the mood allows it, a soft low legato solo in a sad scene, accented brass or
strings in a tense one. Captions name the voice and manner ("Aki's theme on a french horn,
accented, tense"), so a text-to-music model is asked for the same thing the composer plays. Part of
stage 4: both directors' captions get themes the same way (m2m/directives.py), and
``04-captions.json`` records them, editable like everything else (m2m/pipeline.py ``edit_theme``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from m2m.book import Book
from m2m.cues import Cue, Motif, Theme, canonical_instrument, caption_fingerprint, find_sentence
from m2m.music.arrangement import articulation, voice_table
from m2m.music.base import stable_seed
from m2m.music.motif import scene_motif
from m2m.music.plans import resolve_instrument, resolve_plan
from m2m.scenes import ScenePlan

# Solo voices that carry a theme over any accompaniment, each one character's (in order of first
# appearance, so the book's first recurring character gets the flute).
THEME_INSTRUMENTS: tuple[str, ...] = ("Flute", "Oboe", "Clarinet", "Violin", "French Horn", "Cello", "Trumpet",
                                      "Vibraphone")


def recurring_characters(book: Book, scenes: ScenePlan) -> list[str]:
    """The ids of the characters who speak in two scenes or more, in order of first appearance."""
    seen: dict[str, set[int]] = {}
    for scene in scenes.scenes:
        for index in scene.pages:
            for text in book.pages[index].texts:
                if text.speaker is not None:
                    seen.setdefault(text.speaker, set()).add(scene.index)
    return [character for character, where in seen.items() if len(where) >= 2]


def book_themes(book: Book, scenes: ScenePlan) -> dict[str, Theme]:
    """Character id -> their theme: a motif drawn from the book and the character, and an instrument."""
    themes = {}
    for order, character in enumerate(recurring_characters(book, scenes)):
        rng = np.random.default_rng(stable_seed(book.id, "theme", character))
        themes[character] = Theme(character, book.character_name(character),
                                  THEME_INSTRUMENTS[order % len(THEME_INSTRUMENTS)], scene_motif(rng))
    return themes


def page_speaker(book: Book, page: int, among: Mapping[str, Theme]) -> str | None:
    """Of the characters with a theme, the one with the most lines on the page (first to speak on a tie)."""
    lines = Counter(t.speaker for t in book.pages[page].texts if t.speaker in among)
    if not lines:
        return None
    most = max(lines.values())
    return next(t.speaker for t in book.pages[page].texts if lines.get(t.speaker) == most)


def orchestrate(theme: Theme, mood: str) -> Theme:
    """The theme as a scene of ``mood`` plays it: the same motif; the voice, register and
    articulation of the mood's entry. The character's own instrument stays where the mood lists no
    voices or lists it; otherwise the character's stable pick among the mood's voices. A voice a
    person chose (``edited``) is kept: the mood still shapes its register and articulation."""
    entry = voice_table(mood)
    voices = entry["voices"]
    if theme.keeps_voice:
        voice = theme.voice
    elif not voices or theme.instrument in voices:
        voice = theme.instrument
    else:
        voice = voices[stable_seed("theme voice", theme.character, mood) % len(voices)]
    register = int(entry["register"])
    words = [articulation(entry["articulation"])["words"], "low" if register < 0 else "high" if register > 0 else "",
             entry["words"]]
    return replace(theme, voice=voice, register=register, articulation=entry["articulation"], mood=mood,
                   manner=", ".join(w for w in words if w))


def scene_moods(cues: Sequence[Cue]) -> dict[int, str]:
    """Scene -> its mood family: the one most of its pages' music is composed in (the composer's
    reading of each plan, m2m/music/plans.py), the earliest page's on a tie."""
    families: dict[int, list[str]] = {}
    for cue in sorted(cues, key=lambda c: c.page):
        families.setdefault(cue.scene, []).append(resolve_plan(cue).family)
    return {scene: Counter(found).most_common(1)[0][0] for scene, found in families.items()}


def name_theme(cue: Cue, theme: Theme) -> Cue:
    """The cue with ``theme``, its caption naming it: the sentence of the cue's old theme replaced
    (or the new one appended). A caption as the director wrote it stays the director's (its plan
    still stands); a person's caption stays theirs."""
    caption = cue.caption.strip()
    sentence = theme.sentence[0].upper() + theme.sentence[1:]
    found = None
    if cue.theme is not None:
        # runs planned before themes were orchestrated said "The flute theme of Aki sounds."
        before = (cue.theme.sentence, f"the {cue.theme.instrument.lower()} theme of {cue.theme.name} sounds.")
        found = next((at for old in before if (at := find_sentence(caption, old)) is not None), None)
    if found is not None:
        caption = caption[:found[0]] + sentence + caption[found[1]:]
    else:
        caption = f"{caption} {sentence}"
    planned = caption_fingerprint(caption) if not cue.caption_edited else cue.planned_with
    return replace(cue, caption=caption, planned_with=planned, theme=theme)


def with_themes(book: Book, scenes: ScenePlan, cues: Sequence[Cue], kept: Mapping[int, Theme] | None = None) -> list[Cue]:
    """The cues with their page's leitmotif orchestrated for its scene's mood and named at the end of
    the caption. ``kept``: page -> a theme a person edited, which stands on that page instead."""
    themes = book_themes(book, scenes)
    moods = scene_moods(cues)
    out = []
    for cue in cues:
        speaker = page_speaker(book, cue.page, themes)
        theme = (kept or {}).get(cue.page) or (themes[speaker] if speaker is not None else None)
        out.append(cue if theme is None else name_theme(cue, orchestrate(theme, moods[cue.scene])))
    return out


MAX_MOTIF_NOTES = 16
MAX_MOTIF_STEP = 14  # two octaves of scale steps either way


def parse_steps(text: str) -> tuple[int, ...]:
    """A motif's scale steps as a person writes them ("0 +2 +4 +2 0", commas allowed); a
    ValueError says what is wrong and how to write it."""
    tokens = [t for t in re.split(r"[\s,]+", text.strip()) if t]
    if not tokens:
        raise ValueError("theme motif: empty; write scale steps from the tonic, e.g. 0 +2 +4 +2 0")
    steps = []
    for token in tokens:
        if not re.fullmatch(r"[+-]?\d+", token):
            raise ValueError(f"theme motif: {token!r} is not a scale step; write whole numbers from the tonic, "
                             "e.g. 0 +2 +4 +2 0")
        step = int(token)
        if abs(step) > MAX_MOTIF_STEP:
            raise ValueError(f"theme motif: step {token} is more than {MAX_MOTIF_STEP} scale steps "
                             "(two octaves) from the tonic")
        steps.append(step)
    if not 2 <= len(steps) <= MAX_MOTIF_NOTES:
        raise ValueError(f"theme motif: {len(steps)} notes; a motif has 2 to {MAX_MOTIF_NOTES}")
    return tuple(steps)


def with_steps(motif: Motif, steps: Sequence[int]) -> Motif:
    """The motif with new scale steps: its rhythm kept when the number of notes is the same, else
    the notes spread evenly over the motif's length in beats."""
    if len(steps) == len(motif):
        return tuple((onset, length, step) for (onset, length, _), step in zip(motif, steps, strict=True))
    span = max(onset + length for onset, length, _ in motif) if motif else 4.0
    each = span / len(steps)
    return tuple((round(i * each, 4), round(each, 4), step) for i, step in enumerate(steps))


def edited_theme(theme: Theme, voice: str, steps: str) -> Theme:
    """The theme with a person's voice (a General MIDI name or an alias such as "horn"; "" keeps it)
    and motif ("" keeps it); a ValueError says what is wrong."""
    chosen = bool(voice.strip()) or theme.keeps_voice
    if voice.strip():
        try:
            resolved = resolve_instrument(voice)
        except ValueError as e:
            raise ValueError(f"theme instrument: {str(e).removeprefix('plan.instruments: ')}") from e
        if resolved == "drums":
            raise ValueError("theme instrument: the drum kit has no pitches; name a melody instrument")
        played = canonical_instrument(resolved)
    else:
        played = theme.played_by
    motif = with_steps(theme.motif, parse_steps(steps)) if steps.strip() else theme.motif
    return replace(theme, voice=played, motif=motif, edited=True, voice_chosen=chosen)
