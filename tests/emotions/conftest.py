"""Fixtures for stage 2: a tiny open_clip config, synthetic faces and books built in code."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from m2m.book import Book, Character, Face, Page, Text
from m2m.emotions import EMOTIONS
from m2m.scenes import Scene, ScenePlan

TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}

# One look per class: background colour and a shape, so a tiny model can tell them apart.
_COLOURS = [(220, 40, 40), (60, 160, 60), (60, 60, 200), (230, 200, 40), (128, 128, 128), (40, 200, 210), (200, 60, 200)]


def synthetic_face(label: int, rng: np.random.Generator, size: int = 48) -> Image.Image:
    """A face-sized image whose colour and shape say its class, with jitter and noise."""
    colour = tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in _COLOURS[label])
    im = Image.new("RGB", (size, size), colour)
    draw = ImageDraw.Draw(im)
    s = size
    jitter = int(rng.integers(-3, 4))
    shapes = [
        lambda: draw.rectangle([s * 0.25 + jitter, s * 0.25, s * 0.75 + jitter, s * 0.75], fill="white"),
        lambda: draw.ellipse([s * 0.2, s * 0.2 + jitter, s * 0.8, s * 0.8 + jitter], fill="black"),
        lambda: draw.line([0, jitter, s, s + jitter], fill="white", width=6),
        lambda: draw.polygon([(s / 2, s * 0.1), (s * 0.1, s * 0.9), (s * 0.9, s * 0.9)], fill="black"),
        lambda: None,
        lambda: [draw.line([0, y + jitter, s, y + jitter], fill="white", width=3) for y in range(0, s, 10)],
        lambda: [draw.line([x + jitter, 0, x + jitter, s], fill="black", width=3) for x in range(0, s, 10)],
    ]
    shapes[label]()
    noise = rng.integers(-15, 16, size=(size, size, 3))
    return Image.fromarray(np.clip(np.asarray(im, dtype=np.int16) + noise, 0, 255).astype(np.uint8))


def write_kangaiset(root: Path, per_class: int, split: str, seed: int) -> Path:
    """A KangaiSet-layout folder of synthetic faces: images/face/<split>/<emotion>/*.png."""
    rng = np.random.default_rng(seed)
    for label, emotion in enumerate(EMOTIONS):
        folder = root / "images" / "face" / split / emotion
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            synthetic_face(label, rng).save(folder / f"{i:03d}.png")
    return root


def make_book(tmp_path: Path, pages: Sequence[dict], source: str = "") -> Book:
    """A Book from page dicts: {"image": PIL image or None, "faces": [(id, box, character)],
    "texts": [(id, text, speaker)], "size": (w, h)}. Images are saved as PNG under tmp_path."""
    built = []
    characters = set()
    for index, spec in enumerate(pages):
        w, h = spec.get("size", (200, 100))
        image = spec.get("image")
        path = tmp_path / f"{index:03d}.png"
        if isinstance(image, Image.Image):
            image.save(path)
        elif isinstance(image, bytes):
            path.write_bytes(image)
        else:
            Image.new("RGB", (w, h), "white").save(path)
        faces = tuple(Face(fid, index, box, ch) for fid, box, ch in spec.get("faces", ()))
        texts = tuple(Text(tid, index, None, text, speaker) for tid, text, speaker in spec.get("texts", ()))
        characters |= {f.character for f in faces} | {t.speaker for t in texts if t.speaker}
        built.append(Page(index=index, image=str(path), width=w, height=h, faces=faces, texts=texts))
    return Book(id="test", title="test", pages=tuple(built),
                characters=tuple(Character(c, c) for c in sorted(characters)), source=source)


def one_scene(book: Book) -> ScenePlan:
    return ScenePlan((Scene(0, tuple(p.index for p in book.pages)),))


@pytest.fixture
def tiny_clip() -> dict:
    return dict(TINY_CLIP)
