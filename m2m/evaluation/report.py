"""``m2m evaluate``'s output: the terminal table (conditions side by side), the JSON file and the
PNG chart. Presentation only: every number comes from evaluate.py's records, and a figure that
could not be measured is shown as "unavailable" with its reason, never left out."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from m2m.evaluation.evaluate import Evaluation, RunEvaluation
from m2m.evaluation.paired import MEASURES as PAIRED_MEASURES
from m2m.evaluation.paired import REFERENCE
from m2m.evaluation.recurrence import Recurrence
from m2m.evaluation.transitions import CLICK_DB, Join, Spread
from m2m.jsonio import to_jsonable, write_json_atomic

Row = Callable[[RunEvaluation], str]


def _n(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _spread(s: Spread, digits: int = 2) -> str:
    return f"{_n(s.mean, digits)} / {_n(s.worst, digits)}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def _split(joins: Sequence[Join], measure: Callable[[Join], float]) -> str:
    """The mean of ``measure`` over joins within a scene / at a scene change."""
    within = [measure(j) for j in joins if not j.scene_change]
    across = [measure(j) for j in joins if j.scene_change]
    return " / ".join(f"{np.mean(v):.2f}" if v else "n/a" for v in (within, across))


def _plan(r: RunEvaluation, text: Callable[[RunEvaluation], str]) -> str:
    return text(r) if r.plan.available else "unavailable"


def _kinds(kinds: Sequence[str]) -> str:
    if not kinds:
        return "none"
    counts = {k: kinds.count(k) for k in dict.fromkeys(kinds)}
    return ", ".join(f"{n} {k}" for k, n in counts.items())


def _motifs(r: RunEvaluation, text: Callable[[Recurrence], str]) -> str:
    return text(r.leitmotifs) if r.leitmotifs.available else "unavailable"


def character_lines(evaluation: Evaluation) -> list[str]:
    """Per run and character: the scenes where their theme was found (what "recurs" rests on)."""
    lines = []
    for r in evaluation.runs:
        for c in r.leitmotifs.characters:
            scenes = ", ".join(str(s) for s in c.scenes_found) or "none"
            lines.append(f"{r.condition}: {c.name}'s {c.instrument.lower()} theme found on {len(c.found_pages)} of "
                         f"{c.themed_pages} themed pages, in scenes {scenes}{' (recurs)' if c.recurs else ''}")
    return lines


def _clap(r: RunEvaluation, text: Callable[[RunEvaluation], str]) -> str:
    return text(r) if r.clap.available else "unavailable"


ROWS: tuple[tuple[str, Row | None], ...] = (
    ("pages (engine)", lambda r: f"{r.pages} ({r.engine})"),
    ("transitions, at every page join as played", None),
    ("  joins (at scene changes)", lambda r: f"{len(r.transitions.joins)} ({sum(j.scene_change for j in r.transitions.joins)})"),
    ("  seamless joins scored (deliberate breaks)", lambda r: f"{r.transitions.seamless} ({r.transitions.breaks.count})"),
    ("  crossfade s, within / at scene change", lambda r: _split(r.transitions.joins, lambda j: j.crossfade_seconds)),
    ("  seamless: loudness jump LU, mean / worst", lambda r: _spread(r.transitions.loudness_jump_lu)),
    ("  seamless: spectral distance dB, mean / worst", lambda r: _spread(r.transitions.spectral_distance_db)),
    ("  seamless: spectral dB, within / scene change",
     lambda r: _split([j for j in r.transitions.joins if not j.deliberate], lambda j: j.spectral_distance_db)),
    ("  mid-page (the music's own): loudness LU, mean / worst", lambda r: _spread(r.transitions.inside_loudness_jump_lu)),
    ("  mid-page (the music's own): spectral dB, mean / worst",
     lambda r: _spread(r.transitions.inside_spectral_distance_db)),
    ("  breaks: kinds", lambda r: _kinds(r.transitions.breaks.kinds)),
    ("  breaks: loudness jump LU, mean / worst", lambda r: _spread(r.transitions.breaks.loudness_jump_lu)),
    ("  breaks: spectral distance dB, mean / worst", lambda r: _spread(r.transitions.breaks.spectral_distance_db)),
    ("  click dB at every join, mean / worst", lambda r: _spread(r.transitions.click_db, 1)),
    ("  click dB at breaks, worst", lambda r: _n(r.transitions.breaks.click_db.worst, 1)),
    ("  loop seams, worst click dB", lambda r: f"{len(r.transitions.seams)}, {_n(r.transitions.seam_click_db.worst, 1)}"),
    (f"  clicks (> {CLICK_DB:g} dB, joins + seams)", lambda r: str(r.transitions.clicks)),
    ("scenes: within (consistency) / between (contrast)", None),
    ("  timbre, MFCC distance", lambda r: f"{_n(r.scenes.timbre_within)} / {_n(r.scenes.timbre_between)}"),
    ("  harmony, 1 - chroma correlation", lambda r: f"{_n(r.scenes.harmony_within, 3)} / {_n(r.scenes.harmony_between, 3)}"),
    ("  contrast / consistency: timbre, harmony", lambda r: f"{_n(r.scenes.timbre_ratio)}, {_n(r.scenes.harmony_ratio)}"),
    ("  contrast / consistency (geometric mean)", lambda r: _n(r.scenes.ratio)),
    ("plan adherence", None),
    ("  tempo within 4% (octave ok / as found)",
     lambda r: _plan(r, lambda r: f"{_pct(r.plan.tempo_match)} / {_pct(r.plan.tempo_exact)}")),
    ("  octave errors; median tempo error BPM",
     lambda r: _plan(r, lambda r: f"{r.plan.octave_errors}; {_n(r.plan.median_tempo_error_bpm, 1)}")),
    ("  key and mode / mode", lambda r: _plan(r, lambda r: f"{_pct(r.plan.key_match)} / {_pct(r.plan.mode_match)}")),
    ("levels per clip", None),
    ("  integrated LUFS, mean (spread)", lambda r: f"{_n(r.levels.mean_lufs, 1)} ({_n(r.levels.lufs_spread, 1)})"),
    ("  max true peak dBTP", lambda r: _n(r.levels.max_true_peak_db, 1)),
    ("  silent %, mean", lambda r: _n(r.levels.mean_silent_percent, 1)),
    ("  clipped samples", lambda r: str(r.levels.clipped_samples)),
    ("leitmotifs, against the m2m plan's themes", None),
    ("  themed pages where found (recall)",
     lambda r: _motifs(r, lambda m: f"{sum(c.found for c in m.checks if c.themed)}/{m.themed_checks} "
                                    f"({_pct(m.recall)})")),
    ("  found where not themed (false alarms)",
     lambda r: _motifs(r, lambda m: f"{sum(c.found for c in m.checks if not c.themed)}/{m.other_checks} "
                                    f"({_pct(m.false_alarm_rate)})")),
    ("  characters found in 2+ scenes", lambda r: _motifs(r, lambda m: f"{m.recurring_characters}/{len(m.characters)}")),
    ("CLAP", None),
    ("  text-audio agreement (margin)", lambda r: _clap(r, lambda r: f"{_n(r.clap.agreement, 3)} ({_n(r.clap.margin, 3)})")),
    ("  FAD", lambda r: _clap(r, lambda r: _n(r.clap.fad, 3) if r.clap.fad is not None else "unavailable")),
)


def paired_rows(evaluation: Evaluation) -> list[tuple[str, list[str]]]:
    """The rows pairing each run's seamless joins with the m2m run's of its book (paired.py): per
    measure, "m2m's mean / this run's, p (joins)"; the m2m run's own cell says it is the reference."""
    if not evaluation.paired:
        return []
    found = {(p.book_id, p.other, p.measure): p for p in evaluation.paired}

    def cell(r: RunEvaluation, measure: str) -> str:
        if r.condition == REFERENCE:
            return "reference"
        p = found.get((r.book_id, r.condition, measure))
        if p is None:
            return ""
        if p.p_value is None:
            return "n/a"
        digits = 3 if measure == "loudness_jump_lu" else 2
        shown = "p < 0.001" if p.p_value < 0.001 else f"p {p.p_value:.3f}"
        return f"{_n(p.mean, digits)} / {_n(p.other_mean, digits)}, {shown} ({p.joins})"

    rows = [(f"  same joins as {REFERENCE} (Wilcoxon signed-rank)", [""] * len(evaluation.runs))]
    rows += [(f"  {label}: {REFERENCE} / this, p (joins)", [cell(r, name) for r in evaluation.runs])
             for name, label, _ in PAIRED_MEASURES]
    return rows


