#!/usr/bin/env python3
"""Draw m2m's own example manga, 『潮風デイズ』 (ShiokazeDays), and store it in the Manga109 layout.

Run ``python examples/draw_example.py`` from the repository root. It needs only Pillow, numpy and
the Noto CJK fonts (Debian: ``fonts-noto-cjk``), and it is deterministic: every random choice
comes from a seeded ``random.Random``, so the same fonts give byte-identical output.

Written files, all under ``examples/manga109/``:

* ``books.txt``                         the book name
* ``images/ShiokazeDays/NNN.jpg``       16 two-page spreads, 1654x1170, right half read first
* ``annotations/ShiokazeDays.xml``      Manga109 annotations: frame, face, body, text
* ``relationships/ShiokazeDays.xml``    Manga109Dialog speakers (text id -> speaker's body id)
* ``glosses/ShiokazeDays.json``         English gloss of every text
* ``ground_truth/ShiokazeDays.json``    the scenes as written and the emotion drawn on each face

The annotations are not guessed afterwards: every box is measured from what was drawn (a
character's body box is the bounding box of its own ink layer, a text box the bounding box of
its glyphs), so the boxes are as tight as the drawing.
"""

from __future__ import annotations

import json
import math
import random
import sys
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFont

BOOK = "ShiokazeDays"
TITLE_JA = "潮風デイズ"
OUT = Path(__file__).resolve().parent / "manga109"

SPREAD_W, SPREAD_H = 1654, 1170  # Manga109's spread size
PAGE_W = SPREAD_W // 2
SS = 2  # supersampling: draw at 2x and downscale, because ImageDraw has no antialiasing
JPEG_QUALITY = 85
# Screentone geometry, in supersampled pixels. A 45-degree grid whose pitch is 8*sqrt(2) repeats
# every 8 final pixels across and down, and the phase puts each dot in the middle of a JPEG 8x8
# block: every toned block is then the same few DCT coefficients, which makes the JPEGs about a
# third smaller than an arbitrary grid, with the same look.
TONE_PERIOD = 8 * math.sqrt(2) * SS / 2
TONE_ANGLE = 45.0
TONE_PHASE = 7.5
TONE_INK: tuple[int, int, int, int] = (0, 0, 0, 255)  # colour of the dots

Box = tuple[float, float, float, float]
Pt = tuple[float, float]
RGBA = tuple[int, int, int, int]

INK: RGBA = (0, 0, 0, 255)
PAPER: RGBA = (255, 255, 255, 255)
CLEAR: RGBA = (255, 255, 255, 0)


def gray(v: int) -> RGBA:
    return (v, v, v, 255)


# =============================================================================================
# Fonts

FONT_DIRS = (
    Path("/usr/share/fonts/opentype/noto"),  # Debian / Ubuntu fonts-noto-cjk
    Path("/usr/share/fonts/noto-cjk"),  # Arch
    Path("/usr/share/fonts/google-noto-cjk"),  # Fedora
    Path("/usr/local/share/fonts"),
    Path.home() / ".fonts",
    Path("/System/Library/Fonts"),
)
FONT_FILES = {
    "serif": "NotoSerifCJK-Bold.ttc",  # dialogue: Mincho-like, as printed manga set speech
    "serif_regular": "NotoSerifCJK-Regular.ttc",  # narration boxes
    "sans": "NotoSansCJK-Bold.ttc",  # shouts, sound effects and the cover title
}


@cache
def font_path(kind: str) -> Path:
    name = FONT_FILES[kind]
    for d in FONT_DIRS:
        if (d / name).is_file():
            return d / name
    raise SystemExit(f"draw_example.py: font {name} not found in any of "
                     f"{', '.join(str(d) for d in FONT_DIRS)}. Install the Noto CJK fonts "
                     f"(Debian/Ubuntu: apt-get install fonts-noto-cjk).")


@cache
def font(kind: str, size: float) -> ImageFont.FreeTypeFont:
    """A Japanese face of the Noto CJK collection at `size` final pixels (loaded at SS x)."""
    path = font_path(kind)
    for index in range(8):  # the collection's order differs between releases: find "JP"
        f = ImageFont.truetype(str(path), round(size * SS), index=index)
        if "JP" in f.getname()[0]:
            return f
    raise SystemExit(f"draw_example.py: {path} has no Japanese (JP) face")


# =============================================================================================
# Canvas: global page coordinates in, supersampled pixels out


def _dot_distance(x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """Distance (in periods) from each pixel to the nearest dot centre of the book-wide grid.

    The grid is anchored at the spread's origin, not at each canvas, so tone patches drawn in
    different panels and layers line up exactly like one sheet of screentone.
    """
    yy, xx = np.mgrid[y0:y0 + h, x0:x0 + w].astype(np.float32) - TONE_PHASE
    a = math.radians(TONE_ANGLE)
    u = (xx * math.cos(a) + yy * math.sin(a)) / TONE_PERIOD
    v = (-xx * math.sin(a) + yy * math.cos(a)) / TONE_PERIOD
    return np.hypot(u - np.round(u), v - np.round(v))


@lru_cache(maxsize=64)
def halftone(level: float, x0: int, y0: int, w: int, h: int) -> Image.Image:
    """A screentone: mask (255 = ink) of round dots covering about `level` of the area.

    Sizes are supersampled pixels. The dot radius follows from the covered fraction
    (pi r^2 / period^2 = level).
    """
    r = math.sqrt(max(level, 0.0) / math.pi)
    return Image.fromarray(((_dot_distance(x0, y0, w, h) < r) * 255).astype(np.uint8), "L")


def gradient_tone(x0: int, y0: int, w: int, h: int, top: float, bottom: float) -> Image.Image:
    """A screentone mask whose coverage goes from `top` to `bottom` down the area (sky, dusk)."""
    level = top + (bottom - top) * (np.arange(h, dtype=np.float32)[:, None] / max(h - 1, 1))
    r = np.sqrt(np.clip(level, 0, 1) / math.pi)
    return Image.fromarray(((_dot_distance(x0, y0, w, h) < r) * 255).astype(np.uint8), "L")


class Canvas:
    """An RGBA image covering the page rectangle (x0, y0, w, h), drawn in page coordinates.

    Every drawing call takes final-page pixel coordinates, so the code that composes a panel
    never thinks about supersampling or about where the panel's image sits on the spread.
    """

    def __init__(self, x0: float, y0: float, w: float, h: float, transparent: bool = False):
        self.x0, self.y0, self.w, self.h = x0, y0, w, h
        self.size = (max(1, round(w * SS)), max(1, round(h * SS)))
        self.img = Image.new("RGBA", self.size, CLEAR if transparent else PAPER)
        self.draw = ImageDraw.Draw(self.img)

    # -- coordinates ---------------------------------------------------------------------------
    def p(self, x: float, y: float) -> Pt:
        return ((x - self.x0) * SS, (y - self.y0) * SS)

    def ps(self, pts: list[Pt]) -> list[Pt]:
        return [self.p(x, y) for x, y in pts]

    # -- primitives ----------------------------------------------------------------------------
    def ellipse(self, cx: float, cy: float, rx: float, ry: float, fill: RGBA | None = None,
                outline: RGBA | None = None, width: float = 0.0) -> None:
        box = [*self.p(cx - rx, cy - ry), *self.p(cx + rx, cy + ry)]
        if box[2] <= box[0] or box[3] <= box[1]:
            return
        self.draw.ellipse(box, fill=fill, outline=outline, width=max(1, round(width * SS)) if outline else 0)

    def polygon(self, pts: list[Pt], fill: RGBA | None = None, outline: RGBA | None = None,
                width: float = 0.0) -> None:
        if fill is not None:
            self.draw.polygon(self.ps(pts), fill=fill)
        if outline is not None and width > 0:
            self.line(pts + [pts[0], pts[1]], width, outline)

    def line(self, pts: list[Pt], width: float, fill: RGBA = INK, caps: bool = False) -> None:
        w = max(1, round(width * SS))
        self.draw.line(self.ps(pts), fill=fill, width=w, joint="curve")
        if caps:  # round ends, so thick strokes (limbs, tails) don't end in square stubs
            for x, y in (pts[0], pts[-1]):
                self.ellipse(x, y, width / 2, width / 2, fill=fill)

    def rect(self, box: Box, fill: RGBA | None = None, outline: RGBA | None = None, width: float = 0.0) -> None:
        x0, y0, x1, y1 = box
        self.polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], fill, outline, width)

    def stroke(self, pts: list[Pt], width: float, fill: RGBA, lw: float, tone: float = 0.0) -> None:
        """A thick outlined stroke (an arm, a leg): black wide line, then the fill inside it."""
        self.line(pts, width + 2 * lw, INK, caps=True)
        self.line(pts, width, fill, caps=True)
        if tone > 0:
            m = self.mask()
            d = ImageDraw.Draw(m)
            d.line(self.ps(pts), fill=255, width=max(1, round(width * SS)), joint="curve")
            self.apply_tone(m, tone)

    # -- screentone ----------------------------------------------------------------------------
    def mask(self) -> Image.Image:
        return Image.new("L", self.size, 0)

    def mask_polygon(self, pts: list[Pt]) -> Image.Image:
        m = self.mask()
        ImageDraw.Draw(m).polygon(self.ps(pts), fill=255)
        return m

    def mask_ellipse(self, cx: float, cy: float, rx: float, ry: float) -> Image.Image:
        m = self.mask()
        ImageDraw.Draw(m).ellipse([*self.p(cx - rx, cy - ry), *self.p(cx + rx, cy + ry)], fill=255)
        return m

    def apply_tone(self, shape: Image.Image, level: float) -> None:
        dots = halftone(round(level, 3), round(self.x0 * SS), round(self.y0 * SS), *self.size)
        self.img.paste(TONE_INK, (0, 0, *self.size), ImageChops.multiply(shape, dots))

    def apply_pattern(self, shape: Image.Image, pattern: Image.Image, color: RGBA = INK) -> None:
        self.img.paste(color, (0, 0, *self.size), ImageChops.multiply(shape, pattern))

    def tone_polygon(self, pts: list[Pt], level: float) -> None:
        self.apply_tone(self.mask_polygon(pts), level)

    def tone_ellipse(self, cx: float, cy: float, rx: float, ry: float, level: float) -> None:
        self.apply_tone(self.mask_ellipse(cx, cy, rx, ry), level)

    def tone_rect(self, box: Box, level: float) -> None:
        x0, y0, x1, y1 = box
        self.tone_polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], level)

    def gradient_rect(self, box: Box, top: float, bottom: float) -> None:
        x0, y0, x1, y1 = box
        m = self.mask_polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
        # the gradient runs over the rectangle itself, not the whole canvas
        py0, py1 = self.p(x0, y0)[1], self.p(x1, y1)[1]
        g = Image.new("L", self.size, 0)
        gh = max(1, round(py1 - py0))
        g.paste(gradient_tone(round(self.x0 * SS), round(self.y0 * SS + py0), self.size[0], gh, top, bottom), (0, round(py0)))
        self.apply_pattern(m, g, TONE_INK)

    # -- text ----------------------------------------------------------------------------------
    def text(self, x: float, y: float, s: str, f: ImageFont.FreeTypeFont, fill: RGBA = INK,
             anchor: str = "mm", stroke: float = 0.0, stroke_fill: RGBA = PAPER, vertical: bool = False) -> Box:
        """Draw text; returns its ink box in page coordinates."""
        kw = dict(font=f, anchor=anchor, stroke_width=round(stroke * SS))
        if vertical:  # raqm's top-to-bottom layout with the font's vertical glyph forms
            kw.update(direction="ttb", features=["vert"])
        px, py = self.p(x, y)
        self.draw.text((px, py), s, fill=fill, stroke_fill=stroke_fill, **kw)
        left, top, right, bottom = self.draw.textbbox((px, py), s, **kw)
        return (left / SS + self.x0, top / SS + self.y0, right / SS + self.x0, bottom / SS + self.y0)

    def paste_canvas(self, other: Canvas, mask: Image.Image | None = None) -> None:
        """Composite another canvas (a character layer, a panel) onto this one."""
        ox, oy = round((other.x0 - self.x0) * SS), round((other.y0 - self.y0) * SS)
        alpha = other.img.getchannel("A")
        if mask is not None:
            alpha = ImageChops.multiply(alpha, mask)
        self.img.paste(other.img, (ox, oy), alpha)

    def ink_box(self, mask: Image.Image | None = None) -> Box | None:
        """Bounding box (page coordinates) of everything drawn on a transparent layer."""
        alpha = self.img.getchannel("A")
        if mask is not None:
            alpha = ImageChops.multiply(alpha, mask)
        bb = alpha.point(lambda a: 255 if a > 40 else 0).getbbox()
        if bb is None:
            return None
        left, top, right, bottom = bb
        return (left / SS + self.x0, top / SS + self.y0, right / SS + self.x0, bottom / SS + self.y0)


# =============================================================================================
# Characters
#
# A character is drawn around its face: (cx, cy) is the centre of the face, H its height from
# hairline to chin. Everything else is a multiple of H, so a character looks the same at every
# size. `facing` (-1 left, 0 front, 1 right) shifts the features sideways to suggest a turn.

EMOTIONS = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")


@dataclass(frozen=True)
class Look:
    """What tells the characters apart at a glance (shape and value, since the page is gray)."""
    name: str
    eye: tuple[float, float]  # eye half-width, half-height in H
    face_box: Box  # the face annotation box around (cx, cy), in H
    lw: float  # outline weight in H


LOOKS = {
    "hina": Look("ヒナ", (0.085, 0.11), (-0.43, -0.5, 0.43, 0.5), 0.022),
    "sora": Look("ソラ", (0.072, 0.095), (-0.48, -0.5, 0.48, 0.5), 0.024),
    "gen": Look("ゲンじい", (0.06, 0.045), (-0.48, -0.55, 0.48, 0.72), 0.026),
    "maru": Look("マル", (0.0, 0.0), (0, 0, 0, 0), 0.03),
}


@dataclass
class Figure:
    """What the annotator needs from a drawn character: face box and where speech comes from."""
    face: Box | None
    mouth: Pt
    head_r: float


class Local:
    """Maps face-relative units (u right, v down, in H) to page coordinates."""

    def __init__(self, cx: float, cy: float, H: float):
        self.cx, self.cy, self.H = cx, cy, H

    def __call__(self, u: float, v: float) -> Pt:
        return (self.cx + u * self.H, self.cy + v * self.H)

    def pts(self, uv: list[Pt]) -> list[Pt]:
        return [self(u, v) for u, v in uv]


def arc_pts(cu: float, cv: float, ru: float, rv: float, a0: float, a1: float, n: int = 24) -> list[Pt]:
    """Points on an ellipse from angle a0 to a1 (degrees, 0 = right, 90 = down)."""
    return [(cu + ru * math.cos(math.radians(a0 + (a1 - a0) * i / n)),
             cv + rv * math.sin(math.radians(a0 + (a1 - a0) * i / n))) for i in range(n + 1)]


def face_shape(n: int = 40) -> list[Pt]:
    """An anime face in H units: round skull, cheeks narrowing to a soft chin."""
    pts = []
    for i in range(n):
        t = 2 * math.pi * i / n
        s, c = math.sin(t), math.cos(t)
        if c >= 0:
            pts.append((0.42 * s, -0.5 * c))
        else:
            k = -c
            pts.append((0.42 * s * (1 - 0.3 * k ** 1.6), 0.5 * k))
    return pts


# -- hair -------------------------------------------------------------------------------------

def hina_back_hair(cv: Canvas, L: Local, side: int, lw: float) -> None:
    """Hina's ponytail and the back of her hair: dark, so she reads as 'the dark-haired girl'."""
    tail = [(-side * 0.32, -0.55), (-side * 0.72, -0.5), (-side * 0.92, -0.2), (-side * 0.9, 0.25),
            (-side * 0.78, 0.7), (-side * 0.7, 0.95), (-side * 0.62, 0.6), (-side * 0.58, 0.15),
            (-side * 0.45, -0.25)]
    cv.polygon(L.pts(tail), fill=gray(45), outline=INK, width=lw)
    for k in (0.3, 0.55):  # strands, so the ponytail isn't a flat blob
        cv.line(L.pts([(-side * (0.6 + 0.2 * k), -0.35), (-side * (0.85 - 0.1 * k), 0.3), (-side * 0.7, 0.75)]),
                lw * 0.6, gray(170))
    back = arc_pts(0, -0.12, 0.56, 0.64, 150, 390, 30) + [(0.5, 0.45), (-0.5, 0.45)]
    cv.polygon(L.pts(back), fill=gray(45), outline=INK, width=lw)
    # ribbon where the tail is tied: white, the one bright accent on her
    bx, by = -side * 0.5, -0.58
    for d in (-1, 1):
        cv.polygon(L.pts([(bx, by), (bx + d * 0.2, by - 0.12), (bx + d * 0.18, by + 0.1)]),
                   fill=PAPER, outline=INK, width=lw * 0.8)
    cv.ellipse(*L(bx, by), 0.05 * L.H, 0.05 * L.H, fill=PAPER, outline=INK, width=lw * 0.8)


def hina_front_hair(cv: Canvas, L: Local, lw: float) -> None:
    outer = [(-0.44, 0.5), (-0.58, 0.15)] + arc_pts(0, -0.12, 0.58, 0.64, 190, 350, 26) + [(0.58, 0.15), (0.44, 0.5)]
    fringe = [(0.37, 0.12), (0.38, -0.1), (0.3, 0.0), (0.24, -0.2), (0.12, -0.06), (0.04, -0.22),
              (-0.08, -0.07), (-0.18, -0.21), (-0.28, -0.03), (-0.35, -0.16), (-0.38, 0.1)]
    pts = L.pts(outer + fringe)
    cv.polygon(pts, fill=gray(45))
    # the "angel ring" highlight that makes dark manga hair look glossy
    ring = arc_pts(0, -0.1, 0.42, 0.42, 205, 335, 14)
    inner = [(u * 0.86, v * 0.86 + 0.02) for u, v in reversed(ring)]
    cv.polygon(L.pts(ring + inner), fill=gray(200))
    cv.polygon(pts, outline=INK, width=lw)


def sora_hair(cv: Canvas, L: Local, lw: float) -> None:
    """Sora's hair: white and spiky, the opposite silhouette and value of Hina's."""
    spikes = []
    for i in range(15):
        a = 185 + 170 * i / 14
        r = 0.7 if i % 2 else 0.56
        spikes.append((0.6 * r / 0.6 * math.cos(math.radians(a)), -0.12 + r * math.sin(math.radians(a))))
    fringe = [(0.52, 0.05), (0.4, -0.22), (0.34, 0.02), (0.22, -0.24), (0.12, -0.02), (0.02, -0.26),
              (-0.1, -0.04), (-0.2, -0.24), (-0.32, 0.0), (-0.4, -0.2), (-0.52, 0.06)]
    pts = L.pts(spikes + fringe)
    cv.polygon(pts, fill=PAPER, outline=INK, width=lw)
    cv.line(L.pts([(0.02, -0.78), (0.12, -0.95), (0.2, -0.86)]), lw, INK)  # cowlick
    for a, b in (((-0.25, -0.55), (-0.15, -0.35)), ((0.18, -0.6), (0.1, -0.38)), ((0.35, -0.45), (0.3, -0.3))):
        cv.line(L.pts([a, b]), lw * 0.6, INK)
    cv.tone_polygon(L.pts([(-0.45, -0.3), (-0.2, -0.55), (0.2, -0.58), (0.45, -0.3), (0.2, -0.45), (-0.2, -0.42)]), 0.12)


