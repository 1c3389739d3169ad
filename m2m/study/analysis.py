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
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats
from statsmodels.stats.multitest import multipletests

from .manifest import CONDITIONS
from .questionnaire import CRITERIA, PAPER_SCREENING_RULE, SCORE_MAX, load_questionnaire
from .records import RATING_FIELDS, Participant, Rating, screening_reasons

REQUIRED_COLUMNS: tuple[str, ...] = ("participant", "stimulus", "condition", *CRITERIA)
CONFIDENCE = 0.95
# Participant means are averages of 1-5 integer scores, so a sum of squares or a spread this small
# (relative to the total, for sums of squares) is floating-point rounding of an exact zero, not data.
RELATIVE_TOLERANCE = 1e-9
ABSOLUTE_TOLERANCE = 1e-9
MORE_PARTICIPANTS = "more participants are needed"
# Listening time below which a rating is counted as possibly rushed in the report. A version is four
# pages with a looping clip: under ten seconds nobody has read the pages and heard the music change.
RUSHED_BELOW_S = 10.0
LISTENED_COLUMN = "listened_s"


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
    """Repeated-measures ANOVA for one criterion: F(df_num, df_den), p, partial eta squared.

    When the test is undefined, F, p and eta are NaN and ``note`` says why in plain words."""

    criterion: str
    f_value: float
    df_num: float
    df_den: float
    p_value: float
    partial_eta_squared: float
    note: str = ""


@dataclass(frozen=True)
class PairwiseTest:
    """Paired t-test of condition_a against condition_b; mean_difference = a - b over participant means.

    When the test is undefined, t and both p are NaN, ``significant`` is False and ``note`` says why."""

    criterion: str
    condition_a: str
    condition_b: str
    mean_difference: float
    t: float
    df: int
    p_value: float
    p_holm: float
    significant: bool
    note: str = ""


@dataclass(frozen=True)
class ScreenedOut:
    participant: str
    reason: str


@dataclass(frozen=True)
class Cohort:
    """Every participant in exactly one group, so the report accounts for all of them.

    ``rule`` is the screening rule applied (None: everyone included); ``registered`` is None when the
    analysis was given ratings only, without the participants' screening answers."""

    rule: str | None
    registered: int | None
    screened_out: tuple[ScreenedOut, ...]
    not_started: tuple[str, ...]
    incomplete: tuple[str, ...]
    complete: tuple[str, ...]
    ratings: int

    def status(self) -> str:
        """One line for the researcher: how many registered, analysed, left out and screened out."""
        total = self.registered if self.registered is not None else (
            len(self.not_started) + len(self.incomplete) + len(self.complete))
        counted = "registered" if self.registered is not None else "in the ratings"
        if self.rule is not None:
            screening = f"{len(self.screened_out)} screened out by the paper's rule"
        elif self.registered is not None:
            screening = "none screened out (every participant included)"
        else:
            screening = "screening not applied (no screening answers)"
        left_out = len(self.incomplete) + len(self.not_started)
        return (f"{_count(total, 'participant')} {counted}: {len(self.complete)} complete "
                f"({_count(self.ratings, 'rating')} analysed), {left_out} left out ({len(self.incomplete)} "
                f"incomplete, {len(self.not_started)} with no ratings), {screening}.")


