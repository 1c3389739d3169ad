"""Zero-shot CLIP end to end with a tiny random model and the offline tokenizer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from m2m.emotion_backends.clip import read_prompts
from m2m.emotions import EMOTIONS, EmotionOptions, load_emotion_backend, recognise_emotions

from .conftest import TINY_CLIP, make_book, one_scene


def test_zeroshot_end_to_end_gives_valid_distributions(tmp_path):
    page = Image.new("L", (200, 100), 255)
    page.paste(0, (20, 20, 60, 60))
    book = make_book(tmp_path, [{"image": page, "faces": [("f1", (20, 20, 60, 60), "a"), ("f2", (100, 10, 150, 90), "b")]}])
    backend = load_emotion_backend("clip-zeroshot", model="tiny", model_config=TINY_CLIP, pretrained="", device="cpu")
    staged = recognise_emotions(book, one_scene(book), backend, EmotionOptions(batch_size=1))
    report = staged.data
    assert report.backend == "clip-zeroshot" and len(report.faces) == 2
    for face in report.faces:
        assert set(face.probabilities) == set(EMOTIONS)
        assert sum(face.probabilities.values()) == pytest.approx(1.0)
        assert face.warning is None
    scene = report.scenes[0]
    assert scene.faces == 2 and sum(scene.probabilities.values()) == pytest.approx(1.0)
    assert any("random weights" in w for w in staged.provenance.warnings)
    assert staged.provenance.settings["crop_size"] is None  # the model's own input size was used


def test_batched_and_unbatched_agree(tmp_path):
    backend = load_emotion_backend("clip-zeroshot", model="tiny", model_config=TINY_CLIP, pretrained="", device="cpu")
    images = [Image.new("RGB", (32, 32), c) for c in ("red", "green", "blue", "black")]
    together = backend.classify(images)
    alone = np.concatenate([backend.classify([im]) for im in images])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_model_is_loaded_once_and_shared():
    a = load_emotion_backend("clip-zeroshot", model="tiny", model_config=TINY_CLIP, pretrained="", device="cpu")
    b = load_emotion_backend("clip-zeroshot", model="tiny", model_config=TINY_CLIP, pretrained="", device="cpu")
    assert a._model is b._model


def test_missing_weights_are_a_clear_error(tmp_path):
    cache = str(tmp_path / "hub")
    with pytest.raises(ValueError, match="not in the Hugging Face cache"):
        load_emotion_backend("clip-zeroshot", model="ViT-B-32", pretrained="openai", cache_dir=cache)
    with pytest.raises(ValueError, match="not in the Hugging Face cache"):
        load_emotion_backend("clip-zeroshot", model="hf-hub:nobody/no-such-clip", cache_dir=cache)
    with pytest.raises(ValueError, match="is not a tag of ViT-B-32"):
        load_emotion_backend("clip-zeroshot", model="ViT-B-32", pretrained="no-such-tag")
    with pytest.raises(ValueError, match="not an open_clip model"):
        load_emotion_backend("clip-zeroshot", model="ViT-Q-99", pretrained="")


def test_prompt_file_is_checked(tmp_path):
    assert read_prompts()[0]
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps({"templates": ["a {} face"], "classes": {"anger": ["angry"]}}))
    with pytest.raises(ValueError, match="no phrases for"):
        read_prompts(bad)
    bad.write_text(json.dumps({"templates": ["no placeholder"], "classes": {}}))
    with pytest.raises(ValueError, match="exactly one"):
        read_prompts(bad)
