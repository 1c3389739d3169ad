"""``m2m plan`` and ``m2m eval-scenes``: files written, reused, edits kept, failures leave no half run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from m2m.cli import main
from m2m.director import load_director
from m2m.pipeline import plan_stages
from m2m.runs import STAGE_FILES, RunFolder

from .conftest import smart_answer


def _files(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.iterdir())


def _provenance(run_dir: Path, stage: str) -> dict:
    return json.loads((run_dir / STAGE_FILES[stage]).read_text(encoding="utf-8"))["provenance"]


def test_plan_writes_reuses_and_keeps_edits(book_root, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["plan", str(book_root), "--book", "Fixture", "--out", str(out), "--emotions", "annotations"]) == 0
    run_dir = out / "Fixture" / "m2m"
    expected = ["01-scenes.json", "03-directives.json", "04-captions.json"]
    assert set(expected) <= set(_files(run_dir))
    assert "computed: scenes" in capsys.readouterr().out
    scenes = _provenance(run_dir, "scenes")
    assert scenes["backend"] == "offline" and scenes["input_hash"] and scenes["prompt_hash"]

    assert main(["plan", str(book_root), "--out", str(out), "--emotions", "annotations"]) == 0
    assert "computed: nothing" in capsys.readouterr().out

    # A person rewrites scene 1's directive: it is kept, and the captions after it are redone from it.
    path = run_dir / "03-directives.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["data"]["directives"][1]["text"] = "A bright cheerful flute piece in G major at 120 BPM with flute and harp."
    path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    assert main(["plan", str(book_root), "--out", str(out), "--emotions", "annotations"]) == 0
    printed = capsys.readouterr().out
    assert "computed: captions" in printed
    captions = json.loads((run_dir / "04-captions.json").read_text(encoding="utf-8"))["data"]["cues"]
    page5 = next(c for c in captions if c["page"] == 5)
    assert page5["plan"]["key"] == "G" and page5["plan"]["mode"] == "major"
    assert page5["plan"]["instruments"][:2] == ["Flute", "Orchestral Harp"]
    assert json.loads(path.read_text(encoding="utf-8"))["data"]["directives"][1]["text"].startswith("A bright cheerful")


def test_plan_baseline_condition(book_root, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["plan", str(book_root), "--out", str(out), "--condition", "baseline"]) == 0
    run_dir = out / "Fixture" / "baseline"
    assert _files(run_dir) == ["03-descriptions.json", "04-captions.json"]
    assert _provenance(run_dir, "descriptions")["stage"] == "descriptions"


def test_eval_scenes_prints_f1(book_root, capsys):
    assert main(["eval-scenes", str(book_root)]) == 0
    printed = capsys.readouterr().out
    assert "precision 1.000  recall 1.000  F1 1.000" in printed and "[4, 8]" in printed


def test_openai_without_a_key_is_a_clear_error_or_an_announced_fallback(book_root, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    out = tmp_path / "runs"
    assert main(["plan", str(book_root), "--out", str(out), "--llm", "openai"]) == 2
    assert "needs an API key" in capsys.readouterr().err
    assert not out.exists()
    assert main(["plan", str(book_root), "--out", str(out), "--llm", "openai", "--allow-fallback",
                 "--emotions", "annotations"]) == 0
    assert "note: the openai director needs an API key" in capsys.readouterr().out
    provenance = _provenance(out / "Fixture" / "m2m", "captions")
    assert provenance["backend"] == "offline" and "needs an API key" in provenance["fallback"]


def test_plan_through_an_openai_compatible_server(book_root, tmp_path, monkeypatch, fake_openai, capsys):
    fake_openai.responder = smart_answer
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-test")
    out = tmp_path / "runs"
    assert main(["plan", str(book_root), "--out", str(out), "--llm", "openai", "--model", "qwen2.5",
                 "--emotions", "annotations"]) == 0
    run_dir = out / "Fixture" / "m2m"
    captions = _provenance(run_dir, "captions")
    assert captions["backend"] == "openai:qwen2.5" and captions["usage"]["calls"] == 3
    assert captions["prompt_file"] == "prompts/page_captions.txt"
    calls = len(fake_openai.requests)
    # Reopening costs nothing: the files are reused; with the files gone, the cache answers.
    assert main(["plan", str(book_root), "--out", str(out), "--llm", "openai", "--model", "qwen2.5",
                 "--emotions", "annotations"]) == 0
    for name in ("01-scenes.json", "03-directives.json", "04-captions.json"):
        (run_dir / name).unlink()
    assert main(["plan", str(book_root), "--out", str(out), "--llm", "openai", "--model", "qwen2.5",
                 "--emotions", "annotations"]) == 0
    assert len(fake_openai.requests) == calls
    assert _provenance(run_dir, "captions")["usage"]["cached"] == 3


def test_a_failing_stage_leaves_no_half_written_file(book, tmp_path, fake_openai, llm_settings):
    from dataclasses import replace

    def answers(body):
        if body["response_format"]["json_schema"]["name"] == "page_captions":
            return "not json"
        return smart_answer(body)

    fake_openai.responder = answers
    run = RunFolder(tmp_path / "runs", book.id, "m2m")
    director = load_director("openai", replace(llm_settings, cache_dir=None))
    with pytest.raises(ValueError, match="page_captions: the model's answer failed validation twice"):
        plan_stages(book, run, director, emotion_backend="annotations")
    written = _files(run.path)
    assert "04-captions.json" not in written and not any(name.endswith(".tmp") for name in written)
    assert "03-directives.json" in written  # the finished stages stay; a rerun starts at captions
    fake_openai.responder = smart_answer
    result = plan_stages(book, run, director, emotion_backend="annotations")
    assert result.computed == ("captions", "transitions")  # what follows the captions reruns too


def test_render_uses_the_openai_compatible_server_from_the_environment(book_root, tmp_path, monkeypatch,
                                                                       fake_openai, capsys):
    """``m2m render --llm openai`` reads OPENAI_API_KEY/OPENAI_BASE_URL as ``m2m plan`` does (it used
    to drop them and fall back to the offline director without a word on the terminal)."""
    fake_openai.responder = smart_answer
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-render-test")
    out = tmp_path / "runs"
    assert main(["render", str(book_root), "--out", str(out), "--llm", "openai", "--model", "qwen2.5",
                 "--emotions", "annotations", "--no-whole-file"]) == 0
    captions = _provenance(out / "Fixture" / "m2m", "captions")
    assert captions["backend"] == "openai:qwen2.5" and not captions.get("fallback")
    assert fake_openai.headers and fake_openai.headers[0]["authorization"] == "Bearer sk-render-test"
    assert "sk-render-test" not in capsys.readouterr().out
    assert not any("sk-render-test" in p.read_text(encoding="utf-8")
                   for p in (out / "Fixture").rglob("*.json"))


def test_render_without_a_key_is_an_error_or_an_announced_fallback(book_root, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    out = tmp_path / "runs"
    assert main(["render", str(book_root), "--out", str(out), "--llm", "openai"]) == 2
    assert "needs an API key" in capsys.readouterr().err and not out.exists()
    assert main(["render", str(book_root), "--out", str(out), "--llm", "openai", "--allow-fallback",
                 "--no-whole-file"]) == 0
    assert "note: the openai director needs an API key" in capsys.readouterr().out
    assert "needs an API key" in _provenance(out / "Fixture" / "m2m", "captions")["fallback"]


def test_render_random_builds_its_library_when_there_is_none(book_root, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["render", str(book_root), "--out", str(out), "--condition", "random", "--library-clips", "3",
                 "--no-whole-file"]) == 0
    printed = capsys.readouterr().out
    assert "built the random condition's library: 3 clips" in printed
    assert (out / ".library" / "composer-32000" / "library.json").is_file()  # per engine and sample rate
    sheet = json.loads((out / "Fixture" / "random" / "soundtrack.json").read_text(encoding="utf-8"))["data"]
    assert {c["engine"] for c in sheet["cues"]} == {"library"}
    assert main(["render", str(book_root), "--out", str(out), "--condition", "random", "--no-whole-file"]) == 0
    assert "built the random" not in capsys.readouterr().out  # made once, then reused


def test_command_line_edges(book_root, tmp_path, capsys):
    """A negative tolerance is refused; a broken ratings database is a message, not a traceback;
    a reader that stops reading (``| head``) is not an error."""
    import subprocess
    import sys

    assert main(["eval-scenes", str(book_root), "--tolerance", "-1"]) == 2
    assert "--tolerance must be 0 or more" in capsys.readouterr().err
    bad = tmp_path / "bad.sqlite3"
    bad.write_text("not a database")
    from m2m.study import save_study
    from tests.study.conftest import make_study

    study = tmp_path / "study"
    study.mkdir()
    save_study(make_study(), study / "study.json")
    assert main(["study", "export", str(study), "--db", str(bad), "--out", str(tmp_path / "x.csv")]) == 2
    assert "not a database" in capsys.readouterr().err
    run_cli = "import sys; from m2m.cli import main; sys.exit(main(sys.argv[1:]))"
    # `true` exits without reading, long before Python has started: the write always meets a closed pipe
    done = subprocess.run(["bash", "-c", f"{sys.executable} -c '{run_cli}' inspect {book_root} | true; "
                           "echo status ${PIPESTATUS[0]}"],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.strip() == "status 0" and not done.stderr, done.stderr


def test_a_hand_edited_scene_plan_that_breaks_coverage_is_named(book_root, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["plan", str(book_root), "--out", str(out), "--emotions", "annotations"]) == 0
    run_dir = out / "Fixture" / "m2m"
    scenes_file = run_dir / "01-scenes.json"
    record = json.loads(scenes_file.read_text(encoding="utf-8"))
    record["data"]["scenes"][1]["pages"] = record["data"]["scenes"][1]["pages"][:-1] + [99]
    scenes_file.write_text(json.dumps(record), encoding="utf-8")
    emotions_before = (run_dir / "02-emotions.json").read_bytes()
    capsys.readouterr()
    assert main(["plan", str(book_root), "--out", str(out), "--emotions", "annotations"]) == 2
    err = capsys.readouterr().err
    assert "01-scenes.json" in err and "page 99 is not a page of the book" in err
    assert (run_dir / "02-emotions.json").read_bytes() == emotions_before  # nothing built on the bad plan
