"""M2M_STUDY_ONLY=1: the listening study alone, without the reader that would unblind it."""

from __future__ import annotations

import logging
from pathlib import Path

import gradio as gr

from m2m.ui import AppConfig, build_app
from tests.ui.chord_engine import chord_service


def elem_ids(demo: gr.Blocks) -> set[str]:
    return {b.elem_id for b in demo.blocks.values() if getattr(b, "elem_id", None)}


def test_a_study_only_app_has_the_study_and_no_reader(study_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("M2M_STUDY_DIR", str(study_dir))
    monkeypatch.setenv("M2M_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("M2M_STUDY_ONLY", "1")
    config = AppConfig.from_env()
    assert config.study_only
    demo = build_app(config, chord_service())
    ids = elem_ids(demo)
    assert "study-panel" in ids and "study-researcher" in ids
    assert "m2m-reader" not in ids and "m2m-tab-read" not in ids and "study-unblinded" not in ids
    # nothing on the page names the conditions (the reader's Settings did: "Condition", "M2M-Gen", "random")
    assert not any(isinstance(b, gr.Radio | gr.Dropdown) for b in demo.blocks.values())
    # and no timer composes music in the background while participants listen
    assert not any(isinstance(b, gr.Timer) for b in demo.blocks.values())


def test_a_study_beside_the_reader_is_warned_about(study_dir: Path, tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("M2M_STUDY_DIR", str(study_dir))
    monkeypatch.setenv("M2M_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("M2M_STUDY_ONLY", raising=False)
    with caplog.at_level(logging.WARNING, logger="m2m.ui.app"):
        demo = build_app(AppConfig.from_env(), chord_service())
    assert {"m2m-reader", "study-panel"} <= elem_ids(demo)
    assert "M2M_STUDY_ONLY=1" in caplog.text
    # and the researcher view says so, where the researcher looks (not only the server's log)
    (warning,) = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "study-unblinded"]
    assert "M2M_STUDY_ONLY=1" in warning.value and "Read tab" in warning.value
