"""Pairing each condition's joins with the m2m run's, page by page, and testing the differences:
a difference the joins' spread explains is not called one."""

from __future__ import annotations

import json

import pytest

from m2m.evaluation.evaluate import evaluate
from m2m.evaluation.paired import pair_measure, paired_with_reference
from m2m.evaluation.report import table, to_jsonable
from m2m.evaluation.transitions import Join

from .conftest import make_run, tone
from .test_evaluate import C_MAJOR, missing


def joins(jumps: list[float], deliberate: set[int] = frozenset()) -> list[Join]:
    """Joins into pages 1.. with these loudness jumps (the spectral distance ten times as large)."""
    return [Join(k, k + 1, 4.0 * (k + 1), 1.5, False, jump, 10 * jump, -1.0, "cut" if k in deliberate else "",
                 k in deliberate) for k, jump in enumerate(jumps)]


def loudness(j: Join) -> float:
    return j.loudness_jump_lu


def test_a_run_smoother_at_every_join_differs_and_one_within_the_spread_does_not():
    m2m = joins([0.02, 0.03, 0.01, 0.04, 0.02, 0.03, 0.05, 0.02])
    rougher = joins([0.20, 0.25, 0.18, 0.30, 0.22, 0.19, 0.24, 0.21])
    alike = joins([0.03, 0.01, 0.02, 0.05, 0.01, 0.04, 0.04, 0.03])
    clear = pair_measure("Book", "baseline", m2m, rougher, "loudness_jump_lu", loudness)
    assert clear.joins == 8 and clear.mean == pytest.approx(0.0275, abs=1e-3) and clear.other_mean == pytest.approx(0.2238, abs=1e-3)
    assert clear.p_value == pytest.approx(2 / 2 ** 8, abs=1e-4)  # exact: every difference one way
    close = pair_measure("Book", "baseline", m2m, alike, "loudness_jump_lu", loudness)
    assert close.p_value > 0.5, close
    same = pair_measure("Book", "baseline", m2m, m2m, "loudness_jump_lu", loudness)
    assert same.p_value == 1.0


def test_only_joins_both_runs_played_seamless_are_paired():
    m2m = joins([0.02, 9.0, 0.03, 0.01], deliberate={1})  # the m2m director cut into page 2
    other = joins([0.2, 0.0, 0.3, 9.0], deliberate={3})
    paired = pair_measure("Book", "random", m2m, other, "loudness_jump_lu", loudness)
    assert paired.joins == 2 and paired.mean == pytest.approx(0.025) and paired.other_mean == pytest.approx(0.25)
    none = pair_measure("Book", "random", m2m[1:2], other[1:2], "loudness_jump_lu", loudness)
    assert none.joins == 0 and none.p_value is None and none.note


def test_runs_pair_with_the_m2m_run_of_their_own_book():
    m2m, other = joins([0.1, 0.2]), joins([0.2, 0.3])
    paired = paired_with_reference([("A", "m2m", m2m), ("A", "baseline", other), ("B", "random", other)])
    assert {(p.book_id, p.other, p.measure) for p in paired} == {("A", "baseline", "loudness_jump_lu"),
                                                                 ("A", "baseline", "spectral_distance_db")}


def test_evaluate_reports_the_pairing_in_the_table_and_the_json(tmp_path):
    quiet, loud = tone(C_MAJOR, level=0.1), tone(C_MAJOR, level=0.3)
    make_run(tmp_path, [quiet] * 8, [0] * 8, [0.0] + [1.5] * 7)
    make_run(tmp_path, [quiet, loud] * 4, list(range(8)), [0.0] + [1.5] * 7, condition="baseline")
    evaluation = evaluate([tmp_path / "Book"], clap_loader=missing)
    loudness_pair = next(p for p in evaluation.paired if p.measure == "loudness_jump_lu")
    assert loudness_pair.other == "baseline" and loudness_pair.joins == 7
    assert loudness_pair.mean < 1.0 < 5.0 < loudness_pair.other_mean and loudness_pair.p_value < 0.05
    text = table(evaluation)
    row = next(line for line in text.splitlines() if line.strip().startswith("loudness jump LU: m2m / this"))
    assert "reference" in row and f"p {loudness_pair.p_value:.3f} (7)" in row
    data = json.loads(json.dumps(to_jsonable(evaluation)))
    assert {p["measure"] for p in data["paired"]} == {"loudness_jump_lu", "spectral_distance_db"}
