"""Statistics of a listening study, as in the paper's Figures 3 and 4.

Per criterion (relevancy, quality, consistency):

1. each participant's ratings are averaged per condition (the unit of analysis is the participant,
   not the rating: ratings from one person are not independent);
2. mean and t-based 95% confidence interval over those participant means, per condition;
3. a one-way repeated-measures ANOVA with condition as the within-subject factor;
4. post-hoc paired t-tests between every pair of conditions, Holm-corrected within the criterion.

Who is analysed (``cohort``): given the participants' screening answers, only those meeting the
paper's inclusion rule (``questionnaire.PAPER_SCREENING_RULE``) unless ``include_all``; of those,
only people who rated every condition, since the repeated-measures ANOVA needs balanced data (so
means, ANOVA and t-tests describe the same people). The report lists everyone left out and why.

A test whose error term has no variance (every participant shows exactly the same differences, or
too few participants for one error degree of freedom) is undefined: F or t and p are NaN with a
``note`` saying why, and such a comparison is never called significant.

The result records are in ``results`` and the figure and Markdown report in ``report``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from .manifest import CONDITIONS
from .questionnaire import CRITERIA, PAPER_SCREENING_RULE
from .records import RATING_FIELDS, Participant, Rating, screening_reasons

# The result records and the report live in their own modules; their names are importable from
# here as they were before the split, so callers need not change.
from .report import ReportFiles, plot_means, render_report, write_report
from .results import (
    RUSHED_BELOW_S,
    AnovaResult,
    Cohort,
    ConditionSummary,
    ListeningSummary,
    PairwiseTest,
    ScreenedOut,
    StudyAnalysis,
    plural,
)

REQUIRED_COLUMNS: tuple[str, ...] = ("participant", "stimulus", "condition", *CRITERIA)
CONFIDENCE = 0.95
# Participant means are averages of 1-5 integer scores, so a sum of squares or a spread this small
# (relative to the total, for sums of squares) is floating-point rounding of an exact zero, not data.
RELATIVE_TOLERANCE = 1e-9
ABSOLUTE_TOLERANCE = 1e-9
MORE_PARTICIPANTS = "more participants are needed"
LISTENED_COLUMN = "listened_s"

__all__ = [
    "ABSOLUTE_TOLERANCE", "CONFIDENCE", "LISTENED_COLUMN", "MORE_PARTICIPANTS", "RELATIVE_TOLERANCE",
    "REQUIRED_COLUMNS", "RUSHED_BELOW_S", "AnovaResult", "Cohort", "ConditionSummary", "ListeningSummary",
    "PairwiseTest", "ReportFiles", "ScreenedOut", "StudyAnalysis", "analyse", "cohort", "plot_means",
    "ratings_frame", "render_report", "write_report",
]


def ratings_frame(ratings: Iterable[Rating]) -> pd.DataFrame:
    """Ratings from the store as a DataFrame with ``REQUIRED_COLUMNS`` (and the rest of ``Rating``)."""
    return pd.DataFrame.from_records([asdict(r) for r in ratings], columns=list(RATING_FIELDS))


def cohort(ratings: pd.DataFrame, participants: Iterable[Participant] | None = None, include_all: bool = False,
           conditions: Sequence[str] = CONDITIONS) -> Cohort:
    """Sort participants into screened out, no ratings, incomplete and complete (rated every one of
    ``conditions``). ``participants`` are the registered participants with their screening answers;
    without them nobody can be screened, and only people who rated something are known."""
    rated = ratings[ratings["condition"].astype(str).isin(conditions)]
    per_person = rated.groupby(rated["participant"].astype(str))["condition"].nunique()
    seen = set(ratings["participant"].astype(str))
    screened_out: list[ScreenedOut] = []
    if participants is None:
        rule, registered, everyone = None, None, seen
    else:
        records = {p.id: p for p in participants}
        everyone = set(records) | seen
        rule, registered = (None if include_all else PAPER_SCREENING_RULE), len(everyone)
        for pid in sorted(everyone) if rule else ():
            # Ratings with no participant record (e.g. imported from elsewhere) have no answers to check.
            reasons = screening_reasons(records[pid].screening) if pid in records else ("no screening answers on record",)
            if reasons:
                screened_out.append(ScreenedOut(pid, "; ".join(reasons)))
    kept = everyone - {s.participant for s in screened_out}
    complete = tuple(sorted(p for p in kept if per_person.get(p, 0) == len(conditions)))
    incomplete = tuple(sorted(p for p in kept & seen if p not in complete))
    not_started = tuple(sorted(kept - seen))
    return Cohort(rule, registered, tuple(screened_out), not_started, incomplete, complete,
                  int(rated["participant"].astype(str).isin(complete).sum()))


def analyse(ratings: pd.DataFrame, conditions: Sequence[str] | None = None, alpha: float = 0.05,
            participants: Iterable[Participant] | None = None, include_all: bool = False) -> StudyAnalysis:
    """Run the paper's analysis on a ratings table (one row per participant x stimulus x condition).

    ``conditions`` fixes which conditions to compare and their order (default: those present, in
    the order m2m, baseline, random, then any others alphabetically). ``participants`` (from the
    store) turns on the paper's screening rule, unless ``include_all``; see ``cohort``.
    """
    if not isinstance(ratings, pd.DataFrame):
        raise ValueError(f"ratings must be a pandas DataFrame, got {type(ratings).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in ratings.columns]
    if missing:
        raise ValueError(f"ratings is missing column(s) {missing}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    data = ratings.loc[:, list(REQUIRED_COLUMNS)].copy()
    data["participant"] = data["participant"].astype(str)
    data["condition"] = data["condition"].astype(str)
    for criterion in CRITERIA:
        values = pd.to_numeric(data[criterion], errors="coerce")
        if values.isna().any():
            bad = data.loc[values.isna(), criterion].iloc[0]
            raise ValueError(f"ratings.{criterion} must be numeric with no gaps, got {bad!r}")
        data[criterion] = values.astype(float)
    # Optional: ratings from before listening times were recorded (or from elsewhere) have none.
    listened = ratings[LISTENED_COLUMN] if LISTENED_COLUMN in ratings.columns else pd.Series(np.nan, index=ratings.index)
    data[LISTENED_COLUMN] = pd.to_numeric(listened, errors="coerce").to_numpy()

    present = set(data["condition"])
    if conditions is None:
        order = tuple(c for c in CONDITIONS if c in present) + tuple(sorted(present - set(CONDITIONS)))
    else:
        order = tuple(conditions)
        absent = [c for c in order if c not in present]
        if absent:
            raise ValueError(f"conditions {absent} have no ratings (present: {sorted(present)})")
        data = data[data["condition"].isin(order)]
    if len(order) < 2:
        raise ValueError(f"need at least 2 conditions to compare, got {list(order)}")

    # All ratings, so that someone who rated only conditions left out of ``conditions`` counts as
    # incomplete rather than as someone who never rated anything.
    groups = cohort(data, participants, include_all, order)
    complete = groups.complete
    if len(complete) < 2:
        # a pilot among colleagues is often screened out entirely: say how to include them
        screened = (f" ({len(groups.screened_out)} screened out by the paper's rule; include every participant "
                    "to analyse them anyway)") if groups.screened_out else ""
        raise ValueError(f"need at least 2 participants who rated every condition ({', '.join(order)}), "
                         f"got {len(complete)}{screened}")
    used = data[data["participant"].isin(complete)]
    balanced = used.groupby(["participant", "condition"], as_index=False)[list(CRITERIA)].mean()

    summaries = tuple(_summarise(balanced, criterion, condition) for criterion in CRITERIA for condition in order)
    anovas = tuple(_anova(balanced, criterion) for criterion in CRITERIA)
    posthoc = tuple(test for criterion in CRITERIA for test in _posthoc(balanced, criterion, order, alpha))
    return StudyAnalysis(
        conditions=order,
        participants=complete,
        dropped=groups.incomplete,
        n_stimuli=int(used["stimulus"].nunique()),
        n_ratings=len(used),
        alpha=alpha,
        summaries=summaries,
        anovas=anovas,
        posthoc=posthoc,
        cohort=groups,
        listening=tuple(_listening(used, condition) for condition in order),
    )


def _listening(used: pd.DataFrame, condition: str) -> ListeningSummary:
    """Median listening time and the count under ``RUSHED_BELOW_S`` for one condition's analysed ratings."""
    seconds = used.loc[used["condition"] == condition, LISTENED_COLUMN]
    recorded = seconds.dropna()
    median = float(recorded.median()) if len(recorded) else math.nan
    return ListeningSummary(condition, len(seconds), len(recorded), median, int((recorded < RUSHED_BELOW_S).sum()))


