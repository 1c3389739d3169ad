"""Face crops for the image backends: padded, squared, upscaled when tiny, always RGB.

Nothing here raises on bad input from a book: an empty or off-page box, an unreadable page image or
an odd colour mode becomes a per-face warning, and the face is skipped or flagged as doubtful.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from m2m.book import BBox, Book, Face, Page
from m2m.emotions import EMOTIONS, BackendResult, EmotionOptions, FaceEmotion

WHITE = (255, 255, 255)
"""Fill beyond the page edge: manga paper is white, so padding with it adds no drawn structure."""

DEFAULT_PADDING = 0.15
"""Context around a face when neither the options nor the model say otherwise (hair, a raised hand)."""
DEFAULT_CROP_SIZE = 224


@dataclass(frozen=True)
class Crop:
    """A face ready for a model (``image`` is an RGB square), or None with the reason."""

    image: Image.Image | None
    warning: str | None = None


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB: transparency over white, CMYK and palettes converted, 16-bit scaled."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # convert("L") clips wide integer ranges instead of scaling them; stretch to 0..255 ourselves.
        array = np.asarray(image, dtype=np.float64)
        lo, hi = float(array.min(initial=0.0)), float(array.max(initial=0.0))
        scaled = np.zeros_like(array) if hi <= lo else (array - lo) * (255.0 / (hi - lo))
        return Image.fromarray(np.rint(scaled).astype(np.uint8), "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_page_image(path: str) -> tuple[Image.Image | None, str | None]:
    """The page as RGB, or None and a message saying why it can't be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                # No EXIF transpose: annotation boxes are in the stored pixel grid.
                im.load()
                return to_rgb(im), None
    except FileNotFoundError:
        return None, f"page image {path} not found"
    except UnidentifiedImageError:
        return None, f"page image {path} is not an image Pillow can read"
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        return None, f"page image {path} is too large (decompression bomb guard): {e}"
    except (OSError, ValueError, SyntaxError) as e:
        # Truncated or corrupt files surface as OSError (or SyntaxError from some plugins).
        return None, f"page image {path} is unreadable: {e}"


def square_box(box: BBox, padding: float) -> tuple[int, int, int, int]:
    """A square around the box's centre whose side is the longer side plus ``padding`` on each side."""
    xmin, ymin, xmax, ymax = box
    side = max(xmax - xmin, ymax - ymin) * (1.0 + 2.0 * padding)
    cx, cy = (xmin + xmax) / 2.0, (ymin + ymax) / 2.0
    half = max(side, 1.0) / 2.0
    left, top = round(cx - half), round(cy - half)
    size = max(1, round(2 * half))
    return left, top, left + size, top + size


def crop_face(page_image: Image.Image, box: BBox, options: EmotionOptions) -> Crop:
    """Cut one face out of an RGB page. Box in page pixels (xmin, ymin, xmax, ymax)."""
    width, height = page_image.size
    try:
        xmin, ymin, xmax, ymax = (int(v) for v in box)
    except (TypeError, ValueError):
        return Crop(None, f"box {box!r} is not four integers; skipped")
    if xmax <= xmin or ymax <= ymin:
        return Crop(None, f"box {tuple(box)} has zero area; skipped")
    cx0, cy0, cx1, cy1 = max(0, xmin), max(0, ymin), min(width, xmax), min(height, ymax)
    if cx1 <= cx0 or cy1 <= cy0:
        return Crop(None, f"box {tuple(box)} lies outside the {width}x{height} page; skipped")
    notes: list[str] = []
    if (cx0, cy0, cx1, cy1) != (xmin, ymin, xmax, ymax):
        notes.append(f"box {tuple(box)} extends beyond the {width}x{height} page; clipped")
    face_w, face_h = cx1 - cx0, cy1 - cy0
    if min(face_w, face_h) < options.tiny_face:
        notes.append(f"tiny face ({face_w}x{face_h} px), upscaled; doubtful")
    padding = DEFAULT_PADDING if options.padding is None else options.padding
    crop_size = DEFAULT_CROP_SIZE if options.crop_size is None else options.crop_size
    left, top, right, bottom = square_box((cx0, cy0, cx1, cy1), padding)
    # Pillow's crop fills outside the image with black; paste onto white instead.
    canvas = Image.new("RGB", (right - left, bottom - top), WHITE)
    inside = (max(0, left), max(0, top), min(width, right), min(height, bottom))
    canvas.paste(page_image.crop(inside), (inside[0] - left, inside[1] - top))
    if canvas.width != crop_size:
        canvas = canvas.resize((crop_size, crop_size), Image.Resampling.BICUBIC)
    return Crop(canvas, "; ".join(notes) or None)


