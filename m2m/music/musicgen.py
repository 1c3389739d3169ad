"""MusicGen engines (``musicgen-small``/``-medium``/``-melody``/``-large``), run by ``transformers``
(``m2m.music.transformers_backend``) or audiocraft (``m2m.music.audiocraft_backend``).

Weights come from the Hugging Face cache (``local_files_only`` unless downloads are allowed). Each
model is loaded once per process per device and shared; everything a reader chooses comes with the
call. A page continues from the tail of the previous page of its scene: that tail is the audio
prompt (``processor(audio=tail, text=caption)``), and since the prompt counts toward MusicGen's
30-second window, a page longer than the window minus the prompt is generated in windows, each
prompted by the end of the last. ``musicgen-melody`` is conditioned on the previous page's melody
(chroma) instead of continuing it. Pages whose prompts are ready are generated together in one batch
(all pages at once when nothing continues). Clips are made loopable by crossfading a short overrun
onto their start.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from m2m.cues import Cue
from m2m.music.base import Audio, EngineInfo, Rendered, RenderOptions, resample, stable_seed
from m2m.music.musicgen_model import Loader, MusicGenModel, MusicGenOptions, default_device
from m2m.music.plans import MAX_CAPTION_CHARS
from m2m.music.transformers_backend import load_pretrained

MODEL_IDS: dict[str, str] = {
    "musicgen-small": "facebook/musicgen-small",
    "musicgen-medium": "facebook/musicgen-medium",
    "musicgen-melody": "facebook/musicgen-melody",
    "musicgen-large": "facebook/musicgen-large",
}
WINDOW_SECONDS = 30.0  # MusicGen was trained on 30-second excerpts; the prompt counts toward them
SEAM_SECONDS = 1.0  # generated past the clip's end and crossfaded onto its start to loop it
BACKENDS = ("transformers", "audiocraft")


def _audiocraft_loader() -> Loader:
    from m2m.music.audiocraft_backend import load_audiocraft

    return load_audiocraft


def _seam_loop(audio: np.ndarray, loop_samples: int) -> np.ndarray:
    """A loop of ``loop_samples`` from audio that runs on past it: the overrun is crossfaded (equal
    power) onto the start, so the end flows into the start without a click."""
    overrun = audio.shape[1] - loop_samples
    out = audio[:, :loop_samples].copy()
    if overrun <= 0:
        return out
    t = (np.arange(overrun) + 0.5) / overrun
    out[:, :overrun] = out[:, :overrun] * np.sin(0.5 * np.pi * t) + audio[:, loop_samples:] * np.cos(0.5 * np.pi * t)
    return out


@dataclass
class _Page:
    """Working state of one page while its windows are generated (private to one call)."""

    cue: Cue
    target: int  # samples to generate (clip plus seam)
    audio: np.ndarray  # [channels, samples] so far
    prompt: np.ndarray | None  # mono audio the next window continues from


class MusicGenEngine:
    """A MusicGen engine run by ``backend`` (transformers, or audiocraft when it is installed).
    ``loader`` replaces how the model is found (tests build a tiny one)."""

    continues = True
    options_type = MusicGenOptions

    def __init__(self, name: str, loader: Loader | None = None, model_id: str | None = None,
                 window_seconds: float = WINDOW_SECONDS, backend: str = "transformers") -> None:
        if name not in MODEL_IDS and model_id is None:
            raise ValueError(f"engine: {name!r} is not one of {', '.join(MODEL_IDS)}")
        if backend not in BACKENDS:
            raise ValueError(f"backend: {backend!r} is not one of {', '.join(BACKENDS)}")
        self.name = name
        self.model_id = model_id or MODEL_IDS[name]
        self.backend = backend
        self.loader = loader or (load_pretrained if backend == "transformers" else _audiocraft_loader())
        self.window_seconds = window_seconds
        self.version = f"musicgen-1/{backend}"  # clips made by another backend are not reused

    def load(self, options: RenderOptions) -> MusicGenModel:
        own = options.options_for(MusicGenOptions)
        return self.loader(self.model_id, own.device or default_device(), own.allow_download)

    def render(self, cue: Cue, options: RenderOptions) -> Rendered:
        previous = {cue.page - 1: options.previous} if options.previous is not None else {}
        after = {cue.page: cue.page - 1 if options.previous is not None else None}
        return self.render_many([cue], options, after=after, previous=previous)[0]

    def render_many(self, cues: Sequence[Cue], options: RenderOptions, *,
                    after: Mapping[int, int | None] | None = None, previous: Mapping[int, Audio] | None = None,
                    on_rendered: Callable[[Rendered], None] | None = None) -> list[Rendered]:
        for cue in cues:
            if not cue.caption.strip():
                raise ValueError(f"caption: page {cue.page} has an empty caption; MusicGen needs text")
            if len(cue.caption) > MAX_CAPTION_CHARS:
                raise ValueError(f"caption: page {cue.page} has {len(cue.caption)} characters, "
                                 f"more than the {MAX_CAPTION_CHARS} allowed")
        if not cues:
            return []
        loaded = self.load(options)
        rate, frame_rate = loaded.sample_rate, loaded.frame_rate
        window = min(self.window_seconds, loaded.max_seconds)
        own = options.options_for(MusicGenOptions)
        prompt_seconds = min(own.prompt_seconds, window / 2)
        after = dict(after or {})
        previous = dict(previous or {})
        clip_samples = int(round(options.seconds * rate))
        seam = int(round(min(SEAM_SECONDS, options.seconds / 4) * rate))
        pages = {c.page: _Page(c, clip_samples + seam, np.zeros((0, 0), np.float32), None) for c in cues}
        finished: dict[int, Rendered] = {}
        order = [c.page for c in cues]

        def tail_of(audio: Audio) -> np.ndarray:
            mono = resample(audio.samples.mean(axis=0), audio.sample_rate, rate)
            keep = len(mono) if loaded.melody else int(prompt_seconds * rate)
            return mono[-keep:].astype(np.float32)

        # plan the decoding steps up front so progress has a total
        def windows_for(prompted: bool) -> list[int]:
            remaining, first, out = clip_samples + seam, prompted, []
            while remaining > 0:
                room = window - (prompt_seconds if first and not loaded.melody else 0.0)
                seconds = min(remaining / rate, room)
                out.append(int(np.ceil(seconds * frame_rate)) + loaded.num_codebooks - 1)
                remaining -= int(seconds * rate)
                first = True  # windows after the first continue from the page so far
            return out

        total_steps = sum(sum(windows_for(after.get(p) is not None)) for p in pages)
        steps = [0]

        def on_step(pages_in_batch: int) -> None:
            steps[0] += pages_in_batch  # one batched step advances every page in the batch
            if options.progress is not None:
                options.progress(min(steps[0], total_steps), total_steps)

        while len(finished) < len(pages):
            ready: list[_Page] = []
            for page_no in order:
                page = pages[page_no]
                if page_no in finished:
                    continue
                if page.audio.size == 0:  # not started: is what it continues from there?
                    source = after.get(page_no)
                    if source is not None:
                        if source in finished:
                            page.prompt = tail_of(finished[source].audio)
                        elif source in previous:
                            page.prompt = tail_of(previous[source])
                        elif source in pages:
                            continue  # its predecessor is still being generated
                        else:
                            raise ValueError(f"previous: page {page_no} continues from page {source}, "
                                             "whose audio was not given")
                ready.append(page)
            if not ready:
                raise ValueError("after: pages continue from each other in a cycle")
            prompted = [p for p in ready if p.prompt is not None]
            fresh = [p for p in ready if p.prompt is None]
            for group in (fresh, prompted):
                for start in range(0, len(group), own.batch_size):
                    self._window(loaded, group[start:start + own.batch_size], options, window,
                                 prompt_seconds, on_step)
            for page in ready:
                if page.audio.shape[1] >= page.target:
                    audio = _seam_loop(page.audio[:, :page.target], clip_samples)
                    source = after.get(page.cue.page)
                    info = EngineInfo(engine=self.name, model=f"{loaded.model_id} via {loaded.backend} ({loaded.device})",
                                      details={"prompt_seconds": prompt_seconds if source is not None and not loaded.melody else 0.0,
                                               "continues_from": source,
                                               "conditioning": "text" if source is None else
                                               "text + melody (chroma) of the previous page" if loaded.melody
                                               else "text + the previous page's tail",
                                               "sample_rate": rate})
                    finished[page.cue.page] = Rendered(page.cue.page, Audio(audio, rate), True, info)
                    if on_rendered is not None:
                        on_rendered(finished[page.cue.page])
        return [finished[p] for p in order]

    def _window(self, loaded: MusicGenModel, group: list[_Page], options: RenderOptions, window: float,
                prompt_seconds: float, on_step: Callable[[int], None]) -> None:
        """Generate the next window of every page in ``group`` (pages whose prompts are alike)."""
        if not group:
            return
        rate, frame_rate = loaded.sample_rate, loaded.frame_rate
        prompted = group[0].prompt is not None
        room = window - (prompt_seconds if prompted and not loaded.melody else 0.0)
        remaining = max(p.target - p.audio.shape[1] for p in group)
        seconds = min(remaining / rate, room)
        # the delay pattern costs num_codebooks - 1 steps before the last codebook's frame lands
        new_tokens = int(np.ceil(seconds * frame_rate)) + loaded.num_codebooks - 1
        seed = stable_seed(options.seed, "musicgen", [p.cue.page for p in group], group[0].audio.shape[1])
        prompts = None
        if prompted:
            length = min(len(p.prompt) for p in group)
            prompts = [p.prompt[-length:] for p in group]
        outputs = loaded.generate([p.cue.caption for p in group], prompts, new_tokens,
                            options.options_for(MusicGenOptions).guidance_scale, seed % (2**31), lambda: on_step(len(group)))
        for page, audio in zip(group, outputs, strict=True):
            page.audio = audio if page.audio.size == 0 else np.concatenate([page.audio, audio], axis=1)
            if not loaded.melody:
                page.prompt = page.audio.mean(axis=0)[-int(prompt_seconds * rate):]
