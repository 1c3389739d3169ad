"""The researcher's report on a study so far, for the Study tab and the API's ``/admin/results``.

It runs the study's analysis on the ratings as they stand and says, in one message, who is counted;
too little data yet is a report that says so, not an error, since a researcher looks early and often.
Beside it: the objective figures of the stimuli (``STUDY/evaluation.json``, written by ``m2m
evaluate``) with the Spearman correlation of each against each rated scale.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from m2m.study import RatingsStore, Study
from m2m.ui.study_config import RESULTS_DIR, study_folder


@dataclass(frozen=True)
class ResearcherReport:
    """The analysis as it stands: Markdown and chart (None until it can be computed) and counts."""

    participants: int
    ratings: int
    markdown: str | None
    figure: Path | None
    message: str
    figures: str = ""  # the stimuli's objective figures beside the ratings, and their correlations (Markdown)


def researcher_report(study: Study, study_dir: str | os.PathLike[str], store: RatingsStore,
                      include_all: bool = False) -> ResearcherReport:
    """Analyse the ratings so far into ``<study_dir>/results/report.{md,png}``: the participants who
    meet the paper's screening rule, or everyone with ``include_all``.

    Not enough data yet (fewer than two complete participants) is a report with a message, not an
    error; the message accounts for every participant either way. ``write_report`` moves finished
    files into place, so two researchers asking at once never read half a chart. StoreError
    propagates (the database is down).
    """
    from m2m.study import analyse, ratings_frame, write_report
    from m2m.study.analysis import cohort

    ratings = store.ratings(study.id)
    people = store.participants(study.id)
    frame = ratings_frame(ratings)
    counted = cohort(frame, people, include_all)
    # the figures are set beside the ratings of the same people the analysis counts
    figures = objective_figures(study, study_dir, frame[frame["participant"].astype(str).isin(counted.complete)])

    def unanalysed(why: str) -> ResearcherReport:
        # The counts come from the sorting the analysis itself uses, so they are right with no report too.
        return ResearcherReport(len(people), len(ratings), None, None, f"{counted.status()} {why}", figures)

    try:
        analysis = analyse(frame, participants=people, include_all=include_all)
    except ValueError as e:
        return unanalysed(f"No report yet: {e}.")
    except ArithmeticError as e:
        # Degenerate data can still break the statistics; the researcher gets the reason on the page
        # and the raw ratings still export.
        return unanalysed(f"The analysis failed on these ratings: {e!r}.")
    files = write_report(analysis, study_folder(study_dir) / RESULTS_DIR, study.title)
    return ResearcherReport(len(people), len(ratings), files.markdown.read_text(encoding="utf-8"), files.figure,
                            analysis.cohort.status(), figures)


def objective_figures(study: Study, study_dir: str | os.PathLike[str], ratings: pd.DataFrame) -> str:
    """``m2m evaluate``'s figures of the study's stimuli beside these ratings (m2m/study/figures.py)."""
    from m2m.study.figures import figures_markdown
    from m2m.study.report import condition_names

    names = condition_names()
    return figures_markdown(study, study_folder(study_dir), ratings, lambda c: names.get(c, c))
