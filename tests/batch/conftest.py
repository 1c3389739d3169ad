"""Small generated catalogues for the batch tests: simple-format books, an archive, a broken book."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from tests.conftest import write_simple

SPEAKERS = ("Aki", "Mina")
LINES = ("Good morning!", "What happened here?", "I can't believe it...", "We did it!", "Later that night.",
         "Run!", "It's so quiet.", "Thank you.")


def transcript(title: str, pages: int) -> dict:
    """A comic of ``pages`` pages, two speakers taking turns, a time skip halfway (a scene change)."""
    return {"title": title, "direction": "ltr", "pages": [
        {"image": f"{i + 1:03d}.png", "lines": [
            {"speaker": SPEAKERS[i % 2], "text": LINES[i % len(LINES)]},
            {"speaker": SPEAKERS[(i + 1) % 2], "text": "The next morning." if i == pages // 2 else LINES[(i + 3) % 8]}]}
        for i in range(pages)]}


def write_book(folder: Path, pages: int) -> Path:
    return write_simple(folder, transcript(folder.name, pages), images=pages)


def zip_folder(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.iterdir()):
            zf.write(path, path.name)
    return archive


def write_catalogue(root: Path, pages: int = 3, broken: bool = True) -> Path:
    """Two good books (a folder and a .cbz) and, when ``broken``, one whose transcript is not JSON."""
    write_book(root / "alpha", pages)
    packed = write_book(root.parent / f"{root.name}-src" / "beta", pages)
    zip_folder(packed, root / "beta.cbz")
    if broken:
        bad = write_book(root / "gamma", pages)
        (bad / "transcript.json").write_text("{ this is not json", encoding="utf-8")
    return root


def cue_sheet(run: Path) -> dict:
    return json.loads((run / "soundtrack.json").read_text(encoding="utf-8"))["data"]


def write_tiny_musicgen_cache(cache: Path, model_id: str = "facebook/musicgen-small") -> Path:
    """A Hugging Face hub cache holding a tiny randomly initialised MusicGen under ``model_id``, laid
    out as a download leaves it (refs/main -> snapshots/<revision>), so the real loader finds it."""
    from m2m.music.random_model import random_musicgen

    repo = cache / f"models--{model_id.replace('/', '--')}"
    revision = "0" * 40
    loaded = random_musicgen(seed=0)
    loaded.model.save_pretrained(repo / "snapshots" / revision)
    loaded.processor.save_pretrained(repo / "snapshots" / revision)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision, encoding="utf-8")
    return cache
