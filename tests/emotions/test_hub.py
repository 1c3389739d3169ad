"""Weights through a Hugging Face cache (a fake one written by the test; nothing downloads)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from m2m.emotion_backends.clip import Preprocess, build_clip, new_classifier, resolve_spec, save_checkpoint
from m2m.emotions import EMOTIONS, load_emotion_backend

from .conftest import TINY_CLIP

SHA = "0123456789abcdef0123456789abcdef01234567"


def _cache_file(cache, repo: str, name: str):
    """Where huggingface_hub looks for ``name`` of ``repo`` at revision main."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(SHA)
    path = folder / "snapshots" / SHA / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_zeroshot_from_an_hf_hub_name(tmp_path):
    cache = tmp_path / "hub"
    repo = "someone/tiny-clip"
    torch.manual_seed(0)
    spec, _, _ = resolve_spec("tiny", "", TINY_CLIP)
    clip = build_clip(spec)
    _cache_file(cache, repo, "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": TINY_CLIP, "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}}))
    torch.save(clip.state_dict(), _cache_file(cache, repo, "open_clip_pytorch_model.bin"))
    backend = load_emotion_backend("clip-zeroshot", model=f"hf-hub:{repo}", cache_dir=str(cache), device="cpu")
    assert backend.preprocess.mean == (0.5, 0.5, 0.5)
    assert backend.settings()["pretrained"] == f"hf-hub:{repo}"
    probs = backend.classify([Image.new("RGB", (32, 32), "red")])
    assert probs.shape == (1, len(EMOTIONS)) and np.isclose(probs.sum(), 1.0)
    # the loaded weights are the ones in the cache, not a fresh random init
    assert torch.equal(backend._model.clip.state_dict()["visual.conv1.weight"], clip.state_dict()["visual.conv1.weight"])


def test_finetuned_checkpoint_from_a_repo_id(tmp_path):
    cache = tmp_path / "hub"
    repo = "someone/emotion-clip"
    spec, _, preprocess = resolve_spec("tiny", "", TINY_CLIP)
    save_checkpoint(_cache_file(cache, repo, "emotion-clip.pt"), new_classifier(spec, None), spec,
                    Preprocess(**{**preprocess.__dict__, "padding": 0.0}))
    backend = load_emotion_backend("clip-finetuned", checkpoint=repo, cache_dir=str(cache), device="cpu")
    assert backend.settings()["checkpoint"] == repo and backend.preprocess.padding == 0.0
    with pytest.raises(ValueError, match="not in the local cache"):
        load_emotion_backend("clip-finetuned", checkpoint=repo, filename="other.pt", cache_dir=str(cache))
