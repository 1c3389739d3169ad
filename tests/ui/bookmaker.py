"""Small books for UI tests: a Manga109-layout folder of two-page spreads, and simple-format archives."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from PIL import Image, ImageDraw

LINES = [("おはよう！今日はいい天気だね。", "Good morning! Nice weather today."),
         ("待って…何か聞こえる。", "Wait... I hear something."),
         ("逃げろ！", "Run!"),
         ("大丈夫、もう怖くないよ。", "It's all right, nothing to fear now.")]


def draw_spread(path: Path, index: int, width: int = 1654, height: int = 1170) -> None:
    im = Image.new("RGB", (width, height), (236, 233, 226))
    d = ImageDraw.Draw(im)
    shade = 40 + (index * 37) % 150
    for half in (0, 1):
        x0 = half * width // 2
        d.rectangle([x0 + 40, 40, x0 + width // 2 - 40, height // 2 - 20], outline=(20, 20, 20), width=6,
                    fill=(shade, shade, shade + 20))
        d.rectangle([x0 + 40, height // 2 + 20, x0 + width // 2 - 40, height - 40], outline=(20, 20, 20), width=6)
        d.ellipse([x0 + 200, height // 2 + 120, x0 + 560, height // 2 + 420], outline=(20, 20, 20), width=8)
        d.text((x0 + 80, height - 120), f"p{index + 1}{'ab'[half]}", fill=(0, 0, 0))
    im.save(path, "JPEG", quality=70)


def manga109_book(root: Path, title: str = "TestBook", pages: int = 6) -> Path:
    """A Manga109-layout root with ``pages`` spreads, dialogue with speakers and English glosses."""
    (root / "images" / title).mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    (root / "glosses").mkdir(exist_ok=True)
    (root / "books.txt").write_text(title + "\n", encoding="utf-8")
    page_xml, glosses, n = [], {}, 0
    for i in range(pages):
        draw_spread(root / "images" / title / f"{i:03d}.jpg", i)
        texts = []
        for j in range(2):
            ja, en = LINES[(i + j) % len(LINES)]
            tid = f"t{i:03d}{j}"
            x = 1300 - j * 800
            texts.append(f'<text id="{tid}" xmin="{x}" ymin="100" xmax="{x + 200}" ymax="400">{ja}</text>')
            glosses[tid] = en
            n += 1
        faces = f'<face id="f{i:03d}" xmin="300" ymin="700" xmax="500" ymax="900" character="c1"/>'
        page_xml.append(f'<page index="{i}" width="1654" height="1170">{faces}{"".join(texts)}</page>')
    xml = (f'<?xml version="1.0" encoding="utf-8"?><book title="{title}"><characters>'
           '<character id="c1" name="ハル"/><character id="c2" name="ミオ"/></characters>'
           f'<pages>{"".join(page_xml)}</pages></book>')
    (root / "annotations" / f"{title}.xml").write_text(xml, encoding="utf-8")
    (root / "glosses" / f"{title}.json").write_text(json.dumps(glosses, ensure_ascii=False), encoding="utf-8")
    return root


def simple_zip(path: Path, pages: int = 3, *, transcript: dict | None = None, images: dict[str, bytes] | None = None,
               extra: dict[str, bytes] | None = None) -> Path:
    """A simple-format .zip; pass ``transcript``/``images``/``extra`` to build broken ones."""
    if images is None:
        images = {}
        for i in range(pages):
            tmp = path.with_name(f"_p{i}.png")
            Image.new("RGB", (600, 850), (230, 230, 230)).save(tmp, "PNG")
            images[f"p{i}.png"] = tmp.read_bytes()
            tmp.unlink()
    if transcript is None:
        transcript = {"title": "Upload Test", "direction": "ltr",
                      "pages": [{"image": name, "lines": [{"speaker": "Ann", "text": f"Hello {k}"}]}
                                for k, name in enumerate(images)]}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("transcript.json", json.dumps(transcript))
        for name, data in images.items():
            z.writestr(name, data)
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return path


def manga109_zip(path: Path, title: str = "ZipBook", pages: int = 3) -> Path:
    """A Manga109-layout book (``books.txt``, ``annotations/``, ``images/``, ``glosses/``) as one .zip."""
    root = manga109_book(path.with_name(path.stem + "-src"), title, pages)
    with zipfile.ZipFile(path, "w") as z:
        for file in sorted(root.rglob("*")):
            if file.is_file():
                z.write(file, file.relative_to(root).as_posix())
    return path
