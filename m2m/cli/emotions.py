"""``m2m emotions``: train and evaluate the stage 2 emotion backends, or show a book's emotions.

* ``m2m emotions train --data DIR --out CKPT``: fine-tune CLIP on a KangaiSet-layout folder (paper defaults);
* ``m2m emotions eval --data DIR --checkpoint CKPT`` (or ``--backend clip-zeroshot``): F1 on KangaiSet's
  ``test_external`` split beside the paper's Table I;
* ``m2m emotions eval PATH [--book NAME] --backend NAME``: the same on a book's ground-truth face labels;
* ``m2m emotions show PATH [--book NAME] --backend NAME``: per-scene and per-page distributions.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from m2m.book import Book, find_label_file, load_book
from m2m.emotions import (
    DEFAULT_EMOTION_BACKEND,
    EMOTIONS,
    EmotionOptions,
    EmotionReport,
    available_emotion_backends,
    describe_distribution,
    load_emotion_backend,
    recognise_emotions,
)
from m2m.scenes import Scene, ScenePlan


def register(subparsers: argparse._SubParsersAction) -> None:
    from m2m.cli import add_book_arguments

    parser = subparsers.add_parser("emotions", help="stage 2: train, evaluate or show facial emotion backends")
    commands = parser.add_subparsers(dest="emotions_command", required=True)

    train = commands.add_parser("train", help="fine-tune CLIP on a KangaiSet-layout folder (the paper's settings)")
    train.add_argument("--data", required=True, help="KangaiSet root: images/face/{train,test_external}/<emotion>/")
    train.add_argument("--out", required=True, help="where the best checkpoint goes (.pt)")
    _model_arguments(train)
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--lr", type=float, default=1e-5)
    train.add_argument("--weight-decay", type=float, default=0.001)
    train.add_argument("--val-fraction", type=float, default=0.1, help="stratified validation share of train")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    train.add_argument("--no-augment", action="store_true", help="no random horizontal flips")
    train.set_defaults(func=run_train)

    evaluate = commands.add_parser("eval", help="F1 (micro, macro, weighted), per-class table and confusion matrix")
    evaluate.add_argument("path", nargs="?", default=None, help="a book with ground-truth face labels (or use --data)")
    evaluate.add_argument("--book", default=None, help="the book's name in a Manga109 root")
    evaluate.add_argument("--data", default=None, help="KangaiSet root to evaluate on instead of a book")
    evaluate.add_argument("--split", default="test_external", help="KangaiSet split (default: test_external)")
    evaluate.add_argument("--backend", default=None, choices=available_emotion_backends(),
                          help="default: clip-finetuned with --checkpoint, else dialogue")
    evaluate.add_argument("--checkpoint", default=None, help="a clip-finetuned checkpoint (file or HF repo id)")
    evaluate.add_argument("--batch-size", type=int, default=32)
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    _model_arguments(evaluate, zero_shot=True)
    evaluate.set_defaults(func=run_eval)

    show = commands.add_parser("show", help="a book's emotion distribution per scene and page")
    add_book_arguments(show)
    show.add_argument("--backend", default=DEFAULT_EMOTION_BACKEND, choices=available_emotion_backends())
    show.add_argument("--checkpoint", default=None)
    show.add_argument("--batch-size", type=int, default=32)
    show.add_argument("--faces", action="store_true", help="list every face too")
    _model_arguments(show, zero_shot=True)
    show.set_defaults(func=run_show)


def _model_arguments(parser: argparse.ArgumentParser, zero_shot: bool = False) -> None:
    prefix = "for clip-zeroshot: " if zero_shot else ""
    parser.add_argument("--model", default="ViT-B-32", help=prefix + "open_clip model name, or hf-hub:org/repo")
    parser.add_argument("--pretrained", default="openai",
                        help=prefix + "open_clip pretrained tag, weight file, or '' / none for random init")
    parser.add_argument("--model-config", default=None, help=prefix + "custom open_clip model config (JSON text or file)")
    parser.add_argument("--allow-download", action="store_true", help="let weights download into the HF cache")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: the GPU when there is one)")
    parser.add_argument("--cache-dir", default=None, help="Hugging Face cache folder (default: the standard one)")


def run_train(args: argparse.Namespace) -> int:
    from m2m.emotion_backends.training import TrainOptions, train

    if not Path(args.data).is_dir():  # before any model loads: the data is the first thing to get right
        raise ValueError(f"--data: {args.data} is not a folder (a KangaiSet layout: images/face/train/<emotion>/*.png)")
    options = TrainOptions(model=args.model, pretrained=args.pretrained, model_config=args.model_config,
                           epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                           val_fraction=args.val_fraction, seed=args.seed, device=args.device,
                           allow_download=args.allow_download, cache_dir=args.cache_dir, num_workers=args.workers, augment=not args.no_augment)
    result = train(args.data, args.out, options)
    best = result.history[result.best_epoch - 1]
    for warning in result.warnings:
        print(f"warning: {warning}")
    print(f"best epoch {result.best_epoch}: val F1 micro {best.val_micro:.3f}, macro {best.val_macro:.3f}, "
          f"weighted {best.val_weighted:.3f}; checkpoint {result.checkpoint}")
    return 0


def _backend_options(args: argparse.Namespace, backend: str) -> dict:
    if backend == "clip-finetuned":
        return {"checkpoint": args.checkpoint, "allow_download": args.allow_download, "device": args.device,
                "cache_dir": args.cache_dir}
    if backend == "clip-zeroshot":
        return {"model": args.model, "pretrained": args.pretrained, "model_config": args.model_config,
                "allow_download": args.allow_download, "device": args.device, "cache_dir": args.cache_dir}
    return {}


def run_eval(args: argparse.Namespace) -> int:
    from m2m.emotion_backends.training import evaluate_labels, format_report

    backend_name = args.backend or ("clip-finetuned" if args.checkpoint else DEFAULT_EMOTION_BACKEND)
    if (args.path is None) == (args.data is None):
        raise ValueError("eval: give either a book PATH or --data DIR (a KangaiSet root)")
    if args.data is not None:
        report, title = _eval_kangaiset(args, backend_name)
    else:
        book = load_book(args.path, args.book)
        truth_pairs, skipped, title = _eval_book(book, args, backend_name)
        report = evaluate_labels([t for t, _ in truth_pairs], [p for _, p in truth_pairs], skipped)
    if args.json:
        from m2m.jsonio import dumps

        print(dumps(report))
    else:
        print(format_report(report, title))
    return 0


def _eval_kangaiset(args: argparse.Namespace, backend_name: str):
    from m2m.emotion_backends.training import evaluate_labels, kangaiset_split, predict_labels

    if backend_name not in ("clip-finetuned", "clip-zeroshot"):
        raise ValueError(f"backend: {backend_name!r} reads books, not face images; use clip-finetuned or clip-zeroshot "
                         "with --data")
    backend = load_emotion_backend(backend_name, **_backend_options(args, backend_name))
    items = kangaiset_split(args.data, args.split)
    preds = predict_labels(backend.classify, items, backend.preprocess.size, args.batch_size, progress=True)
    report = evaluate_labels([EMOTIONS[it.label] for it in items], preds)
    return report, f"{backend_name} on KangaiSet {args.split}"


def book_scenes(book: Book) -> ScenePlan:
    """The ground truth's scenes when the book has them, else one scene per page (eval needs no scene detector)."""
    from m2m.emotion_backends.annotations import read_ground_truth

    path = find_label_file(book)
    plan = read_ground_truth(path).scene_plan(book) if path else None
    if plan is not None:
        return plan
    return ScenePlan(tuple(Scene(i, (p.index,), tuple(t.id for t in p.texts)) for i, p in enumerate(book.pages)))


