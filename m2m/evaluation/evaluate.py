"""``m2m evaluate``: the objective figures of one or more runs, measured the same way for each.

Per run: transition smoothness at every page join of the book as played (transitions.py), scene
consistency and contrast and plan adherence from per-clip features (features.py), loudness and
peak sanity (levels.py), leitmotif recurrence against the m2m plan's themes (recurrence.py), and CLAP agreement and FAD when a CLAP model is cached (clap.py).
Across runs of one book: each condition's joins paired with the m2m run's, tested (paired.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from m2m.evaluation.clap import (
    DEFAULT_CLAP_MODEL,
    ClapLoader,
    ClapScorer,
    ClapScores,
    clap_scores,
    load_cached_clap,
    open_clap,
    reference_embeddings,
)
from m2m.evaluation.features import (
    ANALYSIS_RATE,
    PlanAdherence,
    SceneContrast,
    analysis_signal,
    clip_features,
    plan_adherence,
    scene_contrast,
)
from m2m.evaluation.levels import Levels, levels
from m2m.evaluation.paired import PairedJoins, paired_with_reference
from m2m.evaluation.recurrence import Recurrence, recurrence, reference_sheet
from m2m.evaluation.sources import RunInput, clip_samples, find_runs, played_joins, played_mix
from m2m.evaluation.transitions import Transitions, measure_transitions

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunEvaluation:
    """One run's figures. ``scene_source`` names the scenes it was judged against; ``played`` is
    the cue sheet measured (``Soundtrack.played_hash``), so a study's report can tell figures of music
    rendered again since."""

    run: str
    book_id: str
    condition: str
    engine: str
    pages: int
    scene_source: str
    pace_seconds: float
    transitions: Transitions
    scenes: SceneContrast
    plan: PlanAdherence
    levels: Levels
    clap: ClapScores
    leitmotifs: Recurrence
    played: str = ""


@dataclass(frozen=True)
class Evaluation:
    """Every run evaluated together (the JSON file's content); ``paired``: each other condition's
    seamless joins against the m2m run's of the same book, per measure (paired.py)."""

    runs: tuple[RunEvaluation, ...]
    clap_model: str
    paired: tuple[PairedJoins, ...] = ()


def evaluate_run(run: RunInput, clap: ClapScorer | str, fad_reference: np.ndarray | str) -> RunEvaluation:
    """All the figures of one run."""
    soundtrack, rate = run.soundtrack, run.soundtrack.settings.sample_rate
    cues = soundtrack.cues
    clips = clip_samples(run)
    book, offsets = played_mix(run, clips)
    transitions = measure_transitions(book, rate, [c.page for c in cues], run.scenes,
                                      played_joins(run), [c.transition for c in cues],
                                      [c.shape[1] for c in clips], [c.loop for c in cues],
                                      soundtrack.settings.pace_seconds, offsets)
    del book  # the whole book is the largest array here; the rest needs only the clips
    mono = [analysis_signal(c, rate) for c in clips]
    features = [clip_features(m) for m in mono]
    reference = reference_sheet(run)
    plans = {c.page: c.plan for c in run.plan.cues} if run.plan is not None else {}
    return RunEvaluation(
        run=str(run.folder.path), book_id=run.book_id, condition=run.condition, engine=soundtrack.settings.engine,
        played=soundtrack.played_hash(), pages=len(cues), scene_source=run.scene_source, pace_seconds=soundtrack.settings.pace_seconds,
        transitions=transitions, scenes=scene_contrast(features, run.scenes),
        plan=plan_adherence([(c.page, plans.get(c.page)) for c in cues], features),
        levels=levels([c.page for c in cues], clips, rate),
        leitmotifs=recurrence([c.page for c in cues], run.scenes, mono, reference.sheet, reference.source),
        clap=clap_scores(clap, mono, ANALYSIS_RATE, [c.caption for c in cues], fad_reference))


def evaluate(paths: Sequence[Path], *, clap_model: str = DEFAULT_CLAP_MODEL, clap_loader: ClapLoader = load_cached_clap,
             fad_reference: Path | None = None, progress: Progress = lambda message: None) -> Evaluation:
    """Evaluate the runs ``paths`` name (run folders or book folders); the CLAP model is loaded once."""
    runs = find_runs(paths)
    progress(f"CLAP: looking for {clap_model} in the Hugging Face cache")
    clap = open_clap(clap_model, clap_loader)
    reference = reference_embeddings(clap, fad_reference)
    results = []
    for run in runs:
        progress(f"{run.book_id}/{run.condition}: {len(run.soundtrack.cues)} pages")
        results.append(evaluate_run(run, clap, reference))
    paired = paired_with_reference([(r.book_id, r.condition, r.transitions.joins) for r in results])
    return Evaluation(tuple(results), clap_model, paired)


def default_json_path(evaluation: Evaluation) -> Path:
    """``<first run's book folder>/evaluation.json``."""
    return Path(evaluation.runs[0].run).parent / "evaluation.json"
