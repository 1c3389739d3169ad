"""The ``open_clip`` backends: ``clip-finetuned`` (image encoder + classification head) and ``clip-zeroshot``.

The models are built in ``clip_model`` (specs, preprocessing, weights found offline) and a fine-tuned
one is read from its checkpoint in ``clip_checkpoint``; this module predicts with them. Models are
loaded once per process (``functools.lru_cache``) and shared; a backend object holds no per-request state.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from m2m.book import Book

# The names this module had before the models and checkpoints moved out, so importers need not change.
from m2m.emotion_backends.clip_checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    LoadedClassifier,
    read_checkpoint,
    save_checkpoint,
)
from m2m.emotion_backends.clip_model import (
    DEFAULT_MODEL,
    DEFAULT_PRETRAINED,
    OPENAI_MEAN,
    OPENAI_STD,
    ClipSpec,
    EmotionClassifier,
    Preprocess,
    build_clip,
    hub_file,
    new_classifier,
    parse_model_config,
    pick_device,
    resolve_spec,
)
from m2m.emotion_backends.crops import predict_from_crops, to_rgb
from m2m.emotions import DATA_DIR, EMOTIONS, BackendResult, EmotionOptions
from m2m.scenes import ScenePlan

PROMPTS_FILE = DATA_DIR / "zeroshot_prompts.json"

__all__ = [
    "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "DEFAULT_MODEL", "DEFAULT_PRETRAINED", "OPENAI_MEAN", "OPENAI_STD",
    "PROMPTS_FILE", "ClipSpec", "EmotionClassifier", "FinetunedClipBackend", "LoadedClassifier", "Preprocess",
    "ZeroShotClipBackend", "ZeroShotModel", "build_clip", "new_classifier", "parse_model_config", "pick_device",
    "read_checkpoint", "read_prompts", "resolve_spec", "save_checkpoint",
]


@lru_cache(maxsize=4)
def _cached_checkpoint(path: str, mtime_ns: int, device: str) -> LoadedClassifier:
    """One loaded copy per (file version, device), shared by every request; mtime invalidates retrained files."""
    loaded = read_checkpoint(path)
    loaded.model.to(device)
    return loaded


def _predict(model: nn.Module, preprocess: Preprocess, images: Sequence[Image.Image], device: str,
             forward) -> np.ndarray:
    transform = preprocess.transform()
    batch = torch.stack([transform(to_rgb(im)) for im in images]).to(device)
    with torch.inference_mode():
        logits = forward(batch)
    return torch.softmax(logits.float(), dim=-1).cpu().numpy()


class FinetunedClipBackend:
    """``clip-finetuned``: a checkpoint from ``m2m emotions train`` (a local path or a Hugging Face repo id)."""

    name = "clip-finetuned"

    def __init__(self, checkpoint: str | None = None, filename: str = "emotion-clip.pt", model: str | None = None,
                 allow_download: bool = False, device: str | None = None, cache_dir: str | None = None) -> None:
        if not checkpoint:
            raise ValueError("checkpoint: the clip-finetuned backend needs a checkpoint (--emotions-checkpoint) "
                             "(a file from `m2m emotions train`, or a Hugging Face repo id)")
        path = Path(checkpoint)
        if not path.is_file():
            if path.exists() or "/" not in checkpoint or checkpoint.startswith((".", "/")):
                raise ValueError(f"checkpoint: {checkpoint} is not a file (nor a Hugging Face repo id like org/name)")
            found = hub_file(checkpoint, filename, allow_download, cache_dir)
            if found is None:
                raise ValueError(f"checkpoint: {filename} from the Hugging Face repo {checkpoint} is not in the "
                                 f"local cache; fetch it with `huggingface-cli download {checkpoint} {filename}` "
                                 "or allow downloads")
            path = Path(found)
        self._device = pick_device(device)
        self._path = str(path.resolve())
        self._loaded = _cached_checkpoint(self._path, path.stat().st_mtime_ns, self._device)
        if model and self._loaded.spec.name != model:
            raise ValueError(f"checkpoint {path}: trained on model {self._loaded.spec.name!r}, but {model!r} was asked for")
        self._source = checkpoint

    @property
    def preprocess(self) -> Preprocess:
        return self._loaded.preprocess

    def settings(self) -> dict[str, Any]:
        return {"checkpoint": self._source, "model": self._loaded.spec.name, "pretrained": self._loaded.spec.pretrained,
                "device": self._device, "checkpoint_sha256": _file_sha(self._path)}

    def classify(self, images: Sequence[Image.Image]) -> np.ndarray:
        """RGB crops -> probabilities [len(images), 7], columns in EMOTIONS order."""
        loaded = self._loaded
        probs = _predict(loaded.model, loaded.preprocess, images, self._device, loaded.model)
        order = [loaded.classes.index(e) for e in EMOTIONS]  # a checkpoint may list the classes in another order
        return probs[:, order]

    def predict(self, book: Book, scenes: ScenePlan, options: EmotionOptions) -> BackendResult:
        return predict_from_crops(book, self.classify, self.name, _with_model_defaults(options, self.preprocess))


def _with_model_defaults(options: EmotionOptions, preprocess: Preprocess) -> EmotionOptions:
    return replace(options, padding=preprocess.padding if options.padding is None else options.padding,
                   crop_size=preprocess.size if options.crop_size is None else options.crop_size)


@lru_cache(maxsize=16)
def _file_sha(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Zero-shot


@dataclass(frozen=True)
class ZeroShotModel:
    clip: nn.Module
    preprocess: Preprocess
    class_features: torch.Tensor  # [7, embed_dim], L2-normalised, rows in EMOTIONS order


def read_prompts(path: str | Path = PROMPTS_FILE) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """Templates (each with one "{}") and phrases per class from a prompt file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable prompt file: {e}") from e
    templates = tuple(data.get("templates", ()))
    if not templates or any(t.count("{}") != 1 for t in templates):
        raise ValueError(f"{path}: templates: need at least one, each with exactly one '{{}}'")
    classes = data.get("classes", {})
    missing = [e for e in EMOTIONS if not classes.get(e)]
    if missing:
        raise ValueError(f"{path}: classes: no phrases for {missing}")
    return templates, {e: tuple(classes[e]) for e in EMOTIONS}