def gen_head(cv: Canvas, L: Local, lw: float) -> None:
    """Gen-jii's bald skull; the headband and beard come after the face."""
    cv.ellipse(*L(0, -0.16), 0.44 * L.H, 0.58 * L.H, fill=PAPER, outline=INK, width=lw)
    for s in (-1, 1):  # ears
        cv.ellipse(*L(s * 0.43, 0.08), 0.07 * L.H, 0.11 * L.H, fill=PAPER, outline=INK, width=lw)


def gen_front(cv: Canvas, L: Local, lw: float) -> None:
    band = [(-0.46, -0.38), (0.46, -0.38), (0.45, -0.24), (-0.45, -0.24)]
    cv.polygon(L.pts(band), fill=PAPER, outline=INK, width=lw)
    cv.tone_polygon(L.pts(band), 0.15)
    knot = [(0.42, -0.36), (0.68, -0.52), (0.62, -0.3), (0.72, -0.12), (0.44, -0.25)]
    cv.polygon(L.pts(knot), fill=PAPER, outline=INK, width=lw)
    for s in (-1, 1):  # gray side hair over the ears' tops
        tuft = [(s * 0.4, -0.24), (s * 0.52, -0.2), (s * 0.55, -0.05), (s * 0.5, 0.02), (s * 0.42, -0.04)]
        cv.polygon(L.pts(tuft), fill=gray(150), outline=INK, width=lw * 0.8)
    # wrinkles on the forehead below the band, and the beard round the chin
    beard = [(-0.4, 0.12), (-0.38, 0.4), (-0.28, 0.58), (-0.16, 0.66), (-0.06, 0.74), (0.04, 0.68),
             (0.14, 0.74), (0.26, 0.6), (0.36, 0.42), (0.4, 0.12), (0.3, 0.3), (0.18, 0.4),
             (0.0, 0.44), (-0.18, 0.4), (-0.3, 0.3)]
    cv.polygon(L.pts(beard), fill=PAPER, outline=INK, width=lw)
    for u in (-0.2, 0.0, 0.2):
        cv.line(L.pts([(u, 0.5), (u * 0.9, 0.64)]), lw * 0.5, gray(90))


# -- faces --------------------------------------------------------------------------------------

def draw_eye(cv: Canvas, L: Local, eu: float, ev: float, rw: float, rh: float, emo: str, side: int,
             lw: float, lashes: bool) -> None:
    """One eye. `side` is -1 for the eye on the viewer's left, 1 for the right (inner = -side)."""
    H = L.H
    ex, ey = L(eu, ev)

    def iris(scale: float = 1.0, hl: float = 1.0) -> None:
        cv.ellipse(ex, ey + 0.1 * rh * H, rw * 0.82 * scale * H, rh * 0.92 * scale * H, fill=gray(35))
        cv.ellipse(ex, ey + 0.18 * rh * H, rw * 0.35 * scale * H, rh * 0.42 * scale * H, fill=INK)
        cv.ellipse(ex + side * rw * 0.3 * H, ey - rh * 0.35 * H, rw * 0.3 * hl * H, rw * 0.3 * hl * H, fill=PAPER)

    def lid(pts: list[Pt], w: float = 2.2) -> None:
        cv.line(L.pts(pts), lw * w, INK, caps=True)

    top = ev - rh
    if emo == "happiness":  # closed, upturned arcs: the classic smiling eye
        lid(arc_pts(eu, ev + 0.35 * rh, rw * 1.05, rh * 1.0, 200, 340, 10), 2.4)
    elif emo == "neutral":
        iris()
        lid([(eu - rw * 1.15, top + 0.35 * rh), (eu, top - 0.05 * rh), (eu + rw * 1.15, top + 0.3 * rh)])
        lid([(eu - rw * 0.6, ev + rh * 1.05), (eu + rw * 0.6, ev + rh * 1.05)], 0.7)
    elif emo == "anger":  # iris cut by a lid that slopes down toward the nose
        iris(0.85)
        inner, outer = (eu - side * rw * 1.15, ev - 0.1 * rh), (eu + side * rw * 1.15, ev - 0.95 * rh)
        cv.polygon(L.pts([inner, outer, (outer[0], ev - 2.0 * rh), (inner[0], ev - 2.0 * rh)]), fill=PAPER)
        lid([inner, outer], 2.6)
        lid([(eu - rw * 0.7, ev + rh * 0.95), (eu + rw * 0.7, ev + rh * 0.95)], 0.8)
    elif emo == "sadness":  # wet eye, lid drooping at the outer corner
        iris(1.0, 1.5)
        cv.ellipse(ex - side * rw * 0.25 * H, ey + rh * 0.45 * H, rw * 0.15 * H, rw * 0.15 * H, fill=PAPER)
        inner, outer = (eu - side * rw * 1.1, top - 0.05 * rh), (eu + side * rw * 1.2, top + 0.45 * rh)
        cv.polygon(L.pts([inner, outer, (outer[0], ev - 2.0 * rh), (inner[0], ev - 2.0 * rh)]), fill=PAPER)
        lid([inner, (eu, top + 0.05 * rh), outer])
        lid([(eu - rw * 0.8, ev + rh * 1.05), (eu, ev + rh * 1.15), (eu + rw * 0.8, ev + rh * 1.05)], 0.9)
    elif emo in ("surprise", "fear"):  # white eyes, pinpoint pupils
        r = 1.1 if emo == "surprise" else 1.0
        cv.ellipse(ex, ey, rw * r * H, rh * r * H, fill=PAPER, outline=INK, width=lw * 1.4)
        pr = rw * (0.3 if emo == "surprise" else 0.22) * H
        cv.ellipse(ex, ey + rh * 0.1 * H, pr, pr * 1.2, fill=INK)
        if emo == "fear":  # trembling pupil
            for d in (-1, 1):
                cv.line([(ex + d * pr * 2.2, ey - pr), (ex + d * pr * 2.6, ey + pr * 1.4)], lw * 0.6)
        lid(arc_pts(eu, ev, rw * r * 1.05, rh * r * 1.05, 200, 340, 10), 1.6)
    elif emo == "disgust":  # squint: one eye narrowed more than the other
        squeeze = 0.25 if side > 0 else 0.55
        iris(0.85)
        cut = ev - rh * squeeze
        cv.polygon(L.pts([(eu - rw * 1.3, cut), (eu + rw * 1.3, cut), (eu + rw * 1.3, ev - 2 * rh),
                          (eu - rw * 1.3, ev - 2 * rh)]), fill=PAPER)
        lid([(eu - rw * 1.2, cut + 0.05 * rh), (eu + rw * 1.2, cut - 0.05 * rh)], 2.4)
        lid([(eu - rw * 0.8, ev + rh * 0.8), (eu + rw * 0.8, ev + rh * 0.7)], 1.0)
    if lashes and emo not in ("happiness",):  # Hina's lash flick at the outer corner
        lid([(eu + side * rw * 1.05, top + 0.35 * rh), (eu + side * rw * 1.45, top - 0.05 * rh)], 1.6)


BROWS = {  # (inner dv, outer dv) above the eye, in eye heights: the emotion's strongest cue
    "neutral": (-0.1, -0.1), "happiness": (-0.35, -0.25), "anger": (0.55, -0.45),
    "sadness": (-0.6, 0.3), "fear": (-0.7, 0.15), "surprise": (-0.9, -0.7), "disgust": (0.4, -0.1),
}


def draw_brows(cv: Canvas, L: Local, dx: float, ev: float, rh: float, emo: str, lw: float, bushy: bool) -> None:
    base = ev - rh * 1.75 - 0.02
    inner_dv, outer_dv = BROWS[emo]
    for side in (-1, 1):
        d_in, d_out = inner_dv, outer_dv
        if emo == "disgust" and side > 0:  # asymmetric: one brow hitches up
            d_in, d_out = -0.4, -0.5
        a = (dx + side * 0.08, base + d_in * rh)
        b = (dx + side * 0.3, base + d_out * rh)
        mid = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 - 0.025)
        if bushy:
            cv.stroke(L.pts([a, mid, b]), 0.07 * L.H, PAPER, lw * L.H * 0.8)
        else:
            cv.line(L.pts([a, mid, b]), lw * L.H * 1.5, INK, caps=True)


def draw_mouth(cv: Canvas, L: Local, mu: float, mv: float, emo: str, lw: float, scale: float) -> None:
    H = L.H
    s = scale
    if emo == "happiness":  # open D-shaped smile with a tongue
        pts = [(mu - 0.12 * s, mv - 0.02), (mu + 0.12 * s, mv - 0.02)] + arc_pts(mu, mv - 0.02, 0.12 * s, 0.12 * s, 0, 180, 16)
        cv.polygon(L.pts(pts), fill=gray(30), outline=INK, width=lw * H)
        cv.ellipse(*L(mu, mv + 0.06 * s), 0.07 * s * H, 0.035 * s * H, fill=gray(150))
    elif emo == "neutral":
        cv.line(L.pts([(mu - 0.05 * s, mv), (mu + 0.05 * s, mv + 0.005)]), lw * H * 1.2, INK, caps=True)
    elif emo == "anger":  # gritted teeth
        box = [(mu - 0.13 * s, mv - 0.04 * s), (mu + 0.13 * s, mv - 0.04 * s), (mu + 0.11 * s, mv + 0.06 * s),
               (mu - 0.11 * s, mv + 0.06 * s)]
        cv.polygon(L.pts(box), fill=PAPER, outline=INK, width=lw * H * 1.3)
        cv.line(L.pts([(mu - 0.12 * s, mv + 0.01 * s), (mu + 0.12 * s, mv + 0.01 * s)]), lw * H * 0.7)
        for k in (-0.06, 0.0, 0.06):
            cv.line(L.pts([(mu + k * s, mv - 0.04 * s), (mu + k * s, mv + 0.06 * s)]), lw * H * 0.6)
    elif emo == "sadness":  # small trembling frown
        cv.line(L.pts(arc_pts(mu, mv + 0.05 * s, 0.07 * s, 0.05 * s, 200, 340, 8)), lw * H * 1.2, INK, caps=True)
    elif emo == "surprise":  # O mouth
        cv.ellipse(*L(mu, mv + 0.02 * s), 0.055 * s * H, 0.075 * s * H, fill=gray(30), outline=INK, width=lw * H)
    elif emo == "fear":  # wavy, clenched
        pts = [(mu - 0.12 * s + 0.24 * s * i / 12, mv + 0.025 * s * math.sin(i * math.pi / 2)) for i in range(13)]
        cv.line(L.pts(pts), lw * H * 1.2, INK, caps=True)
    elif emo == "disgust":  # skewed, one corner pulled down
        pts = [(mu - 0.1 * s, mv - 0.02 * s), (mu - 0.02 * s, mv + 0.01 * s), (mu + 0.05 * s, mv - 0.005 * s),
               (mu + 0.11 * s, mv + 0.05 * s)]
        cv.line(L.pts(pts), lw * H * 1.3, INK, caps=True)


def draw_extras(cv: Canvas, L: Local, dx: float, emo: str, lw: float) -> None:
    """The manga signs around a face: blush, tears, sweat, veins, gloom lines."""
    H = L.H
    w = lw * H
    if emo == "happiness":
        for s in (-1, 1):
            for k in range(3):
                u = dx + s * 0.22 + (k - 1) * 0.045
                cv.line(L.pts([(u + 0.02, 0.17), (u - 0.015, 0.23)]), w * 0.7, gray(60))
    elif emo == "sadness":
        for s in (-1, 1):  # tear streams down both cheeks
            u = dx + s * 0.2
            stream = [(u - 0.03, 0.16), (u + 0.03, 0.16), (u + 0.035, 0.42), (u - 0.035, 0.42)]
            cv.polygon(L.pts(stream), fill=PAPER, outline=INK, width=w * 0.7)
            drop_at(cv, *L(u + s * 0.06, 0.55), 0.045 * H, w * 0.7)
    elif emo == "fear":
        for u, v, r in ((0.5, -0.15, 0.06), (-0.52, 0.05, 0.045), (0.56, 0.12, 0.035)):
            drop_at(cv, *L(u, v), r * H, w * 0.8)
        for k in range(6):  # gloom lines across the top of the face
            u = -0.25 + k * 0.1
            cv.line(L.pts([(u, -0.15), (u, 0.02)]), w * 0.5, gray(60))
    elif emo == "anger":  # cross-popping vein on the temple
        vx, vy = L(dx + 0.38 * (1 if dx >= 0 else -1), -0.38)
        r = 0.08 * H
        for a in (45, 135, 225, 315):
            c = math.radians(a)
            cx, cy = vx + math.cos(c) * r * 0.9, vy + math.sin(c) * r * 0.9
            cv.line([(cx - math.sin(c) * r * 0.5, cy + math.cos(c) * r * 0.5),
                     (cx + math.cos(c) * r * 0.1, cy + math.sin(c) * r * 0.1),
                     (cx + math.sin(c) * r * 0.5, cy - math.cos(c) * r * 0.5)], w * 1.2, INK)
    elif emo == "surprise":
        for a in (-150, -120, -60, -30):  # little shock strokes around the head
            c = math.radians(a)
            cv.line([L(math.cos(c) * 0.72, -0.2 + math.sin(c) * 0.72), L(math.cos(c) * 0.9, -0.2 + math.sin(c) * 0.9)],
                    w * 1.2, INK, caps=True)
    elif emo == "disgust":
        drop_at(cv, *L(0.5, -0.1), 0.05 * H, w * 0.8)
        for k in range(4):
            u = dx - 0.3 + k * 0.04
            cv.line(L.pts([(u, 0.15), (u, 0.26)]), w * 0.5, gray(60))


def drop_at(cv: Canvas, x: float, y: float, r: float, w: float) -> None:
    """A sweat or tear drop: round bottom, pointed top."""
    pts = [(x, y - r * 2.2)] + [(x + r * math.cos(math.radians(a)), y + r * math.sin(math.radians(a)))
                                for a in range(-20, 201, 20)]
    cv.polygon(pts, fill=PAPER, outline=INK, width=w)


# -- bodies -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outfit:
    top: RGBA
    top_tone: float
    bottom_tone: float
    sleeve: str  # "short" (kids in summer) or "long"


OUTFITS = {
    "hina": Outfit(PAPER, 0.0, 0.35, "short"),
    "sora": Outfit(PAPER, 0.0, 0.55, "short"),
    "gen": Outfit(PAPER, 0.5, 0.3, "long"),
}


def torso_outline(top: float, bottom: float, shoulder: float, waist: float) -> list[Pt]:
    """A torso in H units, neck at v=top, sloping shoulders, straight down to v=bottom."""
    return [(-0.12, top), (-shoulder * 0.7, top + 0.08), (-shoulder, top + 0.25), (-waist, bottom),
            (waist, bottom), (shoulder, top + 0.25), (shoulder * 0.7, top + 0.08), (0.12, top)]


def draw_clothes_detail(cv: Canvas, L: Local, who: str, top: float, bottom: float, shoulder: float,
                        waist: float, lw: float) -> None:
    """What makes each outfit recognisable: Hina's sailor collar, Sora's stripes, Gen's jacket."""
    H = L.H
    body = L.pts(torso_outline(top, bottom, shoulder, waist))
    if who == "hina":
        collar = [(-0.14, top), (-shoulder * 0.8, top + 0.12), (-shoulder * 0.72, top + 0.45), (0, top + 0.62),
                  (shoulder * 0.72, top + 0.45), (shoulder * 0.8, top + 0.12), (0.14, top), (0, top + 0.35)]
        cv.polygon(L.pts(collar), fill=gray(70), outline=INK, width=lw)
        for k in (0.06, 0.1):
            cv.line(L.pts([(-shoulder * (0.8 - k), top + 0.12 + k), (-shoulder * (0.72 - k) * 0.9, top + 0.45),
                           (0, top + 0.62 - k * 1.2)]), lw * 0.7, PAPER)
            cv.line(L.pts([(shoulder * (0.8 - k), top + 0.12 + k), (shoulder * (0.72 - k) * 0.9, top + 0.45),
                           (0, top + 0.62 - k * 1.2)]), lw * 0.7, PAPER)
        scarf = [(-0.1, top + 0.5), (0.1, top + 0.5), (0.16, top + 0.8), (0, top + 0.7), (-0.16, top + 0.8)]
        cv.polygon(L.pts(scarf), fill=PAPER, outline=INK, width=lw)
        cv.tone_polygon(L.pts(scarf), 0.3)
    elif who == "sora":
        m = cv.mask_polygon(body)
        stripes = Image.new("L", cv.size, 0)
        d = ImageDraw.Draw(stripes)
        v = top + 0.32
        while v < bottom:
            y = cv.p(0, L(0, v)[1])[1]
            d.rectangle([0, y, cv.size[0], y + 0.07 * H * SS], fill=255)
            v += 0.2
        cv.apply_pattern(m, stripes, gray(70))
        cv.line(L.pts(arc_pts(0, top - 0.02, 0.16, 0.12, 10, 170, 10)), lw, INK)
    elif who == "gen":
        shirt = [(-0.14, top), (0.14, top), (0.05, top + 0.75), (-0.05, top + 0.75)]
        cv.polygon(L.pts(shirt), fill=PAPER)
        cv.line(L.pts([(-0.14, top), (-0.05, top + 0.75)]), lw, INK)
        cv.line(L.pts([(0.14, top), (0.05, top + 0.75)]), lw, INK)
        towel = [(-0.3, top - 0.02), (-0.12, top - 0.06), (0.12, top - 0.06), (0.3, top - 0.02), (0.28, top + 0.12),
                 (0.12, top + 0.05), (-0.12, top + 0.05), (-0.28, top + 0.12)]
        cv.polygon(L.pts(towel), fill=PAPER, outline=INK, width=lw)


def draw_torso(cv: Canvas, L: Local, who: str, top: float, bottom: float, shoulder: float, waist: float,
               lw: float) -> None:
    outfit = OUTFITS[who]
    pts = L.pts(torso_outline(top, bottom, shoulder, waist))
    cv.polygon(pts, fill=outfit.top)
    if outfit.top_tone:
        cv.tone_polygon(pts, outfit.top_tone)
    draw_clothes_detail(cv, L, who, top, bottom, shoulder, waist, lw)
    cv.polygon(pts, outline=INK, width=lw)


