"""The study's objective figures beside the ratings: cut to each stimulus's pages, correlated with
the mean ratings per stimulus x condition (checked against a rank correlation computed here), and
shown by the Study tab and the API; too few cells or no figures file is a message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from m2m.study import CONDITIONS, RatingsStore, Scores, Screening
from m2m.study.figures import FIGURES_FILE, MIN_CELLS, correlations, read_figures, stimulus_figures
from m2m.ui.study_tab import researcher_view

from .conftest import ADMIN_TOKEN, BOOK, make_study_dir
from .test_api import client_for

# per condition, the loudness jump at each join of pages 0..7 (join k: page k -> k+1), and which
# themed pages have the theme found
JUMPS = {"m2m": [0.2, 0.3, 0.1, 9.0, 0.4, 0.5, 0.3], "baseline": [1.0, 1.2, 0.8, 0.0, 1.5, 1.1, 1.3],
         "random": [2.0, 2.5, 1.5, 0.0, 3.0, 2.2, 2.4]}
FOUND = {"m2m": {1: True, 2: True, 5: True, 6: False}, "baseline": {1: False, 2: False, 5: True, 6: False},
         "random": {1: False, 2: False, 5: False, 6: False}}


def write_figures(folder: Path) -> None:
    """An evaluation.json as `m2m evaluate --json` writes it, for the study's own run folders."""
    runs = []
    for condition in CONDITIONS:
        joins = [{"page_before": k, "page_after": k + 1, "loudness_jump_lu": jump, "spectral_distance_db": 2 * jump,
                  "deliberate": k == 3 and condition == "m2m"}  # a cut between the two stimuli's pages
                 for k, jump in enumerate(JUMPS[condition])]
        checks = [{"page": page, "themed": True, "found": found, "character": "a"}
                  for page, found in FOUND[condition].items()]
        checks.append({"page": 0, "themed": False, "found": True, "character": "a"})  # a false alarm: not recall
        runs.append({"run": str(folder / "runs" / BOOK / condition), "book_id": BOOK, "condition": condition,
                     "transitions": {"joins": joins}, "leitmotifs": {"checks": checks},
                     "plan": {"pages": [{"page": p, "key_match": p % 2 == 0} for p in range(8)]},
                     "scenes": {"ratio": {"m2m": 2.5, "baseline": 1.1, "random": 1.0}[condition]}})
    (folder / FIGURES_FILE).write_text(json.dumps({"runs": runs}), encoding="utf-8")


def spearman_by_ranks(x, y) -> float:
    """Spearman's rho as the Pearson correlation of average ranks, computed without scipy."""
    def ranks(v):
        v = np.asarray(v, dtype=float)
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(1, len(v) + 1)
        for value in np.unique(v):  # ties share their mean rank
            r[v == value] = r[v == value].mean()
        return r
    return float(np.corrcoef(ranks(x), ranks(y))[0, 1])


def test_figures_are_cut_to_each_stimulus_and_correlated_with_the_mean_ratings(tmp_path: Path) -> None:
    study = make_study_dir(tmp_path)  # stimuli s1: pages 0-3, s2: pages 4-7
    assert isinstance(read_figures(tmp_path), str) and "m2m evaluate" in read_figures(tmp_path)
    write_figures(tmp_path)
    cells = {(f.stimulus, f.condition): f.values for f in stimulus_figures(study, tmp_path, read_figures(tmp_path))}
    assert len(cells) == 6
    # s1's joins are 0->1, 1->2, 2->3; the 3->4 join lies between the stimuli and counts for neither
    assert cells[("s1", "m2m")]["loudness_jump_lu"] == round(np.mean([0.2, 0.3, 0.1]), 4)
    assert cells[("s2", "random")]["loudness_jump_lu"] == round(np.mean([3.0, 2.2, 2.4]), 4)
    assert cells[("s2", "m2m")]["theme_recall"] == 0.5 and cells[("s1", "m2m")]["theme_recall"] == 1.0
    assert cells[("s1", "baseline")]["key_match"] == 0.5 and cells[("s1", "random")]["scene_ratio"] == 1.0
    rng = np.random.default_rng(1)
    rows = [{"participant": f"p{i}", "stimulus": s, "condition": c, "relevancy": int(rng.integers(1, 6)),
             "quality": int(rng.integers(1, 6)), "consistency": int(rng.integers(1, 6))}
            for i in range(5) for s in ("s1", "s2") for c in CONDITIONS]
    ratings = pd.DataFrame(rows)
    by = {(c.measure, c.criterion): c for c in correlations(list(stimulus_figures(study, tmp_path, read_figures(tmp_path))),
                                                          ratings)}
    for criterion in ("relevancy", "quality", "consistency"):
        means = ratings.groupby(["stimulus", "condition"])[criterion].mean()
        keys = sorted(cells)
        expected = spearman_by_ranks([cells[k]["loudness_jump_lu"] for k in keys], [means[k] for k in keys])
        got = by[("loudness_jump_lu", criterion)]
        assert got.n == 6 and abs(got.rho - expected) < 1e-3 and 0.0 <= got.p <= 1.0
    # too few rated cells: a message with n, not an error
    few = {(c.measure, c.criterion): c for c in correlations(list(stimulus_figures(study, tmp_path,
                                                                                read_figures(tmp_path))),
                                                           ratings[ratings["stimulus"] == "s1"].head(2))}
    assert few[("loudness_jump_lu", "quality")].rho is None and f"needs {MIN_CELLS}" in few[("loudness_jump_lu",
                                                                                               "quality")].note