def table(evaluation: Evaluation) -> str:
    """The figures as a text table, one column per run, with the reasons for anything unavailable."""
    runs = evaluation.runs
    heads = [r.condition if len({x.book_id for x in runs}) == 1 else f"{r.book_id}/{r.condition}" for r in runs]
    rows = [(label, [row(r) if row else "" for r in runs]) for label, row in ROWS]
    after = next(i for i, (label, _) in enumerate(rows) if label.startswith("scenes:"))  # the transitions' section
    rows[after:after] = paired_rows(evaluation)
    first = max(len(label) for label, _ in rows)
    widths = [max([len(h)] + [len(c[i]) for _, c in rows]) for i, h in enumerate(heads)]
    lines = ["  ".join([" " * first] + [h.rjust(w) for h, w in zip(heads, widths, strict=True)])]
    for label, row in rows:
        lines.append("  ".join([label.ljust(first)] + [c.rjust(w) for c, w in zip(row, widths, strict=True)]).rstrip())
    lines += _notes(evaluation)
    lines += character_lines(evaluation)
    return "\n".join(lines)


def _notes(evaluation: Evaluation) -> list[str]:
    """What the figures were judged against, and why anything is unavailable (said once if shared)."""
    notes: dict[str, list[str]] = {}
    for r in evaluation.runs:
        for text in (f"scenes from {r.scene_source}",
                     f"transitions: {r.transitions.counted}",
                     f"leitmotifs: {r.leitmotifs.note}" if not r.leitmotifs.available else "",
                     r.plan.note and f"plan: {r.plan.note}",
                     r.scenes.note and f"scenes: {r.scenes.note}",
                     f"CLAP: {r.clap.note}" if not r.clap.available else f"FAD: {r.clap.fad_note}"):
            if text:
                notes.setdefault(text, []).append(r.condition)
    every = len(evaluation.runs)
    lines = [f"{text}" if len(who) == every else f"{', '.join(who)}: {text}" for text, who in notes.items()]
    if evaluation.paired:
        tests = len(evaluation.paired)
        lines.append(f"same joins: each run's seamless joins paired page by page with the {REFERENCE} run's; a p under "
                     "0.05 says the two differ there by more than the joins' own spread explains; above it the means' "
                     "difference cannot be told from that spread at this many joins (which is not the same as no "
                     f"difference); {tests} test{'s' if tests != 1 else ''} in all, each at its own p")
    return lines


