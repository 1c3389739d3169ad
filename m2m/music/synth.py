"""MIDI to audio through FluidSynth with a General MIDI SoundFont, and seamless loops.

Each render gets its own synth: a synth holds playing voices, so sharing one between readers would
mix their notes, and a reused synth does not return to a fresh state (``system_reset`` leaves voice
state behind and the next render differs), which would break reproducible clips. FluidSynth keeps
loaded SoundFont samples in a process-wide cache while any synth holds them; a ``SoundFontCache``
keeps one idle synth holding each font, so a fresh synth loads FluidR3 in about 0.06 s of CPU
instead of 0.2 s (reading and converting 142 MB of samples again). FluidSynth computes audio
outside the GIL, so renders in threads run in parallel.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi

# Best first: Debian's FluidR3 (fluid-soundfont-gm, 142 MB, the fullest free GM set), other common
# install places, then the 6 MB TimGM6mb that ships inside pretty_midi as the last resort.
SOUNDFONT_CANDIDATES: tuple[Path, ...] = (
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Path("/usr/share/soundfonts/FluidR3_GM.sf2"),
    Path("/usr/share/sounds/sf2/default-GM.sf2"),
    Path("/usr/share/soundfonts/default.sf2"),
    Path("/opt/homebrew/share/soundfonts/default.sf2"),
    Path(pretty_midi.__file__).parent / "TimGM6mb.sf2",
)
INSTALL_HINT = "install one with `apt-get install fluid-soundfont-gm` (Debian/Ubuntu; packages.txt on a Space)"
TAIL_SECONDS = 4.0  # release and reverb rendered past the loop end, then folded onto its start


class MissingSoundFontError(FileNotFoundError):
    """No General MIDI SoundFont is on this machine."""


@dataclass(frozen=True)
class SoundFont:
    path: Path
    fallback: bool  # True when only pretty_midi's small TimGM6mb was found

    @property
    def label(self) -> str:
        return f"{self.path.name} ({'small fallback shipped with pretty_midi' if self.fallback else self.path})"


def find_soundfont(explicit: Path | None = None,
                   candidates: Sequence[Path] = SOUNDFONT_CANDIDATES) -> SoundFont:
    """The SoundFont to use: ``explicit`` if given, else ``$M2M_SOUNDFONT``, else the best candidate."""
    if explicit is not None:
        if not Path(explicit).is_file():
            raise MissingSoundFontError(f"soundfont: {explicit} does not exist; {INSTALL_HINT}")
        return SoundFont(Path(explicit), fallback=False)
    env = os.environ.get("M2M_SOUNDFONT")
    if env:
        if not Path(env).is_file():
            raise MissingSoundFontError(f"M2M_SOUNDFONT: {env} does not exist; {INSTALL_HINT}")
        return SoundFont(Path(env), fallback=False)
    for path in candidates:
        if path.is_file():
            return SoundFont(path.resolve(), fallback=path.name == "TimGM6mb.sf2")
    tried = ", ".join(str(p) for p in candidates) or "(no candidates)"
    raise MissingSoundFontError(f"no General MIDI SoundFont found (looked at {tried}); {INSTALL_HINT}")


def _import_fluidsynth():
    try:
        import fluidsynth
    except (ImportError, OSError) as e:
        raise RuntimeError("FluidSynth is unavailable: `pip install pyfluidsynth` and "
                           "`apt-get install libfluidsynth3` (packages.txt on a Space)") from e
    return fluidsynth


def _new_synth(fluidsynth, soundfont: SoundFont, sample_rate: int, gain: float = 0.35):
    # 16 MIDI channels (pyfluidsynth's default of 256 makes every synth slower to make and free)
    synth = fluidsynth.Synth(gain=gain, samplerate=float(sample_rate), channels=16)
    sfid = synth.sfload(str(soundfont.path))
    if sfid < 0:
        synth.delete()
        raise MissingSoundFontError(f"soundfont: FluidSynth could not load {soundfont.path}; {INSTALL_HINT}")
    return synth, sfid


class SoundFontCache:
    """Keeps each SoundFont loaded in one idle synth, so FluidSynth's process-wide sample cache
    stays warm between renders (a fresh synth then skips reading and converting the samples).
    Holds the font's samples in memory (142 MB for FluidR3) until ``close()`` or collection.
    Thread-safe; holds no per-reader state (the idle synth never plays)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[Path, object] = {}

    def keep(self, soundfont: SoundFont) -> None:
        with self._lock:
            if soundfont.path not in self._held:
                self._held[soundfont.path] = _new_synth(_import_fluidsynth(), soundfont, 44100)[0]

    def close(self) -> None:
        with self._lock:
            held, self._held = self._held, {}
        for synth in held.values():
            synth.delete()

    def __del__(self) -> None:
        self.close()


def _write_float(fluidsynth):
    """``fluid_synth_write_float`` (pyfluidsynth wraps only the 16-bit, dithered output)."""
    prototype = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                                 ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int)
    try:
        return prototype(("fluid_synth_write_float", fluidsynth._fl))
    except (AttributeError, OSError) as e:
        raise RuntimeError("FluidSynth: this pyfluidsynth does not expose libfluidsynth "
                           "(`pip install -U pyfluidsynth`)") from e


