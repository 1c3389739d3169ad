from __future__ import annotations

import dataclasses
import tempfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from m2m.archive import ArchiveError, ArchiveLimits
from m2m.book import Book, BookError, LoadLimits, load_book
from m2m.jsonio import from_jsonable, to_jsonable

from .conftest import EXAMPLES, MANGA109_XML, write_image, write_manga109, write_simple


def test_manga109_reading_order_speakers_and_unknown_tags(manga109_root: Path) -> None:
    book = load_book(manga109_root)
    assert book.title == "テスト本" and book.direction == "rtl" and book.format == "manga109"
    page = book.pages[0]
    # Right page first (RTL spread): top-right panel, then the panel below it, then the left page.
    assert [t.id for t in page.texts] == ["00000020", "00000021", "00000022"]
    assert page.texts[0].text == "おはよう！\n元気？"
    assert book.character_name(page.texts[0].speaker) == "アキ"
    assert book.character_name(page.texts[1].speaker) == "unknown"
    assert book.character_name(page.texts[2].speaker) == "ミナ"
    assert [f.character for f in page.faces] == ["00000001"]
    assert len(page.frames) == 3 and len(page.bodies) == 2
    assert [t.id for t in book.dialogue()] == ["00000020", "00000021", "00000022", "00000023"]


def test_book_without_speaker_files_still_loads(tmp_path: Path) -> None:
    book = load_book(write_manga109(tmp_path / "m", relationships=None))
    assert all(t.speaker is None for t in book.dialogue())
    assert len(book.dialogue()) == 4


def test_json_round_trip_of_every_dataclass(manga109_root: Path, simple_folder: Path) -> None:
    for book in (load_book(manga109_root), load_book(simple_folder)):
        data = to_jsonable(book)
        again = from_jsonable(Book, data)
        assert again == book
        for page in book.pages:
            for item in (page, *page.texts, *page.faces, *page.frames, *page.bodies):
                assert from_jsonable(type(item), to_jsonable(item)) == item
        for character in book.characters:
            assert from_jsonable(type(character), to_jsonable(character)) == character
        assert all(dataclasses.is_dataclass(x) for x in (book, book.pages[0]))


def test_simple_format_folder_and_archive(simple_folder: Path, tmp_path: Path) -> None:
    book = load_book(simple_folder)
    assert book.format == "simple" and book.direction == "ltr" and book.title == "My Comic"
    assert [book.character_name(t.speaker) for t in book.dialogue()] == ["Aki", "Mina", "unknown"]
    assert book.pages[0].faces[0].bbox == (20, 80, 90, 150)
    archive = tmp_path / "comic.cbz"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in simple_folder.iterdir():
            zf.write(f, f"comic/{f.name}")
    from_zip = load_book(archive, workdir=tmp_path / "work")
    assert [t.text for t in from_zip.dialogue()] == [t.text for t in book.dialogue()]
    assert Path(from_zip.pages[0].image).is_relative_to(tmp_path / "work")


@pytest.mark.skipif(not (EXAMPLES / "books.txt").exists(), reason="example book not drawn yet")
def test_example_book_loads() -> None:
    book = load_book(EXAMPLES)
    assert 12 <= len(book.pages) <= 20
    assert len(book.dialogue()) >= 60
    spoken = [t for t in book.dialogue() if t.speaker]
    assert len(spoken) >= 0.85 * len(book.dialogue()), "only narration boxes go without a speaker"
    assert all(t.gloss for t in book.dialogue())
    assert sum(len(p.faces) for p in book.pages) >= 20


# --- bad input: each names the file and the element ------------------------------------------