def draw_neck(cv: Canvas, L: Local, lw: float) -> None:
    cv.polygon(L.pts([(-0.1, 0.3), (0.1, 0.3), (0.11, 0.66), (-0.11, 0.66)]), fill=PAPER, outline=INK, width=lw)


def draw_arm(cv: Canvas, L: Local, who: str, joints: list[Pt], lw: float) -> None:
    """Shoulder -> elbow -> hand as one smooth stroke, a sleeve over the upper arm, a round hand."""
    H = L.H
    outfit = OUTFITS[who]
    w = (0.24 if who == "gen" else 0.2) * H
    pts = L.pts(joints)
    if outfit.sleeve == "long":
        cv.stroke(pts, w, PAPER, lw, tone=outfit.top_tone)
    else:
        cv.stroke(pts, w, PAPER, lw)
        (x0, y0), (x1, y1) = pts[0], pts[1]
        ux, uy = x1 - x0, y1 - y0
        n = math.hypot(ux, uy) or 1.0
        ux, uy = ux / n, uy / n
        px, py = -uy, ux
        end = (x0 + ux * n * 0.55, y0 + uy * n * 0.55)
        a0, a1 = 0.62 * w, 0.72 * w  # the sleeve flares a little toward its hem
        sleeve = [(x0 + px * a0 - ux * w * 0.3, y0 + py * a0 - uy * w * 0.3), (end[0] + px * a1, end[1] + py * a1),
                  (end[0] - px * a1, end[1] - py * a1), (x0 - px * a0 - ux * w * 0.3, y0 - py * a0 - uy * w * 0.3)]
        cv.polygon(sleeve, fill=PAPER, outline=INK, width=lw)
        if who == "sora":
            cv.line([(end[0] + px * a1 * 0.9 - ux * 6, end[1] + py * a1 * 0.9 - uy * 6),
                     (end[0] - px * a1 * 0.9 - ux * 6, end[1] - py * a1 * 0.9 - uy * 6)], 0.05 * H, gray(70))
    hx, hy = pts[-1]
    cv.ellipse(hx, hy, 0.11 * H, 0.11 * H, fill=PAPER, outline=INK, width=lw)


ARM_POSES = {  # (passive arm, acting arm) joints, shoulders at v=0.8, for a figure acting to the viewer's right
    "stand": (((-0.46, 0.8), (-0.58, 1.45), (-0.6, 2.05)), ((0.46, 0.8), (0.58, 1.45), (0.6, 2.05))),
    "wave": (((-0.46, 0.8), (-0.58, 1.45), (-0.6, 2.05)), ((0.46, 0.8), (0.85, 0.55), (0.95, -0.05))),
    "cheer": (((-0.46, 0.8), (-0.85, 0.45), (-0.9, -0.2)), ((0.46, 0.8), (0.85, 0.45), (0.9, -0.2))),
    "run": (((-0.46, 0.8), (-0.75, 1.3), (-0.95, 1.8)), ((0.46, 0.8), (0.75, 1.25), (0.95, 0.9))),
    "reach": (((-0.46, 0.8), (-0.58, 1.45), (-0.6, 2.05)), ((0.46, 0.8), (1.0, 0.9), (1.55, 0.85))),
    "hold": (((-0.46, 0.8), (-0.5, 1.4), (-0.2, 1.3)), ((0.46, 0.8), (0.5, 1.4), (0.2, 1.3))),
    "raise": (((-0.46, 0.8), (-0.58, 1.45), (-0.6, 2.05)), ((0.46, 0.8), (0.9, 0.7), (0.95, 0.1))),
    "fist": (((-0.46, 0.8), (-0.58, 1.45), (-0.6, 2.05)), ((0.46, 0.8), (0.75, 1.2), (0.5, 0.85))),
}


def mirror_pose(pose: tuple, flip: bool, widen: float = 1.0) -> tuple:
    """Poses are (passive arm, acting arm) for a figure acting with the arm on the viewer's right;
    a figure facing left acts with the other arm, so both arms are mirrored and keep their roles.
    `widen` scales the pose sideways for broader shoulders."""
    sign = -1 if flip else 1
    return tuple(tuple((sign * u * widen, v) for u, v in arm) for arm in pose)


def draw_legs(cv: Canvas, L: Local, who: str, hip: float, foot: float, pose: str, facing: int, lw: float) -> None:
    H = L.H
    f = facing or 1
    if pose == "run":
        legs = [[(f * 0.12, hip), (f * 0.55, hip + 0.55), (f * 0.5, foot - 0.25)],
                [(-f * 0.12, hip), (-f * 0.3, hip + 0.7), (-f * 0.8, foot - 0.55)]]
    else:
        legs = [[(-0.2, hip), (-0.21, (hip + foot) / 2), (-0.22, foot)], [(0.2, hip), (0.21, (hip + foot) / 2), (0.22, foot)]]
    trouser = {"hina": 0.0, "sora": 0.0, "gen": OUTFITS["gen"].bottom_tone}[who]
    for leg in legs:
        pts = L.pts(leg)
        cv.stroke(pts, 0.28 * H if who == "gen" else 0.2 * H, PAPER, lw, tone=trouser)
        fx, fy = pts[-1]
        dirx = 1 if leg[-1][0] >= leg[0][0] - 0.01 else -1
        if pose != "run":
            dirx = 1 if leg[-1][0] > 0 else -1
        shoe = [(fx - 0.12 * H * dirx, fy - 0.06 * H), (fx + 0.18 * H * dirx, fy - 0.05 * H),
                (fx + 0.24 * H * dirx, fy + 0.09 * H), (fx - 0.14 * H * dirx, fy + 0.09 * H)]
        cv.polygon(shoe, fill=INK if who != "sora" else PAPER, outline=INK, width=lw)


def draw_skirt_or_shorts(cv: Canvas, L: Local, who: str, waist_v: float, lw: float) -> float:
    """Draws the lower garment; returns where the legs start (v)."""
    if who == "hina":  # pleated skirt
        hem = waist_v + 0.85
        pts = [(-0.46, waist_v), (0.46, waist_v), (0.7, hem), (-0.7, hem)]
        cv.polygon(L.pts(pts), fill=PAPER)
        cv.tone_polygon(L.pts(pts), OUTFITS["hina"].bottom_tone)
        for k in range(-3, 4):
            cv.line(L.pts([(k * 0.1, waist_v + 0.05), (k * 0.16, hem)]), lw * 0.6, INK)
        cv.polygon(L.pts(pts), outline=INK, width=lw)
        return hem - 0.05
    if who == "sora":  # shorts
        hem = waist_v + 0.6
        pts = [(-0.46, waist_v), (0.46, waist_v), (0.52, hem), (0.04, hem), (0.0, waist_v + 0.3), (-0.04, hem), (-0.52, hem)]
        cv.polygon(L.pts(pts), fill=PAPER)
        cv.tone_polygon(L.pts(pts), OUTFITS["sora"].bottom_tone)
        cv.polygon(L.pts(pts), outline=INK, width=lw)
        return hem - 0.1
    return waist_v - 0.1  # Gen: the jacket hangs over his trousers


# -- props --------------------------------------------------------------------------------------

def draw_prop(cv: Canvas, L: Local, prop: str, at: Pt, lw: float) -> None:
    """Things held in a hand: the fish of spread 1, the letter of spread 13, the flashlight."""
    H = L.H
    x, y = L(*at)
    if prop == "fish":
        body = [(x - 0.7 * H, y)] + [(x + 0.55 * H * math.cos(math.radians(a)), y + 0.22 * H * math.sin(math.radians(a)))
                                     for a in range(200, -161, -20)]
        cv.polygon(body, fill=PAPER, outline=INK, width=lw)
        cv.tone_polygon([(x - 0.55 * H, y - 0.15 * H), (x + 0.5 * H, y - 0.2 * H), (x + 0.5 * H, y), (x - 0.55 * H, y)], 0.3)
        cv.polygon([(x - 0.62 * H, y), (x - 0.95 * H, y - 0.25 * H), (x - 0.88 * H, y), (x - 0.95 * H, y + 0.25 * H)],
                   fill=PAPER, outline=INK, width=lw)
        cv.ellipse(x + 0.38 * H, y - 0.05 * H, 0.05 * H, 0.05 * H, fill=PAPER, outline=INK, width=lw)
        cv.ellipse(x + 0.38 * H, y - 0.05 * H, 0.02 * H, 0.02 * H, fill=INK)
        for k in range(4):
            cv.line([(x - 0.3 * H + k * 0.15 * H, y - 0.08 * H), (x - 0.22 * H + k * 0.15 * H, y + 0.08 * H)], lw * 0.6)
    elif prop == "letter":
        pts = [(x - 0.45 * H, y - 0.3 * H), (x + 0.45 * H, y - 0.36 * H), (x + 0.48 * H, y + 0.3 * H), (x - 0.42 * H, y + 0.34 * H)]
        cv.polygon(pts, fill=PAPER, outline=INK, width=lw)
        cv.polygon([pts[0], pts[1], (x + 0.02 * H, y + 0.02 * H)], outline=INK, width=lw * 0.7)
        cv.ellipse(x + 0.3 * H, y - 0.18 * H, 0.07 * H, 0.09 * H, fill=INK)  # stamp
    elif prop == "light":
        cv.stroke([(x - 0.1 * H, y + 0.1 * H), (x + 0.25 * H, y - 0.1 * H)], 0.16 * H, gray(60), lw)
        beam = [(x + 0.25 * H, y - 0.1 * H), (x + 2.2 * H, y - 0.9 * H), (x + 2.4 * H, y + 0.4 * H)]
        cv.polygon(beam, fill=(255, 255, 255, 170))


# -- the whole figure ---------------------------------------------------------------------------

def draw_person(cv: Canvas, who: str, emo: str, cx: float, cy: float, H: float, shot: str, facing: int,
                pose: str, prop: str | None) -> Figure:
    """Draw a person; returns the face box (page coords) and the mouth, where balloon tails point."""
    look = LOOKS[who]
    L = Local(cx, cy, H)
    lw = look.lw * H
    dx = facing * 0.06
    side = facing or 1
    if who == "hina":
        hina_back_hair(cv, L, side, lw)
    # body below the head
    if shot == "bust":
        draw_neck(cv, L, lw)
        draw_torso(cv, L, who, 0.62, 3.2, 0.78, 0.85, lw)
        for sgn in (-1, 1):  # the upper arms' seams, so the shoulders read as arms
            cv.line(L.pts([(sgn * 0.6, 1.0), (sgn * 0.64, 1.6), (sgn * 0.66, 3.2)]), lw * 0.8, INK)
        if pose in ARM_POSES and pose != "stand":
            passive, acting = mirror_pose(ARM_POSES[pose], facing < 0)
            # poses are written for full figures; a bust's shoulders sit wider and lower
            def bust_arm(arm: tuple) -> list[Pt]:
                pts = [(u * 1.3, 0.62 + (v - 0.78) * 1.4) for u, v in arm]
                return [(math.copysign(0.68, pts[0][0]), 0.98)] + pts[1:]
            draw_arm(cv, L, who, bust_arm(acting), lw)
            if pose in ("cheer", "hold"):
                draw_arm(cv, L, who, bust_arm(passive), lw)
        if prop:
            draw_prop(cv, L, prop, (0.0, 1.45) if pose == "hold" else (1.1 * (-1 if facing < 0 else 1), -0.3), lw)
    elif shot == "full":
        draw_neck(cv, L, lw)
        adult = who == "gen"
        shoulder, waist_w = (0.74, 0.64) if adult else (0.6, 0.46)
        passive, acting = mirror_pose(ARM_POSES.get(pose, ARM_POSES["stand"]), facing < 0, shoulder / 0.5)
        waist = 2.35 if adult else 2.0
        hip = waist if adult else draw_skirt_or_shorts(cv, L, who, waist, lw)
        foot = 4.5 if adult else 4.25
        draw_legs(cv, L, who, hip, foot, pose, facing, lw)
        draw_torso(cv, L, who, 0.62, waist + (0.0 if adult else 0.05), shoulder, waist_w, lw)
        if who == "hina":  # the skirt goes over the blouse's hem
            draw_skirt_or_shorts(cv, L, who, waist, lw)
        draw_arm(cv, L, who, list(passive), lw)
        draw_arm(cv, L, who, list(acting), lw)
        if prop:
            draw_prop(cv, L, prop, acting[-1], lw)
    # the head
    if who == "gen":
        gen_head(cv, L, lw)
    if who == "sora":
        for s in (-1, 1):
            cv.ellipse(*L(s * 0.43, 0.08), 0.07 * H, 0.11 * H, fill=PAPER, outline=INK, width=lw)
    face = L.pts(face_shape())
    cv.polygon(face, fill=PAPER)
    lower = [p for p, (_, v) in zip(face, face_shape(), strict=True) if v > -0.2]
    cv.line(lower, lw * 1.1, INK)
    if who == "hina":
        hina_front_hair(cv, L, lw)
    elif who == "sora":
        sora_hair(cv, L, lw)
    elif who == "gen":
        gen_front(cv, L, lw)
    rw, rh = look.eye
    ev = 0.1 if who != "gen" else 0.06
    for s in (-1, 1):
        draw_eye(cv, L, dx + s * 0.19, ev, rw, rh, emo, s, lw, lashes=(who == "hina"))
    draw_brows(cv, L, dx, ev, rh if who != "gen" else 0.08, emo, look.lw, bushy=(who == "gen"))
    cv.line(L.pts([(dx + 0.02 * side, 0.2), (dx + 0.035 * side, 0.24)]), lw * 0.8, INK)  # nose
    mouth_v = 0.33 if who != "gen" else 0.34
    draw_mouth(cv, L, dx, mouth_v, emo, look.lw, 1.0 if who != "gen" else 0.9)
    draw_extras(cv, L, dx, emo, look.lw)
    fb = look.face_box
    return Figure(face=(cx + fb[0] * H, cy + fb[1] * H, cx + fb[2] * H, cy + fb[3] * H),
                  mouth=L(dx, mouth_v), head_r=0.62 * H)


def draw_dog(cv: Canvas, emo: str, cx: float, cy: float, H: float, facing: int, pose: str) -> Figure:
    """Maru, a small shiba: tan coat (flat gray), white muzzle, chest and socks, curled tail.

    (cx, cy) is the body's centre, H the head's size. Flat gray rather than screentone, because
    dots on a small animal read as leopard spots.
    """
    f = facing or 1
    lw = max(1.2, 0.045 * H)
    coat = gray(165)
    body_rx, body_ry = 0.8 * H, 0.42 * H
    if pose == "run":
        legs = [(-0.5, -0.95, 0.4), (-0.3, -0.6, 0.5), (0.4, 0.85, 0.45), (0.55, 1.0, 0.3)]
    else:
        legs = [(-0.55, -0.58, 0.62), (-0.32, -0.34, 0.62), (0.38, 0.4, 0.62), (0.58, 0.62, 0.62)]
    for u0, u1, v1 in legs:  # white socks
        cv.stroke([(cx + f * u0 * H, cy + 0.1 * H), (cx + f * u1 * H, cy + (0.1 + v1) * H)], 0.17 * H, PAPER, lw)
    # the curled tail sits on the back: a thick ring, open at the bottom
    tx, ty = cx - f * body_rx * 0.75, cy - body_ry * 1.05
    ring = arc_pts(tx, ty, 0.2 * H, 0.18 * H, -40 if f > 0 else 220, 260 if f > 0 else -80, 20)
    cv.line(ring, 0.16 * H + 2 * lw, INK, caps=True)
    cv.line(ring, 0.16 * H, coat, caps=True)
    cv.ellipse(cx, cy, body_rx, body_ry, fill=coat, outline=INK, width=lw)
    belly = [(cx - body_rx * 0.6, cy + body_ry * 0.55), (cx + body_rx * 0.7, cy + body_ry * 0.5),
             (cx + body_rx * 0.5, cy + body_ry * 0.95), (cx - body_rx * 0.4, cy + body_ry * 0.95)]
    cv.polygon(belly, fill=PAPER)
    hx, hy = cx + f * 0.72 * H, cy - 0.5 * H
    for s in (-1, 1):  # upright triangle ears, leaning forward a little
        base = hx + s * 0.24 * H + f * 0.05 * H
        cv.polygon([(base - 0.14 * H, hy - 0.25 * H), (base + f * 0.05 * H, hy - 0.66 * H), (base + 0.14 * H, hy - 0.25 * H)],
                   fill=coat, outline=INK, width=lw)
        cv.polygon([(base - 0.06 * H, hy - 0.3 * H), (base + f * 0.03 * H, hy - 0.54 * H), (base + 0.06 * H, hy - 0.3 * H)],
                   fill=PAPER)
    cv.ellipse(hx, hy, 0.42 * H, 0.38 * H, fill=coat, outline=INK, width=lw)
    # white cheeks and a long muzzle pointing the way he faces
    cv.ellipse(hx + f * 0.08 * H, hy + 0.16 * H, 0.3 * H, 0.2 * H, fill=PAPER)
    sx, sy = hx + f * 0.36 * H, hy + 0.1 * H
    cv.ellipse(sx, sy, 0.24 * H, 0.15 * H, fill=PAPER, outline=INK, width=lw)
    cv.ellipse(sx + f * 0.2 * H, sy - 0.06 * H, 0.07 * H, 0.055 * H, fill=INK)
    mouth = (sx + f * 0.02 * H, sy + 0.1 * H)
    for s in (-1, 1):
        ex, ey = hx + s * 0.16 * H + f * 0.06 * H, hy - 0.08 * H
        if emo == "happiness":
            cv.line(arc_pts(ex, ey + 0.04 * H, 0.07 * H, 0.06 * H, 200, 340, 6), lw * 1.4)
        else:
            cv.ellipse(ex, ey, 0.055 * H, 0.07 * H, fill=INK)
            cv.ellipse(ex + 0.02 * H, ey - 0.03 * H, 0.02 * H, 0.02 * H, fill=PAPER)
    if emo == "happiness":  # open mouth, tongue out
        cv.polygon([(sx - f * 0.1 * H, sy + 0.08 * H), (sx + f * 0.12 * H, sy + 0.08 * H), (sx + f * 0.02 * H, sy + 0.3 * H)],
                   fill=gray(120), outline=INK, width=lw * 0.8)
    else:
        cv.line([(sx - f * 0.08 * H, sy + 0.1 * H), (sx + f * 0.1 * H, sy + 0.08 * H)], lw, INK)
    if emo in ("fear", "sadness"):
        drop_at(cv, hx - f * 0.5 * H, hy - 0.3 * H, 0.07 * H, lw)
        for s in (-1, 1):  # drooping brows
            ex = hx + s * 0.16 * H + f * 0.06 * H
            cv.line([(ex - 0.07 * H, hy - 0.2 * H - s * 0.03 * H), (ex + 0.07 * H, hy - 0.2 * H + s * 0.03 * H)], lw)
    return Figure(face=None, mouth=mouth, head_r=0.45 * H)


