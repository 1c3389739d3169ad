"""A tiny study written by the tests themselves: a manifest, short OGG clips and page images.

Two stimuli of four pages each, every page's clip a one-second tone whose pitch tells the
condition (so a test can check which audio a token serves without the token saying so).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image, ImageDraw

from m2m.study import CONDITIONS, RatingsStore, Stimulus, Study, save_study

BOOK = "TinyBook"
SAMPLE_RATE = 22_050
TONES = {"m2m": 440.0, "baseline": 550.0, "random": 660.0}
ADMIN_TOKEN = "researcher-secret-token"
CONSENT = "I agree to take part. My answers are stored under an anonymous id."


def write_tone(path: Path, hz: float, seconds: float = 1.0) -> Path:
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    wave = (0.2 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.stack([wave, wave], axis=1), SAMPLE_RATE, format="OGG", subtype="VORBIS")
    return path


def write_page(path: Path, number: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (300, 420), (245, 240, 230))
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 20, 280, 400), outline=(30, 30, 30), width=4)
    draw.text((130, 200), f"page {number + 1}", fill=(0, 0, 0))
    image.save(path, "PNG")
    return path


def make_study_dir(folder: Path, n_stimuli: int = 2, pages: int = 4) -> Study:
    stimuli = []
    for i in range(n_stimuli):
        page_range = tuple(range(i * pages, (i + 1) * pages))
        stimuli.append(Stimulus(id=f"s{i + 1}", book_id=BOOK, pages=page_range,
                                versions={c: f"runs/{BOOK}/{c}" for c in CONDITIONS}))
        for page in page_range:
            write_page(folder / "pages" / BOOK / f"{page:03d}.png", page)
            for condition in CONDITIONS:
                write_tone(folder / "runs" / BOOK / condition / "audio" / f"page-{page:03d}.ogg", TONES[condition])
    study = Study(id="tiny-within", title="Tiny listening study", design="within-scene", engine="composer",
                  stimuli=tuple(stimuli), consent_text=CONSENT)
    save_study(study, folder / "study.json")
    return study


def write_cue_sheet(folder: Path, condition: str, pages: range, moves: dict[int, tuple[str, float, float, float]],
                    seconds: float = 1.0, bars: int = 0) -> None:
    """The version's ``soundtrack.json`` as ``m2m render`` writes it, for ``pages``: ``moves`` maps a
    page to the transition chosen into it (kind, fade, silence, stinger seconds); a stinger's clip is
    a tone of its length at 880 Hz. Each clip is ``seconds`` long, of ``bars`` bars (0: not said)."""
    from m2m.music.render import SoundtrackCue, SoundtrackSettings
    from m2m.runs import Provenance, RunFolder
    from m2m.soundtrack import Soundtrack

    run = RunFolder(folder / "runs", BOOK, condition)
    cues = []
    for page in pages:
        kind, fade, silence, stinger_seconds = moves.get(page, ("", 1.5, 0.0, 0.0))
        stinger = f"audio/stinger-{page:03d}.ogg" if kind == "stinger" else ""
        if stinger:
            write_tone(run.path / stinger, 880.0, stinger_seconds)
        cues.append(SoundtrackCue(page=page, scene=0, file=f"audio/page-{page:03d}.ogg", start=0.0, seconds=seconds,
                                  loop=True, crossfade=fade, engine="composer", caption="", hash=f"h{page}",
                                  details={"bars": bars} if bars else {}, transition=kind, silence=silence,
                                  stinger=stinger, stinger_seconds=stinger_seconds))
    run.write("soundtrack", Soundtrack(BOOK, condition, tuple(cues), (), SoundtrackSettings()),
              Provenance("soundtrack", "composer", "test"))


@pytest.fixture(scope="session")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("study")
    make_study_dir(folder)
    return folder


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RatingsStore]:
    with RatingsStore(tmp_path / "data" / "study.sqlite3") as s:
        yield s


@dataclass(frozen=True)
class Live:
    url: str
    store: RatingsStore


def serve_in_thread(app, port: int):
    """A real uvicorn server on 127.0.0.1 in a daemon thread; returns (server, thread) once it listens."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return server, thread
