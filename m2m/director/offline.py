"""The ``offline`` director: rules over the same scene information the LLM gets, no key needed.

* Scene boundaries come from the dialogue: a change of the cast (speakers and annotated faces),
  time and place words (「翌朝」, 「その夜」, "meanwhile"), greetings after farewells, and silent pages that
  open a new place. Each page gets a score; peaks above a threshold, at least ``min_pages`` apart,
  become boundaries.
* A scene's music follows its emotions (the face report when there is one, blended with a small
  dialogue lexicon), the intensity of its dialogue (exclamations, questions, trailing ellipses, line
  length), its cast (solo, duet, ensemble) and each page's place in the scene's arc (opening, build,
  climax, resolution). Captions read like MusicCaps/MusicGen prompts.
* The baseline describes a page from measured image statistics (brightness, ink, screentone, panels)
  plus its dialogue, and captions it from that description alone (:mod:`m2m.director.offline_baseline`).

What a page's dialogue and faces say is read in :mod:`m2m.director.reading`; the wording helpers are
in :mod:`m2m.director.phrasing`. Every table (word lists, moods, palettes) lives in
``prompts/offline_director.json``. Choices that could go either way are made from a hash of the book
and page, so the same input gives the same output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m2m.baseline import PageDescription
from m2m.book import Book, Page
from m2m.cues import DRUM_KIT, GM_INSTRUMENTS, KEYS, TEMPO_RANGE, Cue, Plan, Transition, canonical_instrument
from m2m.director import offline_baseline
from m2m.director.offline_baseline import image_statistics
from m2m.director.offline_transitions import transition_between
from m2m.director.phrasing import article, instrument_phrase, pick, pick_adjective
from m2m.director.phrasing import style_for as _style_for  # tests/director/test_offline.py imports _style_for
from m2m.director.reading import (
    PageCues,
    blend,
    clamp,
    face_distribution,
    lexicon_distribution,
    mood_of,
    normalise,
    page_cues,
    word_hits,
)
from m2m.emotions import EmotionReport, render_distribution
from m2m.llm import Meter
from m2m.prompts import PROMPTS_DIR
from m2m.runs import file_hash
from m2m.scenes import Scene, SceneSpan

TABLES = PROMPTS_DIR / "offline_director.json"
PAGE_ENERGY_STEP = 0.15  # the most a page's energy moves from the page before it in the same scene
# from this energy a page asks for a drum kit; the scene's later pages keep it (a groove that stops at
# a page turn inside a scene is a texture switch, heard as a join, where a softer groove is not)
DRUMS_ENERGY = 0.8
TABLES_NAME = "prompts/offline_director.json"

# ---------------------------------------------------------------------------------------------
# A scene's music


@dataclass(frozen=True)
class SceneMusic:
    """The scene-wide choices every page of the scene shares (so the pages sound like one piece)."""

    mood: str
    key: str
    mode: str
    style: str
    tempo: int
    energy: float
    instruments: tuple[str, ...]
    palette: tuple[str, ...]
    intensity: float


class OfflineDirector:
    """Rule-based director; the tables come from ``prompts/offline_director.json`` (or ``tables``)."""

    def __init__(self, tables: Path = TABLES) -> None:
        self._tables_path = Path(tables)
        try:
            self.tables: dict[str, Any] = json.loads(self._tables_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{self._tables_path}: can't read the offline director's tables: {e}") from e
        for name in ("scenes", "lexicon", "intensity", "moods", "instrument_words", "arc", "texture", "cast", "baseline"):
            if name not in self.tables:
                raise ValueError(f"{self._tables_path}: missing the {name!r} table")
        self._hash = file_hash(self._tables_path)
        # Reverse map for reading edited directives: "strings" -> "String Ensemble 1".
        words = self.tables["instrument_words"]
        self._instrument_by_word = sorted(((w.lower(), gm) for gm, w in words.items()), key=lambda p: -len(p[0]))

    def __repr__(self) -> str:
        return "OfflineDirector()"

    @property
    def backend(self) -> str:
        return "offline"

    @property
    def window_lines(self) -> int | None:
        return None

    def settings_record(self) -> dict[str, Any]:
        return {"tables": TABLES_NAME if self._tables_path == TABLES else self._tables_path.name}

    def prompt_name(self, step: str) -> str | None:
        return self.settings_record()["tables"]

    def prompt_hash(self, step: str) -> str | None:
        return self._hash

    def fingerprint(self, stage: str) -> dict[str, Any]:
        return {"backend": self.backend, "settings": self.settings_record(), "prompt_hash": self._hash}

    # -- stage 1 ---------------------------------------------------------------------------------

    def boundary_scores(self, book: Book, pages: Sequence[Page]) -> list[float]:
        """A score per page: how strongly a new scene starts there (the first page scores 0)."""
        table = self.tables["scenes"]
        weights = table["weights"]
        k = int(table["context_pages"])
        cues = [page_cues(p, self.tables) for p in pages]
        casts = [c.speakers | c.faces for c in cues]
        seen: set[str] = set()
        scores = [0.0]
        seen |= casts[0]
        for i in range(1, len(pages)):
            before = frozenset().union(*casts[max(0, i - k):i])
            after = frozenset().union(*casts[i:i + k])
            # With nobody to compare on one side there is no evidence either way: 0.5.
            change = 1.0 - len(before & after) / len(before | after) if before and after else 0.5
            score = weights["cast_change"] * change
            opening = cues[i].first_text
            if word_hits(opening, table["time_markers"]) or word_hits(opening, table["time_markers_en"]):
                score += weights["time_marker"]
            elif word_hits(opening, table["place_markers"]) and _narration_first(pages[i]):
                score += weights["place_marker"]
            if word_hits(opening, table["greetings"]):
                score += weights["greeting"]
            if word_hits(cues[i - 1].last_text, table["farewells"]):
                score += weights["farewell_before"]
            if cues[i].lines == 0 and cues[i - 1].lines > 0:
                score += weights["silent_opening"]
            newcomers = cues[i].speakers - seen
            if newcomers:
                score += weights["new_character"] * min(len(newcomers), 2) / 2
            seen |= casts[i]
            scores.append(score)
        return scores

    def scene_boundaries(self, book: Book, pages: Sequence[Page], meter: Meter) -> list[SceneSpan]:
        table = self.tables["scenes"]
        scores = self.boundary_scores(book, pages)
        min_pages = int(table["min_pages"])
        chosen: list[int] = []
        # Strongest first; a boundary too close to a stronger one (or to either end) is dropped.
        for i in sorted(range(1, len(pages)), key=lambda i: (-scores[i], i)):
            if scores[i] < table["threshold"]:
                break
            if i < min_pages or len(pages) - i < min_pages:
                continue
            if all(abs(i - j) >= min_pages for j in chosen):
                chosen.append(i)
        starts = [0, *sorted(chosen)]
        spans = []
        for n, start in enumerate(starts):
            stop = starts[n + 1] if n + 1 < len(starts) else len(pages)
            spans.append(SceneSpan(pages[start].index, pages[stop - 1].index,
                                   self._summary(book, pages[start:stop])))
        return spans

    def _summary(self, book: Book, pages: Sequence[Page]) -> str:
        speakers = dict.fromkeys(book.character_name(t.speaker) for p in pages for t in p.texts if t.speaker)
        lines = sum(len(p.texts) for p in pages)
        who = ", ".join(list(speakers)[:4]) or "no named speakers"
        # No page numbers here: readers count pages from 1, the run files from 0; the span is in Scene.pages.
        summary = f"{who}; {lines} lines"
        first = next((t.text for p in pages for t in p.texts), "")
        table = self.tables["scenes"]
        if first and (word_hits(first.lower(), table["time_markers"]) or word_hits(first.lower(), table["time_markers_en"])):
            summary += f"; opens with 「{' '.join(first.split())[:20]}」"
        return summary

    # -- stage 3 ---------------------------------------------------------------------------------

    def scene_music(self, book: Book, scene: Scene, emotions: EmotionReport | None) -> SceneMusic:
        pages = _scene_pages(book, scene)
        cues = [page_cues(p, self.tables) for p in pages]
        distribution = self._scene_distribution(scene, emotions, cues)
        mood, _strength = mood_of(distribution)
        table = self.tables["moods"][mood]
        intensity = sum(c.intensity for c in cues) / len(cues) if cues else 0.3
        energy = clamp(table["energy"] + 0.5 * (intensity - 0.4), 0.05, 0.95)
        low, high = table["tempo"]
        tempo = int(round(low + (high - low) * clamp((energy - table["energy"]) * 2 + 0.5, 0.0, 1.0)))
        palette = tuple(pick(table["palettes"], book.id, scene.index, "palette"))
        cast = {t.speaker for p in pages for t in p.texts if t.speaker}
        count = 2 if len(cast) <= 1 else 3 if len(cast) == 2 else 4
        style = _style_for(table["styles"], palette[:count], self.tables.get("style_promises", {}),
                           book.id, scene.index, "style")
        return SceneMusic(mood=mood, key=pick(table["keys"], book.id, scene.index, "key"), mode=table["mode"],
                          style=style, tempo=tempo, energy=round(energy, 2), instruments=palette[:count],
                          palette=palette, intensity=intensity)

    def _scene_distribution(self, scene: Scene, emotions: EmotionReport | None,
                            cues: Sequence[PageCues]) -> dict[str, float]:
        faces = face_distribution(emotions, "scenes", scene.index)
        words = lexicon_distribution(cues)
        if faces is None:
            return words if words is not None else normalise({"neutral": 1.0})
        return blend([(0.7, faces), (0.3, words)])

    def scene_directive(self, book: Book, scene: Scene, emotions: EmotionReport | None, meter: Meter) -> str:
        music = self.scene_music(book, scene, emotions)
        pages = _scene_pages(book, scene)
        cues = [page_cues(p, self.tables) for p in pages]
        table = self.tables["moods"][music.mood]
        adjective = pick_adjective(table, music.energy, music.style, book.id, scene.index)
        words = table["words"]
        faces = face_distribution(emotions, "scenes", scene.index)
        feeling = (f"The faces show {render_distribution(faces)}, so the music should feel {words[0]} and {words[1]}."
                   if faces is not None else f"The dialogue reads as {words[0]} and {words[1]}, and so should the music.")
        sentences = [
            f"{article(adjective)} {adjective} {music.style} in {music.key} {music.mode} around {music.tempo} BPM, "
            f"led by {self._instrument_phrase(music.instruments)}.",
            feeling,
            self._arc_sentence(cues),
            f"It is {self._cast_phrase(pages)}.",
        ]
        return " ".join(sentences)

    def _arc_sentence(self, cues: Sequence[PageCues]) -> str:
        if len(cues) < 2:
            return "It should hold one steady feeling for the whole page."
        half = len(cues) // 2
        first = sum(c.intensity for c in cues[:half]) / half
        second = sum(c.intensity for c in cues[half:]) / (len(cues) - half)
        exclaimed = sum(round(c.exclamation * c.lines) for c in cues)
        if second - first > 0.08:
            return (f"It should start quietly and build as the dialogue grows more urgent ({exclaimed} exclaimed "
                    "lines), easing only at the very end.")
        if first - second > 0.08:
            return "It should start at full strength and ease off as the scene winds down."
        return "It should hold a steady level, with small swells on the livelier pages."

    def _cast_phrase(self, pages: Sequence[Page]) -> str:
        cast = {t.speaker for p in pages for t in p.texts if t.speaker}
        phrases = self.tables["cast"]
        if not any(p.texts for p in pages):
            return phrases["none"]
        if len(cast) <= 1:
            return phrases["solo"]
        if len(cast) == 2:
            return phrases["duet"]
        return phrases["ensemble"].format(n=len(cast))

    def _instrument_phrase(self, instruments: Sequence[str]) -> str:
        return instrument_phrase(self.tables["instrument_words"], instruments)

    # -- stage 4 ---------------------------------------------------------------------------------

    def read_directive(self, directive: str, music: SceneMusic) -> SceneMusic:
        """The scene music as the directive states it: a person's edit to key, mode, tempo, instruments or
        mood words carries into every caption of the scene."""
        text = directive.lower()
        mood = music.mood
        best = 0
        for name, table in self.tables["moods"].items():
            hits = word_hits(text, [*table["soft"], *table["strong"], *table["words"]])
            if hits > best:
                mood, best = name, hits
        key, mode = music.key, music.mode
        found = re.search(r"\b([a-g])\s*(#|b|sharp|flat)?\s+(major|minor)\b", text)
        if found:
            accidental = {"#": "#", "sharp": "#", "b": "b", "flat": "b"}.get(found.group(2) or "", "")
            candidate = found.group(1).upper() + accidental
            if candidate in KEYS:
                key, mode = candidate, found.group(3)
        tempo = music.tempo
        bpm = re.search(r"\b(\d{2,3})\s*bpm\b", text)
        if bpm:
            tempo = int(clamp(int(bpm.group(1)), *TEMPO_RANGE))
        named: list[tuple[int, str]] = []  # (position in the directive, GM name): keep the writer's order
        remaining = text
        for word, gm in [*((g, canonical_instrument(g)) for g in _GM_LOWER), *self._instrument_by_word]:
            for found in re.finditer(rf"(?<![\w-]){re.escape(word)}(?![\w-])", remaining):
                named.append((found.start(), gm))
            # Blank the match (same length) so "slow strings" isn't also read as "strings".
            remaining = re.sub(rf"(?<![\w-]){re.escape(word)}(?![\w-])", lambda m: " " * len(m.group()), remaining)
        instruments = tuple(dict.fromkeys(gm for _, gm in sorted(named))) or music.instruments
        palette = tuple(dict.fromkeys([*instruments, *music.palette]))
        return SceneMusic(mood, key, mode, music.style, tempo, music.energy, instruments[:4], palette, music.intensity)

    def page_captions(self, book: Book, scene: Scene, emotions: EmotionReport | None, directive: str,
                      meter: Meter) -> list[Cue]:
        music = self.read_directive(directive, self.scene_music(book, scene, emotions))
        pages = _scene_pages(book, scene)
        cues = [page_cues(p, self.tables) for p in pages]
        scene_distribution = self._scene_distribution(scene, emotions, cues)
        phases = _arc_phases(cues)
        out: list[Cue] = []
        for cue, phase in zip(cues, phases, strict=True):
            before = out[-1].plan if out else None
            out.append(self._page_cue(book, scene, music, scene_distribution, cue, phase, emotions, before))
        return out

    def _page_cue(self, book: Book, scene: Scene, music: SceneMusic, scene_distribution: Mapping[str, float],
                  cue: PageCues, phase: str, emotions: EmotionReport | None, before: Plan | None = None) -> Cue:
        """One page's cue; ``before`` is the plan of the scene's page before it (None: the first)."""
        moods = self.tables["moods"]
        local = blend([(0.7, face_distribution(emotions, "pages", cue.index)), (0.3, lexicon_distribution([cue]))])
        has_local = face_distribution(emotions, "pages", cue.index) is not None or cue.lines > 0
        distribution = blend([(0.5, scene_distribution), (0.5, local if has_local else scene_distribution)])
        mood, strength = mood_of(distribution)
        if mood != music.mood and strength < 0.2:
            mood = music.mood  # a faint tint doesn't pull the page away from its scene
        table = moods[mood]
        arc = self.tables["arc"][phase]
        energy = music.energy + 0.5 * (cue.intensity - music.intensity) + arc["energy"]
        energy += 0.3 * (table["energy"] - moods[music.mood]["energy"])
        if before is not None:
            # within a scene a page continues the one before it: the energy climbs or falls over the
            # pages instead of lurching at one turn, where a whole new texture (drums, an added
            # instrument) would enter in a 1.5 s crossfade
            energy = clamp(energy, before.energy - PAGE_ENERGY_STEP, before.energy + PAGE_ENERGY_STEP)
        energy = round(clamp(energy, 0.05, 0.98), 2)
        low, high = moods[music.mood]["tempo"]
        tempo = int(round(music.tempo + (energy - music.energy) * 40))
        tempo = int(clamp(tempo, max(TEMPO_RANGE[0], min(low, music.tempo) - 12),
                           min(TEMPO_RANGE[1], max(high, music.tempo) + 12)))
        if before is not None:
            # the scene keeps the tempo its first page set: two grooves a few BPM apart flam through
            # the crossfade at every turn; a page's energy shows in its density and dynamics instead
            tempo = before.tempo
        instruments = list(music.instruments)
        if energy > music.energy + 0.12 and len(music.palette) > len(instruments):
            instruments.append(music.palette[len(instruments)])
        elif energy < music.energy - 0.1 and len(instruments) > 1:
            instruments.pop()
        if before is not None and len(before.instruments) > len(instruments):
            # a page that calms keeps the band the page before it had (it plays softer, fewer notes):
            # an instrument dropped at the turn reshuffles who plays what in the crossfade
            instruments = list(before.instruments)
        if mood != music.mood:
            # The page's own feeling tints the scene's band with one instrument of its mood.
            colour = moods[mood]["palettes"][0][0]
            if colour not in instruments:
                if len(instruments) < 4:
                    instruments.append(colour)
                else:
                    instruments[-1] = colour
        if DRUM_KIT in (before.instruments if before is not None else ()) or energy >= DRUMS_ENERGY:
            instruments = [i for i in instruments if i != DRUM_KIT] + [DRUM_KIT]
        adjective = pick_adjective(table, energy, music.style, book.id, cue.index)
        words = table["words"]
        word = pick(words, book.id, cue.index, "word")
        style = music.style if mood == music.mood else f"{music.style} turning {word}"
        texture = self._texture(cue, mood)
        parts = [f"{article(adjective)} {adjective} {style} in {music.key} {music.mode} at {tempo} BPM "
                 f"with {self._instrument_phrase(instruments)}", f"{words[0]} and {words[1] if word == words[0] else word}"]
        if texture:
            parts.append(texture)
        parts.append(arc["phrase"])
        caption = ", ".join(parts) + "."
        plan = Plan(tempo=tempo, key=music.key, mode=music.mode,  # type: ignore[arg-type]
                    instruments=tuple(dict.fromkeys(instruments)), energy=energy, mood=f"{adjective}, {word}")
        return Cue(page=cue.index, scene=scene.index, caption=caption, plan=plan)

    def _texture(self, cue: PageCues, mood: str) -> str:
        """How the page's dialogue shapes the music, in the words of its mood: a page of exclamations
        is sharp accents when it is tense, a swell of feeling when it is sad (a phrase may be one for
        every mood, or one per mood family)."""
        texture = self.tables["texture"]
        if cue.lines == 0:
            return texture["silent"]
        ranked = sorted([(cue.exclamation, "exclamation"), (cue.question, "question"), (cue.ellipsis, "ellipsis")],
                        key=lambda p: -p[0])
        if ranked[0][0] >= 0.34:
            phrase = texture[ranked[0][1]]
            return phrase if isinstance(phrase, str) else phrase.get(mood, phrase["neutral"])
        if cue.mean_chars >= self.tables["intensity"]["chars_for_calm_line"]:
            return texture["long_lines"]
        return ""

    # -- the baseline (m2m.director.offline_baseline) --------------------------------------------

    def scene_transition(self, book: Book, before: Scene, after: Scene, last: Cue, first: Cue,
                         emotions: EmotionReport | None, meter: Meter) -> Transition:
        """By rule over the two pages' plans and the first page's faces (director/offline_transitions.py)."""
        faces = face_distribution(emotions, "pages", first.page)
        return transition_between(after.index, last.plan, first.plan, faces)

    def describe_page(self, book: Book, page: Page, meter: Meter) -> PageDescription:
        return offline_baseline.describe_page(self.tables, page)

    def caption_page(self, book: Book, page: Page, description: PageDescription, meter: Meter) -> Cue:
        """A caption from the description alone: its mood words, its quoted dialogue and its measurements."""
        return offline_baseline.caption_page(self.tables, book, page, description)


_GM_LOWER = tuple(sorted({name.lower() for name in GM_INSTRUMENTS}, key=len, reverse=True))
"""GM names, longest first, for spotting them in an edited directive."""


def _arc_phases(cues: Sequence[PageCues]) -> list[str]:
    """Each page's place in the scene: opening, build, climax (the most intense page), resolution."""
    n = len(cues)
    if n == 1:
        return ["single"]
    phases = ["build"] * n
    phases[0] = "opening"
    if n >= 3:
        phases[-1] = "resolution"
        intensities = [c.intensity for c in cues]
        peak = max(range(n), key=lambda i: (intensities[i], -i))
        if intensities[peak] >= sum(intensities) / n + 0.05:
            phases[peak] = "climax"
    return phases


def _narration_first(page: Page) -> bool:
    """A place word counts as a scene cue when it opens the page without a known speaker (a caption box)."""
    return bool(page.texts) and page.texts[0].speaker is None


def _scene_pages(book: Book, scene: Scene) -> list[Page]:
    wanted = set(scene.pages)
    return [p for p in book.pages if p.index in wanted]


__all__ = ["TABLES", "TABLES_NAME", "OfflineDirector", "PageCues", "SceneMusic", "image_statistics", "mood_of",
           "page_cues"]