def write_json(evaluation: Evaluation, path: Path) -> Path:
    write_json_atomic(path, to_jsonable(evaluation))
    return path


def _bars(axes, runs: Sequence[RunEvaluation], groups: Sequence[str], values: Sequence[Sequence[float | None]],
          ylabel: str, title: str) -> None:
    """Grouped bars: one group per measure, one bar per run; a missing value is an empty slot marked n/a."""
    x = np.arange(len(groups))
    width = 0.8 / len(runs)
    for i, (run, row) in enumerate(zip(runs, values, strict=True)):
        offset = (i - (len(runs) - 1) / 2) * width
        heights = [v if v is not None else 0.0 for v in row]
        bars = axes.bar(x + offset, heights, width, label=run.condition, color=f"C{i}")
        axes.bar_label(bars, labels=[f"{v:.2f}" if v is not None else "n/a" for v in row], fontsize=6, padding=1)
    axes.set_xticks(x, groups, fontsize=8)
    axes.set_ylabel(ylabel, fontsize=8)
    axes.set_title(title, fontsize=9)
    axes.margins(y=0.15)


def _per_join(axes, runs: Sequence[RunEvaluation], measure: Callable[[Join], float], ylabel: str, title: str) -> None:
    for i, run in enumerate(runs):
        joins = run.transitions.joins
        axes.plot([j.at_seconds for j in joins], [measure(j) for j in joins], "o-", ms=3, lw=1, color=f"C{i}",
                  label=run.condition)
        breaks = [j for j in joins if j.deliberate]  # ringed: a break meant to be heard, not scored as smoothness
        axes.plot([j.at_seconds for j in breaks], [measure(j) for j in breaks], "o", ms=8, mfc="none", color=f"C{i}")
    for j in runs[0].transitions.joins:  # the scene changes of the first run's reference scenes
        if j.scene_change:
            axes.axvline(j.at_seconds, color="grey", ls=":", lw=1)
    axes.set_xlabel("join (s into the book; dotted: scene change; ringed: deliberate break)", fontsize=8)
    axes.set_ylabel(ylabel, fontsize=8)
    axes.set_title(title, fontsize=9)


