"""What the ``open_clip`` backends are built from: a model spec, its preprocessing, and the model.

``resolve_spec`` turns a model name, a pretrained tag (or ``hf-hub:`` name, or file) and an optional
config into a spec, a local weight file and the preprocessing, all checked offline: weights never
download unless asked (``allow_download=True``); tags and ``hf-hub:`` names resolve through the
Hugging Face cache with ``local_files_only``. Training, checkpoints and both backends build their
models from here, apart from how a backend predicts with one.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from m2m.emotions import EMOTIONS

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "openai"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def pick_device(device: str | None = None) -> str:
    """``device`` as given, else the GPU when there is one."""
    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class Preprocess:
    """How a crop becomes a tensor: resize to ``size`` px, normalise by ``mean``/``std`` (per RGB channel).

    ``padding`` is the face-box margin the model was trained with (KangaiSet crops are tight: 0.0).
    """

    size: int
    mean: tuple[float, ...] = OPENAI_MEAN
    std: tuple[float, ...] = OPENAI_STD
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    padding: float | None = None

    def transform(self, train: bool = False):
        """A torchvision transform: RGB PIL image -> float tensor [3, size, size]."""
        import open_clip
        from torchvision import transforms

        base = open_clip.image_transform(self.size, is_train=False, mean=self.mean, std=self.std,
                                         resize_mode=self.resize_mode, interpolation=self.interpolation)
        if not train:
            return base
        # Manga faces look left and right alike; flipping doubles the poses without changing the emotion.
        return transforms.Compose([transforms.RandomHorizontalFlip(), base])


@dataclass(frozen=True)
class ClipSpec:
    """Which ``open_clip`` architecture: a registered ``name``, or a ``config`` dict for a custom one.

    ``pretrained`` is a tag (``openai``), an ``hf-hub:org/repo`` name, a local file, or "" for random init.
    """

    name: str = DEFAULT_MODEL
    config: dict[str, Any] | None = None
    pretrained: str = ""
    quick_gelu: bool = False

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def parse_model_config(raw: str | dict | None) -> dict[str, Any] | None:
    """A model config given as a dict, a JSON string or a path to a JSON file."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, dict):
        config = raw
    else:
        text = Path(raw).read_text(encoding="utf-8") if not raw.lstrip().startswith("{") else raw
        try:
            config = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"model_config: not valid JSON ({e.msg} at line {e.lineno})") from e
    config = config.get("model_cfg", config)  # open_clip_config.json nests it
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in config]
    if missing:
        raise ValueError(f"model_config: missing {missing}; an open_clip config has embed_dim, vision_cfg, text_cfg")
    return copy.deepcopy(config)