def render_midi(midi: pretty_midi.PrettyMIDI, soundfont: SoundFont, sample_rate: int = 44100,
                seconds: float | None = None, tail_seconds: float = TAIL_SECONDS,
                gain: float = 0.35, cache: SoundFontCache | None = None) -> np.ndarray:
    """Synthesise ``midi`` to float32 stereo ``[2, samples]`` covering ``seconds`` plus the tail.

    Instruments go to their own channels (drums on channel 10) with their control changes, so the
    piece is mixed inside one synth with its reverb and chorus. FluidSynth renders in floating
    point (no clipping, no dither) and its output is linear in the gain, so a piece whose peak
    would pass -0.2 dBFS at ``gain`` is scaled down by 2 (or 4) rather than rendered again.
    ``cache`` keeps the SoundFont's samples loaded between renders.
    """
    length = seconds if seconds is not None else midi.get_end_time()
    total = int(round((length + tail_seconds) * sample_rate))
    # (sample, order, channel, number, value); order 0 = control change, 1 = note-off, 2 = note-on
    events: list[tuple[int, int, int, int, int]] = []
    setup: list[tuple[int, int, bool]] = []
    melodic = [c for c in range(16) if c != 9]
    for index, inst in enumerate(midi.instruments):
        if inst.is_drum:
            channel = 9
        else:
            if index >= len(melodic):
                raise ValueError(f"midi: {len(midi.instruments)} instruments, more than 15 melodic channels")
            channel = melodic[index]
        setup.append((channel, inst.program, inst.is_drum))
        for cc in inst.control_changes:
            events.append((int(cc.time * sample_rate), 0, channel, cc.number, cc.value))
        for note in inst.notes:
            start = int(round(note.start * sample_rate))
            end = max(start + 1, int(round(note.end * sample_rate)))
            # note-offs sort before note-ons at the same sample, so a repeated pitch re-sounds
            events.append((end, 1, channel, note.pitch, 0))
            events.append((start, 2, channel, note.pitch, note.velocity))
    events.sort()
    fluidsynth = _import_fluidsynth()
    if cache is not None:
        cache.keep(soundfont)
    item = _new_synth(fluidsynth, soundfont, sample_rate, gain)
    try:
        out = _run_synth(item, _write_float(fluidsynth), setup, events, total)
    finally:
        item[0].delete()
    peak = float(np.abs(out).max()) if out.size else 0.0
    for scale in (1.0, 0.5, 0.25):  # the same steps the 16-bit renderer took when it clipped
        if peak * scale < 32000 / 32768:
            break
    if scale != 1.0:
        out *= np.float32(scale)
    return out


def _run_synth(item, write_float, setup, events, total: int) -> np.ndarray:
    synth, sfid = item
    synth.set_reverb(roomsize=0.72, damping=0.35, width=0.9, level=0.8)
    synth.set_chorus(nr=3, level=1.2, speed=0.3, depth=6.0, type=0)
    for channel, program, is_drum in setup:
        synth.program_select(channel, sfid, 128 if is_drum else 0, 0 if is_drum else program)
    out = np.zeros((2, total), dtype=np.float32)
    left, right = out[0].ctypes.data, out[1].ctypes.data
    handle = synth.synth
    position = 0
    for sample, order, channel, number, value in events:
        sample = min(sample, total)
        if sample > position:
            write_float(handle, sample - position, left, position, 1, right, position, 1)
            position = sample
        if order == 2:
            synth.noteon(channel, number, value)
        elif order == 1:
            synth.noteoff(channel, number)
        else:
            synth.cc(channel, number, value)
    if total > position:
        write_float(handle, total - position, left, position, 1, right, position, 1)
    return out


def fold_loop(audio: np.ndarray, loop_samples: int) -> np.ndarray:
    """A seamless loop of ``loop_samples`` from a rendering that runs past the loop end.

    What sounds after the loop end (releases, reverb) is added back onto the start, as it would
    be when the loop repeats; the loop then equals one period of the endlessly repeated piece, so
    the seam is as smooth as any other moment. ``audio`` is ``[channels, samples]``.
    """
    if loop_samples <= 0 or loop_samples > audio.shape[1]:
        raise ValueError(f"loop_samples: {loop_samples} is outside 1..{audio.shape[1]}")
    out = audio[:, :loop_samples].copy()
    tail = audio[:, loop_samples:]
    for start in range(0, tail.shape[1], loop_samples):
        piece = tail[:, start:start + loop_samples]
        out[:, :piece.shape[1]] += piece
    return out


def seam_jump(audio: np.ndarray) -> tuple[float, float]:
    """(the sample jump across the loop seam, the 99.9th percentile of the clip's own sample-to-sample
    jumps), both in full-scale units, maximum over channels: a click shows as the first far above
    the second."""
    jump = float(np.abs(audio[:, 0] - audio[:, -1]).max())
    inner = float(np.percentile(np.abs(np.diff(audio, axis=1)).max(axis=0), 99.9))
    return jump, inner
