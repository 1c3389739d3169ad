"""The checks a page passes before a reader trusts it: its image and the boxes drawn on it.

Books come from uploads, so an image is opened only as far as its header (format and size) and
refused unless it is JPEG, PNG or WebP within the pixel cap; a box must lie inside its page. Both
readers (:mod:`m2m.manga109`, :mod:`m2m.simple_format`) check the same way, so the rules are here once.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from m2m.book_data import BookError, LoadLimits

IMAGE_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
"""Pillow format name -> MIME type, for the only image types a book may hold."""


def check_image(path: Path, limits: LoadLimits | None = None) -> tuple[int, int]:
    """Open an image's header and check it is JPEG, PNG or WebP and not a decompression bomb.

    Returns (width, height) in pixels.
    """
    limits = limits or LoadLimits()
    try:
        with warnings.catch_warnings():
            # Pillow only warns about decompression bombs below twice its limit; for untrusted
            # books a warning is already a refusal.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                fmt, size = im.format, im.size
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise BookError(f"{path}: image too large (decompression bomb guard): {e}") from e
    except UnidentifiedImageError as e:
        raise BookError(f"{path}: not an image Pillow can read (JPEG, PNG or WebP expected)") from e
    except OSError as e:
        raise BookError(f"{path}: unreadable image: {e}") from e
    if fmt not in IMAGE_FORMATS:
        raise BookError(f"{path}: unsupported image type {fmt}; use JPEG, PNG or WebP")
    if size[0] * size[1] > limits.max_image_pixels:
        raise BookError(f"{path}: image of {size[0]}x{size[1]} pixels is larger than the limit of "
                        f"{limits.max_image_pixels} pixels")
    return size


def check_box(box: Sequence[int], width: int, height: int, where: str) -> None:
    xmin, ymin, xmax, ymax = box
    if not (0 <= xmin <= xmax <= width and 0 <= ymin <= ymax <= height):
        raise BookError(f"{where}: box {tuple(box)} is outside the {width}x{height} page")
