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
  plus its dialogue, and captions it from that description alone.

Every table (word lists, moods, palettes) lives in ``prompts/offline_director.json``. Choices that
could go either way are made from a hash of the book and page, so the same input gives the same output.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from m2m.baseline import PageDescription
from m2m.book import Book, Page
from m2m.cues import GM_INSTRUMENTS, KEYS, TEMPO_RANGE, Cue, Plan, canonical_instrument
from m2m.emotions import EMOTIONS, EmotionReport, render_distribution
from m2m.llm import PROMPTS_DIR, Meter
from m2m.runs import file_hash
from m2m.scenes import Scene, SceneSpan

TABLES = PROMPTS_DIR / "offline_director.json"
TABLES_NAME = "prompts/offline_director.json"

_EXCLAIM = re.compile(r"[!！]")
_QUESTION = re.compile(r"[?？]")
_ELLIPSIS = re.compile(r"(…|\.\.\.|‥|・・・)\s*[」』]?$")


def _stable(*parts: object) -> int:
    """A hash that is the same in every process (Python's hash() of str is salted per run)."""
    return int(hashlib.sha256("|".join(map(str, parts)).encode("utf-8")).hexdigest()[:8], 16)


def _pick(options: Sequence[Any], *parts: object) -> Any:
    return options[_stable(*parts) % len(options)]


def _style_for(styles: Sequence[str], instruments: Sequence[str], promises: Mapping[str, Any], *parts: object) -> str:
    """A style whose instrument words the instruments keep ("lo-fi piano piece" only with a piano, see
    the tables' ``style_promises``); any of them when none fits."""
    names = " ".join(instruments).lower()

    def kept(style: str) -> bool:
        return all(any(gm in names for gm in keeping) for word, keeping in promises.items()
                   if word != "about" and word in style.lower())

    return _pick([s for s in styles if kept(s)] or list(styles), *parts)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


# ---------------------------------------------------------------------------------------------
# What a page's dialogue says


@dataclass(frozen=True)
class PageCues:
    """Dialogue statistics of one page. Fractions are of the page's lines; intensity is 0-1."""

    index: int
    lines: int
    mean_chars: float
    exclamation: float
    question: float
    ellipsis: float
    intensity: float
    lexicon: dict[str, int]
    speakers: frozenset[str]
    faces: frozenset[str]
    first_text: str
    last_text: str


def _lower_text(page_texts: Sequence[str]) -> str:
    return " ".join(page_texts).lower()


def _hits(text: str, words: Sequence[str]) -> int:
    """Occurrences of any of ``words``: substrings for Japanese, whole words for Latin script."""
    count = 0
    for word in words:
        if word.isascii():
            count += len(re.findall(rf"\b{re.escape(word)}\b", text))
        else:
            count += text.count(word)
    return count


def page_cues(page: Page, tables: Mapping[str, Any]) -> PageCues:
    texts = [t.text for t in page.texts]
    both = [f"{t.text} {t.gloss or ''}" for t in page.texts]
    n = len(texts)
    weights = tables["intensity"]
    if n:
        exclamation = sum(bool(_EXCLAIM.search(t)) for t in texts) / n
        question = sum(bool(_QUESTION.search(t)) for t in texts) / n
        ellipsis = sum(bool(_ELLIPSIS.search(t.strip())) for t in texts) / n
        mean_chars = sum(len(t) for t in texts) / n
        density = min(n / weights["lines_for_full_density"], 1.0)
        rapid = 1.0 - min(mean_chars / weights["chars_for_calm_line"], 1.0)
        intensity = (weights["exclamation"] * exclamation + weights["question"] * question
                     + weights["density"] * density + weights["rapid"] * rapid)
    else:
        exclamation = question = ellipsis = mean_chars = 0.0
        intensity = weights["silent_page"]
    joined = _lower_text(both)
    lexicon = {emotion: _hits(joined, words) for emotion, words in tables["lexicon"].items()}
    return PageCues(index=page.index, lines=n, mean_chars=mean_chars, exclamation=exclamation, question=question,
                    ellipsis=ellipsis, intensity=_clamp(intensity, 0.0, 1.0), lexicon=lexicon,
                    speakers=frozenset(t.speaker for t in page.texts if t.speaker),
                    faces=frozenset(f.character for f in page.faces if f.character and f.character != "unknown"),
                    first_text=_lower_text(both[:3]), last_text=_lower_text(both[-3:]))


# ---------------------------------------------------------------------------------------------
# Emotions as a distribution over EMOTIONS