def chart(evaluation: Evaluation, path: str | os.PathLike[str], dpi: int = 130) -> Path:
    """The figures as a PNG (Agg canvas, no pyplot): per-join loudness jumps and spectral distances,
    then bars for scene contrast, plan adherence, levels and CLAP."""
    runs = evaluation.runs
    figure = Figure(figsize=(13, 7.5), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.subplots(2, 3)
    _per_join(grid[0, 0], runs, lambda j: j.loudness_jump_lu, "LU", "Loudness jump at each join (lower: smoother)")
    _per_join(grid[0, 1], runs, lambda j: j.spectral_distance_db, "dB",
              "Spectral distance at each join (lower: smoother)")
    _bars(grid[0, 2], runs, ["loudness\njump LU", "spectral\ndistance dB / 10", "worst click\ndB / 10"],
          [[r.transitions.loudness_jump_lu.mean, _scaled(r.transitions.spectral_distance_db.mean, 0.1),
            _scaled(r.transitions.click_db.worst, 0.1)] for r in runs], "mean (click: worst)",
          "Transitions, mean over seamless joins (lower: smoother)")
    _bars(grid[1, 0], runs, ["timbre", "harmony", "geometric mean"],
          [[r.scenes.timbre_ratio, r.scenes.harmony_ratio, r.scenes.ratio] for r in runs], "contrast / consistency",
          "Scenes: between / within distance (higher: music follows scenes)")
    grid[1, 0].axhline(1.0, color="grey", ls="--", lw=1)
    _bars(grid[1, 1], runs, ["tempo ±4%\n(octave ok)", "tempo ±4%\n(as found)", "key\nand mode", "mode"],
          [[r.plan.tempo_match, r.plan.tempo_exact, r.plan.key_match, r.plan.mode_match] for r in runs],
          "fraction of pages", "Plan adherence (n/a: no plan)")
    grid[1, 1].set_ylim(0, 1.15)
    _clap_panel(grid[1, 2], runs)
    grid[0, 0].legend(fontsize=8)
    title = ", ".join(sorted({r.book_id for r in runs}))
    figure.suptitle(f"m2m evaluate: {title}", fontsize=11)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def _clap_panel(axes, runs: Sequence[RunEvaluation]) -> None:
    if any(r.clap.available for r in runs):
        _bars(axes, runs, ["agreement", "margin"], [[r.clap.agreement, r.clap.margin] for r in runs], "cosine",
              "CLAP text-audio agreement")
        return
    axes.set_axis_off()
    reason = runs[0].clap.note if len({r.clap.note for r in runs}) == 1 else "unavailable (see the JSON file)"
    axes.text(0.5, 0.5, "CLAP and FAD\n" + _wrap(reason, 48), ha="center", va="center", fontsize=9, wrap=True,
              transform=axes.transAxes)


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))
