"""Fine-tuning CLIP on KangaiSet and evaluating emotion backends (the paper's Table I).

KangaiSet layout: ``DIR/images/face/{train,test_external}/<emotion>/*.png`` (folder names are
class names; ``m2m/data/emotions/labels.json`` lists accepted spellings). Training follows the paper:
Adam with betas (0.9, 0.98), weight decay 0.001, learning rate 1e-5, 10 epochs, batch size 16. A
stratified validation split is taken from ``train``; the epoch with the best validation macro F1 is
the one kept.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn
from torch.utils.data import DataLoader, Dataset

from m2m.emotion_backends.clip import (
    DEFAULT_MODEL,
    DEFAULT_PRETRAINED,
    EmotionClassifier,
    Preprocess,
    new_classifier,
    pick_device,
    resolve_spec,
    save_checkpoint,
)
from m2m.emotion_backends.crops import square_pad
from m2m.emotions import EMOTIONS, parse_label

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}

PAPER_TABLE_I: dict[str, tuple[float, float, float]] = {
    # Sharma et al., M2M-Gen, Table I: (micro, macro, weighted) F1 in percent on KangaiSet.
    "Baseline (Théodose & Burie, ResNet)": (70.9, 40.9, 69.7),
    "Zero-shot CLIP": (10.3, 8.9, 10.1),
    "Fine-tuned CLIP": (68.7, 45.8, 70.2),
}


# ---------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class LabelledImage:
    path: str
    label: int  # index into EMOTIONS


def kangaiset_split(root: str | Path, split: str) -> tuple[LabelledImage, ...]:
    """The images of one split, sorted by path so every run sees the same order."""
    base = Path(root) / "images" / "face" / split
    if not base.is_dir():
        raise ValueError(f"data: {base} is not a folder; a KangaiSet root has images/face/{{train,test_external}}/<emotion>/")
    items = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        label = EMOTIONS.index(parse_label(folder.name, f"data: folder {folder}"))
        items += [LabelledImage(str(p), label) for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not items:
        raise ValueError(f"data: no images under {base}")
    return tuple(items)


def load_face_image(path: str, size: int) -> Image.Image:
    """A KangaiSet face as an RGB square; an unreadable file is a ValueError naming it."""
    try:
        with Image.open(path) as im:
            im.load()
            return square_pad(im, size)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"data: {path} is not a readable image ({e})") from e


class _FaceDataset(Dataset):
    def __init__(self, items: Sequence[LabelledImage], preprocess: Preprocess, train: bool) -> None:
        self.items = list(items)
        self.size = preprocess.size
        self.transform = preprocess.transform(train=train)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        item = self.items[i]
        return self.transform(load_face_image(item.path, self.size)), item.label


def stratified_split(items: Sequence[LabelledImage], fraction: float, seed: int
                     ) -> tuple[tuple[LabelledImage, ...], tuple[LabelledImage, ...], str | None]:
    """(train, validation, warning): stratified by class; unstratified when a class is too small to split."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < fraction < 1.0:
        raise ValueError(f"val_fraction: {fraction!r} must be between 0 and 1")
    labels = [it.label for it in items]
    counts = np.bincount(labels, minlength=len(EMOTIONS))
    present = int((counts > 0).sum())
    n_val = max(present, round(len(items) * fraction))
    if n_val >= len(items):
        raise ValueError(f"data: {len(items)} training images are too few for a validation split")
    warning = None
    stratify: list[int] | None = labels
    if counts[counts > 0].min() < 2:
        small = [EMOTIONS[i] for i, c in enumerate(counts) if c == 1]
        warning = f"classes {small} have a single image; the validation split is not stratified"
        stratify = None
    train, val = train_test_split(list(items), test_size=n_val, random_state=seed, stratify=stratify)
    return tuple(train), tuple(val), warning


# ---------------------------------------------------------------------------------------------
# Metrics


