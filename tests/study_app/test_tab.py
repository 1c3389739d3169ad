"""The Study tab without a browser: no study configured, and the researcher view's refusals and report."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from m2m.study import RatingsStore, Scores, Screening, load_study
from m2m.ui.study_api import study_app_kwargs
from m2m.ui.study_tab import NO_STUDY, build_study_blocks, researcher_view

from .conftest import ADMIN_TOKEN


def markdown_values(demo: gr.Blocks) -> list[str]:
    return [b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown)]


def test_without_a_study_the_tab_says_how_to_prepare_one(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("M2M_STUDY_DIR", raising=False)
    assert any("m2m study prepare" in v for v in markdown_values(build_study_blocks()))
    assert study_app_kwargs(env={}) == {}
    # A folder without a manifest is no study either; a broken manifest says what is wrong.
    monkeypatch.setenv("M2M_STUDY_DIR", str(tmp_path))
    assert any(v.startswith(NO_STUDY[:30]) for v in markdown_values(build_study_blocks()))
    (tmp_path / "study.json").write_text("{", encoding="utf-8")
    assert any("cannot be read" in v for v in markdown_values(build_study_blocks(tmp_path)))


def test_researcher_view(study_dir: Path, store: RatingsStore) -> None:
    study = load_study(study_dir / "study.json")
    off = researcher_view(ADMIN_TOKEN, study, study_dir, store, None)
    assert "researcher view is off" in off.message and off.figure is None
    assert researcher_view("nope", study, study_dir, store, ADMIN_TOKEN).message == "That is not the researcher token."
    early = researcher_view(ADMIN_TOKEN, study, study_dir, store, ADMIN_TOKEN)
    assert "No report yet" in early.message and early.figure is None
    for i in range(3):
        pid = store.register(study, Screening(3, 3, "native")).id
        for s in study.stimuli:
            for j, label in enumerate("ABC"):
                store.submit(study, pid, s.id, label, Scores(1 + (i + 2 * j) % 5, 1 + (i + j) % 3, 2 + (i * j) % 4))
    view = researcher_view(f"  {ADMIN_TOKEN} ", study, study_dir, store, ADMIN_TOKEN)
    assert "3 participants, 18 ratings" in view.message
    assert "## Means" in view.markdown and "![" not in view.markdown
    assert view.figure and Path(view.figure).read_bytes().startswith(b"\x89PNG")
    assert view.exports and all(Path(p).is_file() for p in view.exports)
    store.close()
    down = researcher_view(ADMIN_TOKEN, study, study_dir, store, ADMIN_TOKEN)
    assert "unavailable" in down.message
