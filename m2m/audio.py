"""Audio files: ``[channels, samples]`` float32 arrays to and from OGG Vorbis, WAV, FLAC and MP3.

libsndfile (``soundfile``) reads and writes OGG, WAV and FLAC; MP3 is written through ``pydub`` over
ffmpeg. Writes go through a temporary file and a rename, so a crash never leaves half a file.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import soundfile

from m2m.music.base import Audio

# (format, subtype) that libsndfile writes for each suffix; MP3 goes through ffmpeg instead
_LIBSNDFILE_KINDS = {"ogg": ("OGG", "VORBIS"), "wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16")}


def write_audio_atomic(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write ``[channels, samples]`` audio as OGG Vorbis, WAV, FLAC or MP3 (by suffix) through a
    temporary file and a rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower().lstrip(".")
    tmp = path.with_name(f".{path.stem}.tmp.{suffix}")
    data = np.clip(samples, -1.0, 1.0).T
    try:
        if suffix in _LIBSNDFILE_KINDS:
            kind = _LIBSNDFILE_KINDS[suffix]
            with soundfile.SoundFile(tmp, "w", sample_rate, data.shape[1], format=kind[0], subtype=kind[1]) as f:
                write_blocks(f, data)
        elif suffix == "mp3":
            _write_mp3(tmp, data, sample_rate)
        else:
            raise ValueError(f"path: {path.name!r} has an unsupported suffix (use .ogg, .wav, .flac or .mp3)")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_blocks(file: soundfile.SoundFile, data: np.ndarray) -> None:
    """Write ``[samples, channels]`` to an open file block by block: libsndfile 1.2's Vorbis encoder
    crashes on one very long write."""
    for i in range(0, data.shape[0], 65536):
        file.write(data[i:i + 65536])


def _write_mp3(path: Path, data: np.ndarray, sample_rate: int) -> None:
    try:
        from pydub import AudioSegment
    except ImportError as e:
        raise RuntimeError("MP3 export needs pydub: `pip install pydub`") from e
    pcm = (data * 32767).astype("<i2")
    segment = AudioSegment(pcm.tobytes(), frame_rate=sample_rate, sample_width=2, channels=data.shape[1])
    try:
        segment.export(path, format="mp3", bitrate="192k")
    except (OSError, subprocess.SubprocessError) as e:
        raise RuntimeError(f"MP3 export failed ({e}); it needs ffmpeg: `apt-get install ffmpeg`") from e


def read_audio(path: Path) -> Audio:
    """An audio file as ``Audio`` (float32 ``[channels, samples]``)."""
    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (OSError, RuntimeError, soundfile.LibsndfileError) as e:
        raise ValueError(f"{path}: cannot read audio: {e}") from e
    return Audio(np.ascontiguousarray(data.T), int(rate))