def _normalise(weights: Mapping[str, float]) -> dict[str, float]:
    total = sum(max(0.0, weights.get(e, 0.0)) for e in EMOTIONS)
    if total <= 0:
        return {e: 1.0 if e == "neutral" else 0.0 for e in EMOTIONS}
    return {e: max(0.0, weights.get(e, 0.0)) / total for e in EMOTIONS}


def _lexicon_distribution(cues: Sequence[PageCues]) -> dict[str, float] | None:
    """Lexicon hits as a distribution; neutral weighs in with the number of lines so a single word in a
    long conversation only tints it. None when the dialogue is empty."""
    lines = sum(c.lines for c in cues)
    if not lines:
        return None
    counts: dict[str, float] = {e: float(sum(c.lexicon.get(e, 0) for c in cues)) for e in EMOTIONS}
    counts["neutral"] = 1.0 + 0.2 * lines
    return _normalise(counts)


def _blend(parts: Sequence[tuple[float, Mapping[str, float] | None]]) -> dict[str, float]:
    mixed = {e: 0.0 for e in EMOTIONS}
    for weight, dist in parts:
        if dist is not None:
            for e in EMOTIONS:
                mixed[e] += weight * dist.get(e, 0.0)
    return _normalise(mixed)


def _faces(emotions: EmotionReport | None, table: str, key: int) -> dict[str, float] | None:
    if emotions is None:
        return None
    distribution = getattr(emotions, table).get(key)
    if distribution is None or distribution.faces == 0:
        return None
    return _normalise(distribution.probabilities)


