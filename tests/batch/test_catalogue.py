"""Which books a batch finds: a Manga109 root's titles, a folder of simple-format books and archives."""

from __future__ import annotations

import pytest

from m2m.batch.catalogue import catalogue
from m2m.book_data import BookError
from tests.batch.conftest import write_catalogue
from tests.conftest import write_manga109


def test_a_folder_of_books_lists_folders_and_archives_and_skips_the_rest(tmp_path):
    root = write_catalogue(tmp_path / "shelf")
    (root / "notes.txt").write_text("not a book", encoding="utf-8")
    (root / "empty").mkdir()
    (root / ".hidden").mkdir()
    books = catalogue(root)
    assert [b.name for b in books] == ["alpha", "beta.cbz", "gamma"]
    assert books[1].path == root / "beta.cbz" and books[1].book is None


def test_a_manga109_root_lists_its_titles(tmp_path):
    root = write_manga109(tmp_path / "m109", name="First")
    write_manga109(root, name="Second")
    (root / "books.txt").write_text("First\nSecond\n", encoding="utf-8")
    assert [(b.name, b.book) for b in catalogue(root)] == [("First", "First"), ("Second", "Second")]


def test_books_narrows_by_names_and_by_a_file_of_names(tmp_path):
    root = write_catalogue(tmp_path / "shelf")
    wanted = tmp_path / "wanted.txt"
    wanted.write_text("# the good ones\ngamma\n\n", encoding="utf-8")
    assert [b.name for b in catalogue(root, ["beta.cbz", str(wanted)])] == ["beta.cbz", "gamma"]


def test_an_unknown_book_or_an_empty_folder_says_what_there_is(tmp_path):
    root = write_catalogue(tmp_path / "shelf")
    with pytest.raises(BookError, match=r"--books: delta not in .*it has: alpha, beta.cbz, gamma"):
        catalogue(root, ["delta"])
    (tmp_path / "nothing").mkdir()
    with pytest.raises(BookError, match="no books"):
        catalogue(tmp_path / "nothing")
    with pytest.raises(BookError, match="not a folder"):
        catalogue(tmp_path / "missing")
