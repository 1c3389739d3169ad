"""Shared fixtures: small books written by the tests themselves."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "manga109"

CHROMIUM = "/usr/bin/chromium"  # Debian's Chromium; Playwright's own browser download fails here
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync")

SPREAD = (400, 300)  # width x height: wider than tall, so a two-page spread

MANGA109_XML = """<?xml version="1.0" encoding="utf-8"?>
<book title="テスト本">
  <characters>
    <character id="00000001" name="アキ" />
    <character id="00000002" name="ミナ" />
  </characters>
  <pages>
    <page index="0" width="400" height="300">
      <frame id="00000010" xmin="210" ymin="10" xmax="390" ymax="140" />
      <frame id="00000011" xmin="10" ymin="10" xmax="190" ymax="290" />
      <frame id="00000012" xmin="210" ymin="150" xmax="390" ymax="290" />
      <onomatopoeia id="000000ff" xmin="20" ymin="20" xmax="40" ymax="40">ドン</onomatopoeia>
      <text id="00000022" xmin="30" ymin="30" xmax="60" ymax="100">左のページ</text>
      <text id="00000021" xmin="220" ymin="160" xmax="250" ymax="220">右下</text>
      <text id="00000020" xmin="340" ymin="20" xmax="380" ymax="100">おはよう！
元気？</text>
      <face id="00000030" xmin="250" ymin="40" xmax="300" ymax="90" character="00000001" />
      <body id="00000040" xmin="240" ymin="30" xmax="320" ymax="140" character="00000001" />
      <body id="00000041" xmin="100" ymin="100" xmax="180" ymax="280" character="00000002" />
      <note>ignored</note>
    </page>
    <page index="1" width="400" height="300">
      <text id="00000023" xmin="300" ymin="20" xmax="340" ymax="100">さようなら……</text>
      <body id="00000042" xmin="200" ymin="100" xmax="280" ymax="280" character="00000002" />
    </page>
  </pages>
</book>
"""

RELATIONSHIPS_XML = """<?xml version="1.0" encoding="utf-8"?>
<book title="テスト本">
  <speaker_to_text id="00000100" text_id="00000020" speaker_id="00000040" />
  <speaker_to_text id="00000101" text_id="00000022" speaker_id="00000041" />
  <speaker_to_text id="00000102" text_id="00000023" speaker_id="00000042" />
</book>
"""


def write_image(path: Path, size: tuple[int, int] = SPREAD, fmt: str = "JPEG", mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, "white").save(path, fmt)
    return path


def write_manga109(root: Path, name: str = "TestBook", xml: str = MANGA109_XML,
                   relationships: str | None = RELATIONSHIPS_XML, pages: int = 2) -> Path:
    """A Manga109-layout root with one book; `relationships=None` leaves out the speaker file."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "books.txt").write_text(name + "\n", encoding="utf-8")
    (root / "annotations" / f"{name}.xml").write_text(xml, encoding="utf-8")
    if relationships is not None:
        (root / "relationships").mkdir(exist_ok=True)
        (root / "relationships" / f"{name}.xml").write_text(relationships, encoding="utf-8")
    for i in range(pages):
        write_image(root / "images" / name / f"{i:03d}.jpg")
    return root


@pytest.fixture
def manga109_root(tmp_path: Path) -> Path:
    return write_manga109(tmp_path / "m109")


def write_simple(folder: Path, transcript: dict | None = None, images: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(images):
        write_image(folder / f"{i + 1:03d}.png", size=(300, 420), fmt="PNG")
    transcript = transcript if transcript is not None else {
        "title": "My Comic",
        "direction": "ltr",
        "pages": [
            {"image": "001.png", "lines": [
                {"speaker": "Aki", "text": "Good morning!", "box": [10, 10, 100, 60]},
                {"speaker": "Mina", "text": "Morning..."}],
             "faces": [{"character": "Aki", "box": [20, 80, 90, 150]}]},
            {"image": "002.png", "lines": [{"text": "Later that night."}]},
        ],
    }
    (folder / "transcript.json").write_text(json.dumps(transcript, ensure_ascii=False), encoding="utf-8")
    return folder


@pytest.fixture
def simple_folder(tmp_path: Path) -> Path:
    return write_simple(tmp_path / "comic")


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def chromium(extra_args: Sequence[str] = ()) -> Iterator[object]:
    """Headless Debian Chromium through Playwright; skips the test where either is missing."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])
        try:
            yield browser
        finally:
            browser.close()
