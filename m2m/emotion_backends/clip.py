"""The ``open_clip`` backends: ``clip-finetuned`` (image encoder + classification head) and ``clip-zeroshot``.

Weights never download unless asked (``allow_download=True``): pretrained tags and ``hf-hub:`` names
resolve through the Hugging Face cache with ``local_files_only``. Models are loaded once per process
(``functools.lru_cache``) and shared; a backend object holds no per-request state.

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

import copy
import hashlib
import json
import os
import pickle
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from m2m.book import Book
from m2m.emotion_backends.crops import predict_from_crops, to_rgb
from m2m.emotions import DATA_DIR, EMOTIONS, BackendResult, EmotionOptions, parse_label
from m2m.scenes import ScenePlan

CHECKPOINT_FORMAT = "m2m-emotion-clip"
CHECKPOINT_VERSION = 1
PROMPTS_FILE = DATA_DIR / "zeroshot_prompts.json"
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


# ---------------------------------------------------------------------------------------------
# Model specs and building


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


def _hub_file(repo: str, filename: str, allow_download: bool, cache_dir: str | None = None) -> str | None:
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
        cfg_path = _hub_file(repo, "open_clip_config.json", allow_download, cache_dir)
        if cfg_path is None:
            raise _missing_weights(f"hf-hub:{repo}", repo)
        raw = json.loads(Path(cfg_path).read_text(encoding="utf-8"))
        config = parse_model_config(raw)
        weights = next((w for w in (_hub_file(repo, f, allow_download, cache_dir) for f in _WEIGHT_FILES) if w), None)
        if weights is None:
            raise _missing_weights(f"hf-hub:{repo}", repo)
        pp = raw.get("preprocess_cfg", {})
        preprocess = Preprocess(size=_image_size(config), mean=tuple(pp.get("mean", OPENAI_MEAN)),
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
    preprocess = Preprocess(size=_image_size(config))
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
    weights = next((w for w in (_hub_file(repo, f, allow_download, cache_dir) for f in names) if w), None)
    if weights is None:
        raise _missing_weights(f"{model}/{pretrained}", repo)
    preprocess = replace(preprocess, mean=tuple(cfg.get("mean", OPENAI_MEAN)), std=tuple(cfg.get("std", OPENAI_STD)),
                         interpolation=cfg.get("interpolation", "bicubic"),
                         resize_mode=cfg.get("resize_mode", "shortest"))
    return ClipSpec(name=model, config=config, pretrained=pretrained,
                    quick_gelu=bool(cfg.get("quick_gelu", False) or config.get("quick_gelu", False))), weights, preprocess


def _image_size(config: dict[str, Any]) -> int:
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


# ---------------------------------------------------------------------------------------------
# Checkpoints


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
    if preprocess.size != _image_size(spec.config):
        raise _checkpoint_problem(path, f"preprocess size {preprocess.size} doesn't match the model's "
                                        f"image size {_image_size(spec.config)}")
    model = new_classifier(spec, None, len(classes))
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise _checkpoint_problem(path, f"weights don't fit model {spec.name}: {len(result.missing_keys)} missing "
                                        f"(e.g. {result.missing_keys[:3]}), {len(result.unexpected_keys)} unexpected "
                                        f"(e.g. {result.unexpected_keys[:3]})")
    return LoadedClassifier(model.eval(), spec, preprocess, classes, dict(raw.get("training", {})))


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
            found = _hub_file(checkpoint, filename, allow_download, cache_dir)
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
