"""The offline director's baseline: a page described from measured image statistics (brightness, ink,
screentone, panels) plus its dialogue, and captioned from that description alone.

The baseline is its own condition (:mod:`m2m.baseline`): page by page, no scenes, no faces. Its rules
share the tables and the wording with the scene director (:class:`m2m.director.offline.OfflineDirector`,
which calls these) but nothing else, and the image measurements are needed by no other stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image

from m2m.baseline import PageDescription
from m2m.book import Book, Page
from m2m.cues import Cue, Plan
from m2m.director.phrasing import article, instrument_phrase, pick, pick_adjective, plural, style_for
from m2m.director.reading import (
    PageCues,
    clamp,
    lexicon_distribution,
    mood_of,
    normalise,
    page_cues,
    word_hits,
)
from m2m.emotions import EMOTIONS


def describe_page(tables: Mapping[str, Any], page: Page) -> PageDescription:
    stats = image_statistics(page)
    cue = page_cues(page, tables)
    table = tables["baseline"]
    light = ("a dark page" if stats["brightness"] < table["dark_below"]
             else "a bright, airy page" if stats["brightness"] > table["bright_above"] else "a mid-grey page")
    ink = ("heavy black ink" if stats["ink"] > table["heavy_ink_above"]
           else "light linework" if stats["ink"] < table["light_ink_below"] else "moderate inking")
    tone = ("dense screentone" if stats["screentone"] > table["screentone_dense_above"]
            else "some screentone" if stats["screentone"] > table["screentone_some_above"] else "little screentone")
    panels = int(stats["panels"])
    layout = "a busy layout" if panels >= table["busy_panels"] else "an open layout"
    sentences = [f"Page {page.index} is {light} (brightness {stats['brightness']:.0%}) with {ink} "
                 f"({stats['ink']:.0%} of the page), {tone} and {plural(panels, 'panel')}, {layout}."]
    if cue.lines:
        exclaimed = round(cue.exclamation * cue.lines)
        asked = round(cue.question * cue.lines)
        quoted = " ".join(f"「{' '.join(t.text.split())[:40]}」" for t in page.texts[:4])
        sentences.append(f"It has {plural(cue.lines, 'line')} of dialogue, {exclaimed} exclaimed and "
                         f"{plural(asked, 'question')}: {quoted}.")
    else:
        sentences.append("It has no dialogue.")
    words = _visual_words(tables, stats, cue)
    sentences.append(f"Measured from the image and the words, it reads as {', '.join(words)}.")
    features = {k: round(v, 3) for k, v in stats.items()}
    features.update({"lines": float(cue.lines), "exclamation": round(cue.exclamation, 3),
                     "intensity": round(cue.intensity, 3)})
    return PageDescription(page.index, " ".join(sentences), features)


def _visual_words(tables: Mapping[str, Any], stats: Mapping[str, float], cue: PageCues) -> list[str]:
    """Mood words the measurements support (from the baseline's description_words table)."""
    table = tables["baseline"]
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
    lexicon = lexicon_distribution([cue])
    if lexicon is not None:
        mood, strength = mood_of(lexicon)
        if mood != "neutral":
            out += words[mood][-1:]
    return list(dict.fromkeys(out)) or words["neutral"][:2]


def caption_page(tables: Mapping[str, Any], book: Book, page: Page, description: PageDescription) -> Cue:
    """A caption from the description alone: its mood words, its quoted dialogue and its measurements."""
    text = description.text.lower()
    words = tables["baseline"]["description_words"]
    # The mood words are read from the description's conclusion ("... it reads as ..."), so the
    # measurements it reports ("a bright page") aren't counted twice; dialogue words count anywhere.
    conclusion = text.rsplit("reads as", 1)[-1]
    counts: dict[str, float] = {e: float(word_hits(conclusion, words.get(e, []))) for e in EMOTIONS}
    for emotion, lexicon in tables["lexicon"].items():
        counts[emotion] += 1.5 * word_hits(text, lexicon)
    counts["neutral"] += 1.0
    mood, _strength = mood_of(normalise(counts))
    table = tables["moods"][mood]
    features = description.features
    intensity = features.get("intensity", 0.4)
    busy = clamp(features.get("panels", 4) / 8.0, 0.0, 1.0)
    energy = table["energy"] + 0.4 * (intensity - 0.4) + 0.15 * (features.get("ink", 0.2) - 0.2) + 0.1 * (busy - 0.5)
    energy = round(clamp(energy, 0.05, 0.98), 2)
    low, high = table["tempo"]
    tempo = int(round(low + (high - low) * clamp((energy - table["energy"]) * 2 + 0.5, 0.0, 1.0)))
    palette = pick(table["palettes"], book.id, page.index, "palette")
    instruments = tuple(palette[: 2 + int(energy > 0.5) + int(busy > 0.6)])
    style = style_for(table["styles"], instruments, tables.get("style_promises", {}),
                      book.id, page.index, "style")
    adjective = pick_adjective(table, energy, style, book.id, page.index)
    key = pick(table["keys"], book.id, page.index, "key")
    word = pick(table["words"], book.id, page.index, "word")
    caption = (f"{article(adjective)} {adjective} {style} in {key} {table['mode']} at {tempo} BPM "
               f"with {instrument_phrase(tables['instrument_words'], instruments)}, {word}.")
    plan = Plan(tempo=tempo, key=key, mode=table["mode"], instruments=instruments, energy=energy,
                mood=f"{adjective}, {word}")
    return Cue(page=page.index, scene=page.index, caption=caption, plan=plan)


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
