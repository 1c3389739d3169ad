"""``m2m study prepare|analyze|export`` with a stand-in pipeline (the real one is exercised elsewhere)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from m2m import pipeline
from m2m.cli import main
from m2m.study import CONDITIONS, RatingsStore, Scores, Screening, condition_for, load_study, missing_files
from tests.ui import bookmaker

from .conftest import write_tone

SCENES = ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9), (10, 11, 12, 13, 14))


@pytest.fixture
def fake_pipeline(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[int, ...]]]:
    rendered: list[tuple[str, tuple[int, ...]]] = []

    def plan_book(book, settings, progress=pipeline.no_progress):
        assert settings.condition == "m2m"
        return SimpleNamespace(scenes=SimpleNamespace(scenes=tuple(SimpleNamespace(pages=p) for p in SCENES)))

    def render_book(book, settings, progress=pipeline.no_progress, *, order=None, force=(), only=None,
                    on_clip=None):
        assert only is not None, "prepare renders the study's pages only"
        rendered.append((settings.condition, tuple(only)))
        for page in only:
            write_tone(settings.runs_root / book.id / settings.condition / "audio" / f"page-{page:03d}.ogg", 440, 0.2)

    monkeypatch.setattr(pipeline, "plan_book", plan_book)
    monkeypatch.setattr(pipeline, "render_book", render_book)
    return rendered


@pytest.fixture(scope="module")
def book_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bookmaker.manga109_book(tmp_path_factory.mktemp("book"), pages=15)


@pytest.mark.parametrize("design", ["within-scene", "between-scenes"])
def test_prepare_writes_a_ready_study(book_root: Path, tmp_path: Path, fake_pipeline, design: str) -> None:
    out = tmp_path / "study"
    # An existing clip library for the random condition (prepare builds one only when it is missing).
    library = pipeline.library_dir(pipeline.Settings(runs_root=out / "runs"))
    library.mkdir(parents=True)
    (library / "library.json").write_text("{}", encoding="utf-8")
    assert main(["study", "prepare", str(book_root), "--design", design, "--scenes", "2", "--out", str(out),
                 "--seed", "3"]) == 0
    study = load_study(out / "study.json")
    assert study.design == design and study.engine == "composer" and len(study.stimuli) == 2
    assert missing_files(study, out) == ()
    needed = sorted({p for s in study.stimuli for p in s.pages})
    assert [c for c, _ in fake_pipeline] == list(CONDITIONS)
    assert all(pages == tuple(needed) for _, pages in fake_pipeline)
    for stimulus in study.stimuli:
        assert len(stimulus.pages) == 4
        inside = [i for i, scene in enumerate(SCENES) if set(stimulus.pages) & set(scene)]
        assert len(inside) == (1 if design == "within-scene" else 2)
        for page in stimulus.pages:
            assert (out / "pages" / study.stimuli[0].book_id / f"{page:03d}.jpg").is_file()
    # Ids and folders are relative, so the study folder can move.
    assert all(not Path(v).is_absolute() for s in study.stimuli for v in s.versions.values())


def test_prepare_refuses_more_stimuli_than_the_book_has(book_root: Path, tmp_path: Path, fake_pipeline, capsys) -> None:
    assert main(["study", "prepare", str(book_root), "--design", "within-scene", "--scenes", "5",
                 "--out", str(tmp_path / "s")]) == 2
    assert "asked for n=5 stimuli" in capsys.readouterr().err
    assert not (tmp_path / "s" / "study.json").exists()


def test_analyze_and_export(study_dir: Path, tmp_path: Path, capsys) -> None:
    study = load_study(study_dir / "study.json")
    db = tmp_path / "study.sqlite3"
    with RatingsStore(db) as store:
        for i in range(4):
            participant = store.register(study, Screening(4, 4, "fluent"))
            for s in study.stimuli:
                for j, label in enumerate("ABC"):
                    store.submit(study, participant.id, s.id, label, Scores(1 + (i + j) % 5, 2 + j, 3))
    out = tmp_path / "results"
    assert main(["study", "analyze", str(study_dir), "--db", str(db), "--out", str(out)]) == 0
    assert "4 participants registered: 4 complete (24 ratings analysed)" in capsys.readouterr().out
    assert "Repeated-measures ANOVA" in (out / "report.md").read_text(encoding="utf-8")
    assert (out / "report.png").read_bytes().startswith(b"\x89PNG")

    assert main(["study", "export", str(study_dir), "--db", str(db), "--format", "csv", "--out", str(tmp_path / "r.csv")]) == 0
    with open(tmp_path / "r.csv", encoding="utf-8", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 24
    assert main(["study", "export", str(study_dir / "study.json"), "--db", str(db), "--format", "jsonl",
                 "--out", str(tmp_path / "r.jsonl")]) == 0
    lines = (tmp_path / "r.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 24 and json.loads(lines[0])["study"] == study.id


def test_analyze_applies_the_papers_screening_unless_asked_not_to(study_dir: Path, tmp_path: Path, capsys) -> None:
    study = load_study(study_dir / "study.json")
    db = tmp_path / "study.sqlite3"
    with RatingsStore(db) as store:
        answers = [Screening(4, 4, "fluent")] * 3 + [Screening(2, 5, "native"), Screening(5, 5, "basic")]
        for i, screening in enumerate(answers):
            participant = store.register(study, screening)
            for s in study.stimuli:
                for j, label in enumerate("ABC"):
                    store.submit(study, participant.id, s.id, label, Scores(1 + (i + j) % 5, 2 + (i * j) % 3, 3))
        store.register(study, Screening(4, 4, "fluent"))  # signed up, never rated
        screened = sorted(p.id for p in store.participants(study.id)[3:5])
    out = tmp_path / "results"
    assert main(["study", "analyze", str(study_dir), "--db", str(db), "--out", str(out)]) == 0
    assert ("6 participants registered: 3 complete (18 ratings analysed), 1 left out (0 incomplete, 1 with no ratings), "
            "2 screened out by the paper's rule.") in capsys.readouterr().out
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "2 of 6 registered participants screened out" in report
    assert all(f"`{pid}` (" in report for pid in screened)
    assert "signed up but gave no ratings" in report

    assert main(["study", "analyze", str(study_dir), "--db", str(db), "--out", str(out), "--all-participants"]) == 0
    assert "5 complete (30 ratings analysed)" in capsys.readouterr().out
    assert "the paper's inclusion rule was switched off" in (out / "report.md").read_text(encoding="utf-8")


def test_analyze_prints_why_a_test_is_not_available(study_dir: Path, tmp_path: Path, capsys) -> None:
    study = load_study(study_dir / "study.json")
    db = tmp_path / "study.sqlite3"
    with RatingsStore(db) as store:
        for _ in range(2):  # two participants giving identical answers: no error variance
            participant = store.register(study, Screening(4, 4, "fluent"))
            for s in study.stimuli:
                for label in "ABC":
                    score = 1 + CONDITIONS.index(condition_for(study, participant.number, s.id, label))
                    store.submit(study, participant.id, s.id, label, Scores(score, score, score))
    assert main(["study", "analyze", str(study_dir), "--db", str(db), "--out", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert out.count("F and p not available: no variation between participants") == 3 and "p = " not in out


def test_analyze_without_a_database_says_so(study_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["study", "analyze", str(study_dir), "--db", str(tmp_path / "none.sqlite3")]) == 2
    assert "no ratings database" in capsys.readouterr().err