def _summarise(means: pd.DataFrame, criterion: str, condition: str) -> ConditionSummary:
    values = means.loc[means["condition"] == condition, criterion].to_numpy(dtype=float)
    n = len(values)
    mean = float(values.mean())
    sd = float(values.std(ddof=1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * sd / math.sqrt(n)
    return ConditionSummary(criterion, condition, n, mean, sd, mean - half, mean + half)


def _anova(means: pd.DataFrame, criterion: str) -> AnovaResult:
    """One-way repeated-measures ANOVA from its sums of squares (the classical, sphericity-assumed F)."""
    wide = means.pivot(index="participant", columns="condition", values=criterion).to_numpy(dtype=float)
    n, k = wide.shape
    df_num, df_den = k - 1, (k - 1) * (n - 1)
    if df_den < 1:
        return _no_anova(criterion, df_num, df_den, f"only {plural(n, 'participant')}; at least 2 are needed")
    # Taking each participant's own mean out first is what makes the test within-subject.
    within = wide - wide.mean(axis=1, keepdims=True)
    effects = wide.mean(axis=0) - wide.mean()
    residual = within - effects
    ss_within = float((within**2).sum())
    ss_condition = float(n * (effects**2).sum())
    ss_error = float((residual**2).sum())
    if ss_within <= ABSOLUTE_TOLERANCE:
        return _no_anova(criterion, df_num, df_den,
                         "every participant gave every condition the same mean score; there is nothing to test")
    # No error variance: F would be a ratio over (rounding) zero, e.g. 1e30, with a meaningless p.
    if ss_error <= RELATIVE_TOLERANCE * ss_within:
        return _no_anova(criterion, df_num, df_den, "no variation between participants in the differences "
                         f"between conditions (each shows exactly the same ones); {MORE_PARTICIPANTS}")
    f_value = (ss_condition / df_num) / (ss_error / df_den)
    p_value = float(stats.f.sf(f_value, df_num, df_den))
    return AnovaResult(criterion, f_value, df_num, df_den, p_value, ss_condition / (ss_condition + ss_error))


def _no_anova(criterion: str, df_num: int, df_den: int, reason: str) -> AnovaResult:
    nan = float("nan")
    return AnovaResult(criterion, nan, df_num, df_den, nan, nan, reason)


def _untestable(diff: np.ndarray) -> str:
    """Why a paired t-test on these differences is undefined, or "" when it is not."""
    if len(diff) < 2:
        return f"only {plural(len(diff), 'participant')}; at least 2 are needed"
    # t = mean / (sd / sqrt(n)): with no spread in the differences it is x/0 or 0/0.
    if float(np.ptp(diff)) > ABSOLUTE_TOLERANCE:
        return ""
    if abs(float(diff[0])) <= ABSOLUTE_TOLERANCE:
        return "every participant gave both conditions the same mean score; there is no difference to test"
    return f"no variation between participants in this difference (it is the same for everyone); {MORE_PARTICIPANTS}"


def _posthoc(means: pd.DataFrame, criterion: str, order: tuple[str, ...], alpha: float) -> list[PairwiseTest]:
    wide = means.pivot(index="participant", columns="condition", values=criterion)
    nan = float("nan")
    raw: list[tuple[str, str, float, float, int, float, str]] = []
    for a, b in itertools.combinations(order, 2):
        diff = wide[a].to_numpy(dtype=float) - wide[b].to_numpy(dtype=float)
        note = _untestable(diff)
        if note:
            t, p = nan, nan
        else:
            result = stats.ttest_rel(wide[a], wide[b])
            t, p = float(result.statistic), float(result.pvalue)
        raw.append((a, b, float(diff.mean()), t, len(diff) - 1, p, note))
    # Holm runs over the tests actually made: an undefined one tests nothing, so it cannot add to the
    # family-wise error, and it is never significant.
    tested = [i for i, r in enumerate(raw) if not r[6]]
    corrected = [nan] * len(raw)
    reject = [False] * len(raw)
    if tested:
        flags, adjusted, _, _ = multipletests([raw[i][5] for i in tested], alpha=alpha, method="holm")
        for i, flag, p_holm in zip(tested, flags, adjusted, strict=True):
            corrected[i], reject[i] = float(p_holm), bool(flag)
    return [
        PairwiseTest(criterion, a, b, diff, t, df, p, p_holm, rej, note)
        for (a, b, diff, t, df, p, note), p_holm, rej in zip(raw, corrected, reject, strict=True)
    ]
