"""MusicGen engines (``musicgen-small``/``-medium``/``-melody``/``-large``) through ``transformers``.

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

import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from m2m.cues import Cue
from m2m.music.base import Audio, EngineInfo, Rendered, RenderOptions, resample, stable_seed
from m2m.music.melody import ChromaSettings, MelodyProcessor
from m2m.music.plans import MAX_CAPTION_CHARS

MODEL_IDS: dict[str, str] = {
    "musicgen-small": "facebook/musicgen-small",
    "musicgen-medium": "facebook/musicgen-medium",
    "musicgen-melody": "facebook/musicgen-melody",
    "musicgen-large": "facebook/musicgen-large",
}
WINDOW_SECONDS = 30.0  # MusicGen was trained on 30-second excerpts; the prompt counts toward them
SEAM_SECONDS = 1.0  # generated past the clip's end and crossfaded onto its start to loop it


class ModelMissingError(FileNotFoundError):
    """MusicGen weights are not in the Hugging Face cache and downloads were not allowed."""


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model and its processor on a device. ``melody``: a MusicGen-Melody (chroma-conditioned)."""

    model: Any
    processor: Any
    model_id: str
    device: str
    melody: bool = False

    @property
    def sample_rate(self) -> int:
        return int(self.model.config.audio_encoder.sampling_rate)

    @property
    def frame_rate(self) -> float:
        config = self.model.config.audio_encoder
        hop = int(np.prod(config.upsampling_ratios))
        return config.sampling_rate / hop

    @property
    def num_codebooks(self) -> int:
        return int(self.model.decoder.num_codebooks)

    @property
    def max_seconds(self) -> float:
        """The longest window the decoder's positions allow (prompt included), one second spare."""
        return self.model.config.decoder.max_position_embeddings / self.frame_rate - 1

    @property
    def backend(self) -> str:
        return "transformers"

    def generate(self, texts: list[str], prompts: list[np.ndarray] | None, new_tokens: int,
                 guidance_scale: float, seed: int, on_step: Callable[[], None]) -> list[np.ndarray]:
        return _generate(self, texts, prompts, new_tokens, guidance_scale, seed, on_step)


class MusicGenModel(Protocol):
    """What the engine needs of a loaded MusicGen, whichever library runs it (transformers here,
    audiocraft in ``m2m.music.audiocraft_backend``)."""

    model_id: str
    device: str
    melody: bool

    @property
    def sample_rate(self) -> int: ...

    @property
    def frame_rate(self) -> float: ...

    @property
    def num_codebooks(self) -> int: ...

    @property
    def max_seconds(self) -> float: ...

    @property
    def backend(self) -> str: ...

    def generate(self, texts: list[str], prompts: list[np.ndarray] | None, new_tokens: int,
                 guidance_scale: float, seed: int, on_step: Callable[[], None]) -> list[np.ndarray]:
        """Per text, float32 ``[channels, samples]`` of new audio (a continuation's prompt stripped).
        ``prompts``: mono float32 arrays of equal length at ``sample_rate``, the audio each text
        continues (or, for a melody model, the melody it follows). ``new_tokens`` counts decoding
        steps including the delay pattern's ``num_codebooks - 1``; ``on_step`` is called per step."""
        ...


Loader = Callable[[str, str, bool], MusicGenModel]  # (model id, device, allow download) -> model
BACKENDS = ("transformers", "audiocraft")


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@lru_cache(maxsize=2)
def load_pretrained(model_id: str, device: str, allow_download: bool = False) -> LoadedModel:
    """A MusicGen from the Hugging Face cache, fp16 on GPU; loaded once per (model, device)."""
    import torch
    from transformers import (
        AutoProcessor,
        MusicgenForConditionalGeneration,
        MusicgenMelodyForConditionalGeneration,
    )

    melody = "melody" in model_id
    cls = MusicgenMelodyForConditionalGeneration if melody else MusicgenForConditionalGeneration
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    try:
        processor = _melody_processor(model_id, allow_download) if melody else \
            AutoProcessor.from_pretrained(model_id, local_files_only=not allow_download)
        model = cls.from_pretrained(model_id, local_files_only=not allow_download, dtype=dtype)
    except OSError as e:
        raise ModelMissingError(
            f"engine: {model_id} is not in the Hugging Face cache; fetch it with "
            f"`huggingface-cli download {model_id}` (or allow downloads: --allow-download)") from e
    return LoadedModel(model.to(device).eval(), processor, model_id, device, melody)


