"""The conditions as objects (m2m/conditions.py): what each runs, where its run and its plan live."""

from __future__ import annotations

from pathlib import Path

import pytest

from m2m.conditions import SPECS, condition_of
from m2m.runs import CONDITIONS


def test_every_condition_has_a_spec_and_a_label() -> None:
    assert tuple(SPECS) == CONDITIONS
    assert all(spec.label for spec in SPECS.values())


def test_the_random_condition_plays_the_m2m_plan_from_the_library_and_is_not_editable(tmp_path: Path) -> None:
    random = condition_of("random")
    assert random.stages == () and random.uses_library and not random.editable
    assert random.run_folder(tmp_path, "book").path == tmp_path / "book" / "random"
    assert random.plan_folder(tmp_path, "book").path == tmp_path / "book" / "m2m"
    assert random.engine_for("musicgen") == "library"


@pytest.mark.parametrize("name", ["m2m", "baseline"])
def test_the_planned_conditions_plan_for_themselves_with_the_chosen_engine(tmp_path: Path, name: str) -> None:
    spec = condition_of(name)
    assert spec.stages and spec.editable and not spec.uses_library
    assert spec.plan_folder(tmp_path, "book").path == spec.run_folder(tmp_path, "book").path == tmp_path / "book" / name
    assert spec.engine_for("musicgen") == "musicgen"


def test_an_unknown_condition_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="'silence' is not one of m2m, baseline, random"):
        condition_of("silence")
