"""The app's API through gradio_client, and upload refusals: the message reaches the user, the app
keeps serving. Fast (no browser)."""

from __future__ import annotations

import json
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from tests.ui import bookmaker

gradio_client = pytest.importorskip("gradio_client")


@pytest.fixture(scope="module")
def client(served):
    return gradio_client.Client(served.url, verbose=False)


def status_of(result) -> str:
    """The status box is the 3rd output the client sees (after the page and the reader)."""
    return next(r for r in result if isinstance(r, str) and "m2m-status" in r)


def test_api_lists_the_public_endpoints(client):
    api = client.view_api(return_format="dict", print_info=False)
    names = set(api["named_endpoints"])
    assert {"/open_book", "/edit_caption", "/edit_directive", "/edit_theme", "/edit_transition"} <= names
    # The API key is a settings input of private events only; it is never an API parameter.
    assert "api_key" not in json.dumps(api["named_endpoints"])


def test_upload_a_simple_book(client, tmp_path):
    archive = bookmaker.simple_zip(tmp_path / "good.cbz", pages=3)
    result = client.predict(gradio_client.handle_file(str(archive)), api_name="/open_book")
    reader = next(r for r in result if isinstance(r, dict) and "book" in r)
    assert reader["book"]["title"] == "Upload Test" and len(reader["book"]["pages"]) == 3
    assert reader["book"]["direction"] == "ltr"
    assert all(p["image"].startswith("gradio_api/file=") for p in reader["book"]["pages"])


def broken_books(tmp: Path) -> dict[str, tuple[Path, str]]:
    png = bookmaker.simple_zip(tmp / "_probe.zip", pages=1)
    with zipfile.ZipFile(png) as z:
        image = z.read("p0.png")
    return {
        "broken xml": (_manga109_zip(tmp / "xml.zip", "<book><pages><page index='0'"), "malformed XML"),
        "missing image": (bookmaker.simple_zip(tmp / "missing.zip", transcript={"pages": [{"image": "nope.png"}]},
                                               images={}), "missing image"),
        "dot-dot path": (bookmaker.simple_zip(tmp / "escape.zip", pages=1, extra={"../evil.txt": b"x"}), ".."),
        "unsupported image": (bookmaker.simple_zip(tmp / "gif.zip", transcript={"pages": [{"image": "p.gif"}]},
                                                   images={"p.gif": b"GIF89a" + b"\0" * 40}), "image"),
        "empty book": (bookmaker.simple_zip(tmp / "empty.zip", transcript={"pages": []}, images={}), "empty book"),
        "not a zip": (_write(tmp / "fake.zip", b"not a zip at all"), "zip"),
        "png only": (_write(tmp / "page.cbz", image), "zip"),
    }


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _manga109_zip(path: Path, xml: str) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("books.txt", "Broken\n")
        z.writestr("annotations/Broken.xml", xml)
    return path


@pytest.mark.parametrize("case", ["broken xml", "missing image", "dot-dot path", "unsupported image",
                                  "empty book", "not a zip", "png only"])
def test_rejected_uploads_say_why_and_the_app_keeps_serving(client, tmp_path, case, served):
    archive, expected = broken_books(tmp_path)[case]
    result = client.predict(gradio_client.handle_file(str(archive)), api_name="/open_book")
    status = status_of(result)
    assert "m2m-status-error" in status and "was not opened" in status
    assert expected.lower() in status.lower(), status
    assert str(served.config.uploads_root) not in status, "server folders stay on the server"
    # Still serving: a good book opens right after.
    good = bookmaker.simple_zip(tmp_path / "good.zip", pages=2)
    after = client.predict(gradio_client.handle_file(str(good)), api_name="/open_book")
    assert any(isinstance(r, dict) and r.get("book", {}).get("title") == "Upload Test" for r in after)


def example_zip(path: Path) -> Path:
    """The bundled example book (Manga109 layout) as an upload."""
    from tests.ui.conftest import EXAMPLES
    with zipfile.ZipFile(path, "w") as z:
        for file in sorted(EXAMPLES.rglob("*")):
            if file.is_file():
                z.write(file, file.relative_to(EXAMPLES).as_posix())
    return path


def test_edit_theme_and_edit_transition_through_the_api(served, tmp_path):
    """An API client's session reads page 1 (the reader's page is not an API input): there the
    example has no leitmotif and no scene change, which both endpoints say; once a person has given
    page 1 a theme in 04-captions.json, edit_theme changes it, and a bad motif changes nothing."""
    from m2m.book import load_book
    from m2m.cues import CaptionSheet
    from m2m.pipeline import run_folder
    from tests.ui.conftest import EXAMPLES

    client = gradio_client.Client(served.url, verbose=False)
    client.predict(gradio_client.handle_file(str(example_zip(tmp_path / "example.zip"))), api_name="/open_book")
    # the reader's timer plans an opened book; an API client has none, so plan it as the timer would
    book = load_book(EXAMPLES)
    settings = served.service.Settings(runs_root=served.config.runs_root)
    served.service.plan_book(book, settings)
    run = run_folder(book, settings)

    status = status_of(client.predict("oboe", "0 +2 +4", api_name="/edit_theme"))
    assert "m2m-status-error" in status and "page 1 has no leitmotif" in status, status
    status = status_of(client.predict("cut", 0, "A dramatic page.", api_name="/edit_transition"))
    assert "m2m-status-error" in status and "no scene change leads into scene 1" in status, status

    sheet = run.read("captions", CaptionSheet).data
    hina = sheet.cue(1).theme
    run.save_edit("captions", CaptionSheet(tuple(replace(c, theme=hina) if c.page == 0 else c for c in sheet.cues)))
    result = client.predict("horn", "0 +2 +4 +2 0", api_name="/edit_theme")
    assert "Saved to the run file" in status_of(result), status_of(result)
    theme = run.read("captions", CaptionSheet).data.cue(0).theme
    assert (theme.voice, theme.steps, theme.edited) == ("French Horn", "0 +2 +4 +2 0", True)

    before = run.file("captions").read_text(encoding="utf-8")
    status = status_of(client.predict("horn", "0 +2 x", api_name="/edit_theme"))
    assert "The edit was not applied" in status and "&#x27;x&#x27; is not a scale step" in status, status
    assert run.file("captions").read_text(encoding="utf-8") == before
