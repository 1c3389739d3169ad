"""A stand-in for m2m.pipeline with the same function names, for UI tests that must not depend on
the real stages: plan in a few ms, render each page as a short looping chord (OGG) whose pitch
follows the caption, so a changed caption gives a new clip and a new version hash."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from m2m.book import Book
from m2m.cues import CaptionSheet, Cue, Plan
from m2m.directives import Directive, DirectiveSheet
from m2m.emotions import Distribution, EmotionReport
from m2m.pipeline import ClipInfo, RunView  # the views the real service returns
from m2m.runs import Provenance, RunFolder
from m2m.scenes import Scene, ScenePlan

SAMPLE_RATE = 22050


@dataclass(frozen=True)
class Settings:
    director: str = "offline"
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    model: str = "gpt-4o"
    emotion_backend: str = "dialogue"
    engine: str = "composer"
    condition: str = "m2m"
    runs_root: Path = Path("runs")
    crossfade_s: float = 1.5
    seconds_per_page: float = 4.0
    render_delay_s: float = 0.0


def _run(book: Book, settings: Settings) -> RunFolder:
    return RunFolder(settings.runs_root, book.id, settings.condition)  # type: ignore[arg-type]


def _prov(stage: str) -> Provenance:
    return Provenance(stage=stage, backend="fake-offline", input_hash="x")


def plan_book(book: Book, settings: Settings, progress: Callable[[str, int, int], None] | None = None) -> RunView:
    run = _run(book, settings)
    if run.read("captions", CaptionSheet) is None:
        pages = [p.index for p in book.pages]
        chunks = [tuple(pages[i:i + 3]) for i in range(0, len(pages), 3)]
        plan = ScenePlan(tuple(Scene(i, c, tuple(t.id for p in c for t in book.pages[p].texts))
                               for i, c in enumerate(chunks)))
        probs = {"neutral": 0.57, "surprise": 0.13, "fear": 0.13, "happiness": 0.17}
        report = EmotionReport("fake-dialogue", (), {p: Distribution(probs, 2) for p in pages},
                               {s.index: Distribution(probs, 6) for s in plan.scenes})
        sheet = DirectiveSheet(tuple(Directive(s.index, f"Scene {s.index + 1}: calm strings, slowly rising")
                                     for s in plan.scenes))
        cues = CaptionSheet(tuple(Cue(p, p // 3, f"page {p + 1}: soft piano in C major, 80 BPM",
                                      Plan(80, "C", "major", ("acoustic grand piano",), 0.3, "calm"))
                                  for p in pages))
        for stage, data in (("scenes", plan), ("emotions", report), ("directives", sheet), ("captions", cues)):
            run.write(stage, data, _prov(stage))
    return open_run(book, settings)


def _version(caption: str) -> str:
    return hashlib.sha256(caption.encode()).hexdigest()[:12]


def render_pages(book: Book, settings: Settings, pages: Sequence[int],
                 progress: Callable[[str, int, int], None] | None = None) -> RunView:
    run = _run(book, settings)
    sheet = run.read("captions", CaptionSheet)
    assert sheet is not None, "plan first"
    run.audio_dir.mkdir(parents=True, exist_ok=True)
    for done, page in enumerate(pages, 1):
        cue = sheet.data.cue(page)
        version = _version(cue.caption)
        root = 110.0 * 2 ** ((int(version, 16) % 12) / 12)
        t = np.arange(int(settings.seconds_per_page * SAMPLE_RATE)) / SAMPLE_RATE
        # Whole cycles of every partial over the clip, so the loop is seamless.
        freqs = [round(f * settings.seconds_per_page) / settings.seconds_per_page for f in (root, root * 1.25, root * 1.5)]
        audio = sum(np.sin(2 * np.pi * f * t) for f in freqs) * 0.12
        path = run.audio_dir / f"page-{page:03d}.ogg"
        sf.write(path, np.stack([audio, audio], axis=1).astype(np.float32), SAMPLE_RATE, format="OGG")
        (run.audio_dir / f"page-{page:03d}.json").write_text(json.dumps(
            {"version": version, "seconds": settings.seconds_per_page, "caption": cue.caption, "scene": cue.scene}))
        if settings.render_delay_s:
            time.sleep(settings.render_delay_s)
        if progress is not None:
            progress("music", done, len(pages))
    return open_run(book, settings)


def open_run(book: Book, settings: Settings) -> RunView:
    run = _run(book, settings)
    records = {s: run.read(s, cls) for s, cls in (("scenes", ScenePlan), ("emotions", EmotionReport),
                                                   ("directives", DirectiveSheet), ("captions", CaptionSheet))}
    clips: dict[int, ClipInfo] = {}
    if run.audio_dir.is_dir():
        for meta in sorted(run.audio_dir.glob("page-*.json")):
            data: dict[str, Any] = json.loads(meta.read_text())
            page = int(meta.stem.split("-")[1])
            clips[page] = ClipInfo(meta.with_suffix(".ogg"), data["seconds"], settings.engine, data["caption"],
                                   data["scene"], data["version"])
    return RunView(*(r.data if r else None for r in records.values()),
                   provenance={s: r.provenance for s, r in records.items() if r}, clips=clips)


def edit_caption(book: Book, settings: Settings, page: int, caption: str) -> None:
    if not caption.strip():
        raise ValueError("caption: empty; write what the music should sound like")
    run = _run(book, settings)
    record = run.read("captions", CaptionSheet)
    assert record is not None
    cues = tuple(Cue(c.page, c.scene, caption.strip(), c.plan) if c.page == page else c for c in record.data.cues)
    run.write("captions", CaptionSheet(cues), record.provenance)


def edit_directive(book: Book, settings: Settings, scene: int, text: str) -> None:
    run = _run(book, settings)
    record = run.read("directives", DirectiveSheet)
    assert record is not None
    run.write("directives", DirectiveSheet(tuple(Directive(d.scene, text if d.scene == scene else d.text)
                                                 for d in record.data.directives)), record.provenance)
    captions = run.read("captions", CaptionSheet)
    assert captions is not None
    cues = tuple(Cue(c.page, c.scene, f"{text} (page {c.page + 1})", c.plan) if c.scene == scene else c
                 for c in captions.data.cues)
    run.write("captions", CaptionSheet(cues), captions.provenance)
