"""A study's analysis as a researcher reads it: the figure (as the paper's Figures 3 and 4) and the
Markdown report with every number, the cohort and the listening times.

Apart from the statistics (``analysis``) because it only reads their results (``results``): it is
about presenting them (names from the questionnaire, APA-style p values, "n/a" for an undefined
test) and about writing the files so a reader never sees half of them.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .questionnaire import CRITERIA, SCORE_MAX, load_questionnaire
from .results import RUSHED_BELOW_S, Cohort, ListeningSummary, StudyAnalysis, plural


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    figure: Path


def condition_names() -> dict[str, str]:
    """Condition -> the name reports give it (the questionnaire's ``report_condition_names``)."""
    return _names()[1]


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
                     f"{plural(group.registered or 0, 'registered participant')} screened out"
                     + (f": {who}." if who else "."))
    elif group.registered is not None:
        screening = (f"**Screening:** none; all {plural(group.registered, 'registered participant')} are included "
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
