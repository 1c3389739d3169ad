"""The run folder's rule (m2m/runs.py): a stage file is reused when it was made from the same inputs
or a person edited it; an edit keeps its provenance and is never overwritten by a rerun's reuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from m2m.runs import Provenance, RunFolder, hash_inputs
from m2m.scenes import Scene, ScenePlan

PLAN = ScenePlan((Scene(0, (0, 1), ("t1", "t2")), Scene(1, (2,), ("t3",))))


def provenance(input_hash: str) -> Provenance:
    return Provenance(stage="scenes", backend="offline", input_hash=input_hash)


def test_a_file_made_from_the_same_inputs_is_reused_and_one_from_others_is_not(tmp_path: Path) -> None:
    run = RunFolder(tmp_path, "book", "m2m")
    run.write("scenes", PLAN, provenance("inputs-a"))
    kept = run.reusable("scenes", ScenePlan, "inputs-a")
    assert kept is not None and kept.data == PLAN and not kept.edited
    assert kept.provenance.created  # write stamps when it was made
    assert run.reusable("scenes", ScenePlan, "inputs-b") is None


def test_an_edited_file_is_reused_whatever_the_inputs_and_keeps_its_provenance(tmp_path: Path) -> None:
    run = RunFolder(tmp_path, "book", "m2m")
    run.write("scenes", PLAN, provenance("inputs-a"))
    edited = ScenePlan((Scene(0, (0, 1, 2), ("t1", "t2", "t3")),))
    run.save_edit("scenes", edited)
    record = run.reusable("scenes", ScenePlan, "inputs-b")
    assert record is not None and record.edited and record.data == edited
    assert record.provenance.input_hash == "inputs-a" and record.provenance.backend == "offline"


def test_a_hand_edit_of_the_json_counts_as_an_edit(tmp_path: Path) -> None:
    run = RunFolder(tmp_path, "book", "m2m")
    run.write("scenes", PLAN, provenance("inputs-a"))
    path = run.file("scenes")
    raw = json.loads(path.read_text())
    raw["data"]["scenes"][1]["pages"] = [2, 3]
    path.write_text(json.dumps(raw))
    record = run.reusable("scenes", ScenePlan, "inputs-b")
    assert record is not None and record.edited and record.data.scenes[1].pages == (2, 3)


def test_an_edit_before_the_plan_exists_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="run the plan first"):
        RunFolder(tmp_path, "book", "m2m").save_edit("scenes", PLAN)


@pytest.mark.parametrize("content, message", [("{not json", "invalid JSON at line 1"),
                                              ('{"data": {}}', "not a run file")])
def test_a_broken_file_is_an_error_naming_it(tmp_path: Path, content: str, message: str) -> None:
    run = RunFolder(tmp_path, "book", "m2m")
    run.file("scenes").parent.mkdir(parents=True)
    run.file("scenes").write_text(content)
    with pytest.raises(ValueError, match=message) as caught:
        run.read("scenes", ScenePlan)
    assert "scenes" in str(caught.value)


def test_unknown_conditions_and_stages_are_named() -> None:
    with pytest.raises(ValueError, match="'silence' is not one of m2m, baseline, random"):
        RunFolder("runs", "book", "silence")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'lyrics' is not one of"):
        RunFolder("runs", "book").file("lyrics")


def test_input_hashes_are_stable_and_see_dataclass_fields() -> None:
    assert hash_inputs(PLAN, "x", 1) == hash_inputs(PLAN, "x", 1)
    moved = ScenePlan((Scene(0, (0,), ("t1",)), Scene(1, (1, 2), ("t2", "t3"))))
    assert hash_inputs(PLAN) != hash_inputs(moved)
    assert hash_inputs({"a": 1, "b": 2}) == hash_inputs({"b": 2, "a": 1})  # key order is not an input