# =============================================================================================
# Backgrounds and effects. Each draws into a panel's canvas over the panel box r.


def clouds(cv: Canvas, r: Box, rng: random.Random, n: int, y_max: float, shade: float = 0.0) -> None:
    x0, y0, x1, y1 = r
    for _ in range(n):
        x, y = rng.uniform(x0, x1), rng.uniform(y0, y0 + (y_max - y0) * 0.8)
        s = rng.uniform(25, 55)
        puffs = [(x + dx * s, y + dy * s, s * rr) for dx, dy, rr in
                 ((-1, 0.2, 0.5), (-0.4, -0.2, 0.65), (0.3, -0.25, 0.6), (0.9, 0.1, 0.5), (0, 0.25, 0.55))]
        for px, py, pr in puffs:
            cv.ellipse(px, py, pr * 1.3, pr, fill=INK)
        for px, py, pr in puffs:
            cv.ellipse(px, py, pr * 1.3 - 2, pr - 2, fill=PAPER)
        if shade:
            for px, py, pr in puffs:
                cv.tone_ellipse(px, py + pr * 0.4, pr * 1.2, pr * 0.5, shade)


def sea(cv: Canvas, r: Box, horizon: float, rng: random.Random, level: float = 0.15, dark: bool = False) -> None:
    x0, y0, x1, y1 = r
    cv.rect((x0, horizon, x1, y1), fill=PAPER)
    cv.tone_rect((x0, horizon, x1, y1), level)
    cv.line([(x0, horizon), (x1, horizon)], 1.6)
    y = horizon + 6
    step = 7.0
    while y < y1:  # wave strokes get longer and wider apart toward the viewer: cheap perspective
        for _ in range(int((x1 - x0) / 90) + 1):
            x = rng.uniform(x0, x1)
            ln = rng.uniform(10, 30) * (1 + (y - horizon) / 120)
            cv.line([(x, y), (x + ln * 0.5, y - 2), (x + ln, y)], 1.2, PAPER if dark else INK)
        y += step
        step *= 1.12


def gulls(cv: Canvas, r: Box, rng: random.Random, n: int, y_max: float) -> None:
    x0, y0, x1, y1 = r
    for _ in range(n):
        x, y, s = rng.uniform(x0 + 20, x1 - 20), rng.uniform(y0 + 15, y_max), rng.uniform(6, 13)
        cv.line([(x - s, y - s * 0.3), (x - s * 0.4, y - s * 0.5), (x, y), (x + s * 0.4, y - s * 0.5), (x + s, y - s * 0.3)], 1.6)


def buildings(cv: Canvas, r: Box, ground: float, rng: random.Random, night: bool = False, tall: float = 1.0) -> None:
    x0, y0, x1, y1 = r
    x = x0 - rng.uniform(0, 40)
    while x < x1:
        w = rng.uniform(50, 110)
        h = rng.uniform(50, 140) * tall
        top = ground - h
        cv.rect((x, top, x + w, ground), fill=gray(40) if night else PAPER, outline=INK, width=1.5)
        if rng.random() < 0.5:  # tiled roof
            cv.polygon([(x - 6, top), (x + w / 2, top - 22), (x + w + 6, top)], fill=PAPER, outline=INK, width=1.5)
            cv.tone_polygon([(x - 6, top), (x + w / 2, top - 22), (x + w + 6, top)], 0.45)
        elif not night:
            cv.tone_rect((x, top, x + w, ground), rng.choice((0.08, 0.15, 0.25)))
        wy = top + 12
        while wy < ground - 22:
            wx = x + 10
            while wx < x + w - 18:
                lit = night and rng.random() < 0.35
                cv.rect((wx, wy, wx + 12, wy + 14), fill=gray(230) if lit else (gray(15) if night else PAPER),
                        outline=INK, width=1.0)
                wx += 24
            wy += 26
        x += w + rng.uniform(2, 14)
    cv.line([(x0, ground), (x1, ground)], 2)


def pole_and_wires(cv: Canvas, r: Box, x: float, ground: float) -> None:
    x0, y0, x1, y1 = r
    cv.rect((x - 5, y0 - 10, x + 5, ground), fill=gray(90), outline=INK, width=1.5)
    cv.rect((x - 26, y0 + 40, x + 26, y0 + 46), fill=INK)
    for side in (x0, x1):
        for d in (-22, 0, 22):
            mx = (x + side) / 2
            cv.line([(x + d, y0 + 40), (mx, y0 + 58 + abs(d) * 0.3), (side, y0 + 48)], 1.0)


def lighthouse(cv: Canvas, base_x: float, base_y: float, h: float, night: bool = False) -> None:
    """A striped lighthouse: the book's landmark, seen on the cover, in scene 1 and the ending."""
    w0, w1 = h * 0.22, h * 0.14
    body = [(base_x - w0 / 2, base_y), (base_x - w1 / 2, base_y - h), (base_x + w1 / 2, base_y - h), (base_x + w0 / 2, base_y)]
    cv.polygon(body, fill=PAPER)
    for k in range(4):  # dark bands
        t0, t1 = 0.12 + k * 0.22, 0.23 + k * 0.22
        wa, wb = w0 + (w1 - w0) * t0, w0 + (w1 - w0) * t1
        band = [(base_x - wa / 2, base_y - h * t0), (base_x - wb / 2, base_y - h * t1),
                (base_x + wb / 2, base_y - h * t1), (base_x + wa / 2, base_y - h * t0)]
        cv.polygon(band, fill=gray(70))
    cv.polygon(body, outline=INK, width=2)
    top = base_y - h
    cv.rect((base_x - w1 * 0.75, top - 6, base_x + w1 * 0.75, top), fill=gray(40), outline=INK, width=1.5)
    cv.rect((base_x - w1 * 0.4, top - h * 0.12, base_x + w1 * 0.4, top - 6), fill=gray(235) if night else PAPER,
            outline=INK, width=1.5)
    cv.polygon([(base_x - w1 * 0.55, top - h * 0.12), (base_x, top - h * 0.2), (base_x + w1 * 0.55, top - h * 0.12)],
               fill=gray(40), outline=INK, width=1.5)
    cv.line([(base_x - w0 * 0.12, base_y - h * 0.45), (base_x - w0 * 0.12, base_y - h * 0.38)], 2.5)


def cliff(cv: Canvas, r: Box, top_y: float, rng: random.Random, side: int = 1) -> None:
    x0, y0, x1, y1 = r
    w = x1 - x0
    if side > 0:
        pts = [(x0 + w * 0.35, y1), (x0 + w * 0.45, top_y + 20), (x0 + w * 0.55, top_y), (x1, top_y - 5), (x1, y1)]
    else:
        pts = [(x1 - w * 0.35, y1), (x1 - w * 0.45, top_y + 20), (x1 - w * 0.55, top_y), (x0, top_y - 5), (x0, y1)]
    cv.polygon(pts, fill=PAPER, outline=INK, width=2)
    cv.tone_polygon(pts, 0.3)
    for _ in range(int(w / 8)):  # grass tufts along the top
        gx = rng.uniform(min(p[0] for p in pts[1:4]), max(p[0] for p in pts[1:4]))
        cv.line([(gx, top_y + 4), (gx + rng.uniform(-3, 3), top_y - rng.uniform(4, 10))], 1.0)


def focus_lines(cv: Canvas, r: Box, rng: random.Random, inner: float = 0.38, n: int = 110, cx: float | None = None,
                cy: float | None = None) -> None:
    """Concentration lines: thin black wedges from the edge toward a clear centre (shock, shouts)."""
    x0, y0, x1, y1 = r
    cx = (x0 + x1) / 2 if cx is None else cx
    cy = (y0 + y1) / 2 if cy is None else cy
    R = math.hypot(x1 - x0, y1 - y0)
    for _ in range(n):
        a = rng.uniform(0, 2 * math.pi)
        rin = inner * rng.uniform(0.9, 1.5)
        ca, sa = math.cos(a), math.sin(a)
        px, py = cx + ca * (x1 - x0) * rin, cy + sa * (y1 - y0) * rin
        wdt = rng.uniform(0.004, 0.012)
        cv.polygon([(px, py), (cx + math.cos(a - wdt) * R, cy + math.sin(a - wdt) * R),
                    (cx + math.cos(a + wdt) * R, cy + math.sin(a + wdt) * R)], fill=INK)


def speed_lines(cv: Canvas, r: Box, rng: random.Random, n: int = 70, vertical: bool = False) -> None:
    """Horizontal motion streaks: the chase's 'everything is rushing past' background."""
    x0, y0, x1, y1 = r
    for _ in range(n):
        if vertical:
            x = rng.uniform(x0, x1)
            ya = rng.uniform(y0 - 20, y1)
            cv.line([(x, ya), (x, ya + rng.uniform(40, 200))], rng.uniform(0.6, 2.4))
        else:
            y = rng.uniform(y0, y1)
            xa = rng.uniform(x0 - 40, x1)
            cv.line([(xa, y), (xa + rng.uniform(60, 320), y)], rng.uniform(0.6, 2.6))


def rain(cv: Canvas, r: Box, rng: random.Random, density: float = 1.0) -> None:
    """Slanted rain streaks, dark with a light edge so they show on both sky and figures."""
    x0, y0, x1, y1 = r
    n = int((x1 - x0) * (y1 - y0) / 1500 * density)
    for k in range(n):
        x, y = rng.uniform(x0 - 40, x1), rng.uniform(y0 - 40, y1)
        ln = rng.uniform(18, 55)
        if k % 3 == 0:  # a dark streak now and then; the light ones carry the rain on night scenes
            cv.line([(x, y), (x + ln * 0.28, y + ln)], 1.0, gray(30))
        cv.line([(x + 1.3, y), (x + 1.3 + ln * 0.28, y + ln)], 1.0, gray(245))


def sparkles(cv: Canvas, r: Box, rng: random.Random, n: int = 8) -> None:
    x0, y0, x1, y1 = r
    for _ in range(n):
        x, y, s = rng.uniform(x0 + 10, x1 - 10), rng.uniform(y0 + 10, y1 - 10), rng.uniform(5, 13)
        pts = []
        for k in range(8):
            a = math.radians(k * 45)
            rr = s if k % 2 == 0 else s * 0.25
            pts.append((x + rr * math.cos(a), y + rr * math.sin(a)))
        cv.polygon(pts, fill=PAPER, outline=INK, width=1.0)


def lightning(cv: Canvas, r: Box, rng: random.Random) -> None:
    x0, y0, x1, y1 = r
    x, y = rng.uniform(x0 + (x1 - x0) * 0.3, x0 + (x1 - x0) * 0.7), y0
    pts = [(x, y)]
    while y < y0 + (y1 - y0) * 0.7:
        x += rng.uniform(-30, 30)
        y += rng.uniform(20, 45)
        pts.append((x, y))
    left = [(px - 5, py) for px, py in pts]
    right = [(px + 5, py + 4) for px, py in reversed(pts)]
    cv.polygon(left + right, fill=PAPER, outline=INK, width=1.5)


def big_wave(cv: Canvas, r: Box, rng: random.Random, crest_x: float, crest_y: float, size: float) -> None:
    """A breaking wave, Hokusai-style: a dark face rising to a white lip that curls forward,
    with foam fingers and spray. The wave rises from the right and breaks toward the left."""
    x0, y0, x1, y1 = r
    base = crest_y + size * 1.6
    face = [(x0 - 10, base + size * 0.3)]
    for k in range(13):  # concave face sweeping up to the crest
        t = k / 12
        face.append((crest_x - size * 2.2 * (1 - t), base - (base - crest_y) * t ** 1.8))
    face += [(crest_x + size * 0.8, crest_y + size * 0.25), (crest_x + size * 1.6, crest_y + size * 0.9),
             (x1 + 10, crest_y + size * 1.1), (x1 + 10, y1 + 10), (x0 - 10, y1 + 10)]
    cv.polygon(face, fill=PAPER)
    cv.tone_polygon(face, 0.3)
    for k in range(7):  # white streaks running along the face
        off = size * (0.15 + 0.16 * k)
        streak = [(crest_x - size * 2.0 * (1 - t) + off * 0.6, base - (base - crest_y) * t ** 1.8 + off)
                  for t in (0.25, 0.45, 0.65, 0.8)]
        cv.line(streak, 2.2, PAPER)
    cv.polygon(face[:-2], outline=INK, width=2.5)
    crest = face[1:14]  # foam riding the top of the face
    cv.line(crest, 9, INK)
    cv.line(crest, 6, PAPER)
    # the lip: a white crescent curling over to the left, ending in foam claws
    lip_outer = arc_pts(crest_x - size * 0.35, crest_y + size * 0.35, size * 0.75, size * 0.7, 330, 150, 16)
    lip_inner = arc_pts(crest_x - size * 0.45, crest_y + size * 0.5, size * 0.45, size * 0.38, 150, 330, 12)
    lip = lip_outer + lip_inner
    cv.polygon(lip, fill=PAPER, outline=INK, width=2.5)
    for k in range(5):  # claws of foam hanging off the lip's end
        ang = math.radians(150 + k * 12)
        bx = crest_x - size * 0.35 + size * 0.75 * math.cos(ang)
        by = crest_y + size * 0.35 + size * 0.7 * math.sin(ang)
        cv.polygon([(bx - 6, by - 4), (bx - size * 0.18, by + size * 0.12 + k * 3), (bx + 6, by + 4)],
                   fill=PAPER, outline=INK, width=1.5)
    for _ in range(45):  # spray
        ang = rng.uniform(-3.0, -0.1)
        d = rng.uniform(0.8, 1.5) * size
        sx, sy = crest_x - size * 0.3 + math.cos(ang) * d, crest_y + size * 0.3 + math.sin(ang) * d
        rr = rng.uniform(2, 6)
        cv.ellipse(sx, sy, rr, rr, fill=PAPER, outline=INK, width=1.0)