@dataclass(frozen=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class EvalReport:
    """F1 scores in [0, 1]; ``confusion[i][j]`` counts true EMOTIONS[i] predicted as EMOTIONS[j]."""

    micro: float
    macro: float
    weighted: float
    per_class: dict[str, ClassScores]
    confusion: tuple[tuple[int, ...], ...]
    n: int
    skipped: int = 0


def evaluate_labels(y_true: Sequence[str], y_pred: Sequence[str], skipped: int = 0) -> EvalReport:
    """Micro, macro and weighted F1 over the classes that occur in either list (scikit-learn)."""
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    if len(y_true) != len(y_pred):
        raise ValueError(f"y_pred: {len(y_pred)} predictions for {len(y_true)} labels")
    if not y_true:
        raise ValueError("y_true: nothing to evaluate (no labelled faces were classified)")
    # Macro F1 averages over the classes present, as scikit-learn does by default; absent classes
    # would otherwise count as zeros and make small test sets look worse than they are.
    present = [e for e in EMOTIONS if e in set(y_true) | set(y_pred)]
    scores = {avg: float(f1_score(y_true, y_pred, labels=present, average=avg, zero_division=0))
              for avg in ("micro", "macro", "weighted")}
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=list(EMOTIONS), zero_division=0)
    per_class = {e: ClassScores(float(p[i]), float(r[i]), float(f[i]), int(s[i])) for i, e in enumerate(EMOTIONS)}
    cm = confusion_matrix(y_true, y_pred, labels=list(EMOTIONS))
    return EvalReport(scores["micro"], scores["macro"], scores["weighted"], per_class,
                      tuple(tuple(int(v) for v in row) for row in cm), len(y_true), skipped)


def format_report(report: EvalReport, title: str) -> str:
    """A plain-text report: F1 beside the paper's Table I, a per-class table and the confusion matrix."""
    lines = [f"{title}: {report.n} faces" + (f" ({report.skipped} skipped)" if report.skipped else ""), "",
             f"{'':44s} {'micro':>7s} {'macro':>7s} {'weighted':>9s}",
             f"{'this run':44s} {100 * report.micro:6.1f}% {100 * report.macro:6.1f}% {100 * report.weighted:8.1f}%"]
    for name, (mi, ma, we) in PAPER_TABLE_I.items():
        lines.append(f"{'paper: ' + name:44s} {mi:6.1f}% {ma:6.1f}% {we:8.1f}%")
    lines += ["", f"{'class':10s} {'precision':>9s} {'recall':>7s} {'f1':>6s} {'support':>8s}"]
    for e, s in report.per_class.items():
        lines.append(f"{e:10s} {s.precision:9.3f} {s.recall:7.3f} {s.f1:6.3f} {s.support:8d}")
    short = [e[:5] for e in EMOTIONS]
    lines += ["", "confusion (rows: true, columns: predicted)", f"{'':10s} " + " ".join(f"{s:>6s}" for s in short)]
    for e, row in zip(EMOTIONS, report.confusion, strict=True):
        lines.append(f"{e:10s} " + " ".join(f"{v:6d}" for v in row))
    return "\n".join(lines)


def predict_labels(classify: Callable[[Sequence[Image.Image]], np.ndarray], items: Sequence[LabelledImage],
                   size: int, batch_size: int = 32, progress: bool = False) -> list[str]:
    """Classify KangaiSet images with any image backend's ``classify``; returns class names."""
    from tqdm.auto import tqdm

    predictions: list[str] = []
    with tqdm(total=len(items), desc="eval", unit="img", disable=not progress) as bar:
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            probs = classify([load_face_image(it.path, size) for it in chunk])
            predictions += [EMOTIONS[int(i)] for i in np.argmax(probs, axis=1)]
            bar.update(len(chunk))
    return predictions


# ---------------------------------------------------------------------------------------------
# Training


@dataclass(frozen=True)
class TrainOptions:
    """The paper's defaults. ``pretrained`` "" or "none" starts from random weights (tests);
    ``model_config`` (a dict, JSON text or file) builds a custom open_clip architecture."""

    model: str = DEFAULT_MODEL
    pretrained: str = DEFAULT_PRETRAINED
    model_config: str | dict | None = None
    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.001
    val_fraction: float = 0.1
    seed: int = 0
    device: str | None = None
    allow_download: bool = False
    cache_dir: str | None = None
    num_workers: int = 0
    augment: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: {getattr(self, name)!r} must be at least 1")
        if self.lr <= 0:
            raise ValueError(f"lr: {self.lr!r} must be positive")


@dataclass(frozen=True)
class EpochLog:
    epoch: int
    train_loss: float
    val_loss: float
    val_micro: float
    val_macro: float
    val_weighted: float


