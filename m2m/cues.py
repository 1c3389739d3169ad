"""The cue: what one page's music should be, as words and as fields (stage 4's output, stage 5's input).

A :class:`Cue` holds a page's caption (free text for a text-to-music model) and its :class:`Plan`
(the same intent as fields for the symbolic composer); :class:`CaptionSheet` is a book's cues
(``04-captions.json``). They live apart from the stage that writes them so the music engines can
read cues without importing the directors and their LLM client.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

TEMPO_RANGE = (40, 220)
"""Beats per minute a plan may ask for."""

KEYS: tuple[str, ...] = ("C", "C#", "Db", "D", "D#", "Eb", "E", "F", "F#", "Gb", "G", "G#", "Ab", "A", "A#",
                         "Bb", "B")
"""Tonic names a plan may use."""


def _gm_instruments() -> tuple[str, ...]:
    from m2m.midi import pretty_midi

    return tuple(pretty_midi.constants.INSTRUMENT_MAP)


GM_INSTRUMENTS: tuple[str, ...] = _gm_instruments()
"""The 128 General MIDI program names, as pretty_midi spells them ("Acoustic Grand Piano", ...)."""

DRUM_KIT = "Drums"
"""The General MIDI drum kit (channel 10, no program), which a plan may name beside the 128 programs."""

PLAN_INSTRUMENTS: tuple[str, ...] = (*GM_INSTRUMENTS, DRUM_KIT)
"""What a plan's instruments may be: a General MIDI program's name, or the drum kit."""

_GM_BY_NORMAL = {"".join(ch for ch in name.lower() if ch.isalnum()): name for name in PLAN_INSTRUMENTS}


def canonical_instrument(name: str) -> str:
    """The General MIDI spelling of an instrument name, or ``DRUM_KIT`` (case, spaces and punctuation ignored)."""
    normal = "".join(ch for ch in name.lower() if ch.isalnum())
    try:
        return _GM_BY_NORMAL[normal]
    except KeyError as e:
        raise ValueError(f"instruments: {name!r} is not a General MIDI instrument name "
                         "(e.g. 'Acoustic Grand Piano', 'String Ensemble 1'; 'Drums' for the drum kit)") from e


@dataclass(frozen=True)
class Plan:
    """The caption's intent as fields, for engines that compose symbolically.

    tempo in BPM; key a tonic name ("C", "F#", "Bb"); energy from 0 (still) to 1 (driving);
    instruments are General MIDI instrument names ("Acoustic Grand Piano", "String Ensemble 1", ...),
    and "Drums" for the drum kit.
    """

    tempo: int
    key: str
    mode: Literal["major", "minor"]
    instruments: tuple[str, ...]
    energy: float
    mood: str = ""


Motif = tuple[tuple[float, float, int], ...]
"""(onset beats, length beats, scale step from the tonic) per note."""


@dataclass(frozen=True)
class Theme:
    """A recurring character's leitmotif, sounding on a page where they speak most: ``motif`` in
    scale steps from the page's tonic, so it takes each scene's key, mode and tempo and stays
    recognisably the character's.

    ``instrument`` is the character's own (a General MIDI name); ``voice`` is who plays it on this
    page, chosen by the scene's mood (``m2m/data/music/theme_voices.json``, m2m/leitmotifs.py) or
    by a person; "" (files from before) means the instrument. ``register``: semitones the theme's
    middle moves from its voice's usual range; ``articulation``: a name from that table;
    ``mood``: the mood family it was orchestrated for; ``manner``: how the caption says it
    ("accented, low, tense"). ``edited``: a person set this page's voice or motif, which is kept
    when the page's caption is written again (a new directive); ``voice_chosen``: the voice was
    theirs, kept over the mood's choice (a motif-only edit leaves the voice to the scene's mood;
    None, files from before: an edit kept both)."""

    character: str  # the character's id in the book
    name: str
    instrument: str
    motif: Motif
    voice: str = ""
    register: int = 0
    articulation: str = "plain"
    mood: str = ""
    manner: str = ""
    edited: bool = False
    voice_chosen: bool | None = None

    @property
    def keeps_voice(self) -> bool:
        """A person chose this page's voice, so no scene's mood replaces it."""
        return self.edited and bool(self.voice) and self.voice_chosen is not False

    @property
    def played_by(self) -> str:
        """The General MIDI instrument that plays the theme on this page."""
        return self.voice or self.instrument

    @property
    def phrase(self) -> str:
        """How a caption names it, for a text-to-music model: "Aki's theme on a french horn, accented, tense"."""
        voice = self.played_by.lower()
        article = "an" if voice[:1] in "aeiou" else "a"
        manner = f", {self.manner}" if self.manner else ""
        return f"{self.name}'s theme on {article} {voice}{manner}"

    @property
    def sentence(self) -> str:
        """The sentence a caption carries for it."""
        return f"{self.phrase}."

    @property
    def steps(self) -> str:
        """The motif's scale steps as a person writes them: "0 +2 +4 +2 0"."""
        return " ".join(f"{step:+d}" if step else "0" for _, _, step in self.motif)


