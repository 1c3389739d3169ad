"""``m2m evaluate`` end to end on synthetic runs: the table, the JSON file and the chart; CLAP said
unavailable when no model is cached, and a tiny randomly initialised CLAP model yielding figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from m2m.evaluation.clap import TransformersClap
from m2m.evaluation.evaluate import default_json_path, evaluate
from m2m.evaluation.report import chart, table, write_json
from m2m.runs import RunFolder
from m2m.soundtrack import Soundtrack

from .conftest import make_run, tone

C_MAJOR, F_SHARP_MINOR = [261.6, 329.6, 392.0], [185.0, 220.0, 277.2]


def missing(model_id: str):
    raise OSError(f"{model_id} is not in the cache")


@pytest.fixture()
def book(tmp_path):
    """runs/Book/ with an m2m run that follows its two scenes and a random one with one clip everywhere."""
    scenes = [0, 0, 1, 1]
    make_run(tmp_path, [tone(C_MAJOR), tone(C_MAJOR, vibrato=0.2), tone(F_SHARP_MINOR), tone(F_SHARP_MINOR, vibrato=0.2)],
             scenes, [0.0, 1.5, 5.0, 1.5])
    make_run(tmp_path, [tone(C_MAJOR)] * 4, [0, 1, 2, 3], [0.0, 5.0, 5.0, 5.0], condition="random")
    return tmp_path / "Book"


def test_a_book_folder_evaluates_every_condition_and_says_clap_is_unavailable(book, tmp_path):
    evaluation = evaluate([book], clap_loader=missing)
    m2m, random = evaluation.runs
    assert (m2m.condition, random.condition) == ("m2m", "random")
    # random plays the m2m plan's scenes, and is judged against them, not its own cue sheet's
    assert "m2m plan" in random.scene_source and [j.scene_change for j in random.transitions.joins] == [False, True, False]
    assert m2m.scenes.ratio > 2.0 and random.scenes.ratio == 1.0
    assert not m2m.clap.available and m2m.clap.note.startswith("unavailable: no CLAP model")
    text = table(evaluation)
    assert "text-audio agreement (margin)" in text and "CLAP: unavailable: no CLAP model" in text
    assert text.splitlines()[0].split() == ["m2m", "random"]
    path = write_json(evaluation, default_json_path(evaluation))
    assert path == book / "evaluation.json"
    data = json.loads(path.read_text())
    assert data["runs"][0]["clap"]["available"] is False and data["runs"][0]["clap"]["note"].startswith("unavailable")
    assert data["runs"][0]["levels"]["clipped_samples"] == 0
    # what was measured, so a study's report can tell figures of music rendered again since
    sheet = RunFolder(tmp_path, "Book", "m2m").read("soundtrack", Soundtrack).data
    assert data["runs"][0]["played"] == sheet.played_hash() != data["runs"][1]["played"]
    png = chart(evaluation, tmp_path / "chart.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def tiny_clap(model_id: str) -> TransformersClap:
    """A randomly initialised ClapModel a few thousand parameters large, no download; its tokenizer
    maps characters into the tiny vocabulary."""
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    text = dict(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                max_position_embeddings=64, projection_dim=8)
    audio = dict(depths=[1, 1], num_attention_heads=[1, 2], patch_embeds_hidden_size=16, hidden_size=32,
                 projection_dim=8, spec_size=64, num_mel_bins=16, window_size=4, patch_stride=(4, 4),
                 enable_fusion=False)
    torch.manual_seed(0)
    model = ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=8))
    features = ClapFeatureExtractor(feature_size=16, sampling_rate=16000, max_length_s=2, fft_window_size=512,
                                    hop_length=160)

    def tokenize(texts):
        ids = [[2 + ord(ch) % 60 for ch in t[:40]] for t in texts]
        width = max(len(i) for i in ids)
        return {"input_ids": torch.tensor([i + [1] * (width - len(i)) for i in ids]),
                "attention_mask": torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids])}

    return TransformersClap(model_id, model, features, tokenize)


def test_a_tiny_clap_model_yields_agreement_and_fad(book, tmp_path):
    reference = tmp_path / "reference"
    from m2m.audio import write_audio_atomic

    for i, f in enumerate([300.0, 500.0, 700.0]):
        write_audio_atomic(reference / f"{i}.wav", tone([f], 2.0), 22050)
    evaluation = evaluate([book / "m2m"], clap_model="tiny", clap_loader=tiny_clap, fad_reference=reference)
    (run,) = evaluation.runs
    clap = run.clap
    assert clap.available and clap.model == "tiny"
    assert -1.0 <= clap.agreement <= 1.0 and np.isfinite(clap.margin) and len(clap.per_page) == 4
    assert clap.fad is not None and clap.fad >= 0.0 and "4 clips against 3" in clap.fad_note
    assert "unavailable" not in table(evaluation).split("CLAP")[1].splitlines()[1]


def test_fad_without_reference_audio_says_so(book):
    (run,) = evaluate([book / "m2m"], clap_loader=tiny_clap).runs
    assert run.clap.available and run.clap.fad is None and run.clap.fad_note == \
        "unavailable: no reference audio (--fad-reference FOLDER)"


def test_a_folder_with_no_runs_is_refused(tmp_path):
    with pytest.raises(ValueError, match="neither a run folder"):
        evaluate([tmp_path], clap_loader=missing)
