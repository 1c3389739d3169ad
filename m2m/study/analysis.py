"""Statistics of a listening study, as in the paper's Figures 3 and 4.

Per criterion (relevancy, quality, consistency):

1. each participant's ratings are averaged per condition (the unit of analysis is the participant,
   not the rating: ratings from one person are not independent);
2. mean and t-based 95% confidence interval over those participant means, per condition;
3. a repeated-measures ANOVA with condition as the within-subject factor (statsmodels AnovaRM);
4. post-hoc paired t-tests between every pair of conditions, Holm-corrected within the criterion.

AnovaRM needs every participant in every condition, so a participant missing a condition is left
out of all of these (so means, ANOVA and t-tests describe the same people) and the report lists them.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats
from statsmodels.stats.anova import AnovaRM
from statsmodels.stats.multitest import multipletests

from .manifest import CONDITIONS
from .questionnaire import CRITERIA, SCORE_MAX, load_questionnaire
from .store import RATING_FIELDS, Rating

REQUIRED_COLUMNS: tuple[str, ...] = ("participant", "stimulus", "condition", *CRITERIA)
CONFIDENCE = 0.95


@dataclass(frozen=True)
class ConditionSummary:
    """Mean of participant means for one criterion and condition, with a t-based CI."""

    criterion: str
    condition: str
    n: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class AnovaResult:
    """Repeated-measures ANOVA for one criterion: F(df_num, df_den), p, partial eta squared."""

    criterion: str
    f_value: float
    df_num: float
    df_den: float
    p_value: float
    partial_eta_squared: float


@dataclass(frozen=True)
class PairwiseTest:
    """Paired t-test of condition_a against condition_b; mean_difference = a - b over participant means."""

    criterion: str
    condition_a: str
    condition_b: str
    mean_difference: float
    t: float
    df: int
    p_value: float
    p_holm: float
    significant: bool


@dataclass(frozen=True)
class StudyAnalysis:
    conditions: tuple[str, ...]
    participants: tuple[str, ...]
    dropped: tuple[str, ...]
    n_stimuli: int
    n_ratings: int
    alpha: float
    summaries: tuple[ConditionSummary, ...]
    anovas: tuple[AnovaResult, ...]
    posthoc: tuple[PairwiseTest, ...]

    def summary(self, criterion: str, condition: str) -> ConditionSummary:
        for s in self.summaries:
            if s.criterion == criterion and s.condition == condition:
                return s
        raise ValueError(f"no summary for criterion {criterion!r} and condition {condition!r}")

    def anova(self, criterion: str) -> AnovaResult:
        for a in self.anovas:
            if a.criterion == criterion:
                return a
        raise ValueError(f"criterion must be one of {list(CRITERIA)}, got {criterion!r}")


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    figure: Path


def ratings_frame(ratings: Iterable[Rating]) -> pd.DataFrame:
    """Ratings from the store as a DataFrame with ``REQUIRED_COLUMNS`` (and the rest of ``Rating``)."""
    return pd.DataFrame.from_records([asdict(r) for r in ratings], columns=list(RATING_FIELDS))


def analyse(ratings: pd.DataFrame, conditions: Sequence[str] | None = None, alpha: float = 0.05) -> StudyAnalysis:
    """Run the paper's analysis on a ratings table (one row per participant x stimulus x condition).

    ``conditions`` fixes which conditions to compare and their order (default: those present, in
    the order m2m, baseline, random, then any others alphabetically).
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

    means = data.groupby(["participant", "condition"], as_index=False)[list(CRITERIA)].mean()
    counts = means.groupby("participant")["condition"].nunique()
    complete = tuple(sorted(counts.index[counts == len(order)]))
    dropped = tuple(sorted(counts.index[counts < len(order)]))
    if len(complete) < 2:
        raise ValueError(f"need at least 2 participants who rated every condition {list(order)}, got {len(complete)}")
    balanced = means[means["participant"].isin(complete)].reset_index(drop=True)
    used = data[data["participant"].isin(complete)]

    summaries = tuple(_summarise(balanced, criterion, condition) for criterion in CRITERIA for condition in order)
    anovas = tuple(_anova(balanced, criterion) for criterion in CRITERIA)
    posthoc = tuple(test for criterion in CRITERIA for test in _posthoc(balanced, criterion, order, alpha))
    return StudyAnalysis(
        conditions=order,
        participants=complete,
        dropped=dropped,
        n_stimuli=int(used["stimulus"].nunique()),
        n_ratings=len(used),
        alpha=alpha,
        summaries=summaries,
        anovas=anovas,
        posthoc=posthoc,
    )