def train(cv: Canvas, x: float, y_floor: float, w: float, h: float) -> None:
    """A local train car seen from the side; its windows are where Sora waves goodbye."""
    top = y_floor - h
    cv.rect((x, top, x + w, y_floor), fill=PAPER, outline=INK, width=2.5)
    cv.tone_rect((x, top + h * 0.62, x + w, top + h * 0.72), 0.5)  # the line's colour stripe
    wx = x + 18
    while wx + 50 < x + w:
        cv.rect((wx, top + h * 0.15, wx + 46, top + h * 0.5), fill=gray(230), outline=INK, width=1.5)
        cv.tone_rect((wx, top + h * 0.15, wx + 46, top + h * 0.5), 0.2)
        wx += 64
    cv.rect((x, top - 6, x + w, top), fill=gray(90), outline=INK, width=1.5)
    for k in range(int(w // 160) + 1):
        cv.ellipse(x + 40 + k * 160, y_floor + 6, 12, 12, fill=INK)


def night_sky(cv: Canvas, r: Box) -> None:
    """Storm night: flat dark ink with a band of tone toward the horizon, as manga paint night
    skies (and far cheaper in a JPEG than a page of dense dots)."""
    x0, y0, x1, y1 = r
    cv.rect(r, fill=gray(40))
    cv.gradient_rect((x0, y0 + (y1 - y0) * 0.55, x1, y1), 0.7, 0.45)


def bg_draw(cv: Canvas, kind: str, r: Box, rng: random.Random) -> None:
    """Dispatch a background by name. Names describe places and moods, not drawing steps."""
    x0, y0, x1, y1 = r
    w, h = x1 - x0, y1 - y0
    if kind == "white":
        return
    if kind == "sky":  # bright morning sky over the sea
        clouds(cv, r, rng, max(1, int(w / 220)), y0 + h * 0.6)
        sea(cv, r, y0 + h * 0.72, rng)
        gulls(cv, r, rng, 3, y0 + h * 0.5)
    elif kind == "harbor":
        clouds(cv, r, rng, max(1, int(w / 260)), y0 + h * 0.35)
        horizon = y0 + h * 0.45
        sea(cv, r, horizon, rng)
        buildings(cv, (x0 + w * 0.55, y0, x1, y1), horizon, rng, tall=0.5)
        for k in range(2):  # moored boats
            bx = x0 + w * (0.12 + 0.25 * k)
            by = horizon + h * 0.12 + k * 8
            cv.polygon([(bx - 40, by - 12), (bx + 50, by - 12), (bx + 38, by + 6), (bx - 30, by + 6)], fill=PAPER,
                       outline=INK, width=1.5)
            cv.rect((bx - 8, by - 34, bx + 14, by - 12), fill=PAPER, outline=INK, width=1.5)
            cv.line([(bx + 2, by - 34), (bx + 2, by - 60)], 1.5)
        pier_y = y0 + h * 0.8
        cv.rect((x0, pier_y, x1, y1), fill=PAPER, outline=INK, width=2)
        for k in range(int(w / 60) + 1):
            cv.line([(x0 + k * 60, pier_y), (x0 + k * 60 - 20, y1)], 1.0)
        cv.tone_rect((x0, pier_y, x1, y1), 0.2)
        gulls(cv, r, rng, 4, y0 + h * 0.35)
    elif kind == "town":
        clouds(cv, r, rng, max(1, int(w / 300)), y0 + h * 0.3)
        ground = y0 + h * 0.62
        buildings(cv, r, ground, rng)
        cv.tone_rect((x0, ground, x1, y1), 0.08)
        pole_and_wires(cv, r, x0 + w * 0.82, ground + 10)
    elif kind == "road":  # hill road up to the lighthouse
        clouds(cv, r, rng, 2, y0 + h * 0.4)
        sea(cv, r, y0 + h * 0.5, rng)
        road = [(x0, y1), (x0 + w * 0.45, y0 + h * 0.55), (x0 + w * 0.55, y0 + h * 0.55), (x1, y1)]
        cv.polygon(road, fill=PAPER, outline=INK, width=2)
        cv.polygon([(x1, y0 + h * 0.5), (x1, y1), (x0 + w * 0.7, y1), (x0 + w * 0.55, y0 + h * 0.55)], fill=PAPER, outline=INK, width=1.5)
        cv.tone_polygon([(x1, y0 + h * 0.5), (x1, y1), (x0 + w * 0.7, y1), (x0 + w * 0.55, y0 + h * 0.55)], 0.25)
        lighthouse(cv, x0 + w * 0.85, y0 + h * 0.52, h * 0.38)
    elif kind == "lighthouse":
        clouds(cv, r, rng, 2, y0 + h * 0.3)
        sea(cv, r, y0 + h * 0.62, rng)
        cliff(cv, r, y0 + h * 0.7, rng, side=1)
        lighthouse(cv, x0 + w * 0.72, y0 + h * 0.7, h * 0.6)
        gulls(cv, r, rng, 3, y0 + h * 0.3)
    elif kind == "clifftop":  # standing at the lighthouse: only sea and sky ahead
        clouds(cv, r, rng, max(1, int(w / 250)), y0 + h * 0.45)
        sea(cv, r, y0 + h * 0.55, rng, 0.12)
        cv.rect((x0, y0 + h * 0.86, x1, y1), fill=PAPER, outline=INK, width=2)
        for k in range(int(w / 30) + 1):  # railing
            cv.line([(x0 + k * 30, y0 + h * 0.78), (x0 + k * 30, y0 + h * 0.86)], 2)
        cv.line([(x0, y0 + h * 0.78), (x1, y0 + h * 0.78)], 3)
        sparkles(cv, (x0, y0 + h * 0.56, x1, y0 + h * 0.75), rng, 6)
    elif kind == "dusk":  # evening: darkening gradient sky, low sun
        cv.gradient_rect((x0, y0, x1, y0 + h * 0.62), 0.45, 0.08)
        cv.ellipse(x0 + w * 0.3, y0 + h * 0.62, h * 0.13, h * 0.13, fill=PAPER, outline=INK, width=1.5)
        sea(cv, r, y0 + h * 0.62, rng, 0.3)
        gulls(cv, r, rng, 2, y0 + h * 0.4)
    elif kind == "clouds_dark":  # storm gathering over the sea
        cv.gradient_rect((x0, y0, x1, y0 + h * 0.7), 0.6, 0.25)
        clouds(cv, r, rng, max(2, int(w / 160)), y0 + h * 0.55, shade=0.4)
        sea(cv, r, y0 + h * 0.7, rng, 0.4)
    elif kind == "storm":  # night, rain, a house with one lit window
        night_sky(cv, r)
        lightning(cv, r, rng)
        buildings(cv, r, y0 + h * 0.8, rng, night=True, tall=1.4)
        cv.rect((x0, y0 + h * 0.8, x1, y1), fill=gray(25))
    elif kind == "room":  # Hina's room at night: wall tone, rainy window
        cv.tone_rect(r, 0.12)
        wx0, wy0, wx1, wy1 = x0 + w * 0.1, y0 + h * 0.12, x0 + w * 0.9, y0 + h * 0.7
        cv.rect((wx0, wy0, wx1, wy1), fill=gray(30), outline=INK, width=3)
        clipped(cv, (wx0, wy0, wx1, wy1), lambda c: rain(c, (wx0, wy0, wx1, wy1), rng, 1.4))
        cv.line([((wx0 + wx1) / 2, wy0), ((wx0 + wx1) / 2, wy1)], 4, PAPER)
        cv.line([(wx0, (wy0 + wy1) / 2), (wx1, (wy0 + wy1) / 2)], 4, PAPER)
        cv.rect((wx0, wy0, wx1, wy1), outline=INK, width=3)
        for s in (wx0 - 18, wx1 - 6):  # curtains
            cv.rect((s, wy0 - 10, s + 24, wy1 + 30), fill=PAPER, outline=INK, width=1.5)
            for k in range(3):
                cv.line([(s + 6 + 6 * k, wy0 - 6), (s + 6 + 6 * k, wy1 + 26)], 0.8)
    elif kind == "door":  # the front door thrown open on the storm
        cv.tone_rect(r, 0.18)
        dx0, dx1 = x0 + w * 0.45, x0 + w * 0.9
        cv.rect((dx0, y0 + h * 0.05, dx1, y1), fill=gray(25), outline=INK, width=3)
        clipped(cv, (dx0, y0 + h * 0.05, dx1, y1), lambda c: rain(c, (dx0, y0 + h * 0.05, dx1, y1), rng, 1.5))
        cv.polygon([(dx0, y0 + h * 0.05), (dx0 - w * 0.18, y0), (dx0 - w * 0.18, y1), (dx0, y1)], fill=PAPER, outline=INK, width=2)
        cv.tone_polygon([(dx0, y0 + h * 0.05), (dx0 - w * 0.18, y0), (dx0 - w * 0.18, y1), (dx0, y1)], 0.35)
    elif kind == "street_storm":
        night_sky(cv, r)
        buildings(cv, r, y0 + h * 0.72, rng, night=True, tall=1.2)
        cv.rect((x0, y0 + h * 0.72, x1, y1), fill=gray(40))
        for _ in range(int(w / 40)):  # puddle glints
            px, py = rng.uniform(x0, x1), rng.uniform(y0 + h * 0.76, y1)
            cv.line([(px, py), (px + rng.uniform(15, 40), py)], 1.5, gray(200))
    elif kind == "breakwater":  # night sea; the concrete breakwater runs out to a small light
        night_sky(cv, (x0, y0, x1, y0 + h * 0.5))
        sea(cv, r, y0 + h * 0.5, rng, 0.6, dark=True)
        path = [(x0 + w * 0.1, y1), (x0 + w * 0.6, y0 + h * 0.52), (x0 + w * 0.66, y0 + h * 0.52), (x0 + w * 0.55, y1)]
        cv.polygon(path, fill=gray(200), outline=INK, width=2)
        cv.tone_polygon(path, 0.2)
        cv.rect((x0 + w * 0.6, y0 + h * 0.3, x0 + w * 0.66, y0 + h * 0.52), fill=PAPER, outline=INK, width=1.5)
        cv.ellipse(x0 + w * 0.63, y0 + h * 0.3, 7, 7, fill=PAPER, outline=INK, width=1.0)
    elif kind == "night_sea":
        night_sky(cv, r)
        sea(cv, r, y0 + h * 0.4, rng, 0.6, dark=True)
    elif kind == "station":  # platform of the little seaside station
        cv.tone_rect((x0, y0, x1, y0 + h * 0.16), 0.35)  # roof
        cv.line([(x0, y0 + h * 0.16), (x1, y0 + h * 0.16)], 2.5)
        for k in range(int(w / 220) + 1):
            px = x0 + 60 + k * 220
            cv.rect((px - 6, y0 + h * 0.16, px + 6, y0 + h * 0.78), fill=PAPER, outline=INK, width=1.5)
        sign_x = x0 + w * 0.5
        cv.rect((sign_x - 70, y0 + h * 0.2, sign_x + 70, y0 + h * 0.3), fill=PAPER, outline=INK, width=2)
        cv.text(sign_x, y0 + h * 0.25, "しおかぜ", font("sans", min(18, h * 0.05)))
        train(cv, x0 - 20, y0 + h * 0.72, w * 0.65, h * 0.4)
        cv.rect((x0, y0 + h * 0.78, x1, y1), fill=PAPER, outline=INK, width=2)
        cv.tone_rect((x0, y0 + h * 0.78, x1, y1), 0.12)
        cv.line([(x0, y0 + h * 0.82), (x1, y0 + h * 0.82)], 4, gray(120))  # the yellow line, in gray
    elif kind == "platform":  # close on the platform: pillars and the edge line
        cv.tone_rect((x0, y0, x1, y0 + h * 0.12), 0.35)
        for k in range(int(w / 160) + 1):
            px = x0 + 30 + k * 160
            cv.rect((px - 5, y0 + h * 0.12, px + 5, y1), fill=PAPER, outline=INK, width=1.2)
        cv.line([(x0, y0 + h * 0.7), (x1, y0 + h * 0.7)], 1.5)
        cv.tone_rect((x0, y0 + h * 0.7, x1, y1), 0.1)
    elif kind == "train_side":
        train(cv, x0 - 30, y0 + h * 0.85, w + 60, h * 0.8)
        cv.rect((x0, y0 + h * 0.88, x1, y1), fill=PAPER, outline=INK, width=2)
    elif kind == "train_leaving":  # the train shrinking toward the horizon between wire poles
        hz = y0 + h * 0.5
        clouds(cv, (x0, y0, x1, hz), rng, 2, y0 + h * 0.35)
        cv.tone_rect((x0, hz, x1, y1), 0.08)  # summer fields either side of the line
        cv.line([(x0, hz), (x1, hz)], 1.5)
        for _ in range(int(w / 12)):
            gx, gy = rng.uniform(x0, x1), rng.uniform(hz + 8, y1)
            g = 3 + 10 * (gy - hz) / (y1 - hz)
            cv.line([(gx - g * 0.4, gy - g), (gx, gy), (gx + g * 0.4, gy - g)], 1.0)
        vx = x0 + w * 0.5
        cv.polygon([(x0 + w * 0.05, y1), (vx - 6, hz), (vx + 6, hz), (x1 - w * 0.05, y1)], fill=PAPER)
        cv.tone_polygon([(x0 + w * 0.05, y1), (vx - 6, hz), (vx + 6, hz), (x1 - w * 0.05, y1)], 0.25)
        for k in range(10):
            t = (k / 9) ** 2
            yy = hz + (y1 - hz) * t
            half = 8 + w * 0.3 * t
            cv.line([(vx - half, yy), (vx + half, yy)], 1 + 4 * t, gray(70))
        for sgn in (-1, 1):
            cv.line([(vx + sgn * 4, hz), (vx + sgn * w * 0.2, y1)], 3)
            for k in range(4):  # wire poles marching away
                t = 1 - k / 4
                px = vx + sgn * (14 + w * 0.42 * t ** 1.5)
                cv.line([(px, hz + (y1 - hz) * t ** 2 * 0.6 + 4), (px, hz - h * 0.4 * t - 10)], 1.5 + 2 * t)
        tw, th = w * 0.1, h * 0.16
        cv.rect((vx - tw / 2, hz - th + 4, vx + tw / 2, hz + 4), fill=PAPER, outline=INK, width=2)
        cv.rect((vx - tw * 0.3, hz - th * 0.85 + 4, vx + tw * 0.3, hz - th * 0.45 + 4), fill=gray(60))
        for sgn in (-1, 1):
            cv.ellipse(vx + sgn * tw * 0.3, hz - th * 0.2 + 4, 3, 3, fill=INK)
    elif kind == "letter":  # the letter, close up
        cv.tone_rect(r, 0.2)
        px0, py0, px1, py1 = x0 + w * 0.12, y0 + h * 0.1, x1 - w * 0.12, y1 - h * 0.1
        cv.rect((px0, py0, px1, py1), fill=PAPER, outline=INK, width=2)
        x = px1 - 30
        while x > px0 + 20:  # ruled vertical lines of a Japanese letter
            cv.line([(x, py0 + 12), (x, py1 - 12)], 0.8, gray(140))
            x -= 28
        cv.text(px1 - 44, py0 + 20, "ヒナへ", font("serif_regular", 20), anchor="mt", vertical=True)
        cv.text(px0 + 40, py1 - 20, "ソラ", font("serif_regular", 20), anchor="mb", vertical=True)
    elif kind == "sunset":
        cv.gradient_rect((x0, y0, x1, y0 + h * 0.6), 0.35, 0.05)
        sun_x = x0 + w * 0.6
        cv.ellipse(sun_x, y0 + h * 0.6, h * 0.12, h * 0.12, fill=PAPER, outline=INK, width=1.5)
        sea(cv, r, y0 + h * 0.6, rng, 0.25)
        for k in range(6):  # the sun's path on the water
            yy = y0 + h * (0.64 + 0.05 * k)
            cv.line([(sun_x - 30 - k * 6, yy), (sun_x + 30 + k * 6, yy)], 2.5, PAPER)
        gulls(cv, r, rng, 2, y0 + h * 0.4)
    elif kind == "wave":  # the wave that breaks over the breakwater
        night_sky(cv, r)
        sea(cv, r, y0 + h * 0.45, rng, 0.6, dark=True)
        big_wave(cv, r, rng, x0 + w * 0.62, y0 + h * 0.28, h * 0.24)
    elif kind == "train_front":  # the train pulling in, head-on, on rails that run out of the panel
        cv.tone_rect((x0, y0, x1, y0 + h * 0.1), 0.35)  # platform roof
        vx, floor = x0 + w * 0.42, y0 + h * 0.62
        for k in range(7):  # sleepers, wider apart toward the viewer
            t = (k / 6) ** 1.6
            yy = floor + (y1 - floor) * t
            half = w * (0.2 + 0.5 * t)
            cv.line([(vx - half, yy), (vx + half, yy)], 2 + 3 * t, gray(90))
        for sgn in (-1, 1):
            cv.line([(vx + sgn * w * 0.16, floor), (vx + sgn * w * 0.62, y1)], 3)
        tw, th = w * 0.62, h * 0.36
        tx0, ty0 = vx - tw / 2, floor - th
        cv.rect((tx0, ty0, tx0 + tw, floor), fill=PAPER, outline=INK, width=2.5)
        cv.rect((tx0 + tw * 0.08, ty0 + th * 0.1, tx0 + tw * 0.92, ty0 + th * 0.42), fill=gray(60), outline=INK, width=1.5)
        cv.line([(tx0 + tw * 0.2, ty0 + th * 0.14), (tx0 + tw * 0.35, ty0 + th * 0.38)], 3, gray(200))  # glint
        cv.rect((tx0 + tw * 0.3, ty0 - th * 0.08, tx0 + tw * 0.7, ty0), fill=INK)  # destination sign
        cv.text(vx, ty0 - th * 0.04, "しおかぜ", font("sans", min(16, th * 0.06)), fill=PAPER)
        cv.tone_rect((tx0, ty0 + th * 0.58, tx0 + tw, ty0 + th * 0.68), 0.5)
        for sx in (0.18, 0.82):
            cv.ellipse(tx0 + tw * sx, ty0 + th * 0.8, tw * 0.07, tw * 0.07, fill=PAPER, outline=INK, width=2)
        edge = x0 + w * 0.84  # the platform on the right
        cv.polygon([(edge, y0 + h * 0.1), (x1, y0 + h * 0.1), (x1, y1), (edge + w * 0.1, y1)], fill=PAPER, outline=INK, width=2)
        cv.tone_polygon([(edge, y0 + h * 0.1), (x1, y0 + h * 0.1), (x1, y1), (edge + w * 0.1, y1)], 0.12)
    elif kind == "lighthouse_sunset":
        cv.gradient_rect((x0, y0, x1, y0 + h * 0.62), 0.4, 0.05)
        cv.ellipse(x0 + w * 0.3, y0 + h * 0.62, w * 0.12, w * 0.12, fill=PAPER, outline=INK, width=1.5)
        sea(cv, r, y0 + h * 0.62, rng, 0.25)
        cliff(cv, r, y0 + h * 0.7, rng, side=1)
        lighthouse(cv, x0 + w * 0.7, y0 + h * 0.7, h * 0.5)
        gulls(cv, r, rng, 3, y0 + h * 0.35)
    elif kind == "sunset_cliff":  # sunset seen from the lighthouse's cliff: ground and railing in front
        bg_draw(cv, "sunset", r, rng)
        top = y0 + h * 0.8
        cv.rect((x0, top, x1, y1), fill=PAPER, outline=INK, width=2)
        cv.tone_rect((x0, top, x1, y1), 0.3)
        for _ in range(int(w / 10)):
            gx = rng.uniform(x0, x1)
            cv.line([(gx, top + 3), (gx + rng.uniform(-3, 3), top - rng.uniform(4, 10))], 1.0)
        for k in range(int(w / 34) + 1):
            cv.line([(x0 + k * 34, top - 46), (x0 + k * 34, top)], 2.5)
        cv.line([(x0, top - 46), (x1, top - 46)], 3.5)
    elif kind == "soft":  # gentle screentone glow behind an emotional close-up
        cv.gradient_rect(r, 0.25, 0.05)
        sparkles(cv, r, rng, 6)
    elif kind == "dark":
        cv.rect(r, fill=gray(20))
    elif kind == "gray":
        cv.tone_rect(r, 0.3)
    elif kind == "focus":
        focus_lines(cv, r, rng)
    elif kind == "speed":
        speed_lines(cv, r, rng)
    else:
        raise ValueError(f"unknown background {kind!r}")


def clipped(cv: Canvas, box: Box, paint) -> None:
    """Run `paint` on a transparent canvas covering `box` and composite it: drawing clipped to box."""
    x0, y0, x1, y1 = box
    sub = Canvas(x0, y0, x1 - x0, y1 - y0, transparent=True)
    paint(sub)
    cv.paste_canvas(sub)


def sfx(cv: Canvas, x: float, y: float, s: str, size: float, angle: float = 0.0, vertical: bool = True,
        color: RGBA = INK, outline: RGBA = PAPER) -> None:
    """A hand-lettered sound effect: heavy sans, white halo, tilted. Not annotated (as in Manga109)."""
    f = font("sans", size)
    tmp = Image.new("RGBA", (int(size * SS * (len(s) + 2)), int(size * SS * (len(s) + 2))), CLEAR)
    d = ImageDraw.Draw(tmp)
    kw = dict(font=f, anchor="mm", stroke_width=max(2, round(size * 0.12 * SS)))
    if vertical:
        kw.update(direction="ttb", features=["vert"])
    d.text((tmp.width / 2, tmp.height / 2), s, fill=color, stroke_fill=outline, **kw)
    tmp = tmp.rotate(angle, resample=Image.BICUBIC, expand=False)
    bb = tmp.getchannel("A").getbbox()
    if bb is None:
        return
    tmp = tmp.crop(bb)
    px, py = cv.p(x, y)
    cv.img.paste(tmp, (int(px - tmp.width / 2), int(py - tmp.height / 2)), tmp)


# =============================================================================================
# Balloons and vertical text

KINSOKU_HEAD = set("、。，．！？!?」』）ーっゃゅょぁぃぅぇぉッャュョァィゥェォ…―〜")


def columns_of(text: str, max_chars: int) -> list[str]:
    """Break a line into vertical columns: at '|' when given, else every max_chars characters,
    never starting a column with punctuation or a small kana (kinsoku shori)."""
    if "|" in text:
        return text.split("|")
    cols: list[str] = []
    cur = ""
    for ch in text:
        if len(cur) >= max_chars and ch not in KINSOKU_HEAD:
            cols.append(cur)
            cur = ""
        cur += ch
    if cur:
        cols.append(cur)
    return cols


def text_block(cv: Canvas, cx: float, cy: float, cols: list[str], f: ImageFont.FreeTypeFont, size: float) -> Box:
    """Set columns right-to-left around (cx, cy), top-aligned; returns the glyphs' ink box."""
    pitch = size * 1.3
    W = (len(cols) - 1) * pitch + size
    Hh = max(len(c) for c in cols) * size
    boxes = []
    for i, col in enumerate(cols):
        x = cx + W / 2 - size / 2 - i * pitch
        y = cy - Hh / 2
        boxes.append(cv.text(x, y, col, f, anchor="mt", vertical=True))
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def balloon_kind(who: str | None, text: str) -> str:
    if who is None:
        return "narration"
    if text.count("！") >= 2 or "ーッ" in text or "！！" in text:
        return "shout"
    if text.startswith("……") or text.startswith("（"):
        return "soft"
    return "speech"


def ellipse_axes(w: float, h: float, pad: float) -> tuple[float, float]:
    """Semi-axes of the smallest padded ellipse that keeps the text block's corners inside."""
    a, b = w / 2 * 1.25 + pad, h / 2 * 1.12 + pad
    while (w / 2 / a) ** 2 + (h / 2 / b) ** 2 > 0.86:
        a *= 1.04
        b *= 1.02
    return max(a, 0.5 * b), b


def balloon_shape(kind: str, cx: float, cy: float, a: float, b: float, rng: random.Random) -> list[Pt]:
    pts = []
    if kind == "shout":  # spiky burst for yelling
        n = max(18, int((a + b) / 9))
        for i in range(n * 2):
            t = 2 * math.pi * i / (n * 2)
            k = 1.22 + rng.uniform(-0.04, 0.08) if i % 2 == 0 else 0.98
            pts.append((cx + a * k * math.cos(t), cy + b * k * math.sin(t)))
    else:
        for i in range(72):
            t = 2 * math.pi * i / 72
            pts.append((cx + a * math.cos(t), cy + b * math.sin(t)))
    return pts


def tail_polygon(cx: float, cy: float, a: float, b: float, target: Pt, head_r: float) -> list[Pt] | None:
    """A curved wedge from the balloon toward the speaker's mouth, stopping short of the head."""
    tx, ty = target
    dx, dy = tx - cx, ty - cy
    dist = math.hypot(dx, dy)
    if dist < 1:
        return None
    ux, uy = dx / dist, dy / dist
    edge = 1 / math.sqrt((ux / a) ** 2 + (uy / b) ** 2)
    free = dist - edge - head_r
    if free < 12:
        return None
    length = min(free * 0.7, 55)
    base = edge * 0.8
    tipx, tipy = cx + ux * (edge + length), cy + uy * (edge + length)
    px, py = -uy, ux
    half = min(a, b) * 0.22
    bx, by = cx + ux * base, cy + uy * base
    bend = 0.15 * length
    mid = (cx + ux * (edge + length * 0.5) + px * bend * 0.5, cy + uy * (edge + length * 0.5) + py * bend * 0.5)
    return [(bx + px * half, by + py * half), ((mid[0] + bx + px * half) / 2, (mid[1] + by + py * half) / 2),
            (tipx, tipy), mid, (bx - px * half * 0.6, by - py * half * 0.6)]


def draw_balloon(cv: Canvas, who: str | None, text: str, cx: float, cy: float, target: Pt | None, head_r: float,
                 clamp: Box, rng: random.Random) -> Box:
    """Draw one speech balloon (or narration box) and its vertical text; returns the text box.

    The balloon is moved inside `clamp` (its panel) so each text belongs to one panel: the
    reader's reading-order code assigns a text to the panel that holds most of its box.
    """
    kind = balloon_kind(who, text)
    size = 21.0 if kind != "shout" else 23.0
    f = font("sans" if kind == "shout" else ("serif_regular" if kind == "narration" else "serif"), size)
    cols = columns_of(text, 7)
    pitch = size * 1.3
    W = (len(cols) - 1) * pitch + size
    Hh = max(len(c) for c in cols) * size
    if kind == "narration":
        a, b = W / 2 + 12, Hh / 2 + 12
    else:
        a, b = ellipse_axes(W, Hh, 10 if kind != "shout" else 14)
    spike = 1.22 if kind == "shout" else 1.0
    x0, y0, x1, y1 = clamp
    cx = min(max(cx, x0 + a * spike + 4), x1 - a * spike - 4)
    cy = min(max(cy, y0 + b * spike + 4), y1 - b * spike - 4)
    lw = 2.2
    if kind == "narration":
        rect = (cx - a, cy - b, cx + a, cy + b)
        cv.rect((rect[0] + 3, rect[1] + 3, rect[2] + 3, rect[3] + 3), fill=INK)  # offset shadow
        cv.rect(rect, fill=PAPER, outline=INK, width=lw)
    else:
        shape = balloon_shape(kind, cx, cy, a, b, rng)
        tail = tail_polygon(cx, cy, a, b, target, head_r) if target is not None else None
        # ink pass (outline of balloon and tail), then paper pass: the tail merges into the balloon
        cv.polygon(shape, fill=PAPER, outline=INK, width=lw * 2)
        if tail:
            cv.polygon(tail, fill=PAPER, outline=INK, width=lw * 2)
        cv.polygon(shape, fill=PAPER)
        if tail:
            cv.polygon(tail, fill=PAPER)
        if kind == "soft":  # quiet line: thin inner ring
            cv.polygon(balloon_shape("speech", cx, cy, a - 5, b - 5, rng), outline=gray(150), width=0.8)
    return text_block(cv, cx, cy, cols, f, size)


# =============================================================================================
# Page layouts: panels as quadrilaterals in unit coordinates of the page's drawing area

Quad = list[Pt]


def R(x0: float, y0: float, x1: float, y1: float) -> Quad:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


LAYOUTS: dict[str, list[Quad]] = {  # every list is in reading order: rows top-down, right to left
    "3rows": [R(0, 0, 1, 0.3), R(0, 0.3, 1, 0.64), R(0, 0.64, 1, 1)],
    "1-2-1": [R(0, 0, 1, 0.32), R(0.5, 0.32, 1, 0.67), R(0, 0.32, 0.5, 0.67), R(0, 0.67, 1, 1)],
    "2-1-2": [R(0.45, 0, 1, 0.33), R(0, 0, 0.45, 0.33), R(0, 0.33, 1, 0.64), R(0.55, 0.64, 1, 1), R(0, 0.64, 0.55, 1)],
    "tall-3": [R(0.5, 0, 1, 1), R(0, 0, 0.5, 0.34), R(0, 0.34, 0.5, 0.67), R(0, 0.67, 0.5, 1)],
    "big-2": [R(0, 0, 1, 0.56), R(0.48, 0.56, 1, 1), R(0, 0.56, 0.48, 1)],
    "2-big": [R(0.5, 0, 1, 0.4), R(0, 0, 0.5, 0.4), R(0, 0.4, 1, 1)],
    "2-tall": [R(0.48, 0, 1, 0.34), R(0, 0, 0.48, 0.34), R(0.45, 0.34, 1, 1), R(0, 0.34, 0.45, 0.67), R(0, 0.67, 0.45, 1)],
    "2x3": [R(0.5, 0, 1, 0.33), R(0, 0, 0.5, 0.33), R(0.5, 0.33, 1, 0.66), R(0, 0.33, 0.5, 0.66),
            R(0.5, 0.66, 1, 1), R(0, 0.66, 0.5, 1)],
    # the chase: slanted cuts make the page lurch
    "chase": [[(0, 0), (1, 0), (1, 0.22), (0, 0.3)], [(0.48, 0.22 + 0.08 * 0.52), (1, 0.22), (1, 0.58), (0.52, 0.6)],
              [(0, 0.3), (0.48, 0.22 + 0.08 * 0.52), (0.52, 0.6), (0, 0.62)], [(0, 0.62), (1, 0.58), (1, 1), (0, 1)]],
    "chase3": [[(0, 0), (1, 0), (1, 0.36), (0, 0.28)], [(0, 0.28), (1, 0.36), (1, 0.66), (0, 0.7)],
               [(0, 0.7), (1, 0.66), (1, 1), (0, 1)]],
}

MARGIN_TOP, MARGIN_BOTTOM, MARGIN_OUT, MARGIN_SPINE = 58, 70, 48, 36
GUTTER_X, GUTTER_Y = 14, 24


def page_area(side: str) -> Box:
    """The drawing area of one page of the spread; side 'R' is the right page (read first)."""
    if side == "R":
        return (PAGE_W + MARGIN_SPINE, MARGIN_TOP, SPREAD_W - MARGIN_OUT, SPREAD_H - MARGIN_BOTTOM)
    return (MARGIN_OUT, MARGIN_TOP, PAGE_W - MARGIN_SPINE, SPREAD_H - MARGIN_BOTTOM)


def inset_quad(q: Quad, area: Box) -> Quad:
    """Turn a unit quad into page pixels, pulling every inner edge in by half a gutter.

    Edges on the area's border stay put, so the outer panel edges align with the margins.
    """
    ax0, ay0, ax1, ay1 = area
    pts = [(ax0 + u * (ax1 - ax0), ay0 + v * (ay1 - ay0)) for u, v in q]
    n = len(pts)
    lines = []
    for i in range(n):
        (x0, y0), (x1, y1) = pts[i], pts[(i + 1) % n]
        (u0, v0), (u1, v1) = q[i], q[(i + 1) % n]
        on_border = (u0 == u1 and u0 in (0, 1)) or (v0 == v1 and v0 in (0, 1))
        horizontal = abs(x1 - x0) > abs(y1 - y0)
        d = 0 if on_border else (GUTTER_Y if horizontal else GUTTER_X) / 2
        ex, ey = x1 - x0, y1 - y0
        ln = math.hypot(ex, ey)
        nx, ny = ey / ln, -ex / ln  # clockwise order in screen coordinates: this normal points inward
        lines.append(((x0 - nx * d, y0 - ny * d), (ex, ey)))
    out = []
    for i in range(n):
        (p, r), (q2, s) = lines[i - 1], lines[i]
        den = r[0] * s[1] - r[1] * s[0]
        t = ((q2[0] - p[0]) * s[1] - (q2[1] - p[1]) * s[0]) / den
        out.append((p[0] + t * r[0], p[1] + t * r[1]))
    return out


# =============================================================================================
# The script format: what is on each panel


@dataclass(frozen=True)
class Cast:
    """A character in a panel. x, y: face centre as fractions of the panel box (y None: the shot
    decides); h: face height in pixels (None: the shot decides). Maru's (x, y) is his body centre."""
    who: str
    emo: str
    x: float
    y: float | None = None
    h: float | None = None
    shot: str = "bust"  # "bust" (head and shoulders, cut by the frame) or "full"
    facing: int = 0
    pose: str = "stand"
    prop: str | None = None


@dataclass(frozen=True)
class Say:
    """A line in a balloon. who None = narration box. x, y: balloon centre as panel fractions."""
    who: str | None
    text: str
    gloss: str
    x: float
    y: float


@dataclass(frozen=True)
class Sfx:
    text: str
    x: float
    y: float
    size: float = 40
    angle: float = 0.0


@dataclass(frozen=True)
class Panel:
    bg: str
    cast: tuple[Cast, ...] = ()
    says: tuple[Say, ...] = ()
    fx: tuple[str, ...] = ()  # overlays: "speed" / "focus" behind the cast, "rain" / "sparkle" over it
    sfx: tuple[Sfx, ...] = ()


@dataclass(frozen=True)
class PageSpec:
    layout: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Spread:
    right: PageSpec  # read first
    left: PageSpec


def B(who: str, emo: str, x: float, **kw) -> Cast:
    return Cast(who, emo, x, shot="bust", **kw)


def F(who: str, emo: str, x: float, **kw) -> Cast:
    return Cast(who, emo, x, shot="full", **kw)


def DOG(emo: str, x: float, y: float, h: float = 60, facing: int = 1, pose: str = "stand") -> Cast:
    return Cast("maru", emo, x, y, h, shot="full", facing=facing, pose=pose)


def S(who: str, text: str, gloss: str, x: float, y: float) -> Say:
    return Say(who, text, gloss, x, y)


def N(text: str, gloss: str, x: float = 0.92, y: float = 0.12) -> Say:
    return Say(None, text, gloss, x, y)


def P(bg: str, *items, fx: tuple[str, ...] = ()) -> Panel:
    """A panel from its background and a mixed list of Cast, Say and Sfx (kept in order)."""
    return Panel(bg, tuple(i for i in items if isinstance(i, Cast)), tuple(i for i in items if isinstance(i, Say)),
                 fx, tuple(i for i in items if isinstance(i, Sfx)))


# =============================================================================================
# Annotations collected while drawing


@dataclass
class Ann:
    kind: str  # frame / face / body / text
    box: Box
    character: str | None = None
    text: str | None = None
    key: str = ""  # links a text to its speaker's body, and a face to its emotion
    emotion: str | None = None
    gloss: str | None = None
    id: str = ""


@dataclass
class PageAnns:
    index: int
    items: list[Ann] = field(default_factory=list)
    speakers: list[tuple[Ann, Ann]] = field(default_factory=list)  # (text, body)


CHARACTER_IDS = {"hina": "00000001", "sora": "00000002", "gen": "00000003", "maru": "00000004"}


def clip_box(b: Box, to: Box) -> Box | None:
    x0, y0 = max(b[0], to[0]), max(b[1], to[1])
    x1, y1 = min(b[2], to[2]), min(b[3], to[3])
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    return (x0, y0, x1, y1)


def area(b: Box) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


MIN_FULL_FACE = 71.0  # px of face height; the face box is 0.86 of it wide


def place_cast(c: Cast, r: Box) -> tuple[float, float, float]:
    """Where a character's face goes in panel r: (cx, cy, H) in page pixels."""
    x0, y0, x1, y1 = r
    w, h = x1 - x0, y1 - y0
    if c.who == "maru":
        return x0 + c.x * w, y0 + (c.y if c.y is not None else 0.75) * h, c.h or 60
    if c.shot == "bust":
        H = c.h or min(0.4 * h, 0.36 * w, 150)
        cy = y0 + c.y * h if c.y is not None else y1 - 1.3 * H
    else:
        foot = 4.6 if c.who == "gen" else 4.35
        # never below MIN_FULL_FACE: a face-emotion classifier needs ~60 px faces; when the
        # panel is too short for the whole figure, the frame cuts the feet (a knee shot)
        H = max(c.h or min(0.9 * h / (foot + 0.8), 110), MIN_FULL_FACE)
        standing = y1 - 0.04 * h - foot * H
        cy = y0 + c.y * h if c.y is not None else max(standing, y0 + 0.05 * h + 0.8 * H)
    return x0 + c.x * w, cy, H


def draw_panel(spread_cv: Canvas, quad: Quad, panel: Panel, rng: random.Random, pa: PageAnns,
               figures: dict[str, tuple[Figure, Ann]]) -> Box:
    """Draw one panel onto the spread; record frame, face and body annotations. Returns its box."""
    xs, ys = [p[0] for p in quad], [p[1] for p in quad]
    r = (math.floor(min(xs)), math.floor(min(ys)), math.ceil(max(xs)), math.ceil(max(ys)))
    cv = Canvas(r[0], r[1], r[2] - r[0], r[3] - r[1])
    shape = cv.mask_polygon(quad)  # the panel's own outline, for slanted panels
    bg_draw(cv, panel.bg, r, rng)
    if "speed" in panel.fx:
        speed_lines(cv, r, rng, int((r[2] - r[0]) * (r[3] - r[1]) / 2500))
    if "focus" in panel.fx:
        focus_lines(cv, r, rng)
    pa.items.append(Ann("frame", r))
    for c in panel.cast:
        cx, cy, H = place_cast(c, r)
        layer = Canvas(*r[:2], r[2] - r[0], r[3] - r[1], transparent=True)
        if c.who == "maru":
            fig = draw_dog(layer, c.emo, cx, cy, H, c.facing, c.pose)
        else:
            fig = draw_person(layer, c.who, c.emo, cx, cy, H, c.shot, c.facing, c.pose, c.prop)
        body_box = layer.ink_box(shape)
        cv.paste_canvas(layer)
        if body_box is None:
            raise ValueError(f"page {pa.index}: {c.who} is entirely outside its panel")
        body = Ann("body", body_box, CHARACTER_IDS[c.who], key=c.who)
        pa.items.append(body)
        if fig.face is not None:
            seen = clip_box(fig.face, r)
            # a face mostly cut off by the frame is not a face a classifier could read
            if seen is not None and area(seen) >= 0.6 * area(fig.face):
                pa.items.append(Ann("face", seen, CHARACTER_IDS[c.who], emotion=c.emo))
        figures[c.who] = (fig, body)
    if "rain" in panel.fx:
        rain(cv, r, rng)
    if "sparkle" in panel.fx:
        sparkles(cv, r, rng, 10)
    for e in panel.sfx:
        sfx(cv, r[0] + e.x * (r[2] - r[0]), r[1] + e.y * (r[3] - r[1]), e.text, e.size, e.angle)
    spread_cv.paste_canvas(cv, shape)
    spread_cv.polygon(quad, outline=INK, width=2.6)
    return r


def draw_page(cv: Canvas, spec: PageSpec, side: str, seed: int, pa: PageAnns) -> None:
    quads = LAYOUTS[spec.layout]
    if len(quads) != len(spec.panels):
        raise ValueError(f"page {pa.index}{side}: layout {spec.layout} has {len(quads)} panels, "
                         f"the script gives {len(spec.panels)}")
    area_box = page_area(side)
    done: list[tuple[Panel, Box, dict[str, tuple[Figure, Ann]]]] = []
    for k, (q, panel) in enumerate(zip(quads, spec.panels, strict=True)):
        rng = random.Random(seed * 100 + k)
        figures: dict[str, tuple[Figure, Ann]] = {}
        r = draw_panel(cv, inset_quad(q, area_box), panel, rng, pa, figures)
        done.append((panel, r, figures))
    # balloons last, so they sit on top of panel borders and never under a neighbour's art
    for k, (panel, r, figures) in enumerate(done):
        rng = random.Random(seed * 100 + 50 + k)
        inner = (r[0] + 6, r[1] + 6, r[2] - 6, r[3] - 6)
        for say in panel.says:
            target, head_r, body = None, 0.0, None
            if say.who is not None:
                if say.who not in figures:
                    raise ValueError(f"page {pa.index}{side}: {say.who} speaks {say.text!r} but isn't in the panel")
                fig, body = figures[say.who]
                target, head_r = fig.mouth, fig.head_r
            bx = r[0] + say.x * (r[2] - r[0])
            by = r[1] + say.y * (r[3] - r[1])
            tb = draw_balloon(cv, say.who, say.text, bx, by, target, head_r, inner, rng)
            text = Ann("text", tb, text=say.text.replace("|", ""), gloss=say.gloss)
            pa.items.append(text)
            if body is not None:
                pa.speakers.append((text, body))


def page_numbers(cv: Canvas, spread_index: int) -> None:
    """Small folios at the outer bottom corners, like a printed tankobon."""
    f = font("serif_regular", 13)
    cv.text(SPREAD_W - MARGIN_OUT, SPREAD_H - 34, str(2 * spread_index - 1), f, anchor="rm")
    cv.text(MARGIN_OUT, SPREAD_H - 34, str(2 * spread_index), f, anchor="lm")


def finish(cv: Canvas) -> Image.Image:
    return cv.img.convert("L").resize((SPREAD_W, SPREAD_H), Image.LANCZOS)


# =============================================================================================
# The story. Four scenes: a cheerful morning (spreads 0-4), a chase through the storm (5-8),
# the farewell at the station (9-12) and a warm ending a year later (13-15).

SCENES = (
    (0, 4, "cheerful summer morning at the harbor and the lighthouse"),
    (5, 8, "tense chase through a night storm to save Maru"),
    (9, 12, "sad farewell at the station"),
    (13, 15, "warm reunion a year later"),
)

STORY: tuple[Spread, ...] = (
    # 0: cover, drawn by draw_cover()
    Spread(PageSpec("cover", ()), PageSpec("cover", ())),
    # 1 -- morning at the harbor
    Spread(
        PageSpec("1-2-1", (
            P("harbor", N("夏の終わり。|港町の朝。", "The end of summer. Morning in a harbor town.")),
            P("sky", B("hina", "happiness", 0.42, facing=-1, pose="wave"),
              S("hina", "ソラー！|おはよう！", "Soraaa! Good morning!", 0.8, 0.3)),
            P("town", B("sora", "neutral", 0.68, facing=-1, h=118),
              S("sora", "おはよ、|ヒナ。|朝から|元気だな", "Morning, Hina. You're full of energy this early.", 0.22, 0.3)),
            P("soft", B("hina", "happiness", 0.3, facing=1),
              S("hina", "だって|今日は|いい天気|だもん！", "Well, it's such a beautiful day!", 0.7, 0.38)),
        )),
        PageSpec("2-big", (
            P("harbor", B("gen", "neutral", 0.64, facing=-1),
              S("gen", "おう、|二人とも|早いな", "Well now, you two are up early.", 0.2, 0.25)),
            P("sky", B("hina", "surprise", 0.62, facing=-1),
              S("hina", "おじいちゃん！|魚、釣れた？", "Grandpa! Did you catch anything?", 0.2, 0.28)),
            P("harbor", F("gen", "happiness", 0.4, pose="raise", prop="fish", h=82),
              B("sora", "surprise", 0.16, h=120, facing=1), B("hina", "disgust", 0.85, h=120, facing=-1),
              S("gen", "見ろ、|大漁じゃ！", "Look at this! A huge catch!", 0.92, 0.12),
              S("hina", "うっ……|生ぐさい……", "Ugh... it smells so fishy...", 0.74, 0.44),
              S("sora", "すげえ！|でっかい！", "Whoa! It's huge!", 0.14, 0.4)),
        )),
    ),
    # 2 -- off to the lighthouse; Sora almost says something
    Spread(
        PageSpec("2-1-2", (
            P("town", B("hina", "happiness", 0.3, facing=1),
              S("hina", "ねえ、|今日は|灯台まで|行こうよ！", "Hey, let's go up to the lighthouse today!", 0.76, 0.36)),
            P("town", B("sora", "happiness", 0.68, facing=-1),
              S("sora", "いいね。|マルも連れて|いこう", "Sounds good. Let's take Maru too.", 0.22, 0.34)),
            P("road", DOG("happiness", 0.58, 0.72, h=70, pose="run"), B("hina", "happiness", 0.18, facing=1),
              S("maru", "ワン！", "Woof!", 0.8, 0.25), S("hina", "マルも|嬉しいって！", "Maru says he's happy too!", 0.4, 0.32)),
            P("road", F("sora", "neutral", 0.7, facing=-1), F("hina", "happiness", 0.32, facing=1)),
            P("sky", B("sora", "neutral", 0.66, facing=-1), S("sora", "……あのさ、|ヒナ", "...Hey, Hina.", 0.2, 0.3)),
        )),
        PageSpec("2-tall", (
            P("sky", B("hina", "neutral", 0.3, facing=1), S("hina", "ん？|なに？", "Hm? What is it?", 0.78, 0.3)),
            P("sky", B("sora", "neutral", 0.66, facing=-1), S("sora", "いや……|なんでも|ない", "No... it's nothing.", 0.2, 0.3)),
            P("lighthouse", Sfx("ザザ……ン", 0.2, 0.82, 30)),
            P("road", B("hina", "happiness", 0.64, facing=-1), S("hina", "へんな|ソラ", "You're acting weird, Sora.", 0.2, 0.3)),
            P("road", F("sora", "happiness", 0.68, facing=-1, h=58), F("hina", "happiness", 0.3, pose="wave", facing=-1, h=58),
              DOG("happiness", 0.5, 0.9, h=36)),
        )),
    ),
    # 3 -- at the lighthouse: the promise
    Spread(
        PageSpec("big-2", (
            P("clifftop", F("hina", "happiness", 0.56, pose="cheer", h=84), F("sora", "neutral", 0.3, h=84, facing=1),
              S("hina", "着いたー！|海が|キラキラ|してる！", "We made it! The sea is all sparkly!", 0.86, 0.22),
              S("sora", "ここからだと|町がぜんぶ|見えるな", "You can see the whole town from up here.", 0.1, 0.25),
              fx=("sparkle",)),
            P("soft", B("hina", "happiness", 0.36, facing=1), S("hina", "ね、|楽しいね！", "Isn't this fun?", 0.8, 0.26)),
            P("clifftop", B("sora", "happiness", 0.64, facing=-1), S("sora", "うん、|最高だ", "Yeah. It's the best.", 0.2, 0.26)),
        )),
        PageSpec("1-2-1", (
            P("clifftop", B("hina", "neutral", 0.3, facing=1),
              S("hina", "来年の夏も、|ここに|来ようね", "Let's come here again next summer.", 0.72, 0.38)),
            P("gray", B("sora", "neutral", 0.55, h=125), S("sora", "……", "...", 0.86, 0.22)),
            P("clifftop", B("hina", "surprise", 0.4, facing=1), S("hina", "ソラ？", "Sora?", 0.82, 0.26)),
            P("clifftop", B("sora", "happiness", 0.64, facing=-1), B("hina", "happiness", 0.22, facing=1),
              S("sora", "うん……|そうだな", "Yeah... I guess so.", 0.88, 0.35),
              S("hina", "約束|だよ！", "It's a promise!", 0.43, 0.3)),
        )),
    ),
    # 4 -- evening; Gen smells a storm
    Spread(
        PageSpec("3rows", (
            P("dusk", B("gen", "neutral", 0.3, facing=1), N("夕方", "Evening."),
              S("gen", "風が|出てきたな。", "The wind's picking up.", 0.78, 0.55),
              S("gen", "今夜は|嵐に|なるぞ", "There'll be a storm tonight.", 0.58, 0.45)),
            P("harbor", B("hina", "disgust", 0.7, facing=-1), B("gen", "happiness", 0.24, facing=1),
              S("hina", "えー、|やだなあ", "Aww, no way. I hate storms.", 0.9, 0.3),
              S("gen", "早く|家に|帰るんじゃぞ", "Make sure you get home early.", 0.46, 0.3)),
            P("clouds_dark", Sfx("ゴロ……", 0.82, 0.45, 40, -10)),
        )),
        PageSpec("tall-3", (
            P("dusk", F("sora", "happiness", 0.42, pose="wave", h=96), DOG("happiness", 0.78, 0.93, h=50, facing=-1),
              S("sora", "じゃあな、|ヒナ。|また明日", "See you, Hina. See you tomorrow.", 0.78, 0.12)),
            P("dusk", B("hina", "happiness", 0.4, facing=-1, pose="wave"),
              S("hina", "うん！|また明日ね！", "Yeah! See you tomorrow!", 0.8, 0.3)),
            P("dusk", B("hina", "neutral", 0.5, facing=1, h=110)),
            P("clouds_dark", Sfx("ゴロゴロ", 0.5, 0.5, 40, 8)),
        )),
    ),
    # 5 -- that night: the storm, Sora at the door
    Spread(
        PageSpec("tall-3", (
            P("storm", N("その夜", "That night.", 0.9, 0.06), Sfx("ザアアア", 0.3, 0.32, 56, -5), fx=("rain",)),
            P("room", B("hina", "fear", 0.6, h=120), S("hina", "すごい|雨……", "Such heavy rain...", 0.17, 0.25)),
            P("white", B("hina", "fear", 0.62, facing=-1, h=115), S("hina", "雷、|怖いな……", "Thunder... I'm scared...", 0.18, 0.3),
              Sfx("ピカッ", 0.16, 0.8, 36, -10), fx=("focus",)),
            P("door", Sfx("ドンドン", 0.55, 0.35, 46, 10), Sfx("ドン", 0.25, 0.72, 40, -8)),
        )),
        PageSpec("big-2", (
            P("door", F("sora", "fear", 0.68, h=80, facing=-1), B("hina", "surprise", 0.2, h=150, facing=1),
              S("sora", "ヒナ！！", "Hina!!", 0.92, 0.14),
              S("hina", "ソラ！？|どうしたの、|びしょぬれで！", "Sora!? What happened? You're soaked!", 0.46, 0.2)),
            P("focus", B("sora", "fear", 0.6, facing=-1, h=150),
              S("sora", "マルが……|マルが|逃げたんだ！", "Maru... Maru ran away!", 0.18, 0.25), fx=("rain",)),
            P("white", B("hina", "surprise", 0.38, h=150), S("hina", "ええっ！？", "Whaaat!?", 0.84, 0.2), fx=("focus",)),
        )),
    ),
    # 6 -- the chase through the streets
    Spread(
        PageSpec("chase", (
            P("street_storm", B("sora", "fear", 0.25, facing=1, h=112),
              S("sora", "雷に|びっくりして、|港のほうへ|走っていった！", "The thunder startled him and he ran off toward the harbor!",
                0.72, 0.42), fx=("rain",)),
            P("street_storm", B("hina", "anger", 0.38, facing=1, h=112),
              S("hina", "一緒に|さがそう！", "Let's look for him together!", 0.82, 0.3), fx=("rain",)),
            P("street_storm", B("sora", "surprise", 0.62, facing=-1, h=105),
              S("sora", "でも、|危ないぞ！", "But it's dangerous!", 0.2, 0.3), fx=("rain",)),
            P("focus", B("hina", "anger", 0.32, h=165, facing=1, pose="fist"),
              S("hina", "いいから、|早く！！", "Never mind that, hurry!!", 0.78, 0.35), fx=("rain",)),
        )),
        PageSpec("chase3", (
            P("street_storm", F("hina", "anger", 0.62, pose="run", facing=-1, h=66),
              F("sora", "fear", 0.28, pose="run", facing=-1, h=66),
              S("hina", "マルーッ！！|どこー！？", "Maruuu!! Where are you!?", 0.88, 0.28), fx=("speed", "rain")),
            P("street_storm", B("sora", "fear", 0.3, h=105, facing=1),
              S("sora", "マル！！|返事しろ！", "Maru!! Answer me!", 0.72, 0.38), fx=("rain",)),
            P("street_storm", Sfx("バシャ", 0.3, 0.55, 44, -12), Sfx("バシャッ", 0.7, 0.45, 44, 10), fx=("speed", "rain")),
        )),
    ),
    # 7 -- the breakwater and the wave
    Spread(
        PageSpec("2-1-2", (
            P("breakwater", B("hina", "surprise", 0.26, facing=1),
              S("hina", "いた！|防波堤の|先！", "There! At the end of the breakwater!", 0.78, 0.3), fx=("rain",)),
            P("breakwater", B("sora", "fear", 0.68, facing=-1),
              S("sora", "あんな|ところに|……！", "All the way out there...!", 0.2, 0.3), fx=("rain",)),
            P("breakwater", DOG("fear", 0.63, 0.44, h=28, facing=-1), S("maru", "クゥン……", "Whimper...", 0.84, 0.28),
              Sfx("ザバーン", 0.22, 0.62, 40, -8), fx=("rain",)),
            P("night_sea", B("sora", "fear", 0.28, facing=1),
              S("sora", "波が|高い……|怖い……|けど！", "The waves are so high... I'm scared... but!", 0.76, 0.35),
              fx=("rain",)),
            P("focus", B("sora", "anger", 0.58, facing=-1, pose="fist"),
              S("sora", "待ってろ、|マル！！", "Hang on, Maru!!", 0.18, 0.28), fx=("rain",)),
        )),
        PageSpec("2-big", (
            P("street_storm", B("hina", "fear", 0.32, facing=1),
              S("hina", "ソラ、|だめ！！|危ない！！", "Sora, no!! It's too dangerous!!", 0.8, 0.25), fx=("rain",)),
            P("breakwater", F("sora", "anger", 0.45, pose="run", facing=1, h=66), fx=("speed", "rain")),
            P("wave", F("sora", "fear", 0.28, pose="reach", facing=1, h=84), DOG("fear", 0.56, 0.78, h=55, facing=-1),
              Sfx("ザバーン！！", 0.86, 0.5, 54, -8), fx=("rain",)),
        )),
    ),
    # 8 -- Gen to the rescue; anger, then relief
    Spread(
        PageSpec("3rows", (
            P("focus", B("hina", "fear", 0.42, h=128), S("hina", "ソラーッ！！", "Soraaa!!", 0.84, 0.4), fx=("rain",)),
            P("night_sea", B("sora", "surprise", 0.2, facing=1), B("gen", "anger", 0.72, facing=-1, pose="reach"),
              S("gen", "つかまれ！！", "Grab on!!", 0.93, 0.3), S("sora", "ゲンじい！！", "Gen-jii!!", 0.43, 0.28), fx=("rain",)),
            P("breakwater", F("gen", "anger", 0.7, pose="reach", facing=-1, h=62), F("sora", "fear", 0.36, facing=1, h=60),
              DOG("fear", 0.18, 0.86, h=40, facing=1), Sfx("ガシッ", 0.52, 0.3, 44, -10), fx=("rain",)),
        )),
        PageSpec("2-tall", (
            P("focus", B("gen", "anger", 0.3, facing=1, pose="fist", h=128),
              S("gen", "バカモン！！|なんて無茶を|するんじゃ！！", "You young fool!! What a reckless thing to do!!", 0.76, 0.3),
              fx=("rain",)),
            P("night_sea", B("sora", "sadness", 0.66, facing=-1), DOG("sadness", 0.2, 0.86, h=42),
              S("sora", "……ごめん|なさい", "...I'm sorry.", 0.2, 0.26), fx=("rain",)),
            P("soft", F("hina", "sadness", 0.55, h=100), DOG("happiness", 0.25, 0.9, h=55),
              S("hina", "よかった……|マルも|無事で……", "Thank goodness... Maru's safe too...", 0.82, 0.12)),
            P("night_sea", B("hina", "sadness", 0.66, facing=-1),
              S("hina", "おじいちゃん、|そんなに|怒らないで", "Grandpa, please don't be so angry.", 0.2, 0.3)),
            P("night_sea", B("gen", "neutral", 0.66, facing=-1),
              S("gen", "……まったく。|怪我がなくて|よかった", "...Honestly. I'm just glad no one got hurt.", 0.2, 0.3)),
        )),
    ),
    # 9 -- next morning, the station: Sora is moving away
    Spread(
        PageSpec("big-2", (
            P("station", N("翌朝。|駅のホームで", "The next morning, on the station platform.", 0.93, 0.3)),
            P("platform", B("hina", "sadness", 0.34, facing=1),
              S("hina", "本当に、|今日|行っちゃうの|……？", "Are you really leaving today...?", 0.8, 0.26)),
            P("platform", B("sora", "neutral", 0.66, facing=-1),
              S("sora", "……うん。|父さんの|仕事で、|東京に", "...Yeah. Because of my dad's job. To Tokyo.", 0.22, 0.26)),
        )),
        PageSpec("1-2-1", (
            P("platform", B("hina", "neutral", 0.3, facing=1),
              S("hina", "昨日|言おうと|したの、|このこと？", "Is this what you were trying to say yesterday?", 0.72, 0.38)),
            P("gray", B("sora", "sadness", 0.62, facing=-1),
              S("sora", "ごめん。|なかなか|言えなくて", "Sorry. I just couldn't bring myself to say it.", 0.2, 0.3)),
            P("focus", B("hina", "anger", 0.42, facing=1, pose="fist"),
              S("hina", "ばか……|ばかソラ……", "Idiot... you idiot, Sora...", 0.83, 0.28)),
            P("platform", F("hina", "sadness", 0.62, h=60, facing=-1), F("sora", "neutral", 0.4, h=60, facing=1)),
        )),
    ),
    # 10 -- Sora leaves Maru with Hina
    Spread(
        PageSpec("2-1-2", (
            P("soft", B("hina", "sadness", 0.3, facing=1, h=135),
              S("hina", "悲しいよ……|急すぎるよ……", "I'm so sad... It's too sudden...", 0.79, 0.35)),
            P("gray", B("sora", "sadness", 0.66, facing=-1),
              S("sora", "俺だって……|行きたく|ない", "I don't want to go either...", 0.2, 0.3)),
            P("platform", B("sora", "neutral", 0.6, facing=-1), DOG("neutral", 0.86, 0.8, h=48, facing=-1),
              S("sora", "でも、|マルを|ヒナに|たのみたいんだ", "But I want to ask you to look after Maru.", 0.28, 0.4)),
            P("platform", B("hina", "surprise", 0.34, facing=1), S("hina", "マルを|……？", "Maru...?", 0.8, 0.28)),
            P("platform", B("sora", "neutral", 0.66, facing=-1),
              S("sora", "向こうの|マンションじゃ|飼えないから", "I can't keep him in the apartment over there.", 0.2, 0.3)),
        )),
        PageSpec("3rows", (
            P("platform", DOG("sadness", 0.5, 0.66, h=95, facing=-1), S("maru", "クゥーン", "Whine...", 0.82, 0.3)),
            P("soft", B("hina", "neutral", 0.32, facing=1),
              S("hina", "……わかった。|ちゃんと|面倒みる", "...Okay. I'll take good care of him.", 0.72, 0.36)),
            P("platform", B("sora", "happiness", 0.64, facing=-1), B("hina", "sadness", 0.26, facing=1),
              S("sora", "ありがとう、|ヒナ", "Thank you, Hina.", 0.9, 0.3)),
        )),
    ),
    # 11 -- the train arrives
    Spread(
        PageSpec("tall-3", (
            P("train_front", N("まもなく、|一番線に|電車が|まいります", "The train will soon arrive at platform one.", 0.86, 0.1),
              Sfx("ガタン", 0.14, 0.8, 36, -6), Sfx("ゴトン", 0.86, 0.7, 36, 6)),
            P("platform", B("sora", "neutral", 0.64, facing=-1), S("sora", "……もう|時間だ", "...It's time.", 0.2, 0.3)),
            P("platform", B("gen", "sadness", 0.36, facing=1), S("gen", "ソラ、|元気でな", "Sora, take care of yourself.", 0.8, 0.3)),
            P("platform", B("sora", "happiness", 0.66, facing=-1),
              S("sora", "ゲンじいも。|昨日は|本当に|ありがとう", "You too, Gen-jii. Thank you so much for last night.", 0.22, 0.3)),
        )),
        PageSpec("2-tall", (
            P("platform", B("hina", "sadness", 0.3, facing=1), S("hina", "手紙、|書くからね！", "I'll write you letters!", 0.78, 0.3)),
            P("train_side", B("sora", "happiness", 0.64, facing=-1), S("sora", "俺も書く。|毎週書く", "I'll write too. Every week.", 0.2, 0.3)),
            P("platform", F("hina", "sadness", 0.4, pose="reach", facing=1, h=100),
              S("hina", "約束、|忘れないで|ね……！", "Don't forget our promise...!", 0.8, 0.12)),
            P("train_side", Sfx("プシュー", 0.5, 0.4, 40)),
            P("train_side", B("sora", "sadness", 0.5, h=112)),
        )),
    ),
    # 12 -- goodbye
    Spread(
        PageSpec("3rows", (
            P("train_side", B("sora", "sadness", 0.3, facing=1, pose="wave"),
              S("sora", "さよなら、|ヒナ！", "Goodbye, Hina!", 0.76, 0.35), fx=("speed",)),
            P("platform", F("hina", "sadness", 0.5, pose="run", facing=1, h=60),
              S("hina", "さよなら|……！", "Goodbye...!", 0.84, 0.3), fx=("speed",)),
            P("train_leaving"),
        )),
        PageSpec("big-2", (
            P("platform", F("hina", "sadness", 0.5, h=84), Sfx("ヒュウウ", 0.2, 0.3, 38, -8)),
            P("platform", B("gen", "neutral", 0.36, facing=1),
              S("gen", "……泣いても|いいんじゃぞ", "...It's all right to cry, you know.", 0.8, 0.28)),
            P("soft", B("hina", "sadness", 0.46, h=165), S("hina", "うう……っ", "Uuu...", 0.84, 0.2)),
        )),
    ),
    # 13 -- one year later: a letter
    Spread(
        PageSpec("1-2-1", (
            P("sky", N("一年後。|夏", "One year later. Summer."), fx=("sparkle",)),
            P("harbor", B("hina", "happiness", 0.34, facing=1),
              S("hina", "マル、|おいで！|散歩|いこう！", "Maru, come here! Let's go for a walk!", 0.8, 0.3)),
            P("harbor", DOG("happiness", 0.56, 0.72, h=85, facing=1), S("maru", "ワン！", "Woof!", 0.2, 0.22)),
            P("town", B("gen", "happiness", 0.3, facing=1, pose="hold", prop="letter"),
              S("gen", "ヒナ、|ソラから|手紙じゃぞ", "Hina, there's a letter for you from Sora.", 0.7, 0.36)),
        )),
        PageSpec("2-1-2", (
            P("focus", B("hina", "surprise", 0.34, facing=1), S("hina", "ほんと！？", "Really!?", 0.82, 0.3)),
            P("letter"),
            P("soft", B("hina", "neutral", 0.28, facing=1, pose="hold", prop="letter"),
              S("hina", "『夏休み、|そっちに|行くよ』|……だって！", "\"I'm coming to see you over summer vacation\"... he says!",
                0.7, 0.42)),
            P("harbor", F("hina", "happiness", 0.38, pose="cheer", h=62),
              S("hina", "やったあ！|嬉しい！", "Yay! I'm so happy!", 0.84, 0.25), fx=("sparkle",)),
            P("harbor", DOG("happiness", 0.5, 0.8, h=72)),
        )),
    ),
    # 14 -- Sora comes back
    Spread(
        PageSpec("big-2", (
            P("station", N("そして――", "And then..."), F("sora", "happiness", 0.8, pose="wave", facing=-1, h=76),
              S("sora", "ただいま、|ヒナ！", "I'm home, Hina!", 0.56, 0.22)),
            P("soft", B("hina", "happiness", 0.34, facing=1),
              S("hina", "ソラ！！|おかえり！！", "Sora!! Welcome back!!", 0.8, 0.26), fx=("sparkle",)),
            P("platform", DOG("happiness", 0.5, 0.72, h=80, pose="run", facing=1), fx=("speed",)),
        )),
        PageSpec("3rows", (
            P("platform", B("sora", "happiness", 0.28, facing=1), DOG("happiness", 0.6, 0.78, h=58, facing=-1),
              S("sora", "マル、|大きく|なったな！", "Maru, you've gotten so big!", 0.86, 0.35),
              S("maru", "ワンワン！", "Woof woof!", 0.5, 0.26)),
            P("soft", B("hina", "happiness", 0.7, facing=-1),
              S("hina", "ソラも|背が|のびたね", "You've gotten taller too, Sora.", 0.3, 0.36)),
            P("platform", B("sora", "happiness", 0.34, facing=1), S("sora", "へへ、|まあな", "Heh, I guess so.", 0.76, 0.35)),
        )),
    ),
    # 15 -- back to the lighthouse
    Spread(
        PageSpec("tall-3", (
            P("lighthouse_sunset"),
            P("sunset", B("hina", "happiness", 0.38, facing=1),
              S("hina", "ねえ、|灯台に|行こう！", "Hey, let's go to the lighthouse!", 0.8, 0.3)),
            P("sunset", B("sora", "happiness", 0.62, facing=-1),
              S("sora", "ああ、|約束だ|もんな", "Yeah. We promised, after all.", 0.2, 0.3)),
            P("road", F("sora", "happiness", 0.66, h=58, facing=-1), F("hina", "happiness", 0.32, h=58, facing=1),
              DOG("happiness", 0.5, 0.92, h=34)),
        )),
        PageSpec("big-2", (
            P("sunset_cliff", F("hina", "happiness", 0.6, h=84, facing=-1), F("sora", "happiness", 0.38, h=84, facing=1),
              DOG("happiness", 0.82, 0.9, h=48, facing=-1),
              S("hina", "来年も、|その次も、|ずっと一緒に|来ようね", "Next year, and the year after that, let's always come here together.",
                0.87, 0.22),
              S("sora", "うん。|ずっと", "Yeah. Always.", 0.12, 0.2)),
            P("sunset"),
            P("white", N("おわり", "The End", 0.5, 0.5)),
        )),
    ),
)


# =============================================================================================
# The cover


def draw_cover(cv: Canvas, pa: PageAnns) -> None:
    """Front cover on the right half (the side a right-to-left book opens from), back cover left.

    The cover has no panels, so it has faces and bodies but no frames, and no dialogue.
    """
    rng = random.Random(7)
    x0, y0, x1, y1 = front = (PAGE_W, 0, SPREAD_W, SPREAD_H)
    art = Canvas(PAGE_W, 0, PAGE_W, SPREAD_H)
    horizon = 700
    art.gradient_rect((x0, y0, x1, horizon), 0.3, 0.02)
    clouds(art, (x0, 330, x1, 640), rng, 3, 560)
    sea(art, front, horizon, rng, 0.12)
    headland = [(x0, horizon - 10), (x0 + 120, horizon - 40), (x0 + 250, horizon - 36), (x0 + 330, horizon + 25), (x0, horizon + 40)]
    art.polygon(headland, fill=PAPER, outline=INK, width=2)
    art.tone_polygon(headland, 0.35)
    lighthouse(art, x0 + 170, horizon - 36, 250)
    gulls(art, (x0, 380, x1, 640), rng, 6, 600)
    sparkles(art, (x0 + 340, horizon + 10, x1, horizon + 120), rng, 7)
    cast = (  # both look out to sea toward the lighthouse; Sora waves, away from Hina's face
        (Cast("sora", "happiness", 0, shot="bust", facing=-1, pose="wave"), 1085, 640, 175),
        (Cast("hina", "happiness", 0, shot="bust", facing=-1), 1380, 760, 225),
        (Cast("maru", "happiness", 0, shot="full", facing=-1), 905, 1095, 72),
    )
    for c, cx, cy, H in cast:
        layer = Canvas(PAGE_W, 0, PAGE_W, SPREAD_H, transparent=True)
        if c.who == "maru":
            fig = draw_dog(layer, c.emo, cx, cy, H, c.facing, "stand")
        else:
            fig = draw_person(layer, c.who, c.emo, cx, cy, H, c.shot, c.facing, c.pose, None)
        box = layer.ink_box()
        art.paste_canvas(layer)
        pa.items.append(Ann("body", box, CHARACTER_IDS[c.who]))
        if fig.face is not None:
            pa.items.append(Ann("face", clip_box(fig.face, front), CHARACTER_IDS[c.who], emotion=c.emo))
    # title block: heavy sans with a white halo so it stands on the sky tone
    art.text((x0 + x1) / 2, 150, TITLE_JA, font("sans", 118), stroke=9, stroke_fill=PAPER)
    art.text((x0 + x1) / 2, 258, "SHIOKAZE  DAYS", font("sans", 34), stroke=4, stroke_fill=PAPER)
    art.text(x1 - 40, 318, "m2m オリジナル", font("serif", 22), anchor="rm", stroke=3, stroke_fill=PAPER)
    cv.paste_canvas(art)
    # back cover: the lighthouse at dusk on its cliff, and the blurb
    back = Canvas(0, 0, PAGE_W, SPREAD_H)
    bh = 820
    back.gradient_rect((0, 0, PAGE_W, bh), 0.5, 0.08)
    sea(back, (0, 0, PAGE_W, SPREAD_H), bh, rng, 0.3)
    cliff_pts = [(330, SPREAD_H), (420, bh + 40), (480, bh - 60), (PAGE_W, bh - 80), (PAGE_W, SPREAD_H)]
    back.polygon(cliff_pts, fill=PAPER, outline=INK, width=2)
    back.tone_polygon(cliff_pts, 0.45)
    lighthouse(back, 640, bh - 75, 430, night=True)
    gulls(back, (0, 200, PAGE_W, 600), rng, 4, 520)
    bx0, by0, bx1, by1 = 100, 150, 400, 690
    back.rect((bx0 + 5, by0 + 5, bx1 + 5, by1 + 5), fill=INK)
    back.rect((bx0, by0, bx1, by1), fill=PAPER, outline=INK, width=2)
    blurb = ["夏の終わり、", "港町。", "ヒナとソラと", "犬のマルの、", "最後の夏休み。", "嵐の夜と、", "駅のホームと、", "約束の灯台。"]
    f = font("serif", 24)
    for i, col in enumerate(blurb):
        back.text(bx1 - 40 - i * 34, by0 + 40, col, f, anchor="mt", vertical=True)
    back.rect((40, SPREAD_H - 100, PAGE_W - 40, SPREAD_H - 62), fill=PAPER, outline=INK, width=1.5)
    back.text(PAGE_W / 2, SPREAD_H - 81, "m2m example book · drawn by examples/draw_example.py", font("serif_regular", 15))
    cv.paste_canvas(back)
    cv.line([(PAGE_W, 0), (PAGE_W, SPREAD_H)], 1.0, gray(120))  # the spine fold


# =============================================================================================
# Rendering the book and writing the Manga109 files


def render_book() -> tuple[list[Image.Image], list[PageAnns]]:
    images, pages = [], []
    for index, spread in enumerate(STORY):
        cv = Canvas(0, 0, SPREAD_W, SPREAD_H)
        pa = PageAnns(index)
        if index == 0:
            draw_cover(cv, pa)
        else:
            draw_page(cv, spread.right, "R", index * 2, pa)
            draw_page(cv, spread.left, "L", index * 2 + 1, pa)
            page_numbers(cv, index)
        images.append(finish(cv))
        pages.append(pa)
        print(f"  drew spread {index:2d}: {sum(a.kind == 'text' for a in pa.items)} texts, "
              f"{sum(a.kind == 'face' for a in pa.items)} faces", file=sys.stderr)
    return images, pages


def int_box(b: Box) -> tuple[int, int, int, int]:
    """Whole pixels, rounded outward and kept inside the spread."""
    return (max(0, math.floor(b[0])), max(0, math.floor(b[1])),
            min(SPREAD_W, math.ceil(b[2])), min(SPREAD_H, math.ceil(b[3])))


def assign_ids(pages: list[PageAnns]) -> int:
    """Ids are 8 hex digits, unique across the book; characters hold 1..4. Returns the next free id."""
    next_id = 0x10
    order = {"frame": 0, "face": 1, "body": 2, "text": 3}
    for pa in pages:
        pa.items.sort(key=lambda a: order[a.kind])  # stable: reading order within each kind
        for a in pa.items:
            a.id = f"{next_id:08x}"
            next_id += 1
    return next_id


def annotation_xml(pages: list[PageAnns]) -> str:
    lines = ['<?xml version="1.0" encoding="utf-8"?>', f"<book title={quoteattr(BOOK)}>", "  <characters>"]
    for who, cid in CHARACTER_IDS.items():
        lines.append(f"    <character id={quoteattr(cid)} name={quoteattr(LOOKS[who].name)} />")
    lines += ["  </characters>", "  <pages>"]
    for pa in pages:
        lines.append(f'    <page index="{pa.index}" width="{SPREAD_W}" height="{SPREAD_H}">')
        for a in pa.items:
            x0, y0, x1, y1 = int_box(a.box)
            attrs = f'id="{a.id}" xmin="{x0}" ymin="{y0}" xmax="{x1}" ymax="{y1}"'
            if a.kind == "text":
                lines.append(f"      <text {attrs}>{escape(a.text or '')}</text>")
            elif a.kind == "frame":
                lines.append(f"      <frame {attrs} />")
            else:
                lines.append(f'      <{a.kind} {attrs} character="{a.character}" />')
        lines.append("    </page>")
    lines += ["  </pages>", "</book>", ""]
    return "\n".join(lines)


def relationships_xml(pages: list[PageAnns], next_id: int) -> str:
    lines = ['<?xml version="1.0" encoding="utf-8"?>', f"<book title={quoteattr(BOOK)}>"]
    for pa in pages:
        for text, body in pa.speakers:
            lines.append(f'  <speaker_to_text id="{next_id:08x}" text_id="{text.id}" speaker_id="{body.id}" />')
            next_id += 1
    lines += ["</book>", ""]
    return "\n".join(lines)


def write_book(images: list[Image.Image], pages: list[PageAnns]) -> None:
    next_id = assign_ids(pages)
    img_dir = OUT / "images" / BOOK
    img_dir.mkdir(parents=True, exist_ok=True)
    for index, im in enumerate(images):
        # optimize + no subsampling info for L: small files without visible JPEG ringing on tones
        im.save(img_dir / f"{index:03d}.jpg", quality=JPEG_QUALITY, optimize=True)
    (OUT / "books.txt").write_text(BOOK + "\n", encoding="utf-8")
    for sub in ("annotations", "relationships", "glosses", "ground_truth"):
        (OUT / sub).mkdir(parents=True, exist_ok=True)
    (OUT / "annotations" / f"{BOOK}.xml").write_text(annotation_xml(pages), encoding="utf-8")
    (OUT / "relationships" / f"{BOOK}.xml").write_text(relationships_xml(pages, next_id), encoding="utf-8")
    glosses = {a.id: a.gloss for pa in pages for a in pa.items if a.kind == "text"}
    (OUT / "glosses" / f"{BOOK}.json").write_text(json.dumps(glosses, ensure_ascii=False, indent=1) + "\n",
                                                  encoding="utf-8")
    truth = {
        "book": BOOK,
        "scenes": [{"first_page": a, "last_page": b, "label": label} for a, b, label in SCENES],
        "faces": [{"page": pa.index, "face_id": a.id, "character": a.character, "emotion": a.emotion}
                  for pa in pages for a in pa.items if a.kind == "face"],
    }
    (OUT / "ground_truth" / f"{BOOK}.json").write_text(json.dumps(truth, ensure_ascii=False, indent=1) + "\n",
                                                       encoding="utf-8")


# =============================================================================================
# Validation: read the written files back and check them the way a loader would


def validate() -> list[str]:
    """Problems found in the written files (empty when all is well)."""
    import xml.etree.ElementTree as ET

    problems: list[str] = []
    root = ET.parse(OUT / "annotations" / f"{BOOK}.xml").getroot()
    ids: set[str] = set()
    chars = {c.get("id") for c in root.iter("character")}
    for c in chars:
        ids.add(c)
    bodies, texts, faces = {}, {}, {}
    page_count = 0
    for page in root.iter("page"):
        page_count += 1
        idx = int(page.get("index"))
        W, H = int(page.get("width")), int(page.get("height"))
        if not (OUT / "images" / BOOK / f"{idx:03d}.jpg").is_file():
            problems.append(f"page {idx}: image missing")
        for el in page:
            i = el.get("id")
            if not (len(i) == 8 and all(ch in "0123456789abcdef" for ch in i)):
                problems.append(f"page {idx}: bad id {i!r}")
            if i in ids:
                problems.append(f"page {idx}: duplicate id {i}")
            ids.add(i)
            x0, y0, x1, y1 = (int(el.get(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            if not (0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H):
                problems.append(f"page {idx}: <{el.tag} id={i}> box {(x0, y0, x1, y1)} outside the page")
            if el.tag in ("face", "body") and el.get("character") not in chars:
                problems.append(f"page {idx}: <{el.tag} id={i}> has unknown character {el.get('character')}")
            {"body": bodies, "text": texts, "face": faces}.get(el.tag, {})[i] = idx
    if page_count != len(STORY):
        problems.append(f"{page_count} pages in the XML, {len(STORY)} in the story")
    rel = ET.parse(OUT / "relationships" / f"{BOOK}.xml").getroot()
    spoken = set()
    for el in rel.iter("speaker_to_text"):
        t, b = el.get("text_id"), el.get("speaker_id")
        if el.get("id") in ids:
            problems.append(f"relationship id {el.get('id')} reused")
        ids.add(el.get("id"))
        if t not in texts or b not in bodies:
            problems.append(f"relationship {el.get('id')}: unknown text {t} or body {b}")
        elif texts[t] != bodies[b]:
            problems.append(f"relationship {el.get('id')}: text and speaker on different pages")
        spoken.add(t)
    glosses = json.loads((OUT / "glosses" / f"{BOOK}.json").read_text(encoding="utf-8"))
    if set(glosses) != set(texts):
        problems.append("glosses don't cover exactly the texts")
    truth = json.loads((OUT / "ground_truth" / f"{BOOK}.json").read_text(encoding="utf-8"))
    if {f["face_id"] for f in truth["faces"]} != set(faces):
        problems.append("ground-truth faces don't match the annotated faces")
    if any(f["emotion"] not in EMOTIONS for f in truth["faces"]):
        problems.append("ground truth uses an emotion outside KangaiSet's 7 classes")
    covered = [p for s in truth["scenes"] for p in range(s["first_page"], s["last_page"] + 1)]
    if covered != list(range(len(STORY))):
        problems.append("scenes don't cover the pages contiguously")
    narration = sum(1 for s in STORY for pg in (s.right, s.left) for pn in pg.panels for say in pn.says if say.who is None)
    if len(spoken) + narration != len(texts):
        problems.append(f"{len(texts)} texts but {len(spoken)} speakers + {narration} narration boxes")
    return problems


def main() -> int:
    for kind in FONT_FILES:  # fail early, with the install hint, before drawing anything
        font(kind, 12)
    images, pages = render_book()
    write_book(images, pages)
    problems = validate()
    for p in problems:
        print("problem:", p, file=sys.stderr)
    n_text = sum(a.kind == "text" for pa in pages for a in pa.items)
    n_face = sum(a.kind == "face" for pa in pages for a in pa.items)
    print(f"wrote {OUT}: {len(images)} spreads, {n_text} texts, {n_face} faces", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
