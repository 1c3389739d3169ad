"""A page's piece, written as MIDI from its plan: the symbolic half of the ``composer`` engine.

From a page's plan it writes a loopable piece of whole bars: a chord progression of the mood, voiced
with smooth voice leading; a texture that follows the energy (held pads and sparse melody when calm,
arpeggios and a walking bass in between, driving bass and drums when energetic); and a melody built
from the scene's motif (``m2m.music.motif``), which every page of the scene states and then varies,
so music is consistent within a scene and changes at its boundaries. Scene choices are seeded from
(book seed, scene) and page variations from (book seed, scene, page), so the same inputs give the
same music. Nothing here sounds: ``m2m.music.composer`` renders the MIDI through FluidSynth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from m2m.cues import Cue, Theme
from m2m.midi import pretty_midi
from m2m.music.arrangement import arrange, articulation, instrument_family, voice_table
from m2m.music.base import load_table, stable_seed
from m2m.music.motif import VARIATIONS, Motif, scene_motif, vary_motif
from m2m.music.plans import ResolvedPlan, program_of, resolve_instrument, resolve_plan
from m2m.music.theory import Chord, nearest, parse_numeral, scale_pitches, tonic_pitch_class, voice_chord

BEATS_PER_BAR = 4
# Mixer settings per role: (volume CC7, pan CC10, reverb send CC91, chorus send CC93)
_MIX: dict[str, tuple[int, int, int, int]] = {
    "theme": (100, 76, 58, 0), "melody": (100, 64, 62, 0), "melody2": (80, 84, 62, 0), "pad": (84, 64, 80, 50), "pad2": (70, 52, 80, 50),
    "arp": (84, 46, 55, 10), "comp": (72, 86, 50, 10), "bass": (100, 64, 25, 0), "drums": (96, 64, 40, 0),
    "hits": (94, 64, 60, 0),
}
_PATTERNS = {"up": (0, 1, 2, 3), "updown": (0, 1, 2, 3, 2, 1), "alberti": (0, 2, 1, 2), "broken": (0, 2, 1, 3),
             "wave": (0, 1, 2, 3, 3, 2, 1, 0)}


@dataclass(frozen=True)
class Note:
    """A note in beats from the start of the piece."""

    pitch: int
    start: float
    length: float
    velocity: int


@dataclass(frozen=True)
class Piece:
    """A composed page: the MIDI, its length in bars and seconds, and how it was arranged."""

    midi: pretty_midi.PrettyMIDI
    bars: int
    seconds: float
    tempo: int
    progression: tuple[str, ...]
    roles: tuple[tuple[str, str], ...]  # (role, General MIDI instrument)
    motif: Motif
    family: str
    drum_style: str | None


def _bars_for(seconds: float, tempo: int, cycle_bars: int) -> int:
    """Whole bars near ``seconds``: whole progression cycles when that stays within 50 % of it."""
    bar_seconds = BEATS_PER_BAR * 60.0 / tempo
    target = seconds / bar_seconds
    cycles = max(1, round(target / cycle_bars))
    bars = cycles * cycle_bars
    if bars > 1.5 * target or bars < 0.67 * target:
        bars = max(1, round(target))
    return bars


class _Composer:
    """Writes one page. Holds only that page's working state."""

    def __init__(self, resolved: ResolvedPlan, seconds: float, seed: int, scene: int, page: int,
                 theme: Theme | None = None) -> None:
        self.plan = plan = resolved.plan
        self.family = resolved.family
        self.energy = float(plan.energy)
        self.tonic = tonic_pitch_class(plan.key)
        self.mode = plan.mode
        self.scene_rng = np.random.default_rng(stable_seed(seed, "scene", scene))
        self.page_rng = np.random.default_rng(stable_seed(seed, "page", scene, page))
        mood = load_table("moods.json")["families"][self.family]
        progressions = mood["progressions"][self.mode]
        self.numerals = tuple(progressions[int(self.scene_rng.integers(len(progressions)))])
        self.motif = scene_motif(self.scene_rng)
        self.arp_shape = list(_PATTERNS)[int(self.scene_rng.integers(len(_PATTERNS)))]
        self.anchor_offset = int(self.scene_rng.integers(-2, 3))
        self.chord_beats = 4 if plan.tempo < 108 else 8
        cycle_bars = len(self.numerals) * self.chord_beats // BEATS_PER_BAR
        self.bars = _bars_for(seconds, plan.tempo, cycle_bars)
        self.total_beats = self.bars * BEATS_PER_BAR
        self.chords = [parse_numeral(n, self.tonic, self.mode) for n in self.numerals]
        self.roles, self.drum_style = arrange(plan, self.family)
        self.theme = theme
        # a leitmotif sounds at the page's start and every eight bars; the melody rests under it
        self.theme_bars = set(range(0, self.bars, 8)) if theme is not None else set()

    def chord_at(self, beat: float) -> Chord:
        return self.chords[int(beat // self.chord_beats) % len(self.chords)]

    def spans(self) -> list[tuple[float, float, Chord]]:
        """(start beat, length beats, chord) for each chord of the piece."""
        out, beat = [], 0.0
        while beat < self.total_beats - 1e-9:
            length = min(self.chord_beats, self.total_beats - beat)
            out.append((beat, float(length), self.chord_at(beat)))
            beat += length
        return out

    def velocity(self, base: float, spread: float = 6.0) -> int:
        return int(np.clip(round(base + self.page_rng.normal(0, spread)), 20, 127))

    # -- parts ------------------------------------------------------------------------------

    def pad(self, low: int = 50, high: int = 74, pulse: bool = False) -> list[Note]:
        notes: list[Note] = []
        previous: tuple[int, ...] | None = None
        held: dict[int, tuple[float, int]] = {}  # pitch -> (start, velocity) of the note still sounding
        base = 44 + 26 * self.energy
        for start, length, chord in self.spans():
            voicing = voice_chord(chord, previous, low, high, 4)
            # common tones are held through the chord change instead of re-struck (legato pad)
            for pitch in list(held):
                if pitch not in voicing or pulse:
                    s, v = held.pop(pitch)
                    notes.append(Note(pitch, s, start - s, v))
            for pitch in voicing:
                if pitch not in held:
                    held[pitch] = (start, self.velocity(base, 4))
            if pulse and length > BEATS_PER_BAR:  # re-strike each bar to drive energetic scenes
                for pitch in voicing:
                    s, v = held.pop(pitch)
                    notes.append(Note(pitch, s, BEATS_PER_BAR, v))
                    held[pitch] = (start + BEATS_PER_BAR, self.velocity(base - 6, 4))
            previous = voicing
        for pitch, (s, v) in held.items():
            notes.append(Note(pitch, s, self.total_beats - s, v))
        return notes

    def arp(self, low: int = 55, high: int = 81) -> list[Note]:
        if self.energy < 0.3:
            step = 1.0 if self.plan.tempo < 90 else 2.0
        elif self.energy < 0.62:
            step = 0.5
        else:
            step = 0.25 if self.plan.tempo <= 112 else 0.5
        shape = _PATTERNS[self.arp_shape]
        notes, previous = [], None
        base = 52 + 30 * self.energy
        for start, length, chord in self.spans():
            voicing = voice_chord(chord, previous, low, high, 4)
            previous = voicing
            count = int(round(length / step))
            for k in range(count):
                pitch = voicing[shape[k % len(shape)]]
                accent = 10 if (k * step) % 1.0 == 0 else 0
                # under a leitmotif the arpeggio rests: the theme is heard through the space it
                # leaves, not by being louder than the page around it (composer.balanced_theme)
                if int((start + k * step) // BEATS_PER_BAR) in self.theme_bars:
                    continue
                notes.append(Note(pitch, start + k * step, min(step * 1.8, length - k * step),
                                  self.velocity(base + accent - 6)))
        return notes

    def comp(self, low: int = 52, high: int = 72) -> list[Note]:
        """Short block chords on the off-beats (2 and 4): a second keyboard or guitar."""
        notes, previous = [], None
        base = 48 + 28 * self.energy
        for start, length, chord in self.spans():
            voicing = voice_chord(chord, previous, low, high, 3)
            previous = voicing
            for beat in np.arange(1.0, length, 2.0):
                for pitch in voicing:
                    notes.append(Note(pitch, start + float(beat), 0.45, self.velocity(base, 5)))
        return notes

    def bass(self, low: int = 33, high: int = 52) -> list[Note]:
        notes: list[Note] = []
        spans = self.spans()
        previous_root = 40
        base = 66 + 28 * self.energy
        for index, (start, length, chord) in enumerate(spans):
            roots = [p for p in range(low, high + 1) if p % 12 == chord.root]
            root = nearest(roots, previous_root)
            previous_root = root
            fifth = root + 7 if root + 7 <= high + 2 else root - 5
            next_chord = spans[(index + 1) % len(spans)][2]
            if self.energy < 0.3:
                notes.append(Note(root, start, length, self.velocity(base - 6, 4)))
            elif self.energy < 0.62:
                for beat in np.arange(0.0, length, BEATS_PER_BAR):
                    notes.append(Note(root, start + beat, 2.5, self.velocity(base, 5)))
                    notes.append(Note(fifth, start + beat + 2.5, 1.0, self.velocity(base - 10, 5)))
                    if beat + BEATS_PER_BAR < length:
                        continue
                    # the last beat walks toward the next chord's root
                    target = nearest([p for p in range(low, high + 1) if p % 12 == next_chord.root], root)
                    approach = target - 1 if target > root else target + 1
                    notes[-1] = Note(fifth, start + beat + 2.5, 0.5, notes[-1].velocity)
                    notes.append(Note(approach, start + beat + 3.0, 0.9, self.velocity(base - 12, 5)))
            else:
                eighths = int(length * 2)
                for k in range(eighths):
                    pitch = root + 12 if k % 4 == 3 and root + 12 <= high + 12 else root
                    if k == eighths - 1:
                        target = nearest([p for p in range(low, high + 1) if p % 12 == next_chord.root], root)
                        pitch = target - 1 if target > root else (target + 2 if target < root else root + 7)
                    accent = 10 if k % 2 == 0 else 0
                    notes.append(Note(pitch, start + k * 0.5, 0.42, self.velocity(base - 8 + accent, 5)))
        return notes

    def melody(self, low: int, high: int) -> list[Note]:
        scale = scale_pitches(self.tonic, self.mode, low, high)
        centre = (low + high) / 2 + 2 * self.anchor_offset
        notes: list[Note] = []
        last = nearest(scale, centre)
        phrases = max(1, int(np.ceil(self.bars / 4)))
        sparse = self.energy < 0.3
        base = 60 + 34 * self.energy
        for phrase in range(phrases):
            vary = VARIATIONS[int(self.page_rng.integers(len(VARIATIONS)))]
            final = phrase == phrases - 1
            for bar_in in range(4):
                bar = phrase * 4 + bar_in
                if bar >= self.bars:
                    break
                start = bar * BEATS_PER_BAR
                chord = self.chord_at(start)
                tones = [p for p in scale if p % 12 in chord.pitch_classes] or scale
                if bar in self.theme_bars:
                    continue
                if bar_in == 0:
                    motif = list(self.motif)
                elif bar_in == 1:
                    motif = list(self.motif) if not sparse else None
                elif bar_in == 2:
                    motif = vary_motif(self.motif, vary)
                else:
                    motif = None
                arch = 6 * np.sin(np.pi * (bar_in + 0.5) / 4)
                if motif is None:  # a cadence: the motif's head, then a held chord tone
                    head = [] if sparse else list(self.motif[:2])
                    pitches = self._realize(head, scale, tones, last, chord) if head else []
                    for (onset, length, _), pitch in zip(head, pitches, strict=True):
                        notes.append(Note(pitch, start + onset, length, self.velocity(base + arch - 4)))
                    hold_from = (head[-1][0] + head[-1][1]) if head else 0.0
                    landing = [p for p in scale if p % 12 == (chord.root if final else chord.pitch_classes[0])]
                    target = nearest(landing or tones, pitches[-1] if pitches else last)
                    notes.append(Note(target, start + hold_from, BEATS_PER_BAR - hold_from - 0.25,
                                      self.velocity(base + arch - 8)))
                    last = target
                    continue
                pitches = self._realize(motif, scale, tones, last, chord)
                for (onset, length, _), pitch in zip(motif, pitches, strict=True):
                    accent = 6 if onset == 0 else 0
                    notes.append(Note(pitch, start + onset, length * 0.95, self.velocity(base + arch + accent)))
                last = pitches[-1]
        return notes

    def _realize(self, motif, scale: list[int], tones: list[int], last: int, chord: Chord) -> list[int]:
        """The motif's scale steps from a chord tone near ``last``; strong beats land on chord tones."""
        first = nearest(tones, last)
        index = scale.index(first)
        out = []
        for onset, length, degree in motif:
            i = int(np.clip(index + degree, 0, len(scale) - 1))
            pitch = scale[i]
            strong = onset in (0.0, 2.0) or length >= 1.5
            if strong and pitch % 12 not in chord.pitch_classes:
                up = scale[min(i + 1, len(scale) - 1)]
                down = scale[max(i - 1, 0)]
                pitch = up if up % 12 in chord.pitch_classes else (down if down % 12 in chord.pitch_classes else pitch)
            out.append(pitch)
        return out

    def theme_notes(self, low: int, high: int) -> list[Note]:
        """The leitmotif in this page's key and mode: its scale steps counted from the tonic nearest
        the middle of the range moved by the theme's register, so every scene plays the same figure
        in its own key; its articulation (how much of each note sounds, accents on the beat) and the
        mood's dynamics are the scene's (theme_voices.json)."""
        assert self.theme is not None
        manner = articulation(self.theme.articulation)
        dynamics = voice_table(self.theme.mood)["dynamics"] if self.theme.mood else 0
        middle = (low + high) / 2 + self.theme.register
        scale = scale_pitches(self.tonic, self.mode, low - 24, high + 24)
        home = min((i for i, p in enumerate(scale) if p % 12 == self.tonic), key=lambda i: abs(scale[i] - middle))
        notes = []
        for bar in sorted(self.theme_bars):
            for onset, length, step in self.theme.motif:
                pitch = scale[min(len(scale) - 1, max(0, home + step))]
                # the melody's level it stands in for (a theme that leaps out of the texture makes every
                # page it opens start louder than the page before it ends), shaded by the scene's mood
                accented = onset == 0 if manner.get("accents") == "bar" else float(onset).is_integer()
                accent = manner["accent"] if accented else 0
                notes.append(Note(pitch, bar * BEATS_PER_BAR + onset, length * manner["length"],
                                  self.velocity(60 + 34 * self.energy + dynamics + accent)))
        return notes

    def drums(self) -> list[Note]:
        table = load_table("drums.json")
        style = table["styles"][self.drum_style]
        velocities = table["velocities"]
        scale = 0.72 + 0.28 * self.energy
        notes = []
        for bar in range(self.bars):
            fill = bar % 4 == 3 or bar == self.bars - 1
            pattern = style["fill"] if fill and self.energy >= 0.45 else style["pattern"]
            for key, steps in pattern.items():
                for k, mark in enumerate(steps):
                    if mark == ".":
                        continue
                    notes.append(Note(int(key), bar * BEATS_PER_BAR + k * 0.25, 0.25,
                                      self.velocity(velocities[mark] * scale, 7)))
            if style["crash"] is not None and bar % 4 == 0 and self.energy >= 0.6:
                notes.append(Note(int(style["crash"]), bar * BEATS_PER_BAR, 1.0, self.velocity(100 * scale, 5)))
        return notes

    def hits(self, low: int = 36, high: int = 55) -> list[Note]:
        """Pitched hits (taiko, timpani) on the chord root: beats 1 and 3, more at high energy."""
        notes = []
        beats = (0.0, 2.0) if self.energy < 0.6 else (0.0, 1.5, 2.0, 3.0)
        for start, length, chord in self.spans():
            root = nearest([p for p in range(low, high + 1) if p % 12 == chord.root], 43)
            for bar in np.arange(0.0, length, BEATS_PER_BAR):
                for beat in beats:
                    notes.append(Note(root, start + bar + beat, 0.9, self.velocity(70 + 40 * self.energy)))
        return notes

    # -- the piece ----------------------------------------------------------------------------

    def compose(self) -> Piece:
        tempo = self.plan.tempo
        beat_seconds = 60.0 / tempo
        midi = pretty_midi.PrettyMIDI(initial_tempo=float(tempo))
        midi.time_signature_changes.append(pretty_midi.TimeSignature(BEATS_PER_BAR, 4, 0.0))
        midi.key_signature_changes.append(pretty_midi.KeySignature(
            pretty_midi.key_name_to_key_number(f"{_flat_name(self.tonic)} {self.mode}"), 0.0))
        ranges = load_table("instruments.json")["ranges"]
        covers = {}
        for role, inst in self.roles:
            covers.setdefault(inst, []).append(role)
        seconds = self.total_beats * beat_seconds
        for role, inst in self.roles:
            low_voice = _low_voice(inst)
            if role in ("melody", "melody2"):
                low, high = ranges["low_melody"] if low_voice else ranges["melody"]
                if role == "melody2":
                    notes = [Note(n.pitch - 12 if n.pitch - 12 >= 40 else n.pitch, n.start, n.length,
                                  max(20, n.velocity - 12)) for n in self.melody(low, high)]
                else:
                    if "arp" in covers.get(inst, []):  # one keyboard plays both: the melody sits above
                        low, high = 67, 91
                    notes = self.melody(low, high)
            elif role in ("pad", "pad2"):
                low, high = ranges["pad"]
                notes = self.pad(low + (12 if role == "pad2" else 0), high + (12 if role == "pad2" else 0),
                                 pulse=self.energy >= 0.7)
            elif role == "arp":
                low, high = ranges["arp"]
                if "melody" in covers.get(inst, []):  # the left hand, below the melody
                    low, high = 48, 69
                notes = self.arp(low, high)
            elif role == "comp":
                notes = self.comp()
            elif role == "bass":
                notes = self.bass(*ranges["bass"])
            elif role == "hits":
                notes = self.hits(*ranges["hits"])
            elif role == "drums":
                notes = self.drums()
            else:
                raise ValueError(f"role: unknown role {role!r}")
            midi.instruments.append(self._track(role, inst, notes, beat_seconds, seconds))
        if self.theme is not None:
            voice = resolve_instrument(self.theme.played_by)
            low, high = ranges["low_melody"] if _low_voice(voice) else ranges["melody"]
            midi.instruments.append(self._track("theme", voice, self.theme_notes(low, high), beat_seconds, seconds))
        return Piece(midi, self.bars, seconds, tempo, self.numerals, self.roles, self.motif, self.family,
                     self.drum_style)


    def _track(self, role: str, inst: str, notes: list[Note], beat_seconds: float,
               seconds: float) -> pretty_midi.Instrument:
        """One instrument's notes as a MIDI track, with its role's mix and humanised timing."""
        track = pretty_midi.Instrument(program=max(0, program_of(inst)), is_drum=role == "drums",
                                       name=f"{role}: {inst}")
        volume, pan, reverb, chorus = _MIX[role]
        for number, value in ((7, volume), (10, pan), (91, reverb), (93, chorus), (64, 0)):
            track.control_changes.append(pretty_midi.ControlChange(number, value, 0.0))
        jitter = 0.004 if role == "drums" else 0.010
        for note in notes:
            if note.length <= 0 or note.start >= self.total_beats:
                continue
            start = note.start * beat_seconds
            if start > 0:  # humanise timing, but never before the loop start
                start = max(0.0, start + float(self.page_rng.normal(0, jitter / 2)))
            end = min(seconds, (note.start + note.length) * beat_seconds)
            if end - start < 0.02:
                continue
            track.notes.append(pretty_midi.Note(int(note.velocity), int(note.pitch), start, end))
        return track


def _low_voice(instrument: str) -> bool:
    """Whether an instrument plays melodies in the low range (cello, bassoon, trombone, ...)."""
    return instrument_family(instrument) in ("low_solo", "bass") or instrument in ("cello", "bassoon", "trombone")


def _flat_name(pc: int) -> str:
    return ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")[pc]


def compose(cue: Cue, seconds: float, seed: int = 0) -> tuple[Piece, ResolvedPlan]:
    """Compose a page's piece from its cue (plan reconciled with the caption). Raises ValueError on
    a bad plan."""
    resolved = resolve_plan(cue)
    return _Composer(resolved, seconds, seed, cue.scene, cue.page, cue.theme).compose(), resolved