@dataclass(frozen=True)
class TrainResult:
    checkpoint: str
    best_epoch: int
    history: tuple[EpochLog, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)


def seed_everything(seed: int) -> torch.Generator:
    """Fix Python's, NumPy's and torch's seeds; returns a generator for the data loader's shuffling."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _run_epoch(model: EmotionClassifier, loader: DataLoader, device: str, optimizer=None, bar=None
               ) -> tuple[float, list[int], list[int]]:
    """One pass; trains when an optimizer is given. Returns (mean loss, true labels, predictions)."""
    loss_fn = nn.CrossEntropyLoss()
    model.train(optimizer is not None)
    total, count, truth, preds = 0.0, 0, [], []
    with torch.set_grad_enabled(optimizer is not None):
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            logits = model(images)
            loss = loss_fn(logits, labels)
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            total += float(loss.detach()) * len(labels)
            count += len(labels)
            truth += labels.tolist()
            preds += logits.argmax(dim=1).tolist()
            if bar is not None:
                bar.update(len(labels))
                bar.set_postfix(loss=f"{total / count:.3f}")
    return total / max(count, 1), truth, preds


def train(data: str | Path, out: str | Path, options: TrainOptions | None = None,
          items: Sequence[LabelledImage] | None = None) -> TrainResult:
    """Fine-tune CLIP's image encoder with a linear head on KangaiSet's ``train`` split; keep the best epoch.

    ``items`` replaces the folder scan (tests pass synthetic images). Returns where the checkpoint went.
    """
    from tqdm.auto import tqdm

    options = options or TrainOptions()
    generator = seed_everything(options.seed)
    spec, weights, preprocess = resolve_spec(options.model, options.pretrained, options.model_config,
                                             options.allow_download, options.cache_dir)
    # KangaiSet images are tight face crops; the backend crops page faces the same way.
    preprocess = Preprocess(**{**asdict(preprocess), "padding": 0.0})
    all_items = tuple(items) if items is not None else kangaiset_split(data, "train")
    train_items, val_items, split_warning = stratified_split(all_items, options.val_fraction, options.seed)
    device = pick_device(options.device)
    model = new_classifier(spec, weights).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=options.lr, betas=options.betas,
                                 weight_decay=options.weight_decay)
    train_loader = DataLoader(_FaceDataset(train_items, preprocess, options.augment), batch_size=options.batch_size,
                              shuffle=True, generator=generator, num_workers=options.num_workers)
    val_loader = DataLoader(_FaceDataset(val_items, preprocess, False), batch_size=max(options.batch_size, 32),
                            shuffle=False, num_workers=options.num_workers)
    history: list[EpochLog] = []
    best: tuple[float, float] | None = None
    best_epoch = 0
    training_record = {k: v for k, v in asdict(options).items() if k not in {"progress"}}
    for epoch in range(1, options.epochs + 1):
        with tqdm(total=len(train_items), desc=f"epoch {epoch}/{options.epochs}", unit="img",
                  disable=not options.progress) as bar:
            train_loss, _, _ = _run_epoch(model, train_loader, device, optimizer, bar)
        val_loss, truth, preds = _run_epoch(model, val_loader, device)
        report = evaluate_labels([EMOTIONS[i] for i in truth], [EMOTIONS[i] for i in preds])
        log = EpochLog(epoch, train_loss, val_loss, report.micro, report.macro, report.weighted)
        history.append(log)
        if options.progress:
            print(f"epoch {epoch}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, "
                  f"val F1 micro {report.micro:.3f} macro {report.macro:.3f} weighted {report.weighted:.3f}")
        score = (report.macro, -val_loss)
        if best is None or score > best:
            best, best_epoch = score, epoch
            save_checkpoint(out, model, spec, preprocess, EMOTIONS, {
                "options": training_record, "best_epoch": epoch, "train_images": len(train_items),
                "val_images": len(val_items), "val": asdict(log), "data": str(data)})
    warnings = (split_warning,) if split_warning else ()
    return TrainResult(str(out), best_epoch, tuple(history), warnings)


def paper_defaults() -> dict[str, Any]:
    """The paper's training settings, for the CLI's help text."""
    o = TrainOptions()
    return {"optimizer": "Adam", "betas": o.betas, "weight_decay": o.weight_decay, "lr": o.lr,
            "epochs": o.epochs, "batch_size": o.batch_size}
