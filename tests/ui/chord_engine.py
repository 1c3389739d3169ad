"""A tiny music engine for the reader's tests: the real pipeline (offline director, run folder,
soundtrack step) with a clip that is a looping chord whose root follows the caption, so a changed
caption gives a new clip and a new version, in a few milliseconds instead of a synthesiser's second."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from m2m.cues import Cue
from m2m.music.base import Audio, EngineInfo, Rendered, RenderOptions
from m2m.ui.adapter import PipelineAdapter

SAMPLE_RATE = 22050


class ChordEngine:
    """Implements m2m.music.base.Engine; pages are independent (no continuation)."""

    name = "chord"
    continues = False
    version = "1"

    def render(self, cue: Cue, options: RenderOptions) -> Rendered:
        rate = options.sample_rate or SAMPLE_RATE
        root = 110.0 * 2 ** ((int(hashlib.sha256(cue.caption.encode()).hexdigest(), 16) % 12) / 12)
        t = np.arange(int(options.seconds * rate)) / rate
        # Whole cycles of every partial over the clip, so the loop is seamless.
        freqs = [round(f * options.seconds) / options.seconds for f in (root, root * 1.25, root * 1.5)]
        mono = (sum(np.sin(2 * np.pi * f * t) for f in freqs) * 0.12).astype(np.float32)
        return Rendered(cue.page, Audio(np.stack([mono, mono]), rate), True, EngineInfo(engine=self.name))

    def render_many(self, cues: Sequence[Cue], options: RenderOptions, *,
                    after: Mapping[int, int | None] | None = None, previous: Mapping[int, Audio] | None = None,
                    on_rendered: Callable[[Rendered], None] | None = None) -> list[Rendered]:
        out = []
        for cue in cues:
            rendered = self.render(cue, options)
            if on_rendered is not None:
                on_rendered(rendered)
            out.append(rendered)
        return out


class GatedChordEngine(ChordEngine):
    """The chord engine, whose clip of each page in ``gates`` waits for that event: a page whose
    music is still being made when the reader reaches it (the clip is not in the reader's value yet)."""

    def __init__(self, gates: Mapping[int, threading.Event]) -> None:
        self.gates = gates

    def render(self, cue: Cue, options: RenderOptions) -> Rendered:
        gate = self.gates.get(cue.page)
        if gate is not None and not gate.wait(timeout=60):
            raise TimeoutError(f"page {cue.page}: the test never let its clip be made")
        return super().render(cue, options)


class StingerGatedChordEngine(GatedChordEngine):
    """The gated chord engine whose stingers (its own, made from the old scene's last page's cue)
    wait for ``stinger_gate``: a stinger made after the pages around it have landed."""

    def __init__(self, gates: Mapping[int, threading.Event], stinger_gate: threading.Event) -> None:
        super().__init__(gates)
        self.stinger_gate = stinger_gate

    def render_stinger(self, cue: Cue, seconds: float, options: RenderOptions) -> Rendered:
        if not self.stinger_gate.wait(timeout=60):
            raise TimeoutError("the test never let the stinger be made")
        return ChordEngine.render(self, cue, options)


def chord_service(engine: ChordEngine | None = None) -> PipelineAdapter:
    """The reader's real service (m2m.ui.adapter over m2m.pipeline) with the chord engine's clips."""
    return PipelineAdapter(engine=engine or ChordEngine())
