"""MIDI to audio through FluidSynth with a General MIDI SoundFont, and seamless loops.

Each render gets its own synth: a synth holds playing voices, so sharing one between readers would
mix their notes, and a reused synth does not return to a fresh state (``system_reset`` leaves voice
state behind and the next render differs), which would break reproducible clips. What a render
does not need afresh is the loaded SoundFont: a ``SoundFontCache`` keeps fonts loaded and lends one
to each render's new synth (``fluid_synth_add_sfont``), so no render loads FluidR3 (0.06 s of CPU
even with FluidSynth's sample cache warm, 0.2 s cold). FluidSynth computes audio outside the GIL,
so renders in threads run in parallel.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from m2m.midi import import_fluidsynth, pretty_midi
from m2m.music.base import DEFAULT_SAMPLE_RATE

log = logging.getLogger(__name__)

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


def _bare_synth(fluidsynth, sample_rate: int, gain: float = 0.35):
    """A synth with no SoundFont yet. 16 MIDI channels: pyfluidsynth's default of 256 makes every
    synth slower to make and free."""
    return fluidsynth.Synth(gain=gain, samplerate=float(sample_rate), channels=16)


def _new_synth(fluidsynth, soundfont: SoundFont, sample_rate: int, gain: float = 0.35):
    synth = _bare_synth(fluidsynth, sample_rate, gain)
    sfid = synth.sfload(str(soundfont.path))
    if sfid < 0:
        synth.delete()
        raise MissingSoundFontError(f"soundfont: FluidSynth could not load {soundfont.path}; {INSTALL_HINT}")
    return synth, sfid


@dataclass
class _LoadedFont:
    """A SoundFont loaded once into an idle synth that never plays; its font is lent to render synths."""

    holder: Any  # the fluidsynth.Synth that owns (and at the end frees) the font
    font: int  # fluid_sfont_t*
    path: Path


class SoundFontCache:
    """SoundFonts loaded once and lent to each render's fresh synth, so a render skips loading the
    font (about 0.06 s of CPU for FluidR3 even with FluidSynth's sample cache warm). A loaded font is
    lent to one render at a time (FluidSynth's fonts keep per-use counters that are not thread-safe),
    so there are as many loaded copies as renders at once; they share one copy of the samples
    (FluidSynth's process-wide sample cache, 142 MB for FluidR3), held until ``close()``.
    The render's synth is new each time, so a render sounds exactly as with its own loaded font."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # one load at a time: a second copy then reuses FluidSynth's sample cache instead of racing
        # the first through the file (two concurrent loads of FluidR3 take 0.43 s each, in turn 0.2 + 0.06)
        self._loading = threading.Lock()
        self._idle: dict[Path, list[_LoadedFont]] = {}
        self._all: list[_LoadedFont] = []

    def _take_idle(self, soundfont: SoundFont) -> _LoadedFont | None:
        with self._lock:
            idle = self._idle.setdefault(soundfont.path, [])
            return idle.pop() if idle else None

    def _give_back(self, soundfont: SoundFont, loaded: _LoadedFont) -> None:
        with self._lock:
            self._idle.setdefault(soundfont.path, []).append(loaded)

    def _load(self, soundfont: SoundFont) -> _LoadedFont:
        fluidsynth = import_fluidsynth()
        holder, sfid = _new_synth(fluidsynth, soundfont, DEFAULT_SAMPLE_RATE)  # never plays: any rate
        font = _api(fluidsynth).get_sfont_by_id(holder.synth, sfid)
        if not font:
            holder.delete()
            raise MissingSoundFontError(f"soundfont: FluidSynth lost {soundfont.path} after loading it")
        loaded = _LoadedFont(holder, font, soundfont.path)
        with self._lock:
            self._all.append(loaded)
        return loaded

    @contextmanager
    def lend(self, soundfont: SoundFont) -> Iterator[int]:
        """A loaded ``fluid_sfont_t*`` of ``soundfont``, for this render only."""
        loaded = self._take_idle(soundfont)
        if loaded is None:
            with self._loading:
                loaded = self._take_idle(soundfont) or self._load(soundfont)
        try:
            yield loaded.font
        finally:
            self._give_back(soundfont, loaded)

    def preload(self, soundfont: SoundFont, copies: int) -> None:
        """Have ``copies`` loaded copies of ``soundfont`` ready (as many as renders will run at once),
        so the first renders find them loaded; a render that comes while this runs takes a copy as
        soon as one is loaded."""
        for _ in range(copies):
            with self._loading:
                with self._lock:
                    if sum(1 for item in self._all if item.path == soundfont.path) >= copies:
                        return
                self._give_back(soundfont, self._load(soundfont))  # inside the lock: a waiting render finds it

    def close(self) -> None:
        """Free every loaded font (call when no render is running)."""
        with self._lock:
            loaded, self._all, self._idle = self._all, [], {}
        for item in loaded:
            item.holder.delete()

    def __del__(self) -> None:
        self.close()


@dataclass(frozen=True)
class _Api:
    """libfluidsynth calls pyfluidsynth does not wrap."""

    get_sfont_by_id: Any
    add_sfont: Any
    remove_sfont: Any
    write_float: Any


_LOG_FUNCTION = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_FLUID_ERR, _FLUID_WARN = 1, 2


@_LOG_FUNCTION
def _fluid_log(level: int, message: bytes | None, data: object) -> None:
    """FluidSynth's errors and warnings, through Python logging instead of straight to stderr.
    "No preset found" is expected each time a lent font leaves a render's synth (its channels
    look for presets that are gone), so it is logged at debug level."""
    text = (message or b"").decode("utf-8", "replace")
    if level == _FLUID_WARN and text.startswith("No preset found"):
        log.debug("fluidsynth: %s", text)
    else:
        log.log(logging.ERROR if level <= _FLUID_ERR else logging.WARNING, "fluidsynth: %s", text)


@lru_cache(maxsize=1)
def _api(fluidsynth) -> _Api:
    lib = fluidsynth._fl
    try:
        set_log = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_int, _LOG_FUNCTION, ctypes.c_void_p)(
            ("fluid_set_log_function", lib))
        for level in (_FLUID_ERR, _FLUID_WARN):
            set_log(level, _fluid_log, None)
        get = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int)(("fluid_synth_get_sfont_by_id", lib))
        add = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)(("fluid_synth_add_sfont", lib))
        remove = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)(("fluid_synth_remove_sfont", lib))
    except (AttributeError, OSError) as e:
        raise RuntimeError("FluidSynth: this pyfluidsynth does not expose libfluidsynth "
                           "(`pip install -U pyfluidsynth`)") from e
    return _Api(get, add, remove, _write_float(fluidsynth))