def mood_of(distribution: Mapping[str, float]) -> tuple[str, float]:
    """The mood table to use (an emotion name) and how strongly it shows (0-1).

    Faces are neutral most of the time (the paper's own example reads "57% neutral"), so the strongest
    non-neutral emotion colours the music once it holds a fair share.
    """
    others = {e: distribution.get(e, 0.0) for e in EMOTIONS if e != "neutral"}
    top = max(others, key=lambda e: (others[e], -EMOTIONS.index(e)))
    if sum(others.values()) < 0.25 or others[top] < 0.12:
        return "neutral", distribution.get("neutral", 1.0)
    return top, others[top]


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
            if _hits(opening, table["time_markers"]) or _hits(opening, table["time_markers_en"]):
                score += weights["time_marker"]
            elif _hits(opening, table["place_markers"]) and _narration_first(pages[i]):
                score += weights["place_marker"]
            if _hits(opening, table["greetings"]):
                score += weights["greeting"]
            if _hits(cues[i - 1].last_text, table["farewells"]):
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
        if first and (_hits(first.lower(), table["time_markers"]) or _hits(first.lower(), table["time_markers_en"])):
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
        energy = _clamp(table["energy"] + 0.5 * (intensity - 0.4), 0.05, 0.95)
        low, high = table["tempo"]
        tempo = int(round(low + (high - low) * _clamp((energy - table["energy"]) * 2 + 0.5, 0.0, 1.0)))
        palette = tuple(_pick(table["palettes"], book.id, scene.index, "palette"))
        cast = {t.speaker for p in pages for t in p.texts if t.speaker}
        count = 2 if len(cast) <= 1 else 3 if len(cast) == 2 else 4
        style = _style_for(table["styles"], palette[:count], self.tables.get("style_promises", {}),
                           book.id, scene.index, "style")
        return SceneMusic(mood=mood, key=_pick(table["keys"], book.id, scene.index, "key"), mode=table["mode"],
                          style=style, tempo=tempo, energy=round(energy, 2), instruments=palette[:count],
                          palette=palette, intensity=intensity)

    def _scene_distribution(self, scene: Scene, emotions: EmotionReport | None,
                            cues: Sequence[PageCues]) -> dict[str, float]:
        faces = _faces(emotions, "scenes", scene.index)
        words = _lexicon_distribution(cues)
        if faces is None:
            return words if words is not None else _normalise({"neutral": 1.0})
        return _blend([(0.7, faces), (0.3, words)])

    def scene_directive(self, book: Book, scene: Scene, emotions: EmotionReport | None, meter: Meter) -> str:
        music = self.scene_music(book, scene, emotions)
        pages = _scene_pages(book, scene)
        cues = [page_cues(p, self.tables) for p in pages]
        table = self.tables["moods"][music.mood]
        adjective = _adjective(table, music.energy, music.style, book.id, scene.index)
        words = table["words"]
        faces = _faces(emotions, "scenes", scene.index)
        feeling = (f"The faces show {render_distribution(faces)}, so the music should feel {words[0]} and {words[1]}."
                   if faces is not None else f"The dialogue reads as {words[0]} and {words[1]}, and so should the music.")
        sentences = [
            f"{_article(adjective)} {adjective} {music.style} in {music.key} {music.mode} around {music.tempo} BPM, "
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
        words = [self.tables["instrument_words"].get(i, i.lower()) for i in instruments]
        if len(words) == 1:
            return words[0]
        return ", ".join(words[:-1]) + " and " + words[-1]

    # -- stage 4 ---------------------------------------------------------------------------------

    def read_directive(self, directive: str, music: SceneMusic) -> SceneMusic:
        """The scene music as the directive states it: a person's edit to key, mode, tempo, instruments or
        mood words carries into every caption of the scene."""
        text = directive.lower()
        mood = music.mood
        best = 0
        for name, table in self.tables["moods"].items():
            hits = _hits(text, [*table["soft"], *table["strong"], *table["words"]])
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
            tempo = int(_clamp(int(bpm.group(1)), *TEMPO_RANGE))
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
        return [self._page_cue(book, scene, music, scene_distribution, cue, phase, emotions)
                for cue, phase in zip(cues, phases, strict=True)]

    def _page_cue(self, book: Book, scene: Scene, music: SceneMusic, scene_distribution: Mapping[str, float],
                  cue: PageCues, phase: str, emotions: EmotionReport | None) -> Cue:
        moods = self.tables["moods"]
        local = _blend([(0.7, _faces(emotions, "pages", cue.index)), (0.3, _lexicon_distribution([cue]))])
        has_local = _faces(emotions, "pages", cue.index) is not None or cue.lines > 0
        distribution = _blend([(0.5, scene_distribution), (0.5, local if has_local else scene_distribution)])
        mood, strength = mood_of(distribution)
        if mood != music.mood and strength < 0.2:
            mood = music.mood  # a faint tint doesn't pull the page away from its scene
        table = moods[mood]
        arc = self.tables["arc"][phase]
        energy = music.energy + 0.5 * (cue.intensity - music.intensity) + arc["energy"]
        energy += 0.3 * (table["energy"] - moods[music.mood]["energy"])
        energy = round(_clamp(energy, 0.05, 0.98), 2)
        low, high = moods[music.mood]["tempo"]
        tempo = int(round(music.tempo + (energy - music.energy) * 40))
        tempo = int(_clamp(tempo, max(TEMPO_RANGE[0], min(low, music.tempo) - 12),
                           min(TEMPO_RANGE[1], max(high, music.tempo) + 12)))
        instruments = list(music.instruments)
        if energy > music.energy + 0.12 and len(music.palette) > len(instruments):
            instruments.append(music.palette[len(instruments)])
        elif energy < music.energy - 0.1 and len(instruments) > 1:
            instruments.pop()
        if mood != music.mood:
            # The page's own feeling tints the scene's band with one instrument of its mood.
            colour = moods[mood]["palettes"][0][0]
            if colour not in instruments:
                if len(instruments) < 4:
                    instruments.append(colour)
                else:
                    instruments[-1] = colour
        adjective = _adjective(table, energy, music.style, book.id, cue.index)
        words = table["words"]
        word = _pick(words, book.id, cue.index, "word")
        style = music.style if mood == music.mood else f"{music.style} turning {word}"
        texture = self._texture(cue)
        parts = [f"{_article(adjective)} {adjective} {style} in {music.key} {music.mode} at {tempo} BPM "
                 f"with {self._instrument_phrase(instruments)}", f"{words[0]} and {words[1] if word == words[0] else word}"]
        if texture:
            parts.append(texture)
        parts.append(arc["phrase"])
        caption = ", ".join(parts) + "."
        plan = Plan(tempo=tempo, key=music.key, mode=music.mode,  # type: ignore[arg-type]
                    instruments=tuple(dict.fromkeys(instruments)), energy=energy, mood=f"{adjective}, {word}")
        return Cue(page=cue.index, scene=scene.index, caption=caption, plan=plan)

    def _texture(self, cue: PageCues) -> str:
        texture = self.tables["texture"]
        if cue.lines == 0:
            return texture["silent"]
        ranked = sorted([(cue.exclamation, "exclamation"), (cue.question, "question"), (cue.ellipsis, "ellipsis")],
                        key=lambda p: -p[0])
        if ranked[0][0] >= 0.34:
            return texture[ranked[0][1]]
        if cue.mean_chars >= self.tables["intensity"]["chars_for_calm_line"]:
            return texture["long_lines"]
        return ""

    # -- the baseline ----------------------------------------------------------------------------

    def describe_page(self, book: Book, page: Page, meter: Meter) -> PageDescription:
        stats = image_statistics(page)
        cue = page_cues(page, self.tables)
        table = self.tables["baseline"]
        light = ("a dark page" if stats["brightness"] < table["dark_below"]
                 else "a bright, airy page" if stats["brightness"] > table["bright_above"] else "a mid-grey page")
        ink = ("heavy black ink" if stats["ink"] > table["heavy_ink_above"]
               else "light linework" if stats["ink"] < table["light_ink_below"] else "moderate inking")
        tone = ("dense screentone" if stats["screentone"] > table["screentone_dense_above"]
                else "some screentone" if stats["screentone"] > table["screentone_some_above"] else "little screentone")
        panels = int(stats["panels"])
        layout = "a busy layout" if panels >= table["busy_panels"] else "an open layout"
        sentences = [f"Page {page.index} is {light} (brightness {stats['brightness']:.0%}) with {ink} "
                     f"({stats['ink']:.0%} of the page), {tone} and {_count(panels, 'panel')}, {layout}."]
        if cue.lines:
            exclaimed = round(cue.exclamation * cue.lines)
            asked = round(cue.question * cue.lines)
            quoted = " ".join(f"「{' '.join(t.text.split())[:40]}」" for t in page.texts[:4])
            sentences.append(f"It has {_count(cue.lines, 'line')} of dialogue, {exclaimed} exclaimed and "
                             f"{_count(asked, 'question')}: {quoted}.")
        else:
            sentences.append("It has no dialogue.")
        words = self._visual_words(stats, cue)
        sentences.append(f"Measured from the image and the words, it reads as {', '.join(words)}.")
        features = {k: round(v, 3) for k, v in stats.items()}
        features.update({"lines": float(cue.lines), "exclamation": round(cue.exclamation, 3),
                         "intensity": round(cue.intensity, 3)})
        return PageDescription(page.index, " ".join(sentences), features)

    def _visual_words(self, stats: Mapping[str, float], cue: PageCues) -> list[str]:
        """Mood words the measurements support (from the baseline's description_words table)."""
        table = self.tables["baseline"]
        words = table["description_words"]
        out: list[str] = []
        if stats["brightness"] < table["dark_below"] or stats["ink"] > table["heavy_ink_above"]:
            out += words["fear"][:2]
        if cue.exclamation >= 0.4:
            out += words["anger"][1:2] + words["surprise"][:1]
        if cue.ellipsis >= 0.3 or (cue.lines == 0 and stats["ink"] < table["heavy_ink_above"]):
            out += words["sadness"][:1]
        if stats["brightness"] > table["bright_above"] and cue.exclamation < 0.4:
            out += words["happiness"][:2]
        lexicon = _lexicon_distribution([cue])
        if lexicon is not None:
            mood, strength = mood_of(lexicon)
            if mood != "neutral":
                out += words[mood][-1:]
        return list(dict.fromkeys(out)) or words["neutral"][:2]

    def caption_page(self, book: Book, page: Page, description: PageDescription, meter: Meter) -> Cue:
        """A caption from the description alone: its mood words, its quoted dialogue and its measurements."""
        text = description.text.lower()
        words = self.tables["baseline"]["description_words"]
        # The mood words are read from the description's conclusion ("... it reads as ..."), so the
        # measurements it reports ("a bright page") aren't counted twice; dialogue words count anywhere.
        conclusion = text.rsplit("reads as", 1)[-1]
        counts: dict[str, float] = {e: float(_hits(conclusion, words.get(e, []))) for e in EMOTIONS}
        for emotion, lexicon in self.tables["lexicon"].items():
            counts[emotion] += 1.5 * _hits(text, lexicon)
        counts["neutral"] += 1.0
        mood, _strength = mood_of(_normalise(counts))
        table = self.tables["moods"][mood]
        features = description.features
        intensity = features.get("intensity", 0.4)
        busy = _clamp(features.get("panels", 4) / 8.0, 0.0, 1.0)
        energy = table["energy"] + 0.4 * (intensity - 0.4) + 0.15 * (features.get("ink", 0.2) - 0.2) + 0.1 * (busy - 0.5)
        energy = round(_clamp(energy, 0.05, 0.98), 2)
        low, high = table["tempo"]
        tempo = int(round(low + (high - low) * _clamp((energy - table["energy"]) * 2 + 0.5, 0.0, 1.0)))
        palette = _pick(table["palettes"], book.id, page.index, "palette")
        instruments = tuple(palette[: 2 + int(energy > 0.5) + int(busy > 0.6)])
        style = _style_for(table["styles"], instruments, self.tables.get("style_promises", {}),
                           book.id, page.index, "style")
        adjective = _adjective(table, energy, style, book.id, page.index)
        key = _pick(table["keys"], book.id, page.index, "key")
        word = _pick(table["words"], book.id, page.index, "word")
        caption = (f"{_article(adjective)} {adjective} {style} in {key} {table['mode']} at {tempo} BPM "
                   f"with {self._instrument_phrase(instruments)}, {word}.")
        plan = Plan(tempo=tempo, key=key, mode=table["mode"], instruments=instruments, energy=energy,
                    mood=f"{adjective}, {word}")
        return Cue(page=page.index, scene=page.index, caption=caption, plan=plan)


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


def _adjective(table: Mapping[str, Any], energy: float, style: str, *parts: object) -> str:
    """A mood adjective for the energy (the "strong" list from 0.6 up), never one the style already says."""
    options = [w for w in (table["strong"] if energy >= 0.6 else table["soft"]) if w not in style]
    return _pick(options or table["soft"], *parts, "adj")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _article(word: str) -> str:
    return "An" if word[:1].lower() in "aeiou" else "A"


def _narration_first(page: Page) -> bool:
    """A place word counts as a scene cue when it opens the page without a known speaker (a caption box)."""
    return bool(page.texts) and page.texts[0].speaker is None


def _scene_pages(book: Book, scene: Scene) -> list[Page]:
    wanted = set(scene.pages)
    return [p for p in book.pages if p.index in wanted]


# ---------------------------------------------------------------------------------------------
# Image statistics for the baseline's honest page description


def image_statistics(page: Page, max_side: int = 800) -> dict[str, float]:
    """Measured, not guessed: brightness (mean grey, 0-1), contrast (std of grey, 0-1), ink (share of
    near-black pixels), screentone (share of 8x8 blocks filled with fine dot or line texture) and panels
    (annotated frames, else gutters counted in the image)."""
    try:
        with Image.open(page.image) as im:
            grey = im.convert("L")
            grey.thumbnail((max_side, max_side))
            pixels = np.asarray(grey, dtype=np.float32) / 255.0
    except OSError as e:
        raise ValueError(f"image: can't read page {page.index} ({page.image}): {e}") from e
    # Screentone: 8x8 blocks of mid-grey on average that are dense with pixels far from their 3x3
    # neighbourhood mean (dots and hatching). Line art only makes such pixels along its strokes, so
    # its blocks stay sparse.
    padded = np.pad(pixels, 1, mode="edge")
    blurred = sum(padded[dy:dy + pixels.shape[0], dx:dx + pixels.shape[1]] for dy in range(3) for dx in range(3)) / 9.0
    busy = np.abs(pixels - blurred) > 0.12
    rows, cols = (pixels.shape[0] // 8) * 8, (pixels.shape[1] // 8) * 8
    block_busy = busy[:rows, :cols].reshape(rows // 8, 8, cols // 8, 8).mean(axis=(1, 3))
    block_grey = pixels[:rows, :cols].reshape(rows // 8, 8, cols // 8, 8).mean(axis=(1, 3))
    toned = (block_busy > 0.3) & (block_grey > 0.15) & (block_grey < 0.85)
    panels = len(page.frames) if page.frames else _count_panels(pixels)
    return {"brightness": float(pixels.mean()), "contrast": float(min(pixels.std() * 2.0, 1.0)),
            "ink": float((pixels < 0.3).mean()), "screentone": float(toned.mean()) if toned.size else 0.0, "panels": float(panels)}


def _count_panels(pixels: np.ndarray) -> int:
    """Panels from white gutters: horizontal bands split by all-white rows, each split by all-white columns."""
    white = pixels > 0.9

    def runs(mask: np.ndarray, min_len: int) -> list[tuple[int, int]]:
        out, start = [], None
        for i, filled in enumerate(list(mask) + [False]):
            if filled and start is None:
                start = i
            elif not filled and start is not None:
                if i - start >= min_len:
                    out.append((start, i))
                start = None
        return out

    height, width = pixels.shape
    bands = runs(~(white.mean(axis=1) > 0.97), max(4, height // 40))
    total = 0
    for top, bottom in bands:
        band = white[top:bottom]
        total += max(1, len(runs(~(band.mean(axis=0) > 0.97), max(4, width // 40))))
    return max(total, 1)
