"""``m2m emotions`` train / eval / show through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from m2m.cli import main

from .conftest import TINY_CLIP, write_kangaiset


def test_train_then_eval_on_kangaiset(tmp_path, capsys):
    write_kangaiset(tmp_path, per_class=4, split="train", seed=5)
    write_kangaiset(tmp_path, per_class=2, split="test_external", seed=6)
    ckpt = tmp_path / "c.pt"
    config = json.dumps(TINY_CLIP)
    assert main(["emotions", "train", "--data", str(tmp_path), "--out", str(ckpt), "--model", "tiny",
                 "--pretrained", "none", "--model-config", config, "--epochs", "1", "--lr", "1e-3",
                 "--val-fraction", "0.25"]) == 0
    assert ckpt.is_file() and "best epoch 1" in capsys.readouterr().out
    assert main(["emotions", "eval", "--data", str(tmp_path), "--checkpoint", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "clip-finetuned on KangaiSet test_external: 14 faces" in out
    assert "paper: Fine-tuned CLIP" in out and "68.7%" in out and "confusion" in out
    assert main(["emotions", "eval", "--data", str(tmp_path), "--backend", "clip-zeroshot", "--model", "tiny",
                 "--pretrained", "", "--model-config", config, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 14 and 0.0 <= report["micro"] <= 1.0
    # the trained checkpoint drives the plan's emotions stage from the command line
    book = Path(__file__).resolve().parents[2] / "examples" / "manga109"
    runs = tmp_path / "runs"
    assert main(["plan", str(book), "--out", str(runs), "--emotions", "clip-finetuned"]) == 2
    assert "--emotions-checkpoint" in capsys.readouterr().err
    assert main(["plan", str(book), "--out", str(runs), "--emotions", "clip-finetuned",
                 "--emotions-checkpoint", str(ckpt), "--device", "cpu"]) == 0
    record = json.loads((runs / "ShiokazeDays" / "m2m" / "02-emotions.json").read_text(encoding="utf-8"))
    assert record["provenance"]["backend"].startswith("clip-finetuned")
    assert len(record["data"]["faces"]) == 109


def test_eval_and_show_on_a_book(tmp_path, capsys):
    Image.new("RGB", (200, 100), "white").save(tmp_path / "000.png")
    # a simple-format book on disk, so the CLI loads it the ordinary way
    (tmp_path / "transcript.json").write_text(json.dumps({"title": "test", "pages": [
        {"image": "000.png", "lines": [{"text": "うれしい！", "speaker": "aki"}, {"text": "怖い", "speaker": "mina"}],
         "faces": [{"box": [0, 0, 10, 10], "character": "aki"}, {"box": [20, 0, 30, 10], "character": "mina"}]}]}),
        encoding="utf-8")
    from m2m.book import load_book

    book = load_book(tmp_path)
    ids = [f.id for f in book.pages[0].faces]
    (tmp_path / "ground_truth.json").write_text(json.dumps({"faces": [
        {"page": 0, "face_id": ids[0], "emotion": "happiness"}, {"page": 0, "face_id": ids[1], "emotion": "fear"}]}))
    assert main(["emotions", "eval", str(tmp_path), "--backend", "dialogue"]) == 0
    out = capsys.readouterr().out
    assert "dialogue on test" in out and "this run" in out and " 100.0%" in out
    assert main(["emotions", "show", str(tmp_path), "--backend", "annotations", "--faces"]) == 0
    out = capsys.readouterr().out
    assert "scene 0: 50% fear, 50% happiness" in out and "aki: happiness" in out


def test_bad_arguments_are_errors_not_tracebacks(tmp_path, capsys):
    assert main(["emotions", "eval", "--data", str(tmp_path), "--backend", "dialogue"]) == 2
    assert "reads books" in capsys.readouterr().err
    assert main(["emotions", "eval"]) == 2
    assert main(["emotions", "train", "--data", str(tmp_path), "--out", str(tmp_path / "x.pt"),
                 "--pretrained", "none"]) == 2
    assert "is not a folder" in capsys.readouterr().err
