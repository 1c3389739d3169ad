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
    assert early.message.startswith("0 participants registered: 0 complete")
    for i in range(4):
        # The fourth is not fluent in Japanese: the paper's screening leaves them out by default.
        pid = store.register(study, Screening(3, 3, "native" if i < 3 else "basic")).id
        for s in study.stimuli:
            for j, label in enumerate("ABC"):
                store.submit(study, pid, s.id, label, Scores(1 + (i + 2 * j) % 5, 1 + (i + j) % 3, 2 + (i * j) % 4))
    abandoned = store.register(study, Screening(5, 5, "fluent")).id
    view = researcher_view(f"  {ADMIN_TOKEN} ", study, study_dir, store, ADMIN_TOKEN)
    # The counts are said once (the old line said them twice, in two different ways).
    assert view.message == ("5 participants registered: 3 complete (18 ratings analysed), 1 left out (0 incomplete, "
                            "1 with no ratings), 1 screened out by the paper's rule.")
    assert "1 of 5 registered participants screened out" in view.markdown
    assert f"signed up but gave no ratings: `{abandoned}`" in view.markdown
    assert "## Means" in view.markdown and "![" not in view.markdown
    assert view.figure and Path(view.figure).read_bytes().startswith(b"\x89PNG")
    assert view.exports and all(Path(p).is_file() for p in view.exports)
    assert sorted(Path(p).name for p in view.exports) == [f"{study.id}-ratings.csv", f"{study.id}-ratings.jsonl"]
    everyone = researcher_view(ADMIN_TOKEN, study, study_dir, store, ADMIN_TOKEN, include_all=True)
    assert everyone.message.startswith("5 participants registered: 4 complete (24 ratings analysed)")
    assert "none screened out (every participant included)" in everyone.message
    store.close()
    down = researcher_view(ADMIN_TOKEN, study, study_dir, store, ADMIN_TOKEN)
    assert "unavailable" in down.message