def _tokenizer(spec: ClipSpec):
    import open_clip

    context = int(spec.config.get("text_cfg", {}).get("context_length", 77))  # type: ignore[union-attr]
    if "hf_tokenizer_name" in spec.config.get("text_cfg", {}):  # type: ignore[union-attr]
        return open_clip.get_tokenizer(spec.name, context_length=context)
    # The BPE vocabulary ships inside open_clip, so this works offline.
    return open_clip.SimpleTokenizer(context_length=context)


@lru_cache(maxsize=2)
def _cached_zeroshot(spec_key: str, weights: str | None, preprocess: Preprocess, prompts: str,
                     device: str) -> ZeroShotModel:
    spec = ClipSpec(**json.loads(spec_key))
    clip = build_clip(spec, weights).to(device)
    templates, phrases = read_prompts(prompts)
    tokenizer = _tokenizer(spec)
    rows = []
    with torch.inference_mode():
        for emotion in EMOTIONS:
            texts = [t.format(p) for t in templates for p in phrases[emotion]]
            features = clip.encode_text(tokenizer(texts).to(device), normalize=True)
            rows.append(torch.nn.functional.normalize(features.mean(dim=0), dim=-1))
    return ZeroShotModel(clip, preprocess, torch.stack(rows))


class ZeroShotClipBackend:
    """``clip-zeroshot``: cosine similarity between the crop and each class's prompt ensemble."""

    name = "clip-zeroshot"

    def __init__(self, model: str = DEFAULT_MODEL, pretrained: str | None = DEFAULT_PRETRAINED,
                 model_config: str | dict | None = None, prompts: str | None = None,
                 allow_download: bool = False, device: str | None = None, cache_dir: str | None = None) -> None:
        spec, weights, preprocess = resolve_spec(model, pretrained, model_config, allow_download, cache_dir)
        self._spec = spec
        self._device = pick_device(device)
        self._prompts = str(prompts or PROMPTS_FILE)
        self._model = _cached_zeroshot(spec.key(), weights, preprocess, self._prompts, self._device)

    @property
    def preprocess(self) -> Preprocess:
        return self._model.preprocess

    def settings(self) -> dict[str, Any]:
        return {"model": self._spec.name, "pretrained": self._spec.pretrained or "none (random init)",
                "prompt_file": self._prompts, "prompt_sha256": _file_sha(self._prompts), "device": self._device}

    def classify(self, images: Sequence[Image.Image]) -> np.ndarray:
        """RGB crops -> probabilities [len(images), 7], columns in EMOTIONS order."""
        zs = self._model

        def forward(batch: torch.Tensor) -> torch.Tensor:
            features = zs.clip.encode_image(batch, normalize=True)
            return zs.clip.logit_scale.exp() * features @ zs.class_features.T

        return _predict(zs.clip, zs.preprocess, images, self._device, forward)

    def predict(self, book: Book, scenes: ScenePlan, options: EmotionOptions) -> BackendResult:
        result = predict_from_crops(book, self.classify, self.name, _with_model_defaults(options, self.preprocess))
        if not self._spec.pretrained:
            result = replace(result, warnings=(*result.warnings, "clip-zeroshot ran with random weights: "
                                                                 "its predictions are noise"))
        return result