def hub_file(repo: str, filename: str, allow_download: bool, cache_dir: str | None = None) -> str | None:
    """A file from the Hugging Face cache (``cache_dir``, default the standard one), or None when absent."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return hf_hub_download(repo_id=repo, filename=filename, local_files_only=not allow_download,
                               cache_dir=cache_dir)
    except (LocalEntryNotFoundError, EntryNotFoundError, RepositoryNotFoundError, FileNotFoundError):
        return None
    except OSError as e:  # network failures when downloads are allowed
        raise ValueError(f"could not fetch {filename} from the Hugging Face repo {repo}: {e}") from e


def _missing_weights(what: str, repo: str) -> ValueError:
    return ValueError(f"{what}: weights not in the Hugging Face cache (repo {repo}); fetch them with "
                      f"`huggingface-cli download {repo}` or allow downloads (--allow-download on the command line, "
                      "allow_download=True in Python)")


def resolve_spec(model: str, pretrained: str | None, model_config: str | dict | None = None,
                 allow_download: bool = False, cache_dir: str | None = None) -> tuple[ClipSpec, str | None, Preprocess]:
    """A spec, the local weight file (None for random init) and the preprocessing, checking everything offline.

    Unknown model names or tags, and weights missing from the cache, are ValueErrors saying what to do.
    """
    import open_clip

    pretrained = (pretrained or "").strip()
    if pretrained.lower() == "none":
        pretrained = ""
    config = parse_model_config(model_config)
    if model.startswith("hf-hub:") or pretrained.startswith("hf-hub:"):
        repo = (model if model.startswith("hf-hub:") else pretrained)[len("hf-hub:"):]
        cfg_path = hub_file(repo, "open_clip_config.json", allow_download, cache_dir)
        if cfg_path is None:
            raise _missing_weights(f"hf-hub:{repo}", repo)
        raw = json.loads(Path(cfg_path).read_text(encoding="utf-8"))
        config = parse_model_config(raw)
        weights = next((w for w in (hub_file(repo, f, allow_download, cache_dir) for f in _WEIGHT_FILES) if w), None)
        if weights is None:
            raise _missing_weights(f"hf-hub:{repo}", repo)
        pp = raw.get("preprocess_cfg", {})
        preprocess = Preprocess(size=image_size(config), mean=tuple(pp.get("mean", OPENAI_MEAN)),
                                std=tuple(pp.get("std", OPENAI_STD)),
                                interpolation=pp.get("interpolation", "bicubic"),
                                resize_mode=pp.get("resize_mode", "shortest"))
        spec = ClipSpec(name=f"hf-hub:{repo}", config=config, pretrained=f"hf-hub:{repo}",
                        quick_gelu=bool(config.get("quick_gelu", False)))
        return spec, weights, preprocess
    if config is None:
        if model not in open_clip.list_models():
            raise ValueError(f"model: {model!r} is not an open_clip model; e.g. ViT-B-32, ViT-B-16, RN50 "
                             "(open_clip.list_models()), or pass a model config")
        config = open_clip.get_model_config(model)
    preprocess = Preprocess(size=image_size(config))
    if not pretrained:
        return ClipSpec(name=model, config=config, pretrained="", quick_gelu=bool(config.get("quick_gelu", False))), \
            None, preprocess
    if Path(pretrained).is_file():
        return ClipSpec(name=model, config=config, pretrained=str(Path(pretrained).resolve()),
                        quick_gelu=bool(config.get("quick_gelu", False))), pretrained, preprocess
    tags = open_clip.list_pretrained_tags_by_model(model)
    if pretrained not in tags:
        raise ValueError(f"pretrained: {pretrained!r} is not a tag of {model} (known: {', '.join(tags) or 'none'}), "
                         "nor a file, nor an hf-hub: name")
    cfg = open_clip.get_pretrained_cfg(model, pretrained)
    hub = cfg.get("hf_hub", "")
    if not hub:
        raise ValueError(f"pretrained: {model}/{pretrained} has no Hugging Face copy; pass a local weight file")
    repo, filename = os.path.split(hub)  # "org/repo/" means the default file names
    names = (filename,) if filename else _WEIGHT_FILES
    weights = next((w for w in (hub_file(repo, f, allow_download, cache_dir) for f in names) if w), None)
    if weights is None:
        raise _missing_weights(f"{model}/{pretrained}", repo)
    preprocess = replace(preprocess, mean=tuple(cfg.get("mean", OPENAI_MEAN)), std=tuple(cfg.get("std", OPENAI_STD)),
                         interpolation=cfg.get("interpolation", "bicubic"),
                         resize_mode=cfg.get("resize_mode", "shortest"))
    return ClipSpec(name=model, config=config, pretrained=pretrained,
                    quick_gelu=bool(cfg.get("quick_gelu", False) or config.get("quick_gelu", False))), weights, preprocess


def image_size(config: dict[str, Any]) -> int:
    size = config.get("vision_cfg", {}).get("image_size", 224)
    return int(size[0] if isinstance(size, list | tuple) else size)


def build_clip(spec: ClipSpec, weights: str | None = None) -> nn.Module:
    """The full CLIP model (both towers) on CPU, from the spec's config; weights loaded when given."""
    import open_clip

    if spec.config is None:
        raise ValueError(f"model: {spec.name} has no config")
    config = copy.deepcopy(spec.config)
    config["quick_gelu"] = spec.quick_gelu or config.get("quick_gelu", False)
    custom_text = config.pop("custom_text", False) or "hf_model_name" in config.get("text_cfg", {})
    config.pop("multimodal_cfg", None)  # CoCa's decoder: not a classifier's business
    try:
        model = (open_clip.CustomTextCLIP if custom_text else open_clip.CLIP)(**config)
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"model_config: open_clip can't build {spec.name} from it: {e}") from e
    if weights:
        try:
            open_clip.load_checkpoint(model, weights)
        except (RuntimeError, KeyError, OSError) as e:
            raise ValueError(f"{weights}: these weights don't fit {spec.name}: {e}") from e
    return model.eval()


class EmotionClassifier(nn.Module):
    """CLIP's image encoder and a linear head: images [batch, 3, H, W] -> logits [batch, classes]."""

    def __init__(self, visual: nn.Module, embed_dim: int, classes: int) -> None:
        super().__init__()
        self.visual = visual
        self.head = nn.Linear(embed_dim, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.visual(images)
        if isinstance(features, tuple):  # some towers also return tokens
            features = features[0]
        return self.head(features)


def new_classifier(spec: ClipSpec, weights: str | None, classes: int = len(EMOTIONS)) -> EmotionClassifier:
    clip = build_clip(spec, weights)
    return EmotionClassifier(clip.visual, int(spec.config["embed_dim"]), classes)  # type: ignore[index]
