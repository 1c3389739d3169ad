"""``m2m study prepare|analyze|export``: build a listening study from a book, then report on it.

    m2m study prepare PATH [--book NAME] --design within-scene --scenes 6 --out studies/within
    m2m study analyze studies/within [--db data/study.sqlite3] [--all-participants]
    m2m study export studies/within --format csv

``prepare`` plans the book (M2M-Gen condition) to find its scenes, picks runs of four consecutive
pages (inside one scene, or across a scene boundary), renders those pages in all three conditions
with the same engine into ``STUDY/runs/``, copies the page images to ``STUDY/pages/`` and writes
``STUDY/study.json``. The study folder is self-contained: move it, point ``M2M_STUDY_DIR`` at it.
"""

from __future__ import annotations

import argparse
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from m2m.book import Book, load_book
from m2m.conditions import condition_of
from m2m.study import (
    CONDITIONS,
    DESIGNS,
    RatingsStore,
    Stimulus,
    Study,
    default_store_path,
    load_study,
    missing_files,
    pick_stimuli,
    save_study,
)
from m2m.study.questionnaire import PAPER_SCREENING_RULE

MANIFEST_NAME = "study.json"
PAGES_DIR = "pages"
RUNS_DIR = "runs"
RESULTS_DIR = "results"
DEFAULT_CONSENT = (
    "You are invited to a listening study about background music for manga. You will read a few short "
    "passages of a manga, each with three different versions of background music, and rate each version "
    "on three questions. It takes about 15 minutes; please use headphones. Taking part is voluntary and "
    "you may stop at any time. We store your answers and your screening answers under a random anonymous "
    "id, with no name, e-mail or IP address, and use them only for research on music generation."
)

Progress = Callable[[str, int, int], None]


def register(subparsers: argparse._SubParsersAction) -> None:
    from m2m.cli import add_book_arguments

    study = subparsers.add_parser("study", help="listening study: prepare stimuli, analyse and export ratings")
    commands = study.add_subparsers(dest="study_command", required=True)

    prepare = commands.add_parser("prepare", help="pick stimuli from a book and render them in all three conditions")
    add_book_arguments(prepare)
    prepare.add_argument("--design", choices=DESIGNS, required=True,
                         help="within-scene: 4 pages inside one scene; between-scenes: 4 pages across a boundary")
    prepare.add_argument("--scenes", type=int, default=6, help="how many stimuli (the paper used 6)")
    prepare.add_argument("--out", type=Path, required=True, help="the study folder (gets study.json, runs/, pages/)")
    prepare.add_argument("--engine", default="composer", help="music engine for every condition (default composer)")
    prepare.add_argument("--seed", type=int, default=0, help="seed for choosing pages and for the music")
    prepare.add_argument("--library-clips", type=int, default=24,
                         help="clips to make for the random condition's library when it has none (default 24)")
    prepare.add_argument("--llm", default="offline", choices=("offline", "openai"), help="the director")
    prepare.add_argument("--title", default=None, help="study title shown to participants")
    prepare.add_argument("--consent", type=Path, default=None, help="a text file with the consent statement")
    prepare.set_defaults(func=run_prepare)

    analyze = commands.add_parser("analyze", help="means, CIs, repeated-measures ANOVA and post-hoc tests -> report")
    analyze.add_argument("study", type=Path, help="the study folder (or its study.json)")
    analyze.add_argument("--db", type=Path, default=None, help="ratings database (default $M2M_DATA_DIR/study.sqlite3)")
    analyze.add_argument("--out", type=Path, default=None, help="report folder (default STUDY/results)")
    analyze.add_argument("--all-participants", action="store_true",
                         help=f"analyse everyone; by default only participants meeting the paper's screening rule "
                              f"({PAPER_SCREENING_RULE})")
    analyze.set_defaults(func=run_analyze)

    export = commands.add_parser("export", help="write the study's ratings as CSV or JSON Lines")
    export.add_argument("study", type=Path, help="the study folder (or its study.json)")
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv", dest="fmt")
    export.add_argument("--db", type=Path, default=None, help="ratings database (default $M2M_DATA_DIR/study.sqlite3)")
    export.add_argument("--out", type=Path, default=None, help="output file (default STUDY/results/ratings.<format>)")
    export.set_defaults(func=run_export)


def _say(message: str, done: int, total: int) -> None:
    print(f"[{done}/{total}] {message}", flush=True)


# --- prepare ----------------------------------------------------------------------------------------


def study_id_for(book: Book, design: str) -> str:
    """A manifest id from the book and design, kept to the id alphabet (ids travel in URLs)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", book.id).strip("-._") or "book"
    return f"{slug}-{design}"[:128]


def scene_pages(book: Book, settings: object, progress: Progress) -> list[tuple[int, ...]]:
    """Each scene's pages in reading order, from the M2M-Gen plan (stages 1-4)."""
    from m2m import pipeline

    plan = pipeline.plan_book(book, settings, progress)  # type: ignore[arg-type]
    if plan.scenes is None or not plan.scenes.scenes:
        raise ValueError(f"book {book.id!r}: the plan found no scenes")
    return [tuple(scene.pages) for scene in plan.scenes.scenes]


