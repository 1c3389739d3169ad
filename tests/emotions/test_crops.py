"""Face crops and bad input: every problem is a per-face warning, never a crash."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from m2m.emotion_backends.crops import crop_face, predict_from_crops, square_box, to_rgb
from m2m.emotions import EMOTIONS, EmotionOptions, FaceEmotion, recognise_emotions

from .conftest import make_book, one_scene


class _Uniform:
    """A stand-in image backend: records the crops it sees and answers uniformly."""

    name = "uniform"

    def __init__(self) -> None:
        self.batches: list[list[Image.Image]] = []

    def settings(self):
        return {}

    def classify(self, images):
        self.batches.append(list(images))
        return np.full((len(images), len(EMOTIONS)), 1 / len(EMOTIONS))

    def predict(self, book, scenes, options):
        return predict_from_crops(book, self.classify, self.name, options)


def test_crop_is_square_padded_and_upscaled():
    page = Image.new("RGB", (100, 100), "white")
    page.paste((0, 0, 0), (40, 40, 50, 60))  # a 10x20 black face
    crop = crop_face(page, (40, 40, 50, 60), EmotionOptions(padding=0.0, crop_size=40, tiny_face=8))
    assert crop.image.size == (40, 40) and crop.warning is None
    arr = np.asarray(crop.image)
    assert arr[20, 20].tolist() == [0, 0, 0] and arr[20, 2].tolist() == [255, 255, 255]  # squared with context
    assert square_box((0, 0, 10, 20), 0.5) == (-15, -10, 25, 30)


def test_crop_beyond_the_edge_is_white_and_flagged():
    page = Image.new("RGB", (50, 50), "black")
    crop = crop_face(page, (40, 40, 60, 60), EmotionOptions(padding=0.0, crop_size=20))
    assert "clipped" in crop.warning
    crop = crop_face(page, (0, 0, 50, 50), EmotionOptions(padding=0.5, crop_size=100))
    arr = np.asarray(crop.image)
    assert arr[0, 0].tolist() == [255, 255, 255] and arr[50, 50].tolist() == [0, 0, 0]


@pytest.mark.parametrize("box, message", [
    ((10, 10, 10, 30), "zero area"),
    ((30, 30, 20, 40), "zero area"),
    ((300, 300, 340, 340), "outside"),
    ((-50, -50, -10, -10), "outside"),
])
def test_bad_boxes_are_skipped(box, message):
    crop = crop_face(Image.new("RGB", (100, 100)), box, EmotionOptions())
    assert crop.image is None and message in crop.warning


def test_tiny_face_is_doubtful():
    crop = crop_face(Image.new("RGB", (100, 100)), (10, 10, 14, 15), EmotionOptions())
    assert crop.image.size == (224, 224) and "tiny face (4x5 px)" in crop.warning


@pytest.mark.parametrize("mode", ["L", "1", "P", "CMYK", "RGBA", "LA", "I;16", "I", "F"])
def test_modes_become_rgb(mode):
    im = Image.new("RGB", (8, 8), (200, 100, 50))
    if mode == "P":
        im = im.convert("P", palette=Image.Palette.ADAPTIVE)
    elif mode in ("I;16", "I", "F"):
        im = Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).convert(mode)
    else:
        im = im.convert(mode)
    out = to_rgb(im)
    assert out.mode == "RGB" and out.size == (8, 8)
    if mode in ("I;16", "I", "F"):
        assert np.asarray(out).max() == 255  # scaled, not clipped to white


def _png(mode: str) -> Image.Image:
    im = Image.new("RGB", (120, 80), (250, 250, 250))
    im.paste((10, 10, 10), (20, 20, 50, 50))
    if mode == "P":
        return im.convert("P", palette=Image.Palette.ADAPTIVE)
    if mode == "PT":  # a palette with a transparent index
        p = im.convert("P", palette=Image.Palette.ADAPTIVE)
        p.info["transparency"] = 0
        return p
    return im.convert(mode)


def test_bad_input_book_never_crashes(tmp_path):
    pages = [
        {"image": _png("L"), "size": (120, 80), "faces": [("gray", (20, 20, 50, 50), "a")]},
        {"image": _png("CMYK").convert("RGB"), "size": (120, 80), "faces": [("cmyk-ish", (20, 20, 50, 50), "a")]},
        {"image": _png("P"), "size": (120, 80), "faces": [("palette", (20, 20, 50, 50), "a")]},
        {"image": _png("PT"), "size": (120, 80), "faces": [("palette-t", (20, 20, 50, 50), "a")]},
        {"image": b"\x89PNG\r\n\x1a\n corrupt", "size": (120, 80), "faces": [("corrupt", (20, 20, 50, 50), "a")]},
        {"image": _png("RGB"), "size": (120, 80), "faces": [("zero", (20, 20, 20, 50), "a"),
                                                           ("off", (200, 200, 220, 220), "a"),
                                                           ("ok", (60, 10, 100, 70), "b")]},
        {"image": _png("RGB").resize((240, 160)), "size": (120, 80), "faces": [("scaled", (20, 20, 50, 50), "a")]},
    ]
    book = make_book(tmp_path, pages)
    # JPEG CMYK can't be written as PNG; put a real CMYK JPEG in place of page 1.
    _png("CMYK").save(tmp_path / "001.jpg", "JPEG")
    book = book.__class__(**{**book.__dict__, "pages": tuple(
        p if p.index != 1 else p.__class__(**{**p.__dict__, "image": str(tmp_path / "001.jpg")}) for p in book.pages)})
    backend = _Uniform()
    staged = recognise_emotions(book, one_scene(book), backend, EmotionOptions(batch_size=3))
    by_id = {f.face_id: f for f in staged.data.faces}
    assert list(by_id) == ["gray", "cmyk-ish", "palette", "palette-t", "corrupt", "zero", "off", "ok", "scaled"]
    for fid in ("gray", "cmyk-ish", "palette", "palette-t", "ok"):
        assert not by_id[fid].skipped and by_id[fid].warning is None, fid
    assert by_id["corrupt"].skipped and "unreadable" in by_id["corrupt"].warning
    assert by_id["zero"].skipped and "zero area" in by_id["zero"].warning
    assert by_id["off"].skipped and "outside" in by_id["off"].warning
    assert not by_id["scaled"].skipped and "rescaled" in by_id["scaled"].warning
    assert staged.data.pages[4].faces == 0
    assert staged.data.scenes[0].faces == 6
    assert any("3 of 9 faces were skipped" in w for w in staged.provenance.warnings)
    assert [len(b) for b in backend.batches] == [3, 3]  # skipped faces don't break batches
    assert all(im.mode == "RGB" for b in backend.batches for im in b)


def test_missing_image_file(tmp_path):
    book = make_book(tmp_path, [{"faces": [("f", (1, 1, 20, 20), "a")]}])
    (tmp_path / "000.png").unlink()
    face = recognise_emotions(book, one_scene(book), _Uniform()).data.faces[0]
    assert face.skipped and "not found" in face.warning


def test_backend_output_is_normalised(tmp_path):
    class Sloppy(_Uniform):
        def predict(self, book, scenes, options):
            from m2m.emotions import BackendResult
            return BackendResult((FaceEmotion(0, "f", "a", {"anger": 2.0, "fear": 2.0}, "sloppy"),))

    book = make_book(tmp_path, [{"faces": [("f", (1, 1, 20, 20), "a")]}])
    face = recognise_emotions(book, one_scene(book), Sloppy()).data.faces[0]
    assert face.probabilities["anger"] == 0.5 and set(face.probabilities) == set(EMOTIONS)
