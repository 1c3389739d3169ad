"""A fine-tuned emotion classifier on disk: ``save_checkpoint`` and the checking ``read_checkpoint``.

A checkpoint records the model spec and preprocessing beside the weights, so a backend rebuilds
exactly the model that was trained; reading it checks every field and says what does not match
rather than failing deep in torch.

Checkpoint format (``torch.save`` of a plain dict, loadable with ``weights_only=True``)::

    {"format": "m2m-emotion-clip", "version": 1,
     "classes": [...7 names...],
     "model": {"name": "ViT-B-32", "config": {...open_clip model config...} | None,
               "pretrained": "openai", "quick_gelu": true},
     "preprocess": {"size": 224, "mean": [...], "std": [...], "interpolation": "bicubic",
                    "resize_mode": "shortest", "padding": 0.0},
     "state_dict": {...EmotionClassifier weights: visual.* and head.*...},
     "training": {...options, best epoch, validation metrics...}}
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from m2m.emotion_backends.clip_model import (
    ClipSpec,
    EmotionClassifier,
    Preprocess,
    image_size,
    new_classifier,
)
from m2m.emotions import EMOTIONS, parse_label

CHECKPOINT_FORMAT = "m2m-emotion-clip"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class LoadedClassifier:
    model: EmotionClassifier
    spec: ClipSpec
    preprocess: Preprocess
    classes: tuple[str, ...]
    training: dict[str, Any]


def save_checkpoint(path: str | Path, model: EmotionClassifier, spec: ClipSpec, preprocess: Preprocess,
                    classes: Sequence[str] = EMOTIONS, training: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically (a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "classes": list(classes),
        "model": {"name": spec.name, "config": spec.config, "pretrained": spec.pretrained, "quick_gelu": spec.quick_gelu},
        "preprocess": {**asdict(preprocess), "mean": list(preprocess.mean), "std": list(preprocess.std)},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "training": json.loads(json.dumps(training or {}, default=str)),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def _checkpoint_problem(path: Path, message: str) -> ValueError:
    return ValueError(f"checkpoint {path}: {message}")


def read_checkpoint(path: str | Path, expect_model: str | None = None) -> LoadedClassifier:
    """Load and check a checkpoint (on CPU). Anything that doesn't match is a ValueError saying what.

    ``expect_model`` (an open_clip model name) refuses a checkpoint trained on another architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise _checkpoint_problem(path, "file not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as e:
        # weights_only refuses pickled code, so a foreign or hostile file fails here too.
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise _checkpoint_problem(path, f"not a readable torch file ({first[:200]})") from e
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
        raise _checkpoint_problem(path, f"not an m2m emotion checkpoint (expected format {CHECKPOINT_FORMAT!r}, "
                                        f"found {raw.get('format') if isinstance(raw, dict) else type(raw).__name__!r})")
    if raw.get("version") != CHECKPOINT_VERSION:
        raise _checkpoint_problem(path, f"format version {raw.get('version')!r}; this m2m reads version {CHECKPOINT_VERSION}")
    try:
        classes = tuple(parse_label(c, f"checkpoint {path}: classes") for c in raw["classes"])
        model_info, pp, state = raw["model"], raw["preprocess"], raw["state_dict"]
    except KeyError as e:
        raise _checkpoint_problem(path, f"missing field {e}") from e
    if sorted(classes) != sorted(EMOTIONS) or len(classes) != len(EMOTIONS):
        raise _checkpoint_problem(path, f"classes {list(classes)} are not KangaiSet's seven ({', '.join(EMOTIONS)})")
    if expect_model and model_info.get("name") != expect_model:
        raise _checkpoint_problem(path, f"trained on model {model_info.get('name')!r}, but {expect_model!r} was asked for")
    spec = ClipSpec(name=str(model_info.get("name")), config=model_info.get("config"),
                    pretrained=str(model_info.get("pretrained", "")), quick_gelu=bool(model_info.get("quick_gelu")))
    if spec.config is None:
        raise _checkpoint_problem(path, "records no model config")
    try:
        preprocess = Preprocess(size=int(pp["size"]), mean=tuple(pp["mean"]), std=tuple(pp["std"]),
                                interpolation=str(pp.get("interpolation", "bicubic")),
                                resize_mode=str(pp.get("resize_mode", "shortest")), padding=pp.get("padding"))
    except (KeyError, TypeError, ValueError) as e:
        raise _checkpoint_problem(path, f"bad preprocess record {pp!r}") from e
    if preprocess.size != image_size(spec.config):
        raise _checkpoint_problem(path, f"preprocess size {preprocess.size} doesn't match the model's "
                                        f"image size {image_size(spec.config)}")
    model = new_classifier(spec, None, len(classes))
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise _checkpoint_problem(path, f"weights don't fit model {spec.name}: {len(result.missing_keys)} missing "
                                        f"(e.g. {result.missing_keys[:3]}), {len(result.unexpected_keys)} unexpected "
                                        f"(e.g. {result.unexpected_keys[:3]})")
    return LoadedClassifier(model.eval(), spec, preprocess, classes, dict(raw.get("training", {})))