def scaled_box(box: BBox, page: Page, actual: tuple[int, int]) -> BBox:
    """Annotation boxes are in the page's declared size; map them onto the image's real size."""
    sx, sy = actual[0] / page.width, actual[1] / page.height
    return (round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy))


@dataclass(frozen=True)
class FaceCrop:
    face: Face
    crop: Crop


def iter_face_crops(book: Book, options: EmotionOptions) -> Iterator[FaceCrop]:
    """Every face of the book in page order, with its crop or the reason there is none.

    Each page image is opened once and released before the next page.
    """
    for page in book.pages:
        if not page.faces:
            continue
        image, error = load_page_image(page.image)
        if image is None:
            for face in page.faces:
                yield FaceCrop(face, Crop(None, f"{error}; skipped"))
            continue
        mismatch = None
        if page.width > 0 and page.height > 0 and image.size != (page.width, page.height):
            mismatch = (f"page image is {image.size[0]}x{image.size[1]} but the annotation says "
                        f"{page.width}x{page.height}; box rescaled")
        for face in page.faces:
            box = scaled_box(face.bbox, page, image.size) if mismatch else face.bbox
            crop = crop_face(image, box, options)
            if mismatch:
                crop = Crop(crop.image, "; ".join(w for w in (mismatch, crop.warning) if w))
            yield FaceCrop(face, crop)
        image.close()


ClassifyCrops = Callable[[Sequence[Image.Image]], np.ndarray]
"""RGB crops -> probabilities of shape [len(crops), len(EMOTIONS)], columns in EMOTIONS order."""


def predict_from_crops(book: Book, classify: ClassifyCrops, backend: str,
                       options: EmotionOptions) -> BackendResult:
    """Crop every face and classify the crops ``options.batch_size`` at a time."""
    results: list[FaceEmotion | None] = []
    pending: list[tuple[int, FaceCrop]] = []  # (slot in results, crop): skipped faces don't stall a batch

    def flush() -> None:
        if not pending:
            return
        probs = np.asarray(classify([fc.crop.image for _, fc in pending]), dtype=np.float64)
        if probs.shape != (len(pending), len(EMOTIONS)):
            raise ValueError(f"backend {backend}: classifier returned shape {probs.shape}, "
                             f"expected ({len(pending)}, {len(EMOTIONS)})")
        for (slot, fc), row in zip(pending, probs, strict=True):
            results[slot] = _face_emotion(fc, backend, dict(zip(EMOTIONS, map(float, row), strict=True)))
        pending.clear()

    for fc in iter_face_crops(book, options):
        if fc.crop.image is None:
            results.append(_face_emotion(fc, backend, {}))
            continue
        results.append(None)
        pending.append((len(results) - 1, fc))
        if len(pending) >= options.batch_size:
            flush()
    flush()
    done = tuple(r for r in results if r is not None)
    return BackendResult(done)


def _face_emotion(fc: FaceCrop, backend: str, probabilities: dict[str, float]) -> FaceEmotion:
    return FaceEmotion(page=fc.face.page, face_id=fc.face.id, character=fc.face.character,
                       probabilities=probabilities, backend=backend, warning=fc.crop.warning,
                       evidence="face crop" if probabilities else "")


def square_pad(image: Image.Image, size: int) -> Image.Image:
    """A face image that is already cropped (KangaiSet) as an RGB ``size`` square, padded with white."""
    image = to_rgb(image)
    side = max(image.size)
    canvas = Image.new("RGB", (side, side), WHITE)
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return canvas if side == size else canvas.resize((size, size), Image.Resampling.BICUBIC)