@dataclass(frozen=True)
class ListeningSummary:
    """How long the analysed ratings of one condition were listened to before rating.

    ``recorded`` counts ratings with a listening time (older ones have none); ``median_s`` is NaN and
    ``rushed`` 0 when none has."""

    condition: str
    ratings: int
    recorded: int
    median_s: float
    rushed: int


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
    cohort: Cohort
    listening: tuple[ListeningSummary, ...] = ()

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


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


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
        raise ValueError(f"need at least 2 participants who rated every condition {list(order)}, "
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
        return _no_anova(criterion, df_num, df_den, f"only {_count(n, 'participant')}; at least 2 are needed")
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
        return f"only {_count(len(diff), 'participant')}; at least 2 are needed"
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


def _note(note: str) -> str:
    return f"not available: {note}" if note else ""


def _ids(ids: Iterable[str]) -> str:
    return ", ".join(f"`{p}`" for p in ids)


def _cohort_lines(group: Cohort) -> list[str]:
    """Which screening rule was used, and everyone left out with the reason."""
    if group.rule is not None:
        who = "; ".join(f"`{s.participant}` ({s.reason})" for s in group.screened_out)
        screening = (f"**Screening:** the paper's inclusion rule ({group.rule}); {len(group.screened_out)} of "
                     f"{_count(group.registered or 0, 'registered participant')} screened out"
                     + (f": {who}." if who else "."))
    elif group.registered is not None:
        screening = (f"**Screening:** none; all {_count(group.registered, 'registered participant')} are included "
                     "(the paper's inclusion rule was switched off).")
    else:
        screening = ("**Screening:** not applied; the analysis was given the ratings without the participants' "
                     "screening answers.")
    lines = [screening, ""]
    if group.incomplete:
        lines += [f"**Left out:** {len(group.incomplete)} participant(s) did not rate every condition "
                  f"(the repeated-measures ANOVA needs balanced data): {_ids(group.incomplete)}.", ""]
    if group.not_started:
        lines += [f"**Left out:** {len(group.not_started)} participant(s) signed up but gave no ratings: "
                  f"{_ids(group.not_started)}.", ""]
    return lines


def _listening_lines(listening: Sequence[ListeningSummary], cond: Callable[[str], str]) -> list[str]:
    """The "Listening time" section: a researcher sees at a glance whether ratings were rushed."""
    lines = [
        "## Listening time",
        "",
        "Seconds each analysed rating's version was listened to (study audio running, summed over "
        f"\"Listen again\"), and how many ratings came after less than {RUSHED_BELOW_S:g} s. Recorded, not enforced.",
        "",
        f"| Condition | Ratings | Recorded | Median (s) | Under {RUSHED_BELOW_S:g} s |",
        "|---|---:|---:|---:|---:|",
    ]
    for item in listening:
        if item.recorded:
            median, rushed = _num(item.median_s, 1), f"{item.rushed} of {item.recorded}"
        else:
            median = rushed = "not recorded"
        lines.append(f"| {cond(item.condition)} | {item.ratings} | {item.recorded} | {median} | {rushed} |")
    return lines + [""]


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
    lines += _cohort_lines(analysis.cohort)
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
        "| Criterion | F | df | p | partial η² | Note |",
        "|---|---:|---|---:|---:|---|",
    ]
    for a in analysis.anovas:
        lines.append(
            f"| {criterion_names[a.criterion]} | {_num(a.f_value)} | {a.df_num:g}, {a.df_den:g} | {_p(a.p_value)} "
            f"| {_num(a.partial_eta_squared)} | {_note(a.note)} |"
        )
    lines += [
        "",
        f"## Post-hoc paired t-tests (Holm-corrected within each criterion, α = {analysis.alpha:g})",
        "",
        "| Criterion | Comparison | Mean difference | t | df | p | p (Holm) | Significant | Note |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for t in analysis.posthoc:
        # An undefined test was not made: neither "yes" nor "no".
        significant = "n/a" if t.note else ("yes" if t.significant else "no")
        lines.append(
            f"| {criterion_names[t.criterion]} | {cond(t.condition_a)} − {cond(t.condition_b)} | {_num(t.mean_difference)} "
            f"| {_num(t.t)} | {t.df} | {_p(t.p_value)} | {_p(t.p_holm)} | {significant} | {_note(t.note)} |"
        )
    lines.append("")
    lines += _listening_lines(analysis.listening, cond)
    return "\n".join(lines)


def write_report(analysis: StudyAnalysis, folder: str | os.PathLike[str], title: str, stem: str = "report") -> ReportFiles:
    """``<folder>/<stem>.md`` and ``<folder>/<stem>.png`` (the Markdown links the figure relatively).

    Both are written in a private folder and then moved into place, so a researcher reading the
    report while another asks for it never gets half a chart."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".report-", dir=folder))
    try:
        figure = plot_means(analysis, scratch / f"{stem}.png", title)
        markdown = scratch / f"{stem}.md"
        markdown.write_text(render_report(analysis, title, figure.name), encoding="utf-8")
        os.replace(figure, folder / figure.name)
        os.replace(markdown, folder / markdown.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return ReportFiles(markdown=folder / f"{stem}.md", figure=folder / f"{stem}.png")
