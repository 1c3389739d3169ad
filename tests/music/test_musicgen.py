"""MusicGen engines through the real transformers code path, with a tiny random model (no weights)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from m2m.audio import read_audio
from m2m.cues import CaptionSheet
from m2m.music.base import RenderOptions
from m2m.music.musicgen import MusicGenEngine
from m2m.music.musicgen_model import ModelMissingError, MusicGenOptions
from m2m.music.render import SoundtrackSettings
from m2m.music.transformers_backend import load_pretrained
from m2m.runs import RunFolder
from m2m.soundtrack import build_soundtrack

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
    out = engine.render_many(cues, RenderOptions(seconds=1.0, engine_options=MusicGenOptions(batch_size=4), progress=lambda s, n: steps.append((s, n))))
    assert [r.page for r in out] == [1, 2, 3]
    assert len(engine.spy.calls) == 1 and engine.spy.calls[0]["text"] == [c.caption for c in cues]  # one batch
    for r in out:
        assert r.audio.sample_rate == 32000 and r.audio.samples.shape == (1, 32000)
        assert r.loop and np.isfinite(r.audio.samples).all() and np.abs(r.audio.samples).max() > 0
    assert steps[-1][0] == steps[-1][1] and len(steps) > 10  # a report per decoding step


def test_a_page_continues_from_the_tail_of_the_previous(engine):
    cues = [cue(1, 0, "a calm piano"), cue(2, 0, "a calm piano, brighter"), cue(3, 1, "epic drums")]
    options = RenderOptions(seconds=1.5, engine_options=MusicGenOptions(prompt_seconds=0.5))
    out = engine.render_many(cues, options, after={1: None, 2: 1, 3: None})
    calls = engine.spy.calls
    assert calls[0]["text"] == ["a calm piano", "epic drums"] and calls[0]["audio"] is None  # fresh pages batched
    assert calls[1]["text"] == ["a calm piano, brighter"]
    prompt = calls[1]["audio"][0]
    assert len(prompt) == 16000  # 0.5 s at 32 kHz
    np.testing.assert_allclose(prompt, out[0].audio.samples[0, -16000:], atol=1e-6)  # page 1's tail
    assert out[1].audio.samples.shape == (1, 48000)  # the prompt is stripped from the output
    assert out[1].info.details["continues_from"] == 1


def test_a_page_continuing_from_page_0_records_its_prompt(engine):
    out = engine.render_many([cue(0, 0, "a calm piano"), cue(1, 0, "calm piano again")],
                             RenderOptions(seconds=1.0, engine_options=MusicGenOptions(prompt_seconds=0.5)), after={0: None, 1: 0})
    assert out[1].info.details["continues_from"] == 0
    assert out[1].info.details["prompt_seconds"] == 0.5  # page 0 is a page, not "no page"
    assert out[1].info.details["conditioning"] == "text + the previous page's tail"


def test_a_page_longer_than_the_window_is_generated_in_windows(tiny_model):
    eng = MusicGenEngine("musicgen-small", loader=lambda *a: tiny_model, window_seconds=1.0)
    out = eng.render(cue(1, 0, "a long calm piano"), RenderOptions(seconds=2.0, engine_options=MusicGenOptions(prompt_seconds=0.25)))
    assert out.audio.samples.shape == (1, 64000)


def test_render_with_previous_audio_option(engine, tiny_model):
    first = engine.render(cue(1, 0, "a calm piano"), RenderOptions(seconds=1.0))
    second = engine.render(cue(2, 0, "more piano"), RenderOptions(seconds=1.0, previous=first.audio, engine_options=MusicGenOptions(prompt_seconds=0.5)))
    assert engine.spy.calls[-1]["audio"] is not None and second.audio.samples.shape == (1, 32000)


def test_soundtrack_with_musicgen_resamples_and_chains(tmp_path, engine):
    run = RunFolder(tmp_path, "book", "m2m")
    captions = CaptionSheet((cue(1, 0, "a calm piano"), cue(2, 0, "calm piano again"), cue(3, 1, "epic drums")))
    settings = SoundtrackSettings(clip_seconds=1.0, pace_seconds=2.0, crossfade_seconds=0.5, scene_crossfade_seconds=1.0,
                                  sample_rate=44100)
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


def test_melody_weights_missing_say_how_to_fetch_them(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelMissingError, match="huggingface-cli download facebook/musicgen-melody"):
        load_pretrained.__wrapped__("facebook/musicgen-melody", "cpu", False)


# --- MusicGen-Melody: chroma computed without torchaudio ----------------------------------------


def tone(freqs: list[float], seconds: float, rate: int = 32000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return sum(np.sin(2 * np.pi * f * t) for f in freqs).astype(np.float32) / len(freqs)


def test_chroma_finds_the_pitch_class_of_a_tone_at_any_rate():
    from m2m.music.melody import melody_chroma

    for rate in (32000, 44100):
        for freq, pitch_class in ((440.0, 9), (261.63, 0), (392.0, 7)):  # A4, C4, G4 (C = 0)
            chroma = melody_chroma(tone([freq], 4.0, rate), rate)
            assert chroma.shape == (235, 12)  # 30 s at 32 kHz, hop 4096: the released checkpoints' length
            assert (chroma.sum(axis=1) == 1).all()  # one-hot per frame
            assert (chroma.argmax(axis=1) == pitch_class).mean() > 0.95, (rate, freq)


def test_chroma_matches_librosa_frame_by_frame():
    """The same features as transformers' extractor computes (its spectrogram + librosa's chroma
    filters + argmax), checked against librosa itself on a melody that changes every half second."""
    import librosa

    from m2m.music.melody import melody_chroma

    rate = 32000
    notes = [261.63, 329.63, 392.0, 440.0, 493.88, 349.23] * 10  # 30 s
    melody = np.concatenate([tone([f, 2 * f], 0.5, rate) for f in notes])
    ours = melody_chroma(melody, rate).argmax(axis=1)
    power = np.abs(librosa.stft(melody, n_fft=16384, hop_length=4096, center=True, pad_mode="reflect")) ** 2
    theirs = librosa.feature.chroma_stft(S=power, sr=rate, n_fft=16384, tuning=0.0).argmax(axis=0)
    assert ours.shape == theirs.shape
    assert (ours == theirs).mean() > 0.98


@pytest.mark.skipif(importlib.util.find_spec("torchaudio") is None, reason="torchaudio is not installed")
def test_chroma_equals_transformers_own_extractor_where_torchaudio_exists():
    from transformers import MusicgenMelodyFeatureExtractor

    from m2m.music.melody import melody_chroma

    rate = 32000
    notes = [261.63, 329.63, 392.0, 440.0, 493.88, 349.23] * 10  # exactly the 30-second window
    melody = np.concatenate([tone([f, 2 * f], 0.5, rate) for f in notes])
    theirs = MusicgenMelodyFeatureExtractor()(melody, sampling_rate=rate, return_tensors="np")["input_features"][0]
    ours = melody_chroma(melody, rate)
    assert ours.shape == theirs.shape
    assert (ours.argmax(axis=1) == theirs.argmax(axis=1)).mean() > 0.99


def test_a_short_melody_is_repeated_to_fill_the_window():
    from m2m.music.melody import melody_chroma

    rate = 32000
    two_notes = np.concatenate([tone([440.0], 2.0, rate), tone([261.63], 2.0, rate)])
    classes = melody_chroma(two_notes, rate).argmax(axis=1)
    assert {int(c) for c in np.unique(classes[5:-5])} == {9, 0}  # A and C all the way, not padding
    assert (classes[-40:] == 9).sum() > 5 and (classes[-40:] == 0).sum() > 5


def test_chroma_refuses_empty_or_multichannel_audio():
    from m2m.music.melody import melody_chroma

    with pytest.raises(ValueError, match="melody: expected non-empty mono audio"):
        melody_chroma(np.zeros(0, np.float32), 32000)
    with pytest.raises(ValueError, match="melody: expected non-empty mono audio"):
        melody_chroma(np.zeros((2, 100), np.float32), 32000)


@pytest.fixture(scope="module")
def tiny_melody():
    from m2m.music.random_model import random_musicgen

    return random_musicgen(seed=0, melody=True, model_id="random/musicgen-melody-tiny")


def test_melody_model_follows_the_previous_pages_melody(tiny_melody):
    from dataclasses import replace

    spy = Spy(tiny_melody.processor)
    eng = MusicGenEngine("musicgen-melody", loader=lambda *a: replace(tiny_melody, processor=spy))
    cues = [cue(1, 0, "a calm piano"), cue(2, 0, "calm piano, brighter"), cue(3, 1, "epic drums")]
    out = eng.render_many(cues, RenderOptions(seconds=1.0), after={1: None, 2: 1, 3: None})
    assert spy.calls[0]["text"] == ["a calm piano", "epic drums"] and spy.calls[0]["audio"] is None
    assert spy.calls[1]["text"] == ["calm piano, brighter"]
    melody = spy.calls[1]["audio"][0]
    np.testing.assert_allclose(melody, out[0].audio.samples.mean(axis=0), atol=1e-6)  # all of page 1
    for r in out:  # chroma conditions the model; nothing to strip from its output
        assert r.audio.samples.shape == (1, 32000) and np.isfinite(r.audio.samples).all()
    assert out[1].info.details["conditioning"] == "text + melody (chroma) of the previous page"
    assert out[1].info.details["prompt_seconds"] == 0.0 and out[1].info.details["continues_from"] == 1


def test_saved_checkpoints_load_through_the_real_loader(tmp_path, tiny_model, tiny_melody):
    """save_pretrained, then load_pretrained from the folder (what from_pretrained does with a hub
    snapshot): the processor, the melody's chroma settings and the weights all come back."""
    import json

    import torch

    for loaded, melody in ((tiny_model, False), (tiny_melody, True)):
        folder = tmp_path / ("melody" if melody else "small")
        loaded.model.save_pretrained(folder)
        if melody:
            loaded.processor.tokenizer.save_pretrained(folder)
            (folder / "preprocessor_config.json").write_text(json.dumps(
                {"feature_extractor_type": "MusicgenMelodyFeatureExtractor", "sampling_rate": 32000,
                 "n_fft": 8192, "hop_length": 2048, "chunk_length": 30, "num_chroma": 12}), encoding="utf-8")
        else:
            loaded.processor.save_pretrained(folder)
        again = load_pretrained.__wrapped__(str(folder), "cpu", False)  # "melody" in the name: the melody class
        assert again.melody is melody
        first = next(loaded.model.parameters())
        assert torch.equal(next(again.model.parameters()), first)
        if melody:
            assert again.processor.chroma.n_fft == 8192 and again.processor.chroma.hop_length == 2048
        eng = MusicGenEngine("musicgen-small", loader=lambda *a, m=again: m)
        clip = eng.render(cue(1, 0, "a calm piano"), RenderOptions(seconds=1.0))
        assert clip.audio.samples.shape == (1, 32000)