def _summarise(means: pd.DataFrame, criterion: str, condition: str) -> ConditionSummary:
    values = means.loc[means["condition"] == condition, criterion].to_numpy(dtype=float)
    n = len(values)
    mean = float(values.mean())
    sd = float(values.std(ddof=1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * sd / math.sqrt(n)
    return ConditionSummary(criterion, condition, n, mean, sd, mean - half, mean + half)


def _anova(means: pd.DataFrame, criterion: str) -> AnovaResult:
    # With no within-participant variance at all F is 0/0. AnovaRM then returns NaN or, through
    # rounding, a meaningless F (even a negative one); report "n/a" rather than a made-up number.
    spread = means[criterion] - means.groupby("participant")[criterion].transform("mean")
    if not np.any(np.abs(spread.to_numpy(dtype=float)) > 1e-9):
        nan = float("nan")
        return AnovaResult(criterion, nan, nan, nan, nan, nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        table = AnovaRM(data=means, depvar=criterion, subject="participant", within=["condition"]).fit().anova_table
    row = table.loc["condition"]
    f_value, df_num, df_den = float(row["F Value"]), float(row["Num DF"]), float(row["Den DF"])
    denominator = f_value * df_num + df_den
    eta = f_value * df_num / denominator if math.isfinite(f_value) and denominator > 0 else float("nan")
    return AnovaResult(criterion, f_value, df_num, df_den, float(row["Pr > F"]), eta)


def _posthoc(means: pd.DataFrame, criterion: str, order: tuple[str, ...], alpha: float) -> list[PairwiseTest]:
    wide = means.pivot(index="participant", columns="condition", values=criterion)
    raw: list[tuple[str, str, float, float, int, float]] = []
    for a, b in itertools.combinations(order, 2):
        diff = wide[a].to_numpy(dtype=float) - wide[b].to_numpy(dtype=float)
        if np.all(diff == 0):
            # Identical means for everyone: t is 0/0. No evidence of a difference, so p = 1.
            t, p = 0.0, 1.0
        else:
            result = stats.ttest_rel(wide[a], wide[b])
            t, p = float(result.statistic), float(result.pvalue)
        raw.append((a, b, float(diff.mean()), t, len(diff) - 1, p))
    reject, corrected, _, _ = multipletests([r[5] for r in raw], alpha=alpha, method="holm")
    return [
        PairwiseTest(criterion, a, b, diff, t, df, p, float(p_holm), bool(rej))
        for (a, b, diff, t, df, p), p_holm, rej in zip(raw, corrected, reject, strict=True)
    ]


# --- figure and report ------------------------------------------------------------------------------


def _names() -> tuple[dict[str, str], dict[str, str]]:
    questionnaire = load_questionnaire()
    criteria = {c.key: c.name for c in questionnaire.criteria}
    return criteria, dict(questionnaire.report_condition_names)


def plot_means(analysis: StudyAnalysis, path: str | os.PathLike[str], title: str = "", dpi: int = 150) -> Path:
    """Grouped bar chart like the paper's Figures 3-4: one group per criterion, one bar per condition,
    error bars the 95% CI. Written as PNG with the Agg canvas (no pyplot, no global backend switch,
    so it is safe in a server thread)."""
    criterion_names, condition_names = _names()
    figure = Figure(figsize=(6.4, 4.0), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    x = np.arange(len(CRITERIA))
    width = 0.8 / len(analysis.conditions)
    for i, condition in enumerate(analysis.conditions):
        rows = [analysis.summary(criterion, condition) for criterion in CRITERIA]
        heights = [r.mean for r in rows]
        errors = [[r.mean - r.ci_low for r in rows], [r.ci_high - r.mean for r in rows]]
        offset = (i - (len(analysis.conditions) - 1) / 2) * width
        bars = axes.bar(x + offset, heights, width, yerr=errors, capsize=4, label=condition_names.get(condition, condition))
        axes.bar_label(bars, fmt="%.2f", padding=2, fontsize=7, label_type="center", color="white")
    axes.set_xticks(x, [criterion_names[c] for c in CRITERIA])
    # A little headroom so an error bar near the top of the scale is not cut off.
    axes.set_ylim(0, SCORE_MAX + 0.25)
    axes.set_yticks(range(SCORE_MAX + 1))
    axes.set_ylabel(f"Mean score (1-{SCORE_MAX})")
    axes.set_title(title or f"Mean scores, n = {len(analysis.participants)} participants")
    # Below the axes, so it can never cover a bar that reaches the top of the scale.
    figure.legend(loc="outside lower center", ncols=len(analysis.conditions), fontsize=8, frameon=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def _p(p: float) -> str:
    if not math.isfinite(p):
        return "n/a"
    # APA style, plus the exact value so the report still carries every number.
    return f"< .001 ({p:.1e})" if p < 0.001 else f"{p:.3f}"


def _num(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "n/a"


def render_report(analysis: StudyAnalysis, title: str, figure: str | None = None) -> str:
    """Markdown with every number: means and CIs, F(df1, df2), p, effect size, the post-hoc table."""
    criterion_names, condition_names = _names()

    def cond(condition: str) -> str:
        return condition_names.get(condition, condition)

    lines = [
        f"# {title}",
        "",
        f"{len(analysis.participants)} participants, {analysis.n_stimuli} stimuli, "
        f"{len(analysis.conditions)} conditions ({', '.join(cond(c) for c in analysis.conditions)}), "
        f"{analysis.n_ratings} ratings. Scores run from 1 (very low) to {SCORE_MAX} (very high). "
        "Each participant's ratings are averaged per condition; all statistics are over these participant means.",
        "",
    ]
    if analysis.dropped:
        lines += [
            f"**Note:** {len(analysis.dropped)} participant(s) did not rate every condition and are left out "
            "(the repeated-measures ANOVA needs balanced data): "
            + ", ".join(f"`{p}`" for p in analysis.dropped)
            + ".",
            "",
        ]
    if figure:
        lines += [f"![Mean scores per criterion and condition, error bars 95% CI]({figure})", ""]
    lines += [
        "## Means",
        "",
        "| Criterion | Condition | n | Mean | SD | 95% CI |",
        "|---|---|---:|---:|---:|---|",
    ]
    for s in analysis.summaries:
        lines.append(
            f"| {criterion_names[s.criterion]} | {cond(s.condition)} | {s.n} | {_num(s.mean)} | {_num(s.sd)} "
            f"| [{_num(s.ci_low)}, {_num(s.ci_high)}] |"
        )
    lines += [
        "",
        "## Repeated-measures ANOVA (within-subject factor: condition)",
        "",
        "| Criterion | F | df | p | partial η² |",
        "|---|---:|---|---:|---:|",
    ]
    for a in analysis.anovas:
        lines.append(
            f"| {criterion_names[a.criterion]} | {_num(a.f_value)} | {a.df_num:g}, {a.df_den:g} | {_p(a.p_value)} "
            f"| {_num(a.partial_eta_squared)} |"
        )
    lines += [
        "",
        f"## Post-hoc paired t-tests (Holm-corrected within each criterion, α = {analysis.alpha:g})",
        "",
        "| Criterion | Comparison | Mean difference | t | df | p | p (Holm) | Significant |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for t in analysis.posthoc:
        lines.append(
            f"| {criterion_names[t.criterion]} | {cond(t.condition_a)} − {cond(t.condition_b)} | {_num(t.mean_difference)} "
            f"| {_num(t.t)} | {t.df} | {_p(t.p_value)} | {_p(t.p_holm)} | {'yes' if t.significant else 'no'} |"
        )
    lines.append("")
    return "\n".join(lines)


def write_report(analysis: StudyAnalysis, folder: str | os.PathLike[str], title: str, stem: str = "report") -> ReportFiles:
    """``<folder>/<stem>.md`` and ``<folder>/<stem>.png`` (the Markdown links the figure relatively)."""
    folder = Path(folder)
    figure = plot_means(analysis, folder / f"{stem}.png", title)
    markdown = folder / f"{stem}.md"
    markdown.write_text(render_report(analysis, title, figure.name), encoding="utf-8")
    return ReportFiles(markdown=markdown, figure=figure)
