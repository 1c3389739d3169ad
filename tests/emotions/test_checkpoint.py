"""Checkpoints: round trip, and refusal of anything that doesn't match."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from m2m.emotion_backends.clip import (
    Preprocess,
    new_classifier,
    read_checkpoint,
    resolve_spec,
    save_checkpoint,
)
from m2m.emotions import EMOTIONS, load_emotion_backend

from .conftest import TINY_CLIP


@pytest.fixture
def saved(tmp_path):
    spec, weights, preprocess = resolve_spec("tiny", "", TINY_CLIP)
    torch.manual_seed(0)
    model = new_classifier(spec, weights)
    path = save_checkpoint(tmp_path / "ck.pt", model, spec, Preprocess(**{**preprocess.__dict__, "padding": 0.0}),
                           EMOTIONS, {"note": "test"})
    return path, model, spec


def test_round_trip_gives_identical_predictions(saved):
    path, model, spec = saved
    loaded = read_checkpoint(path)
    assert loaded.classes == EMOTIONS and loaded.spec.config == spec.config and loaded.preprocess.padding == 0.0
    assert loaded.training == {"note": "test"}
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), loaded.model(x), atol=1e-6)


def test_backend_reorders_classes_recorded_in_another_order(saved, tmp_path):
    path, model, spec = saved
    raw = torch.load(path, weights_only=True)
    order = list(reversed(EMOTIONS))
    perm = [EMOTIONS.index(e) for e in order]
    raw["classes"] = order
    raw["state_dict"]["head.weight"] = raw["state_dict"]["head.weight"][perm]
    raw["state_dict"]["head.bias"] = raw["state_dict"]["head.bias"][perm]
    torch.save(raw, tmp_path / "reordered.pt")
    images = [Image.new("RGB", (32, 32), c) for c in ("red", "blue", "white")]
    a = load_emotion_backend("clip-finetuned", checkpoint=str(path)).classify(images)
    b = load_emotion_backend("clip-finetuned", checkpoint=str(tmp_path / "reordered.pt")).classify(images)
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-6)


def _tamper(path, tmp_path, **changes):
    raw = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".", 1)
            raw[outer][inner] = value
        else:
            raw[key] = value
    out = tmp_path / "bad.pt"
    torch.save(raw, out)
    return out


@pytest.mark.parametrize("changes, message", [
    ({"format": "something-else"}, "not an m2m emotion checkpoint"),
    ({"version": 99}, "format version 99"),
    ({"classes": ["anger", "elation", "fear", "happiness", "neutral", "sadness", "surprise"]}, "not an emotion label"),
    ({"classes": ["anger", "fear", "happiness", "neutral", "sadness", "surprise"]}, "not KangaiSet's seven"),
    ({"preprocess.size": 64}, "preprocess size 64"),
])
def test_mismatched_checkpoint_is_refused(saved, tmp_path, changes, message):
    path, _, _ = saved
    with pytest.raises(ValueError, match=message):
        read_checkpoint(_tamper(path, tmp_path, **changes))


def test_weights_for_another_architecture_are_refused(saved, tmp_path):
    path, _, _ = saved
    other = {**TINY_CLIP, "vision_cfg": {**TINY_CLIP["vision_cfg"], "layers": 3}}
    with pytest.raises(ValueError, match="weights don't fit model"):
        read_checkpoint(_tamper(path, tmp_path, **{"model.config": other}))


def test_expected_model_name_is_checked(saved):
    path, _, _ = saved
    with pytest.raises(ValueError, match="trained on model 'tiny', but 'ViT-B-32' was asked for"):
        load_emotion_backend("clip-finetuned", checkpoint=str(path), model="ViT-B-32")


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a readable torch file"):
        read_checkpoint(junk)
    with pytest.raises(ValueError, match="file not found"):
        read_checkpoint(tmp_path / "missing.pt")


def test_missing_checkpoint_messages(tmp_path):
    with pytest.raises(ValueError, match="needs a checkpoint"):
        load_emotion_backend("clip-finetuned")
    with pytest.raises(ValueError, match="not in the local cache"):
        load_emotion_backend("clip-finetuned", checkpoint="someone/emotion-clip", cache_dir=str(tmp_path / "hub"))
    with pytest.raises(ValueError, match="is not a file"):
        load_emotion_backend("clip-finetuned", checkpoint=str(tmp_path / "nope.pt"))
