"""``m2m plan`` (stages 1-4 into the run folder) and ``m2m eval-scenes`` (boundary P/R/F1).

``m2m plan PATH [--book NAME] [--llm offline|openai] [--condition m2m|baseline] [--out runs/]``
writes ``01-scenes.json``, ``02-emotions.json`` (when the emotions stage is installed),
``03-directives.json`` and ``04-captions.json`` (the baseline: ``03-descriptions.json`` and
``04-captions.json``) into ``<out>/<book-id>/<condition>/``. A file whose inputs are unchanged is
reused, a file a person edited is kept, and everything after an edit is redone.

The API key is read from ``OPENAI_API_KEY`` only: a key on the command line would sit in the shell
history and the process list.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from m2m.book import Book, load_book
from m2m.conditions import SPECS, condition_of
from m2m.director import DIRECTORS, Director, fallback_reason, load_director
from m2m.emotions import EmotionModel
from m2m.llm import LLMSettings
from m2m.pipeline import PlanResult, plan_stages
from m2m.scenes import (
    Scene,
    boundaries,
    detect_scenes,
    ground_truth_path,
    load_ground_truth,
    score_boundaries,
)

T = TypeVar("T")
Progress = Callable[[str, int, int], None]


def register(subparsers: argparse._SubParsersAction) -> None:
    from m2m.cli import add_book_arguments

    plan = subparsers.add_parser("plan", help="stages 1-4: scenes, emotions, directives, captions into runs/")
    add_book_arguments(plan)
    add_director_arguments(plan)
    plan.add_argument("--condition", choices=[s.name for s in SPECS.values() if s.stages], default="m2m",
                      help="m2m (scenes, emotions, directives, captions) or the paper's page-by-page baseline")
    plan.add_argument("--out", type=Path, default=Path("runs"), help="the runs folder (default runs/)")
    plan.add_argument("--emotions", default=None, help="emotion backend (default: the book's embedded default)")
    add_emotion_model_arguments(plan)
    add_fallback_argument(plan)
    plan.set_defaults(func=run_plan)

    evaluate = subparsers.add_parser("eval-scenes", help="scene-boundary precision, recall and F1 against ground truth")
    add_book_arguments(evaluate)
    add_director_arguments(evaluate)
    evaluate.add_argument("--truth", type=Path, default=None,
                          help="ground-truth JSON (default: <root>/ground_truth/<book>.json)")
    evaluate.add_argument("--tolerance", type=int, default=1, help="pages a boundary may be off by (default 1)")
    evaluate.set_defaults(func=run_eval_scenes)


def add_director_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--llm", choices=DIRECTORS, default="offline",
                        help="who writes scenes, directives and captions (default offline; openai reads "
                             "OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_MODEL)")
    parser.add_argument("--model", default=None, help="model name for --llm openai (default gpt-4o)")
    parser.add_argument("--base-url", default=None, help="an OpenAI-compatible server (vLLM, Ollama, llama.cpp)")


def add_emotion_model_arguments(parser: argparse.ArgumentParser, *, with_device: bool = True) -> None:
    """The CLIP emotion backends' model options (the other backends ignore them)."""
    parser.add_argument("--emotions-checkpoint", default=None,
                        help="clip-finetuned: a checkpoint from `m2m emotions train`, or a Hugging Face repo id")
    if with_device:
        parser.add_argument("--device", default=None, help="cpu, cuda ... (default: the GPU when there is one)")
        parser.add_argument("--allow-download", action="store_true", help="let the CLIP backends fetch missing weights")


def emotion_model(args: argparse.Namespace) -> EmotionModel:
    return EmotionModel(checkpoint=args.emotions_checkpoint, device=args.device, allow_download=args.allow_download)


def add_fallback_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-fallback", action="store_true",
                        help="use the offline director (and say why) when --llm openai has no API key; "
                             "a server that fails to answer is still an error")


def director_settings(args: argparse.Namespace, cache_dir: Path | None) -> tuple[LLMSettings, str | None]:
    """The LLM settings from the environment and ``--model``/``--base-url``, and why the director
    asked for can't run (None when it can). Without ``--allow-fallback`` that reason is an error:
    a command never swaps the director quietly."""
    settings = LLMSettings.from_env(model=args.model, base_url=args.base_url, cache_dir=cache_dir)
    reason = fallback_reason(args.llm, settings)
    if reason is not None and not getattr(args, "allow_fallback", False):
        raise ValueError(reason.replace("; the offline director ran instead", "") +
                         " (or pass --llm offline, or --allow-fallback)")
    return settings, reason


def _director(args: argparse.Namespace, cache_dir: Path | None) -> tuple[Director, str | None]:
    settings, reason = director_settings(args, cache_dir)
    if reason is not None:
        return load_director("offline"), reason
    return load_director(args.llm, settings), None


# ---------------------------------------------------------------------------------------------
# m2m plan


def run_plan(args: argparse.Namespace) -> int:
    book = load_book(args.path, args.book)
    director, fallback = _director(args, args.out / ".llm-cache")
    if fallback:
        print(f"note: {fallback}")
    run = condition_of(args.condition).run_folder(args.out, book.id)
    result = plan_stages(book, run, director, fallback=fallback, emotion_backend=args.emotions,
                         emotion_model=emotion_model(args),
                         progress=lambda message, done, total: print(f"[{done}/{total}] {message}"))
    print(describe_plan(book, result, director))
    return 0


def describe_plan(book: Book, result: PlanResult, director: Director) -> str:
    lines = [f"{book.title}: {result.run.condition} plan by the {director.backend} director in {result.run.path}",
             f"computed: {', '.join(result.computed) or 'nothing (every file reused)'}"]
    scenes: Sequence[Scene] = result.scenes.scenes if result.scenes else ()
    for scene in scenes:
        lines.append(f"\nScene {scene.index}: pages {scene.pages[0]}-{scene.pages[-1]}  {scene.summary}")
        if result.directives is not None:
            lines.append(f"  directive: {result.directives.directive(scene.index).text}")
        lines.extend(f"  page {cue.page}: {cue.caption}" for cue in result.captions.cues if cue.page in scene.pages)
    if not scenes:
        lines.extend(f"  page {cue.page}: {cue.caption}" for cue in result.captions.cues)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# m2m eval-scenes


def run_eval_scenes(args: argparse.Namespace) -> int:
    if args.tolerance < 0:
        raise ValueError(f"--tolerance must be 0 or more pages, got {args.tolerance}")
    book = load_book(args.path, args.book)
    truth_file = args.truth or ground_truth_path(book)
    if truth_file is None:
        raise ValueError(f"--truth: no ground truth found for {book.id} (looked for <root>/ground_truth/"
                         f"{book.id}.json); pass --truth FILE")
    director, _ = _director(args, Path("runs") / ".llm-cache")
    plan = detect_scenes(book, director).data
    score = score_boundaries(boundaries(plan), load_ground_truth(truth_file), args.tolerance)
    print(f"{book.title}: {len(plan.scenes)} scenes by the {director.backend} director")
    print(f"predicted boundaries: {list(score.predicted)}")
    print(f"true boundaries:      {list(score.truth)}")
    print(f"precision {score.precision:.3f}  recall {score.recall:.3f}  F1 {score.f1:.3f}  "
          f"(tolerance ±{score.tolerance} page)")
    return 0