@pytest.mark.parametrize("melody", [False, True])
def test_half_precision_as_on_a_gpu(melody):
    """The GPU path runs the model in float16: prompts and chroma are cast to the model's dtype and
    clips come back as float32. The same code runs on the CPU here with a float16 model."""
    import torch

    from m2m.music.random_model import random_musicgen

    half = random_musicgen(seed=0, melody=melody, dtype=torch.float16)
    assert next(half.model.parameters()).dtype == torch.float16
    eng = MusicGenEngine("musicgen-melody" if melody else "musicgen-small", loader=lambda *a: half)
    out = eng.render_many([cue(1, 0, "a calm piano"), cue(2, 0, "calm piano again")],
                          RenderOptions(seconds=1.0, engine_options=MusicGenOptions(prompt_seconds=0.25)), after={1: None, 2: 1})
    for r in out:
        assert r.audio.samples.dtype == np.float32 and r.audio.samples.shape == (1, 32000)
        assert np.isfinite(r.audio.samples).all() and np.abs(r.audio.samples).max() > 0


ZERO_GPU_PROBE = """
import m2m.music.transformers_backend as m
from m2m.music.musicgen_model import default_device
print("PROBE", m._generate is not m._generate_impl, getattr(m._generate, "__wrapped__", None) is m._generate_impl,
      default_device())
"""


