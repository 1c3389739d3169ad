"""The audiocraft backend of the MusicGen engines.

Without audiocraft (CI, and this project's own environment: audiocraft pins an older torch) the
backend must say what to install. Where audiocraft is installed, a tiny randomly initialised
audiocraft MusicGen runs through the same engine code as transformers: text-conditioned batches,
continuation from the previous page, progress per decoding step.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from m2m.music.base import RenderOptions
from m2m.music.musicgen import MusicGenEngine
from m2m.music.musicgen_model import ModelMissingError, MusicGenOptions

from .conftest import cue

HAS_AUDIOCRAFT = importlib.util.find_spec("audiocraft") is not None


def test_unknown_backend_lists_the_valid_ones():
    with pytest.raises(ValueError, match="backend: 'tensorflow' is not one of transformers, audiocraft"):
        MusicGenEngine("musicgen-small", backend="tensorflow")


def test_the_backend_is_chosen_by_the_environment(monkeypatch):
    from m2m.music import load_engine

    load_engine.cache_clear()
    monkeypatch.setenv("M2M_MUSICGEN_BACKEND", "audiocraft")
    try:
        engine = load_engine("musicgen-small")
        assert engine.backend == "audiocraft" and engine.version == "musicgen-1/audiocraft"
    finally:
        load_engine.cache_clear()
    monkeypatch.delenv("M2M_MUSICGEN_BACKEND")
    assert load_engine("musicgen-small").backend == "transformers"


@pytest.mark.skipif(HAS_AUDIOCRAFT, reason="audiocraft is installed here")
def test_without_audiocraft_the_error_says_what_to_install():
    from m2m.music.audiocraft_backend import load_audiocraft

    engine = MusicGenEngine("musicgen-small", backend="audiocraft")
    with pytest.raises(ModelMissingError, match="pip install audiocraft"):
        engine.render(cue(1, 0, "a calm piano"), RenderOptions(seconds=1.0, engine_options=MusicGenOptions(device="cpu")))
    load_audiocraft.cache_clear()


def test_missing_weights_are_named_before_audiocraft_would_download_them(monkeypatch, tmp_path):
    from m2m.music import audiocraft_backend

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    missing = audiocraft_backend.missing_files("facebook/musicgen-small")
    assert missing == ["facebook/musicgen-small/state_dict.bin", "facebook/musicgen-small/compression_state_dict.bin",
                       "t5-base/config.json"]
    if HAS_AUDIOCRAFT:
        with pytest.raises(ModelMissingError, match="huggingface-cli download facebook/musicgen-small state_dict.bin"):
            audiocraft_backend.load_audiocraft.__wrapped__("facebook/musicgen-small", "cpu", False)


def tiny_audiocraft(seed: int = 0):
    """audiocraft's debug MusicGen (SEANet + RVQ compression model, a 2-layer LM over 4 codebooks),
    with a text conditioner that needs no spaCy model (the debug one downloads one)."""
    import torch
    from audiocraft.models import MusicGen, builders
    from audiocraft.models.lm import LMModel
    from audiocraft.modules.codebooks_patterns import DelayedPatternProvider
    from audiocraft.modules.conditioners import ConditionFuser, ConditioningProvider, LUTConditioner

    from m2m.music.audiocraft_backend import AudiocraftModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        compression = builders.get_debug_compression_model("cpu")
        conditioner = LUTConditioner(n_bins=128, dim=16, output_dim=16, tokenizer="noop")
        fuser = ConditionFuser({"cross": ["description"], "prepend": [], "sum": [], "input_interpolate": []})
        lm = LMModel(DelayedPatternProvider(n_q=4), ConditioningProvider({"description": conditioner}), fuser,
                     n_q=4, card=400, dim=16, num_heads=4, custom=True, num_layers=2, cross_attention=True,
                     causal=True).eval()
    return AudiocraftModel(MusicGen("debug", compression, lm, max_duration=30), "audiocraft/debug", "cpu")


@pytest.mark.skipif(not HAS_AUDIOCRAFT, reason="audiocraft is not installed (it pins an older torch)")
def test_tiny_audiocraft_model_through_the_engine():
    loaded = tiny_audiocraft()
    engine = MusicGenEngine("musicgen-small", loader=lambda *a: loaded, backend="audiocraft")
    steps = []
    cues = [cue(1, 0, "a calm piano"), cue(2, 0, "a calm piano, brighter"), cue(3, 1, "epic drums")]
    out = engine.render_many(cues, RenderOptions(seconds=1.0, engine_options=MusicGenOptions(prompt_seconds=0.5),
                                                 progress=lambda s, n: steps.append((s, n))),
                             after={1: None, 2: 1, 3: None})
    for r in out:
        assert r.audio.sample_rate == 32000 and r.audio.samples.shape == (1, 32000)
        assert np.isfinite(r.audio.samples).all() and np.abs(r.audio.samples).max() > 0
        assert "via audiocraft" in r.info.model
    assert out[1].info.details["continues_from"] == 1
    assert out[1].info.details["conditioning"] == "text + the previous page's tail"
    assert len(steps) > 10 and steps[-1][0] <= steps[-1][1]
    # the same seed gives the same clip; the process-wide generator is left alone
    import torch

    before = torch.random.get_rng_state()
    once, twice = (engine.render(cues[0], RenderOptions(seconds=1.0, seed=7)) for _ in range(2))
    np.testing.assert_array_equal(once.audio.samples, twice.audio.samples)
    assert torch.equal(before, torch.random.get_rng_state())
