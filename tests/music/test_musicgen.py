"""MusicGen engines through the real transformers code path, with a tiny random model (no weights)."""

from __future__ import annotations

import numpy as np
import pytest

from m2m.directives import CaptionSheet
from m2m.music.base import RenderOptions
from m2m.music.musicgen import ModelMissingError, MusicGenEngine, load_pretrained
from m2m.runs import RunFolder
from m2m.soundtrack import SoundtrackSettings, build_soundtrack, read_audio

from .conftest import cue


class Spy:
    """Wraps the tiny model's processor to see what each generate call was given."""

    def __init__(self, processor):
        self.processor, self.calls = processor, []

    def __call__(self, **kwargs):
        self.calls.append({"text": kwargs.get("text"), "audio": kwargs.get("audio")})
        return self.processor(**kwargs)


@pytest.fixture
def engine(tiny_model):
    from dataclasses import replace

    spy = Spy(tiny_model.processor)
    loaded = replace(tiny_model, processor=spy)
    eng = MusicGenEngine("musicgen-small", loader=lambda model_id, device, allow: loaded)
    eng.spy = spy
    return eng


def test_text_conditioned_batch(engine):
    steps = []
    cues = [cue(1, 0, "a calm piano"), cue(2, 1, "epic drums"), cue(3, 2, "sad strings")]
    out = engine.render_many(cues, RenderOptions(seconds=1.0, batch_size=4, progress=lambda s, n: steps.append((s, n))))
    assert [r.page for r in out] == [1, 2, 3]
    assert len(engine.spy.calls) == 1 and engine.spy.calls[0]["text"] == [c.caption for c in cues]  # one batch
    for r in out:
        assert r.audio.sample_rate == 32000 and r.audio.samples.shape == (1, 32000)
        assert r.loop and np.isfinite(r.audio.samples).all() and np.abs(r.audio.samples).max() > 0
    assert steps[-1][0] == steps[-1][1] and len(steps) > 10  # a report per decoding step


def test_a_page_continues_from_the_tail_of_the_previous(engine):
    cues = [cue(1, 0, "a calm piano"), cue(2, 0, "a calm piano, brighter"), cue(3, 1, "epic drums")]
    options = RenderOptions(seconds=1.5, prompt_seconds=0.5)
    out = engine.render_many(cues, options, after={1: None, 2: 1, 3: None})
    calls = engine.spy.calls
    assert calls[0]["text"] == ["a calm piano", "epic drums"] and calls[0]["audio"] is None  # fresh pages batched
    assert calls[1]["text"] == ["a calm piano, brighter"]
    prompt = calls[1]["audio"][0]
    assert len(prompt) == 16000  # 0.5 s at 32 kHz
    np.testing.assert_allclose(prompt, out[0].audio.samples[0, -16000:], atol=1e-6)  # page 1's tail
    assert out[1].audio.samples.shape == (1, 48000)  # the prompt is stripped from the output
    assert out[1].info.details["continues_from"] == 1


def test_a_page_longer_than_the_window_is_generated_in_windows(tiny_model):
    eng = MusicGenEngine("musicgen-small", loader=lambda *a: tiny_model, window_seconds=1.0)
    out = eng.render(cue(1, 0, "a long calm piano"), RenderOptions(seconds=2.0, prompt_seconds=0.25))
    assert out.audio.samples.shape == (1, 64000)


def test_render_with_previous_audio_option(engine, tiny_model):
    first = engine.render(cue(1, 0, "a calm piano"), RenderOptions(seconds=1.0))
    second = engine.render(cue(2, 0, "more piano"), RenderOptions(seconds=1.0, previous=first.audio, prompt_seconds=0.5))
    assert engine.spy.calls[-1]["audio"] is not None and second.audio.samples.shape == (1, 32000)


def test_soundtrack_with_musicgen_resamples_and_chains(tmp_path, engine):
    run = RunFolder(tmp_path, "book", "m2m")
    captions = CaptionSheet((cue(1, 0, "a calm piano"), cue(2, 0, "calm piano again"), cue(3, 1, "epic drums")))
    settings = SoundtrackSettings(clip_seconds=1.0, pace_seconds=2.0, crossfade_seconds=0.5, scene_crossfade_seconds=1.0)
    soundtrack = build_soundtrack("book", "m2m", captions, run, "musicgen-small", settings, engine=engine)
    assert [c.details["continues_from"] for c in soundtrack.cues] == [None, 1, None]
    audio = read_audio(run.path / soundtrack.cues[1].file)
    assert audio.sample_rate == 44100 and audio.samples.shape[0] == 2
    assert soundtrack.cues[0].backend.startswith("random/musicgen-tiny")


def test_empty_caption_is_refused(engine):
    with pytest.raises(ValueError, match="caption: page 4 has an empty caption"):
        engine.render(cue(4, 0, "   "), RenderOptions(seconds=1.0))


def test_missing_weights_say_how_to_fetch_them(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelMissingError, match="huggingface-cli download facebook/musicgen-small"):
        load_pretrained.__wrapped__("facebook/musicgen-small", "cpu", False)


def test_melody_without_torchaudio_says_what_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchaudio" else real(name, *a))
    load_pretrained.cache_clear()
    with pytest.raises(ModelMissingError, match="torchaudio"):
        load_pretrained("facebook/musicgen-melody", "cpu", False)