@dataclass(frozen=True)
class Cue:
    """One page's music: a free-text caption for a text-to-music model, and the same intent as a plan.

    ``planned_with`` is a hash of the caption the director wrote the plan with. A person who edits
    the caption (in the app or in the file) leaves it behind, which is how the composer knows the
    caption's words now speak for the page where they contradict the plan; while the two are as the
    director wrote them, the plan's structured values stand. None (files from before): the caption
    is read as if edited. ``theme``: the leitmotif that sounds on this page (m2m/leitmotifs.py).
    """

    page: int
    scene: int
    caption: str
    plan: Plan
    planned_with: str | None = None
    theme: Theme | None = None

    @classmethod
    def planned(cls, page: int, scene: int, caption: str, plan: Plan) -> Cue:
        """A cue as a director wrote it: the caption and plan agree by construction."""
        return cls(page, scene, caption, plan, caption_fingerprint(caption))

    @property
    def caption_edited(self) -> bool:
        return self.planned_with is None or self.planned_with != caption_fingerprint(self.caption)


def caption_fingerprint(caption: str) -> str:
    """A short hash of a caption's text (whitespace at the ends ignored)."""
    return hashlib.sha256(caption.strip().encode("utf-8")).hexdigest()[:16]


def find_sentence(caption: str, sentence: str) -> tuple[int, int] | None:
    """Where ``sentence`` stands in ``caption`` (its first letter in either case), or None."""
    match = re.search(re.escape(sentence[1:]), caption)
    if match is None or match.start() == 0 or caption[match.start() - 1].lower() != sentence[0].lower():
        return None
    return match.start() - 1, match.end()


def without_theme(cue: Cue) -> str:
    """The cue's caption without the sentence naming its theme (what the rest of it asks for)."""
    if cue.theme is None or (at := find_sentence(cue.caption, cue.theme.sentence)) is None:
        return cue.caption
    return (cue.caption[:at[0]] + cue.caption[at[1]:]).strip()


@dataclass(frozen=True)
class CaptionSheet:
    """``04-captions.json``: one cue per page, in page order."""

    cues: tuple[Cue, ...]

    def cue(self, page: int) -> Cue:
        for cue in self.cues:
            if cue.page == page:
                return cue
        raise ValueError(f"page: no caption for page {page}")


def check_plan(plan: Plan, where: str = "plan") -> Plan:
    """The plan with instrument names made canonical; a ValueError names the first bad field."""
    low, high = TEMPO_RANGE
    if not low <= plan.tempo <= high:
        raise ValueError(f"{where}.tempo: {plan.tempo} BPM is outside {low}-{high}")
    if plan.key not in KEYS:
        raise ValueError(f"{where}.key: {plan.key!r} is not one of {', '.join(KEYS)}")
    if plan.mode not in ("major", "minor"):
        raise ValueError(f"{where}.mode: {plan.mode!r} is not 'major' or 'minor'")
    if not 0.0 <= plan.energy <= 1.0:
        raise ValueError(f"{where}.energy: {plan.energy} is outside 0-1")
    if not plan.instruments:
        raise ValueError(f"{where}.instruments: empty; name at least one General MIDI instrument")
    instruments = tuple(dict.fromkeys(canonical_instrument(name) for name in plan.instruments))
    return Plan(plan.tempo, plan.key, plan.mode, instruments, float(plan.energy), plan.mood)


# ---------------------------------------------------------------------------------------------
# How the music moves at a scene change (stage 4b, m2m/transitions.py)

TransitionKind = Literal["continue", "crossfade", "stinger", "silence", "cut"]
KINDS: tuple[str, ...] = get_args(TransitionKind)
# A cut still fades over this long: an instant switch between two waveforms clicks.
CUT_SECONDS = 0.05
# The longest transition a director may ask for (the soundtrack also keeps it within a page).
MAX_SECONDS = 12.0
# A stinger (the old scene's closing cadence, m2m/stingers.py) is a short clip of its own: long enough
# for a chord to move to the tonic and ring, short enough not to hold the new scene back.
STINGER_SECONDS_RANGE = (1.0, 6.0)


@dataclass(frozen=True)
class Transition:
    """How the music moves into ``scene``'s first page. ``seconds``: the crossfade's length
    (continue, crossfade), the closing cadence's (stinger), the silence's (silence), or 0 (cut).
    ``why``: the director's reason."""

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


def enter_json(kind: str, fade: float, silence: float, stinger_seconds: float) -> dict[str, Any] | None:
    """How a player moves into a page (reader.js and study.js share the move's fades, crossfade.js
    ``fadesOf``): the transition chosen into a scene's first page as {kind, fade, silence} in
    seconds, a stinger adding its ``seconds``; None within a scene (the player's own crossfade).
    The caller adds where the stinger's clip is, in its own terms (a URL, a study's token)."""
    if not kind:
        return None
    entry: dict[str, Any] = {"kind": kind, "fade": round(float(fade), 3), "silence": round(float(silence), 3)}
    if kind == "stinger":
        entry["seconds"] = round(float(stinger_seconds), 3)
    return entry


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
    low, high = STINGER_SECONDS_RANGE
    if transition.kind == "stinger" and not low <= transition.seconds <= high:
        raise ValueError(f"transition into scene {scene}: a stinger of {transition.seconds} s is outside "
                         f"{low:g}..{high:g} s")
    if not transition.why.strip():
        raise ValueError(f"transition into scene {scene}: the reason is empty")
    return transition