def _write_float(fluidsynth):
    """``fluid_synth_write_float`` (pyfluidsynth wraps only the 16-bit, dithered output)."""
    prototype = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                                 ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int)
    try:
        return prototype(("fluid_synth_write_float", fluidsynth._fl))
    except (AttributeError, OSError) as e:
        raise RuntimeError("FluidSynth: this pyfluidsynth does not expose libfluidsynth "
                           "(`pip install -U pyfluidsynth`)") from e


def render_midi(midi: pretty_midi.PrettyMIDI, soundfont: SoundFont, sample_rate: int = DEFAULT_SAMPLE_RATE,
                seconds: float | None = None, tail_seconds: float = TAIL_SECONDS,
                gain: float = 0.35, cache: SoundFontCache | None = None, headroom: bool = True) -> np.ndarray:
    """Synthesise ``midi`` to float32 stereo ``[2, samples]`` covering ``seconds`` plus the tail.

    Instruments go to their own channels (drums on channel 10) with their control changes, so the
    piece is mixed inside one synth with its reverb and chorus. FluidSynth renders in floating
    point (no clipping, no dither) and its output is linear in the gain, so a piece whose peak
    would pass -0.2 dBFS at ``gain`` is scaled down by 2 (or 4) rather than rendered again.
    ``cache`` keeps the SoundFont's samples loaded between renders. ``headroom`` False leaves that
    scaling to the caller (parts of a piece rendered apart and mixed: ``keep_headroom`` on the sum).
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
    fluidsynth = import_fluidsynth()
    api = _api(fluidsynth)
    if cache is None:
        item = _new_synth(fluidsynth, soundfont, sample_rate, gain)
        try:
            out = _run_synth(item, api.write_float, setup, events, total)
        finally:
            item[0].delete()
    else:
        with cache.lend(soundfont) as font:
            synth = _bare_synth(fluidsynth, sample_rate, gain)
            sfid = api.add_sfont(synth.synth, font)
            try:
                if sfid < 0:
                    raise MissingSoundFontError(f"soundfont: FluidSynth could not add {soundfont.path}")
                out = _run_synth((synth, sfid), api.write_float, setup, events, total)
            finally:
                if sfid >= 0:
                    api.remove_sfont(synth.synth, font)  # the font is the cache's: deleting the synth must not free it
                synth.delete()
    return keep_headroom(out) if headroom else out


def keep_headroom(out: np.ndarray) -> np.ndarray:
    """``out`` scaled by 1/2 or 1/4 when its peak would pass -0.2 dBFS (in place)."""
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