def _expect(path: Path, *fragments: str, **kwargs) -> None:
    with pytest.raises(ValueError) as info:
        load_book(path, **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message


def test_malformed_xml(tmp_path: Path) -> None:
    root = write_manga109(tmp_path / "m", xml=MANGA109_XML.replace("</pages>", "</pagez>"))
    _expect(root, "TestBook.xml", "malformed XML", "line")
    with pytest.raises(ValueError) as info:
        load_book(root)
    assert str(info.value).count("line") == 1  # the position is said once


def test_missing_image(tmp_path: Path) -> None:
    root = write_manga109(tmp_path / "m")
    (root / "images" / "TestBook" / "001.jpg").unlink()
    _expect(root, "001.jpg", "missing image", "index=1")


def test_undefined_character_and_relationship_ids(tmp_path: Path) -> None:
    root = write_manga109(tmp_path / "a", xml=MANGA109_XML.replace('character="00000001" />', 'character="0000beef" />', 1))
    _expect(root, "0000beef", "doesn't define")
    root = write_manga109(tmp_path / "b", relationships='<book><speaker_to_text text_id="deadbeef" speaker_id="00000040"/></book>')
    _expect(root, "relationships", "deadbeef")
    root = write_manga109(tmp_path / "c", relationships='<book><speaker_to_text text_id="00000020" speaker_id="00000030"/></book>')
    _expect(root, "speaker_id=00000030", "body")  # a face id is not a body id


def test_box_outside_page(tmp_path: Path) -> None:
    root = write_manga109(tmp_path / "m", xml=MANGA109_XML.replace('xmax="380" ymax="100"', 'xmax="480" ymax="100"'))
    _expect(root, "00000020", "outside the 400x300 page")


def test_duplicate_ids(tmp_path: Path) -> None:
    root = write_manga109(tmp_path / "m", xml=MANGA109_XML.replace('<text id="00000021"', '<text id="00000020"'))
    _expect(root, "duplicate id 00000020")


def test_empty_book(tmp_path: Path) -> None:
    xml = '<book title="x"><characters/><pages></pages></book>'
    _expect(write_manga109(tmp_path / "m", xml=xml, relationships=None, pages=0), "empty book")
    _expect(write_simple(tmp_path / "s", transcript={"pages": []}, images=0), "empty book")


def test_unsupported_image_type(tmp_path: Path) -> None:
    root = write_manga109(tmp_path / "m")
    # A GIF renamed .jpg: the type comes from the content, not the name.
    Image.new("P", (400, 300)).save(root / "images" / "TestBook" / "000.jpg", "GIF")
    _expect(root, "000.jpg", "unsupported image type GIF")
    (root / "images" / "TestBook" / "000.jpg").write_bytes(b"not an image")
    _expect(root, "000.jpg", "not an image")


def test_decompression_bomb_is_refused(tmp_path: Path) -> None:
    root = write_manga109(tmp_path / "m")
    # Small on disk, huge in pixels: beyond Pillow's warning threshold (89 Mpx).
    Image.new("1", (10_000, 9_000)).save(root / "images" / "TestBook" / "000.png", "PNG")
    (root / "images" / "TestBook" / "000.jpg").unlink()
    _expect(root, "000.png", "decompression bomb")


def test_simple_transcript_schema_errors(tmp_path: Path) -> None:
    _expect(write_simple(tmp_path / "a", transcript={"pages": [{"lines": []}]}), "transcript.json", "image")
    _expect(write_simple(tmp_path / "b", transcript={"pages": [{"image": "../etc/passwd"}]}), "inside the book folder")
    folder = write_simple(tmp_path / "c")
    (folder / "transcript.json").write_text("{broken", encoding="utf-8")
    _expect(folder, "transcript.json", "invalid JSON")
    bad_box = {"pages": [{"image": "001.png", "lines": [{"text": "x", "box": [0, 0, 999, 10]}]}]}
    _expect(write_simple(tmp_path / "d", transcript=bad_box), "pages/0/lines/0", "outside")


def _zip(path: Path, entries: dict[str, bytes], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, "/etc/passwd")
    return path


def test_hostile_archives(tmp_path: Path) -> None:
    _expect(_zip(tmp_path / "a.zip", {"../evil.txt": b"x"}), "'..'")
    _expect(_zip(tmp_path / "b.zip", {"/abs.txt": b"x"}), "absolute path")
    _expect(_zip(tmp_path / "c.zip", {"ok.txt": b"x"}, symlink="link"), "symbolic link")
    many = _zip(tmp_path / "d.zip", {f"f{i}.txt": b"x" for i in range(30)})
    _expect(many, "30 entries", limits=LoadLimits(archive=ArchiveLimits(max_entries=10)))
    big = _zip(tmp_path / "e.zip", {"big.bin": b"\0" * 200_000})
    _expect(big, "bytes uncompressed", limits=LoadLimits(archive=ArchiveLimits(max_total_bytes=100_000)))
    (tmp_path / "empty.zip").write_bytes(b"")
    _expect(tmp_path / "empty.zip", "the file is empty")
    (tmp_path / "f.zip").write_bytes(b"PK\x03\x04 garbage")
    _expect(tmp_path / "f.zip", "not a valid zip")
    assert not (tmp_path / "evil.txt").exists()
    assert issubclass(ArchiveError, ValueError) and issubclass(BookError, ValueError)


def test_not_a_book(tmp_path: Path) -> None:
    write_image(tmp_path / "x" / "a.png", fmt="PNG")
    _expect(tmp_path / "x", "neither a Manga109 root")
    _expect(tmp_path / "nope", "no such file")


def test_unpacked_archives_leave_nothing_behind(simple_folder: Path, tmp_path: Path, monkeypatch) -> None:
    """A command that reads a .zip unpacks it into a temporary folder: gone when the process exits,
    gone at once when the book fails to load or the archive is refused midway (a size cap hit while
    writing), and errors name the archive rather than that folder."""
    import os
    import subprocess
    import sys

    good = tmp_path / "book.zip"
    with zipfile.ZipFile(good, "w") as zf:
        for p in simple_folder.iterdir():
            zf.write(p, p.name)
    broken = _zip(tmp_path / "broken.zip", {"transcript.json": b"{ not json"})
    # the second entry's stored bytes damaged: the CRC check fails halfway through unpacking
    damaged = _zip(tmp_path / "damaged.zip", {"a.txt": b"first entry", "b.txt": b"B" * 5000})
    raw = bytearray(damaged.read_bytes())
    at = raw.index(b"B" * 100)
    raw[at:at + 10] = b"C" * 10
    damaged.write_bytes(bytes(raw))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = os.environ | {"TMPDIR": str(scratch), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    script = ("import sys; from m2m.book import load_book; b = load_book(sys.argv[1]); "
              "import pathlib; assert pathlib.Path(b.pages[0].image).is_file(); print('loaded')")
    done = subprocess.run([sys.executable, "-c", script, str(good)], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "loaded" in done.stdout, done.stderr
    assert list(scratch.iterdir()) == []
    done = subprocess.run([sys.executable, "-c", script, str(broken)], env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "broken.zip (inside)/transcript.json" in done.stderr
    assert "scratch" not in done.stderr.splitlines()[-1]
    assert list(scratch.iterdir()) == []
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    _expect(damaged, "entry 'b.txt' is damaged")
    assert list(scratch.iterdir()) == []


def test_a_repeated_page_index_is_named(tmp_path: Path) -> None:
    root = write_manga109(tmp_path / "m", xml=MANGA109_XML.replace('<page index="1"', '<page index="0"'))
    _expect(root, "TestBook.xml", "<page index=0> appears more than once")


def test_books_txt_with_a_byte_order_mark_repeats_or_nothing(tmp_path: Path) -> None:
    root = write_manga109(tmp_path / "m")
    (root / "books.txt").write_text("\ufeffTestBook\nTestBook\n", encoding="utf-8")
    assert load_book(root).id == "TestBook"  # the BOM and the repeat are not two books
    (root / "books.txt").write_text("\n  \n", encoding="utf-8")
    _expect(root, "books.txt: empty")
