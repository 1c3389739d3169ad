"""Fixtures for the music tests: cues, a composer engine, and a tiny random MusicGen (no weights)."""

from __future__ import annotations

import pytest

from m2m.cues import Cue, Plan


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    # Tiny models on 2 shared cores: one thread avoids OpenMP spin-waiting that makes them 10x slower.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def composer():
    from m2m.music.composer import ComposerEngine

    return ComposerEngine()


@pytest.fixture(scope="session")
def tiny_model():
    from m2m.music.random_model import random_musicgen

    return random_musicgen(seed=0)


def cue(page: int = 1, scene: int = 0, caption: str = "", **plan) -> Cue:
    defaults = dict(tempo=100, key="C", mode="major", instruments=("acoustic grand piano",), energy=0.5, mood="calm")
    return Cue(page, scene, caption, Plan(**{**defaults, **plan}))