@pytest.mark.parametrize("zero_gpu", [False, True])
def test_generation_carries_spaces_gpu_on_a_zero_gpu_space(zero_gpu):
    """With the real ``spaces`` package in ZeroGPU mode (its device API unreachable: nothing here is
    a Space), generation is wrapped by ``spaces.GPU`` and models go to "cuda", which ZeroGPU
    attaches per call; elsewhere nothing is wrapped."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith("SPACES_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    if zero_gpu:
        env |= {"SPACES_ZERO_GPU": "true", "SPACES_ZERO_DEVICE_API_URL": "http://127.0.0.1:9"}
    stdout = subprocess.run([sys.executable, "-c", ZERO_GPU_PROBE], env=env, capture_output=True, text=True,
                            timeout=300, check=True).stdout
    # Libraries may print too (pyfluidsynth does when CI is set): read only the probe's line.
    [probe] = [line.split()[1:] for line in stdout.splitlines() if line.startswith("PROBE ")]
    assert probe == (["True", "True", "cuda"] if zero_gpu else ["False", "False", "cpu"])


def test_render_without_weights_fails_clearly_and_keeps_the_plan(manga109_root, tmp_path, monkeypatch, capsys):
    from m2m.cli import main

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "runs"
    code = main(["render", str(manga109_root), "--engine", "musicgen-small",
                 "--device", "cpu", "--out", str(out)])
    assert code == 2
    assert "huggingface-cli download facebook/musicgen-small" in capsys.readouterr().err
    run_dir = out / "TestBook" / "m2m"
    assert (run_dir / "04-captions.json").is_file()  # the plan stays for the next try
    assert not list(run_dir.glob("audio/*.ogg"))


def test_musicgen_is_asked_for_a_stinger_in_words_continuing_the_old_page(engine, tmp_path):
    from m2m.cues import Transition, TransitionSheet

    captions = CaptionSheet((cue(0, 0, "a bright piano waltz", key="A"), cue(1, 1, "a dark cello", key="C#",
                                                                              mode="minor")))
    settings = SoundtrackSettings(clip_seconds=1.5, pace_seconds=3.0, crossfade_seconds=0.5)
    run = RunFolder(tmp_path, "book", "m2m")
    moves = TransitionSheet((Transition(1, "stinger", 1.2, "closes the waltz"),))
    build_soundtrack("book", "m2m", captions, run, "musicgen-small", settings, engine=engine, transitions=moves)
    stinger = read_audio(run.path / "audio" / "stinger-001.ogg")
    assert stinger.seconds == pytest.approx(1.2, abs=0.01)
    asked = engine.spy.calls[-1]
    assert asked["text"] == ["a short final cadence in A major, acoustic grand piano, at 100 BPM, resolving to the "
                             "tonic and ringing out"]
    assert asked["audio"] is not None  # from the old page's tail
    import json

    raw = json.loads((run.path / "soundtrack.json").read_text())
    (record,) = raw["data"]["stingers"]
    assert record["details"]["continues_from"] is not None and record["details"]["asked_in_words"]
    assert any("musicgen-small was asked for the cadence in words" in w for w in raw["provenance"]["warnings"])
