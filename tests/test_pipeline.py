"""The pipeline end to end: reuse, edits kept with everything after them redone, fallbacks said."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import m2m
from m2m.pipeline import Settings, plan_book

from .conftest import EXAMPLES

pytestmark = pytest.mark.skipif(not (EXAMPLES / "books.txt").exists(), reason="example book missing")


@pytest.fixture(scope="module")
def book() -> m2m.Book:
    return m2m.load_book(EXAMPLES)


def test_plan_reuses_its_files_and_keeps_a_persons_edit(book: m2m.Book, tmp_path: Path) -> None:
    settings = Settings(runs_root=tmp_path)
    first = plan_book(book, settings)
    assert first.computed == ("scenes", "emotions", "directives", "captions", "transitions")
    assert plan_book(book, settings).computed == ()

    directives_file = first.run.file("directives")
    raw = json.loads(directives_file.read_text(encoding="utf-8"))
    raw["data"]["directives"][1]["text"] = "Please write a slow, sad waltz in D minor at 60 BPM for solo cello."
    directives_file.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")

    again = plan_book(book, settings)
    assert again.computed == ("captions", "transitions"), "the edit is kept and only what follows it is redone"
    assert again.directives.directives[1].text.startswith("Please write a slow, sad waltz")
    scene_two = [c for c in again.captions.cues if c.scene == 1]
    assert scene_two and scene_two != [c for c in first.captions.cues if c.scene == 1]


def test_openai_without_a_key_falls_back_and_says_so(book: m2m.Book, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    result = plan_book(book, Settings(runs_root=tmp_path, director="openai"))
    provenance = json.loads(result.run.file("captions").read_text(encoding="utf-8"))["provenance"]
    assert provenance["backend"] == "offline"
    assert "offline" in provenance["fallback"] and "key" in provenance["fallback"].lower()


def test_random_condition_shares_the_m2m_plan(book: m2m.Book, tmp_path: Path) -> None:
    result = plan_book(book, Settings(runs_root=tmp_path, condition="random"))
    assert result.run.path == tmp_path / book.id / "random"
    assert (tmp_path / book.id / "m2m" / "04-captions.json").is_file()


def test_settings_are_checked_at_the_boundary(tmp_path: Path) -> None:
    assert Settings(runs_root=str(tmp_path)).runs_root == tmp_path
    with pytest.raises(ValueError, match="condition"):
        Settings(condition="nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="crossfade_s"):
        Settings(crossfade_s=-1)
    assert "api_key" not in Settings(api_key="sk-secret").public()
    assert "sk-secret" not in repr(Settings(api_key="sk-secret"))


def test_edits_through_the_api_are_kept(book: m2m.Book, tmp_path: Path) -> None:
    from m2m.pipeline import edit_caption, edit_directive

    settings = Settings(runs_root=tmp_path)
    before = plan_book(book, settings)
    last_scene = before.scenes.scenes[-1]
    edit_caption(book, settings, 2, "  A solo harp, very slow, in A minor.  ")
    edit_directive(book, settings, last_scene.index,
                   "Please write bright brass fanfares in D major at 132 BPM, triumphant and loud.")
    result = plan_book(book, settings)
    assert result.computed == ("transitions",)  # chosen again from the edited captions; the edits stay
    assert result.directives.directives[-1].text.startswith("Please write bright brass fanfares")
    assert result.captions.cue(2).caption == "A solo harp, very slow, in A minor."  # the person's edit stays
    for page in last_scene.pages:  # the edited scene follows its new directive
        assert result.captions.cue(page) != before.captions.cue(page)
    untouched = [p for s in before.scenes.scenes[1:-1] for p in s.pages]
    assert all(result.captions.cue(p) == before.captions.cue(p) for p in untouched)
    with pytest.raises(ValueError, match="caption: empty"):
        edit_caption(book, settings, 2, "   ")
    with pytest.raises(ValueError, match="page: 99"):
        edit_caption(book, settings, 99, "x")