def render_pages(book: Book, settings: object, pages: Sequence[int], progress: Progress) -> None:
    """Render the study's pages (only those) in the settings' condition into ``runs/<book>/<condition>/audio/``."""
    from m2m import pipeline

    pipeline.render_book(book, settings, progress, order=list(pages), only=list(pages))  # type: ignore[arg-type]


def ensure_library(settings: object, count: int, progress: Progress) -> None:
    """The random condition draws from a clip library made by the same engine; make one if missing."""
    from m2m import pipeline

    if pipeline.ensure_library(settings, count, progress):  # type: ignore[arg-type]
        print(f"built the random condition's library: {count} clips in "
              f"{pipeline.library_dir(settings)}", flush=True)  # type: ignore[arg-type]


def copy_pages(book: Book, pages: Sequence[int], folder: Path) -> None:
    """Page images into ``STUDY/pages/<book>/NNN.<ext>``, where the study API looks for them."""
    by_index = {page.index: page for page in book.pages}
    target = folder / PAGES_DIR / book.id
    target.mkdir(parents=True, exist_ok=True)
    for index in pages:
        source = Path(by_index[index].image)
        shutil.copyfile(source, target / f"{index:03d}{source.suffix.lower()}")


def run_prepare(args: argparse.Namespace) -> int:
    from m2m.pipeline import Settings

    if args.scenes < 1:
        raise ValueError(f"--scenes must be a positive number of stimuli, got {args.scenes}")
    if args.library_clips < 1:
        raise ValueError(f"--library-clips must be a positive number, got {args.library_clips}")
    consent = args.consent.read_text(encoding="utf-8").strip() if args.consent else DEFAULT_CONSENT
    book = load_book(args.path, args.book)
    out: Path = args.out
    settings = Settings(director=args.llm, engine=args.engine, condition="m2m", runs_root=out / RUNS_DIR, seed=args.seed)
    scenes = scene_pages(book, settings, _say)
    windows = pick_stimuli(scenes, args.design, args.scenes, args.seed)
    needed = sorted({page for window in windows for page in window})
    print(f"{book.title}: {len(scenes)} scenes; stimuli on pages "
          + ", ".join(f"{w[0]}-{w[-1]}" for w in windows) + " (page indices, as in study.json)", flush=True)
    for condition in CONDITIONS:
        if condition_of(condition).uses_library:
            ensure_library(settings, args.library_clips, _say)
        print(f"rendering {len(needed)} pages: condition {condition}, engine {args.engine}", flush=True)
        render_pages(book, replace(settings, condition=condition), needed, _say)
    copy_pages(book, needed, out)
    # Stimulus ids are shown to participants: plain numbers say nothing about any condition.
    stimuli = tuple(
        Stimulus(id=f"s{i + 1}", book_id=book.id, pages=window,
                 versions={c: f"{RUNS_DIR}/{book.id}/{c}" for c in CONDITIONS})
        for i, window in enumerate(windows)
    )
    study = Study(id=study_id_for(book, args.design), title=args.title or f"Music for {book.title}",
                  design=args.design, engine=args.engine, stimuli=stimuli, consent_text=consent)
    missing = missing_files(study, out)
    if missing:
        listed = ", ".join(str(p) for p in missing[:5])
        raise ValueError(f"rendering left {len(missing)} clip(s) missing, e.g. {listed}")
    manifest = save_study(study, out / MANIFEST_NAME)
    print(f"study {study.id!r}: {len(stimuli)} stimuli x {len(CONDITIONS)} conditions written to {manifest}")
    print(f"serve it: M2M_STUDY_DIR={out} M2M_STUDY_ADMIN_TOKEN=<secret> python app.py")
    return 0


# --- analyze and export -------------------------------------------------------------------------------


def _open(study_path: Path, db: Path | None) -> tuple[Study, Path, RatingsStore]:
    manifest = study_path if study_path.suffix == ".json" else study_path / MANIFEST_NAME
    study = load_study(manifest)
    database = db or default_store_path()
    if not database.is_file():
        raise ValueError(f"--db: no ratings database at {database} (set M2M_DATA_DIR or pass --db)")
    return study, manifest.parent, RatingsStore(database)


def run_analyze(args: argparse.Namespace) -> int:
    from m2m.study import analyse, ratings_frame, write_report

    study, folder, store = _open(args.study, args.db)
    with store:
        ratings = store.ratings(study.id)
        participants = store.participants(study.id)
    if not ratings:
        raise ValueError(f"study {study.id!r} has no ratings yet")
    analysis = analyse(ratings_frame(ratings), participants=participants, include_all=args.all_participants)
    files = write_report(analysis, args.out or folder / RESULTS_DIR, study.title)
    print(analysis.cohort.status())
    for anova in analysis.anovas:
        if anova.note:
            print(f"  {anova.criterion}: F and p not available: {anova.note}")
        else:
            print(f"  {anova.criterion}: F({anova.df_num:g}, {anova.df_den:g}) = {anova.f_value:.2f}, "
                  f"p = {anova.p_value:.3g}")
    print(f"report: {files.markdown}\nchart:  {files.figure}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    study, folder, store = _open(args.study, args.db)
    out = args.out or folder / RESULTS_DIR / f"ratings.{args.fmt}"
    with store:
        path = (store.export_csv if args.fmt == "csv" else store.export_jsonl)(out, study.id)
        count = len(store.ratings(study.id))
    print(f"{count} ratings of study {study.id!r} written to {path}")
    return 0
