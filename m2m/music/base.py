"""What every music engine shares: the clip it produces, the options it takes, the audio it returns."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from m2m.cues import Cue

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "music"

# The soundtrack's rate unless a reader or command asks for another: MusicGen's own 32 kHz, so the
# paper's engine is never upsampled, and the composer synthesises at it directly. Against 44.1 kHz it
# drops only what lies above 16 kHz (cymbal air, about -30 dB of a drum page's energy; nothing on the
# others) and costs about a quarter less to synthesise, measure and encode.
DEFAULT_SAMPLE_RATE = 32000
# the rates the soundtrack can be made at (each is a rate browsers and Vorbis play everywhere)
SAMPLE_RATES = (22050, 32000, 44100, 48000)


def check_sample_rate(rate: int) -> None:
    if rate not in SAMPLE_RATES:
        raise ValueError(f"sample_rate: {rate} is not one of {', '.join(map(str, SAMPLE_RATES))} Hz")

# progress(step, total) for one engine call; steps are engine-defined (pages, decoding steps).
StepProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class Clip:
    """One page's music on disk.

    ``path`` is the audio file (relative to the run folder inside a soundtrack); ``seconds`` its
    length; ``sample_rate`` in Hz; ``loop`` says the clip repeats without a seam (whole bars, no click).
    """

    page: int
    path: str
    seconds: float
    sample_rate: int
    loop: bool


@dataclass(frozen=True)
class EngineInfo:
    """What produced a clip, for the run file: the engine, its model or SoundFont, and anything odd."""

    engine: str
    model: str = ""
    soundfont: str = ""
    warnings: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Audio:
    """Audio in memory: ``samples`` float32 ``[channels, samples]`` in -1..1, ``sample_rate`` in Hz."""

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        if self.samples.ndim != 2:
            raise ValueError(f"samples: expected [channels, samples], got shape {self.samples.shape}")
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate: {self.sample_rate} must be positive")

    @property
    def seconds(self) -> float:
        return self.samples.shape[1] / self.sample_rate


class EngineOptions(Protocol):
    """One engine's own options (``ComposerOptions``, ``MusicGenOptions``, ``LibraryOptions``: each
    beside its engine, a frozen dataclass)."""

    def settings(self) -> dict[str, Any]:
        """Those of its options that change the music, as JSON (for clip hashes and run files)."""
        ...


Own = TypeVar("Own")

# The engine-specific keys clip hashes carried, with the values they had by default, from before
# each engine had options of its own: an engine's options fill in theirs, so every clip made before
# keeps its hash and is not rendered again.
_EARLIER_ENGINE_KEYS: dict[str, Any] = {"soundfont": None, "library_dir": None, "prompt_seconds": 3.0,
                                        "guidance_scale": 3.0}


@dataclass(frozen=True)
class RenderOptions:
    """Per-call options for an engine (never stored on a shared model: many readers share one).

    seconds: the wanted clip length (the composer rounds it to whole bars); seed: the book's seed,
    from which each scene's motif and each page's variations are drawn; previous: the audio the page
    continues from (MusicGen's audio prompt), if any; progress: ``(step, total)`` per engine step.
    ``sample_rate`` is the rate the soundtrack is made at: an engine that can synthesise at any rate
    (the composer) renders at it, so nothing is resampled; one with a fixed rate (MusicGen) returns
    its own, and the soundtrack resamples. None: the engine's default. ``engine_options`` are the
    options of the engine this call is for (None: its defaults); an engine reads them with
    :meth:`options_for`.
    """

    seconds: float = 24.0
    seed: int = 0
    previous: Audio | None = field(default=None, compare=False, repr=False)
    progress: StepProgress | None = field(default=None, compare=False, repr=False)
    sample_rate: int | None = None
    engine_options: EngineOptions | None = None

    def __post_init__(self) -> None:
        if not 1.0 <= self.seconds <= 600.0:
            raise ValueError(f"seconds: {self.seconds} is outside 1..600 s")
        if self.sample_rate is not None:
            check_sample_rate(self.sample_rate)

    def options_for(self, kind: type[Own]) -> Own:
        """The engine options of type ``kind`` this call carries, or ``kind``'s defaults when it
        carries none; another engine's options are a caller's mistake, said as such."""
        if self.engine_options is None:
            return kind()
        if not isinstance(self.engine_options, kind):
            raise ValueError(f"engine options: {type(self.engine_options).__name__} given to an engine that "
                             f"takes {kind.__name__}")
        return self.engine_options

    def settings(self) -> dict[str, Any]:
        """The options that change the music, as JSON (for hashes and run files)."""
        own = self.engine_options.settings() if self.engine_options is not None else {}
        return {"seconds": self.seconds, "seed": self.seed, **_EARLIER_ENGINE_KEYS, **own,
                "sample_rate": self.sample_rate}


@dataclass(frozen=True, eq=False)
class Rendered:
    """An engine's answer for one page: the audio, whether it loops, and what made it.

    ``midi`` is the score (a ``pretty_midi.PrettyMIDI``) when the engine composed symbolically.
    """

    page: int
    audio: Audio
    loop: bool
    info: EngineInfo
    midi: Any = None


class Engine(Protocol):
    """A music engine. ``continues``: pages can continue from the previous page's audio."""

    name: str
    continues: bool

    def render(self, cue: Cue, options: RenderOptions) -> Rendered: ...

    def render_many(
        self,
        cues: Sequence[Cue],
        options: RenderOptions,
        *,
        after: Mapping[int, int | None] | None = None,
        previous: Mapping[int, Audio] | None = None,
        on_rendered: Callable[[Rendered], None] | None = None,
    ) -> list[Rendered]:
        """Render several pages, in the given order where the engine allows.

        ``after[page]`` names the page this page continues from (None: a fresh start); ``previous``
        holds the audio of such pages when they are not among ``cues`` (rendered earlier).
        ``on_rendered`` is called as each page is done, so a caller can write it at once.
        """
        ...


@cache
def load_table(name: str) -> dict[str, Any]:
    """A JSON data table from ``m2m/data/music/`` (read once per process; callers must not mutate it)."""
    path = DATA_DIR / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read the music data table: {e}") from e


def stable_seed(*parts: Any) -> int:
    """A 63-bit seed from any JSON-able parts, the same in every process (unlike ``hash()``)."""
    import hashlib

    text = json.dumps(parts, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``samples`` (time on the last axis) from ``rate`` to ``target`` Hz as float32, by polyphase
    filtering (scipy's ``resample_poly``, whose anti-aliasing filter is built in)."""
    if rate == target:
        return np.asarray(samples, dtype=np.float32)
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(rate, target)
    return resample_poly(samples, target // g, rate // g, axis=-1).astype(np.float32)
