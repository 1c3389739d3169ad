"""The objective figures of a study's stimuli beside the listeners' ratings, and how they correlate.

A study's versions are ordinary run folders (``STUDY/runs/<book>/<condition>/``, made by ``m2m study
prepare``), so ``m2m evaluate STUDY/runs/<book> --json STUDY/evaluation.json`` measures them; this
module reads that file (``FIGURES_FILE`` in the study folder) and cuts each run's per-page and
per-join figures down to each stimulus's pages, so every stimulus x condition (what a listener
rated) has its own figures. Then, per measure and rated scale, the Spearman correlation over the
stimulus x condition cells between the figure and the mean rating. Too few cells, or a measure that
does not vary, is a message in the table, never an error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from m2m.study.manifest import Stimulus, Study, version_cue_sheet, version_folder
from m2m.study.questionnaire import CRITERIA

FIGURES_FILE = "evaluation.json"
MIN_CELLS = 3  # Spearman's rho over fewer pairs says nothing
MIN_PARTICIPANTS = 2  # as the analysis (m2m/study/analysis.py) asks before it reports


@dataclass(frozen=True)
class Measure:
    """One objective figure per stimulus x condition: its name, its unit and which way is better."""

    key: str
    label: str
    better: str  # "lower" or "higher"


MEASURES: tuple[Measure, ...] = (
    Measure("loudness_jump_lu", "loudness jump LU (seamless joins)", "lower"),
    Measure("spectral_distance_db", "spectral distance dB (seamless joins)", "lower"),
    Measure("theme_recall", "leitmotif found on themed pages", "higher"),
    Measure("key_match", "key and mode as planned", "higher"),
    Measure("scene_ratio", "contrast / consistency (whole run)", "higher"),
)


@dataclass(frozen=True)
class StimulusFigures:
    """The figures of one stimulus in one condition; None where there is nothing to measure (no
    seamless join inside the pages, no themed page, no plan)."""

    stimulus: str
    condition: str
    values: Mapping[str, float | None]


@dataclass(frozen=True)
class Correlation:
    """Spearman's rho between a measure and a rated scale over ``n`` stimulus x condition cells;
    ``rho`` and ``p`` None with ``note`` when it cannot be computed."""

    measure: str
    criterion: str
    n: int
    rho: float | None
    p: float | None
    note: str = ""


def figures_path(study_dir: str | os.PathLike[str]) -> Path:
    return Path(study_dir) / FIGURES_FILE


def read_figures(study_dir: str | os.PathLike[str]) -> dict[str, Any] | str:
    """The study's ``evaluation.json``, or why there is none (a message for the researcher)."""
    path = figures_path(study_dir)
    if not path.is_file():
        return (f"No objective figures yet: run `m2m evaluate {Path(study_dir) / 'runs'}/<book> --json {path}` "
                "to show them beside the ratings.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return f"{path} could not be read ({e}); write it again with `m2m evaluate ... --json {path}`."
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        return f"{path} is not a file `m2m evaluate --json` wrote (no list of runs)."
    return data


def _mean(values: Sequence[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def _fraction(flags: Sequence[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def deliberate_pairs(run: Mapping[str, Any]) -> set[tuple[int, int]]:
    """The (page before, page after) joins the run's director played as a break (cut, silence, stinger)."""
    return {(j["page_before"], j["page_after"]) for j in run["transitions"]["joins"] if j.get("deliberate", False)}


def cut_to_pages(run: Mapping[str, Any], pages: Sequence[int],
                 breaks: set[tuple[int, int]] = frozenset()) -> dict[str, float | None]:
    """A run's figures over ``pages`` only: the joins between two of them except ``breaks`` (the
    same page pairs for every condition of a stimulus, so each is scored over the same turns), their
    themed checks and plan checks; the scene ratio is the whole run's (it needs pairs across the book)."""
    inside = set(pages)
    joins = [j for j in run["transitions"]["joins"] if j["page_before"] in inside and j["page_after"] in inside
             and (j["page_before"], j["page_after"]) not in breaks]
    motifs = run.get("leitmotifs", {})
    themed = [c["found"] for c in motifs.get("checks", []) if c["themed"] and c["page"] in inside]
    plan = [c["key_match"] for c in run["plan"].get("pages", []) if c["page"] in inside]
    return {"loudness_jump_lu": _mean([j["loudness_jump_lu"] for j in joins]),
            "spectral_distance_db": _mean([j["spectral_distance_db"] for j in joins]),
            "theme_recall": _fraction(themed), "key_match": _fraction(plan), "scene_ratio": run["scenes"].get("ratio")}


def _run_for(runs: Sequence[Mapping[str, Any]], folder: Path, book_id: str, condition: str) -> Mapping[str, Any] | None:
    """The evaluated run that is this version's folder; by book and condition when the study moved."""
    target = folder.resolve()
    for run in runs:
        if Path(run["run"]).resolve() == target:
            return run
    matches = [r for r in runs if r["book_id"] == book_id and r["condition"] == condition]
    return matches[0] if len(matches) == 1 else None


def is_stale(run: Mapping[str, Any], study_dir: str | os.PathLike[str], stimulus: Stimulus, condition: str) -> bool:
    """Whether the version's music changed since the figures were measured: its cue sheet now is
    not the one ``m2m evaluate`` recorded (``played``). A figures file without the record (an
    older ``m2m evaluate``) or a version without a cue sheet cannot tell, and is taken as it is."""
    measured = run.get("played")
    try:
        sheet = version_cue_sheet(study_dir, stimulus, condition)
    except ValueError:  # a broken cue sheet: whatever it plays now, it is not what was measured
        return bool(measured)
    return bool(measured) and sheet is not None and sheet.played_hash() != measured


def study_figures(study: Study, study_dir: str | os.PathLike[str],
                  data: Mapping[str, Any]) -> tuple[list[StimulusFigures], list[str]]:
    """Every stimulus x condition of the study that the figures file has a run for, and the
    "stimulus condition" versions left out because their music was rendered again since."""
    out, stale = [], []
    for stimulus in study.stimuli:
        runs = {condition: _run_for(data["runs"], version_folder(study_dir, stimulus, condition), stimulus.book_id,
                                    condition) for condition in stimulus.versions}
        # a turn any condition's director played as a break is left out for all of them (a stale
        # version's too: its breaks are still the turns the others are scored without)
        breaks = set().union(*(deliberate_pairs(run) for run in runs.values() if run is not None))
        for condition, run in runs.items():
            if run is not None and is_stale(run, study_dir, stimulus, condition):
                stale.append(f"{stimulus.id} {condition}")
                runs[condition] = None
        found = {condition: run for condition, run in runs.items() if run is not None}
        out += [StimulusFigures(stimulus.id, condition, cut_to_pages(run, stimulus.pages, breaks))
                for condition, run in found.items()]
    return out, stale


def stimulus_figures(study: Study, study_dir: str | os.PathLike[str], data: Mapping[str, Any]) -> list[StimulusFigures]:
    """Every stimulus x condition of the study that the figures file has a run for (a version whose
    music was rendered again since is left out: study_figures)."""
    return study_figures(study, study_dir, data)[0]


def mean_ratings(ratings: pd.DataFrame) -> pd.DataFrame:
    """Mean rating per (stimulus, condition) and scale, with the number of ratings (``n``)."""
    if ratings.empty:
        return pd.DataFrame(columns=["stimulus", "condition", *CRITERIA, "n"])
    grouped = ratings.groupby(["stimulus", "condition"])
    means = grouped[list(CRITERIA)].mean()
    means["n"] = grouped.size()
    return means.reset_index()


def correlations(figures: Sequence[StimulusFigures], ratings: pd.DataFrame) -> list[Correlation]:
    """Spearman's rho between each measure and each scale's mean rating, over the stimulus x
    condition cells that have both (p: ``spearman``)."""
    means = mean_ratings(ratings).set_index(["stimulus", "condition"])
    out = []
    for measure in MEASURES:
        for criterion in CRITERIA:
            pairs = [(f.values[measure.key], float(means.loc[(f.stimulus, f.condition), criterion]))
                     for f in figures if f.values.get(measure.key) is not None and (f.stimulus, f.condition) in means.index]
            n = len(pairs)
            if n < MIN_CELLS:
                out.append(Correlation(measure.key, criterion, n, None, None,
                                       f"{n} rated stimulus x condition cell{'s' if n != 1 else ''} with this figure; "
                                       f"a correlation needs {MIN_CELLS}"))
                continue
            x, y = zip(*pairs, strict=True)
            if len(set(x)) < 2 or len(set(y)) < 2:
                out.append(Correlation(measure.key, criterion, n, None, None,
                                       "the " + ("figure" if len(set(x)) < 2 else "rating") + " is the same in every cell"))
                continue
            rho, p = spearman(x, y)
            out.append(Correlation(measure.key, criterion, n, round(rho, 4), round(p, 4)))
    return out


EXACT_UP_TO = 8  # cells: every pairing is counted (8! = 40320); beyond, the t approximation holds well enough


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Spearman's rho and its two-sided p. A study has few cells, where the t approximation of
    ``spearmanr`` is far off (rho = 1 over 3 cells: p 0.000, exactly 1/3), so up to ``EXACT_UP_TO``
    cells p counts every pairing of the figures' ranks with the ratings' ranks (an exact
    permutation test: the share of pairings with a rho at least as far from 0)."""
    from itertools import permutations

    from scipy.stats import rankdata, spearmanr

    rho = float(spearmanr(x, y).statistic)
    if len(x) > EXACT_UP_TO:
        return rho, float(spearmanr(x, y).pvalue)
    rx, ry = rankdata(x), rankdata(y)
    shuffled = np.array(list(permutations(ry)))  # n! rows
    cx, cy = rx - rx.mean(), shuffled - shuffled.mean(axis=1, keepdims=True)
    rhos = (cy @ cx) / (np.linalg.norm(cx) * np.linalg.norm(cy, axis=1))
    return rho, float(np.mean(np.abs(rhos) >= abs(rho) - 1e-12))


# ---------------------------------------------------------------------------------------------
# Markdown for the report


def _cell(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def figures_markdown(study: Study, study_dir: str | os.PathLike[str], ratings: pd.DataFrame,
                     name: Callable[[str], str] = str) -> str:
    """The figures of every stimulus x condition beside its mean ratings, then the correlations
    (or the message saying why there are none). ``name`` turns a condition into its report name."""
    data = read_figures(study_dir)
    lines = ["## Objective figures beside the ratings", ""]
    if isinstance(data, str):
        return "\n".join(lines + [data, ""])
    try:
        figures, stale = study_figures(study, study_dir, data)
    except (KeyError, TypeError, AttributeError) as e:  # an older or hand-edited file: say so, keep the report
        return "\n".join(lines + [f"{figures_path(study_dir)} is not a file this version of `m2m evaluate --json` "
                                  f"writes (missing or odd field: {e}); evaluate the study's runs again.", ""])
    if stale:
        lines += [f"Left out: {', '.join(stale)}: the music was rendered again after {figures_path(study_dir)} "
                  "measured it; run `m2m evaluate` on the study's runs again.", ""]
    if not figures:
        return "\n".join(lines + [f"{figures_path(study_dir)} has no run of this study's versions; evaluate "
                                  "the study's own run folders.", ""])
    means = mean_ratings(ratings).set_index(["stimulus", "condition"])
    head = ["stimulus", "condition", *(m.label + f" ({m.better} better)" for m in MEASURES),
            *(f"mean {c}" for c in CRITERIA), "ratings"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in figures:
        rated = means.loc[(f.stimulus, f.condition)] if (f.stimulus, f.condition) in means.index else None
        rating_cells = [_cell(float(rated[c])) if rated is not None else "–" for c in CRITERIA]
        count = str(int(rated["n"])) if rated is not None else "0"
        lines.append("| " + " | ".join([f.stimulus, name(f.condition), *(_cell(f.values[m.key]) for m in MEASURES),
                                        *rating_cells, count]) + " |")
    lines += ["", f"Figures from {figures_path(study_dir)} (`m2m evaluate`): each version as the reader and "
              "the whole-book file play it, cut to each stimulus's pages; joins over the turns no condition's "
              "director played as a break (the same turns for every condition); the contrast / consistency ratio "
              "is the whole run's. The study's player plays each turn as the version's cue sheet says (its chosen "
              "transitions, its crossfade lengths), so a turn's figure is of what a listener heard.", "", "### Spearman correlation with the ratings",
              ""]
    if ratings.empty:
        return "\n".join(lines + ["No ratings yet: the correlations appear once listeners have rated.", ""])
    people = ratings["participant"].nunique() if "participant" in ratings else 0
    if people < MIN_PARTICIPANTS:
        return "\n".join(lines + [f"Ratings from {people} participant{'s' if people != 1 else ''} so far: the "
                                  f"correlations wait for {MIN_PARTICIPANTS}, as the analysis does.", ""])
    lines += ["| measure | " + " | ".join(CRITERIA) + " |", "|---|" + "---|" * len(CRITERIA)]
    by = {(c.measure, c.criterion): c for c in correlations(figures, ratings)}
    for m in MEASURES:
        cells = []
        for criterion in CRITERIA:
            c = by[(m.key, criterion)]
            cells.append(f"ρ = {c.rho:.2f} (n = {c.n}, p = {c.p:.3f})" if c.rho is not None else f"n = {c.n}: {c.note}")
        lines.append(f"| {m.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", "Over stimulus x condition cells: each figure against the mean rating of the cell.", ""])