def _eval_book(book: Book, args: argparse.Namespace, backend_name: str):
    from m2m.emotion_backends.annotations import read_ground_truth

    path = find_label_file(book)
    if path is None:
        raise ValueError(f"{args.path}: book {book.id} has no ground-truth file (ground_truth/{book.id}.json)")
    truth = read_ground_truth(path)
    staged = recognise_emotions(book, book_scenes(book), backend_name,
                                EmotionOptions(batch_size=args.batch_size,
                                               backend_options=_backend_options(args, backend_name)))
    pairs, skipped = [], 0
    for face in staged.data.faces:
        label = truth.label_of(face.page, face.face_id)
        if label is None:
            continue
        if face.skipped:
            skipped += 1
            continue
        pairs.append((label.emotion, face.label))
    return pairs, skipped, f"{backend_name} on {book.title} ({path.name})"


def run_show(args: argparse.Namespace) -> int:
    book = load_book(args.path, args.book)
    staged = recognise_emotions(book, book_scenes(book), args.backend,
                                EmotionOptions(batch_size=args.batch_size,
                                               backend_options=_backend_options(args, args.backend)))
    print(describe_report(book, staged.data, faces=args.faces))
    print(f"\nsettings: {json.dumps(staged.provenance.settings, ensure_ascii=False)}")
    for warning in staged.provenance.warnings:
        print(f"warning: {warning}")
    return 0


def describe_report(book: Book, report: EmotionReport, faces: bool = False) -> str:
    lines = [f"{book.title}: emotions by {report.backend}"]
    for index, dist in report.scenes.items():
        lines.append(f"scene {index}: {describe_distribution(dist)}  ({dist.faces} faces)")
    lines.append("")
    for index, dist in report.pages.items():
        lines.append(f"page {index}: {describe_distribution(dist)}")
        if faces:
            for face in (f for f in report.faces if f.page == index):
                state = face.label or "skipped"
                note = f"  [{face.warning}]" if face.warning else ""
                lines.append(f"  {face.face_id} {book.character_name(face.character)}: {state}"
                             f"  ({face.evidence}){note}")
    return "\n".join(lines)