def test_the_study_tab_and_the_api_show_the_figures_and_the_correlations(tmp_path: Path) -> None:
    study = make_study_dir(tmp_path / "study")
    folder = tmp_path / "study"
    with RatingsStore(tmp_path / "data" / "study.sqlite3") as store:
        early = researcher_view(ADMIN_TOKEN, study, folder, store, ADMIN_TOKEN)
        assert "No objective figures yet" in early.markdown and f"--json {folder / FIGURES_FILE}" in early.markdown
        write_figures(folder)
        for i in range(3):
            pid = store.register(study, Screening(3, 3, "native")).id
            for s in study.stimuli:
                for j, label in enumerate("ABC"):
                    store.submit(study, pid, s.id, label, Scores(1 + (i + 2 * j) % 5, 1 + (i + j) % 3, 2 + (i * j) % 4))
        view = researcher_view(ADMIN_TOKEN, study, folder, store, ADMIN_TOKEN)
        assert "## Means" in view.markdown and "## Objective figures beside the ratings" in view.markdown
        assert "### Spearman correlation with the ratings" in view.markdown and "ρ = " in view.markdown
        # the figure the table shows for relevancy is the one computed from the stored ratings here
        frame = pd.DataFrame([r.__dict__ for r in store.ratings(study.id)])
        cells = {(f.stimulus, f.condition): f.values for f in stimulus_figures(study, folder, read_figures(folder))}
        means = frame.groupby(["stimulus", "condition"])["relevancy"].mean()
        keys = sorted(cells)
        rho = spearman_by_ranks([cells[k]["loudness_jump_lu"] for k in keys], [means[k] for k in keys])
        row = next(line for line in view.markdown.splitlines() if line.startswith("| loudness jump"))
        assert f"ρ = {rho:.2f} (n = 6," in row.split("|")[2]
        results = client_for(folder, store).get("/study/api/admin/results",
                                                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()
        assert "Spearman correlation" in results["figures"] and f"ρ = {rho:.2f}" in results["figures"]


def test_p_is_exact_over_the_few_cells_a_study_has():
    from itertools import permutations

    from m2m.study.figures import spearman

    assert spearman([1, 2, 3], [1, 2, 3]) == (1.0, 1 / 3)  # the t approximation says 0.000
    x, y = [0.1, 0.4, 0.2, 0.9, 0.5], [2.0, 3.5, 1.0, 4.5, 4.0]
    rho = spearman_by_ranks(x, y)
    # every pairing counted by hand: the share at least as far from 0 as the one observed
    rhos = [spearman_by_ranks(x, list(p)) for p in permutations(y)]
    got_rho, got_p = spearman(x, y)
    assert abs(got_rho - rho) < 1e-9 and abs(got_p - np.mean([abs(r) >= abs(rho) - 1e-9 for r in rhos])) < 1e-9


def test_every_condition_is_scored_over_the_same_turns(tmp_path: Path) -> None:
    """A turn the m2m director played as a break is left out of every condition's joins."""
    study = make_study_dir(tmp_path)
    write_figures(tmp_path)
    data = json.loads((tmp_path / FIGURES_FILE).read_text(encoding="utf-8"))
    for join in data["runs"][0]["transitions"]["joins"]:
        join["deliberate"] = join["page_before"] == 1  # m2m: a cut from page 1 to 2, inside s1
    (tmp_path / FIGURES_FILE).write_text(json.dumps(data), encoding="utf-8")
    cells = {(f.stimulus, f.condition): f.values for f in stimulus_figures(study, tmp_path, read_figures(tmp_path))}
    assert data["runs"][0]["condition"] == "m2m"
    assert cells[("s1", "m2m")]["loudness_jump_lu"] == round(np.mean([0.2, 0.1]), 4)
    assert cells[("s1", "baseline")]["loudness_jump_lu"] == round(np.mean([1.0, 0.8]), 4)  # not 1.2: same turns


def test_a_figures_file_from_another_version_is_a_message_not_a_broken_report(tmp_path: Path) -> None:
    from m2m.study.figures import figures_markdown

    study = make_study_dir(tmp_path)
    write_figures(tmp_path)
    data = json.loads((tmp_path / FIGURES_FILE).read_text(encoding="utf-8"))
    for run in data["runs"]:
        del run["plan"]
    (tmp_path / FIGURES_FILE).write_text(json.dumps(data), encoding="utf-8")
    text = figures_markdown(study, tmp_path, pd.DataFrame())
    assert "is not a file this version of `m2m evaluate --json` writes" in text and "plan" in text


def test_a_version_rendered_again_after_the_figures_is_left_out_and_said(tmp_path: Path) -> None:
    """evaluation.json records the cue sheet it measured; a version whose music changed since is not
    shown (nor correlated) with figures of the music it no longer plays, and the report says so."""
    from m2m.runs import RunFolder
    from m2m.soundtrack import Soundtrack
    from m2m.study.figures import figures_markdown, study_figures

    from .conftest import write_cue_sheet

    study = make_study_dir(tmp_path)
    for condition in CONDITIONS:
        write_cue_sheet(tmp_path, condition, range(8), {})
    write_figures(tmp_path)
    data = json.loads((tmp_path / FIGURES_FILE).read_text(encoding="utf-8"))
    for run in data["runs"]:
        sheet = RunFolder(tmp_path / "runs", BOOK, run["condition"]).read("soundtrack", Soundtrack).data
        run["played"] = sheet.played_hash()
    (tmp_path / FIGURES_FILE).write_text(json.dumps(data), encoding="utf-8")
    figures, stale = study_figures(study, tmp_path, read_figures(tmp_path))
    assert len(figures) == 6 and stale == []
    # the baseline is rendered again: a page's crossfade changes, so its music is not what was measured
    write_cue_sheet(tmp_path, "baseline", range(8), {2: ("", 3.0, 0.0, 0.0)})
    figures, stale = study_figures(study, tmp_path, read_figures(tmp_path))
    assert stale == ["s1 baseline", "s2 baseline"] and {f.condition for f in figures} == {"m2m", "random"}
    text = figures_markdown(study, tmp_path, pd.DataFrame())
    assert "Left out: s1 baseline, s2 baseline: the music was rendered again" in text
    assert "| s1 | baseline |" not in text and "| s1 | m2m |" in text


def test_the_played_hash_follows_the_music_not_the_files_around_it(tmp_path: Path) -> None:
    """A reader opening a study's run rewrites its cue sheet without the whole-book file; that, an MP3
    copy or a caption's words do not make its figures stale; a crossfade or a clip's content does."""
    from dataclasses import replace

    from m2m.runs import RunFolder
    from m2m.soundtrack import Soundtrack

    from .conftest import write_cue_sheet

    make_study_dir(tmp_path)
    write_cue_sheet(tmp_path, "m2m", range(4), {}, seconds=4.0, bars=4)
    sheet = RunFolder(tmp_path / "runs", BOOK, "m2m").read("soundtrack", Soundtrack).data
    first = sheet.cues[0]
    same = [replace(sheet, settings=replace(sheet.settings, whole_file=False, mp3=True), file="", complete=False),
            replace(sheet, cues=(replace(first, caption="other words", warnings=("w",)), *sheet.cues[1:]))]
    assert {s.played_hash() for s in same} == {sheet.played_hash()}
    changed = [replace(sheet, cues=(replace(first, file_hash="other"), *sheet.cues[1:])),
               replace(sheet, cues=(*sheet.cues[:2], replace(sheet.cues[2], crossfade=3.0), *sheet.cues[3:])),
               replace(sheet, settings=replace(sheet.settings, pace_seconds=30.0))]
    assert len({s.played_hash() for s in changed} | {sheet.played_hash()}) == 4
