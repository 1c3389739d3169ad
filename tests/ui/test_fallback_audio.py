"""FLAC copies of clips for browsers without OGG Vorbis: the route, its limits and the copies."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile
from fastapi import FastAPI
from fastapi.testclient import TestClient

from m2m.ui.fallback_audio import ROUTE, fallback_routes, fallback_url, flac_copy


def write_clip(path: Path, seconds: float = 2.0, rate: int = 44100) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    audio = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 330 * t)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, audio.astype(np.float32), rate, format="OGG", subtype="VORBIS")
    return soundfile.read(path, dtype="float32", always_2d=True)[0]


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture()
def client(runs: Path) -> TestClient:
    return TestClient(FastAPI(routes=fallback_routes([runs])))


def get(client: TestClient, path: Path | str):
    return client.get("/" + fallback_url(path, "abc123"))


def test_the_copy_is_lossless_to_16_bits_and_as_long_as_the_clip(client, runs):
    clip = runs / "Book" / "m2m" / "audio" / "page-001.ogg"
    decoded = write_clip(clip)
    response = get(client, clip)
    assert response.status_code == 200 and response.headers["content-type"] == "audio/flac"
    flac, rate = soundfile.read(io.BytesIO(response.content), dtype="float32", always_2d=True)
    assert rate == 44100 and flac.shape == decoded.shape  # same length: the loop point stays exact
    assert np.abs(flac - np.clip(decoded, -1, 1)).max() < 2 / 32768


def test_the_copy_is_made_once_and_again_when_the_clip_changes(client, runs):
    clip = runs / "Book" / "m2m" / "audio" / "page-002.ogg"
    write_clip(clip, seconds=1.0)
    assert get(client, clip).status_code == 200
    copy = clip.with_suffix(".flac")
    made = copy.stat().st_mtime_ns
    assert get(client, clip).status_code == 200 and copy.stat().st_mtime_ns == made
    write_clip(clip, seconds=1.5)  # a re-rendered page
    future = made + 10**9
    os.utime(clip, ns=(future, future))
    response = get(client, clip)
    assert soundfile.info(io.BytesIO(response.content)).duration == pytest.approx(1.5, abs=0.01)
    assert not list(copy.parent.glob(".*tmp*"))


@pytest.mark.parametrize("where", ["outside", "not-ogg", "missing", "traversal"])
def test_only_clips_under_the_runs_folder_are_served(client, runs, tmp_path, where):
    outside = tmp_path / "elsewhere" / "page-001.ogg"
    write_clip(outside, seconds=0.5)
    inside_text = runs / "Book" / "m2m" / "04-captions.json"
    inside_text.parent.mkdir(parents=True, exist_ok=True)
    inside_text.write_text("{}", encoding="utf-8")
    path = {"outside": outside, "not-ogg": inside_text, "missing": runs / "Book" / "m2m" / "audio" / "page-009.ogg",
            "traversal": f"{runs}/../elsewhere/page-001.ogg"}[where]
    response = get(client, path)
    assert response.status_code == 404 and response.json() == {"detail": "no such clip"}
    assert str(tmp_path) not in response.text
    assert not outside.with_suffix(".flac").exists()


def test_flac_copy_writes_beside_the_clip(tmp_path):
    clip = tmp_path / "page-000.ogg"
    write_clip(clip, seconds=0.5)
    assert flac_copy(clip) == tmp_path / "page-000.flac"
    assert ROUTE in fallback_url(clip) and "v=" not in fallback_url(clip)


def test_an_unreadable_clip_is_a_clear_500_and_leaves_no_copy(client, runs):
    clip = runs / "Book" / "m2m" / "audio" / "page-003.ogg"
    clip.parent.mkdir(parents=True, exist_ok=True)
    clip.write_bytes(b"OggS but not audio")
    response = get(client, clip)
    assert response.status_code == 500 and response.json() == {"detail": "the clip could not be converted: ValueError"}
    assert not list(clip.parent.glob("*.flac")) and not list(clip.parent.glob(".*tmp*"))