def _melody_processor(model_id: str, allow_download: bool) -> MelodyProcessor:
    """The melody checkpoint's tokenizer and chroma settings, with chroma computed here
    (``m2m.music.melody``): transformers' own feature extractor needs torchaudio."""
    from huggingface_hub import hf_hub_download
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_id, local_files_only=not allow_download)
    if Path(model_id).is_dir():  # a saved checkpoint, as from_pretrained accepts
        config = Path(model_id) / "preprocessor_config.json"
    else:
        config = Path(hf_hub_download(model_id, "preprocessor_config.json", local_files_only=not allow_download))
    return MelodyProcessor(tokenizer, ChromaSettings.from_config(config))


def _audiocraft_loader() -> Loader:
    from m2m.music.audiocraft_backend import load_audiocraft

    return load_audiocraft


def gpu_function(fn):
    """``spaces.GPU`` on a ZeroGPU Space (a GPU is attached only while ``fn`` runs); else ``fn``."""
    if os.environ.get("SPACES_ZERO_GPU") and importlib.util.find_spec("spaces") is not None:
        import spaces

        return spaces.GPU(duration=120)(fn)
    return fn


class _StepCounter:
    """A logits processor that reports each decoding step and changes nothing."""

    def __init__(self, report: Callable[[], None]) -> None:
        self.report = report

    def __call__(self, input_ids, scores):
        self.report()
        return scores


def _generate_impl(loaded: LoadedModel, texts: list[str], prompts: list[np.ndarray] | None, new_tokens: int,
                   guidance_scale: float, seed: int, on_step: Callable[[], None]) -> list[np.ndarray]:
    """One batched ``generate``: per text, float32 ``[channels, samples]`` at the model's rate, the
    audio prompt (if any) stripped off. ``prompts`` are mono float32 arrays of equal length."""
    import torch
    from transformers import LogitsProcessorList

    kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
    if prompts is not None:
        kwargs.update(audio=[p.astype(np.float32) for p in prompts], sampling_rate=loaded.sample_rate)
    inputs = loaded.processor(**kwargs)
    model_dtype = next(loaded.model.parameters()).dtype
    inputs = {k: (v.to(loaded.device, dtype=model_dtype) if v.is_floating_point() else v.to(loaded.device))
              for k, v in inputs.items()}
    with torch.random.fork_rng(devices=[] if loaded.device == "cpu" else None), torch.inference_mode():
        torch.manual_seed(seed)  # inside fork_rng: the process-wide generator is left as it was
        out = loaded.model.generate(
            **inputs, do_sample=True, guidance_scale=guidance_scale, max_new_tokens=new_tokens,
            logits_processor=LogitsProcessorList([_StepCounter(on_step)]))
    audio = out.float().cpu().numpy()  # [batch, channels, samples]
    if prompts is not None and not loaded.melody:
        hop = int(round(loaded.sample_rate / loaded.frame_rate))
        prompt_frames = int(np.ceil(len(prompts[0]) / hop))
        audio = audio[:, :, prompt_frames * hop:]
    return [a for a in audio]


_generate = gpu_function(_generate_impl)


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
        return self.loader(self.model_id, options.device or default_device(), options.allow_download)

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
        prompt_seconds = min(options.prompt_seconds, window / 2)
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
                for start in range(0, len(group), options.batch_size):
                    self._window(loaded, group[start:start + options.batch_size], options, window,
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
                            options.guidance_scale, seed % (2**31), lambda: on_step(len(group)))
        for page, audio in zip(group, outputs, strict=True):
            page.audio = audio if page.audio.size == 0 else np.concatenate([page.audio, audio], axis=1)
            if not loaded.melody:
                page.prompt = page.audio.mean(axis=0)[-int(prompt_seconds * rate):]
