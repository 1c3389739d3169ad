"""Study manifests: JSON round trip, validation messages, and choosing stimulus pages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from m2m.study import Stimulus, Study, load_study, missing_files, pick_stimuli, save_study
from m2m.study.manifest import audio_path, study_from_dict, study_to_dict

from .conftest import make_study

VERSIONS = {"m2m": "runs/b/m2m", "baseline": "runs/b/baseline", "random": "runs/b/random"}


def test_save_load_round_trip(tmp_path: Path) -> None:
    study = make_study()
    path = save_study(study, tmp_path / "study" / "study.json")
    assert load_study(path) == study
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["stimuli"][0]["pages"] == [0, 1, 2, 3]
    assert list(data["stimuli"][0]["versions"]) == ["m2m", "baseline", "random"]


def test_versions_are_read_only() -> None:
    stimulus = make_study().stimuli[0]
    with pytest.raises(TypeError):
        stimulus.versions["m2m"] = "elsewhere"  # type: ignore[index]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"design": "across"}, "study.design must be one of"),
        ({"id": "has space"}, "study.id must be"),
        ({"title": ""}, "study.title must be a non-empty string"),
        ({"stimuli": []}, "study.stimuli must be a non-empty list"),
        ({"format": 2}, "study.format must be 1"),
        ({"extra": 1}, "unknown field(s) ['extra']"),
    ],
)
def test_study_validation_names_field_and_value(change: dict, message: str) -> None:
    data = study_to_dict(make_study()) | change
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        study_from_dict(data)


def test_missing_field_is_named() -> None:
    data = study_to_dict(make_study())
    del data["engine"]
    with pytest.raises(ValueError, match=r"missing field\(s\) \['engine'\]"):
        study_from_dict(data)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pages": (3, 4, 6, 7)}, r"consecutive and ascending, got \[3, 4, 6, 7\]"),
        ({"pages": ()}, "pages must be a non-empty"),
        ({"pages": (-1, 0)}, "non-negative integers, got -1"),
        ({"versions": {"m2m": "a", "baseline": "b"}}, r"exactly the conditions"),
        ({"versions": VERSIONS | {"m2m": "/abs/run"}}, r"versions\['m2m'\] must be relative"),
        ({"id": "random-3"}, "contains the condition name 'random'"),
        ({"book_id": " "}, "book_id must be a non-empty string"),
    ],
)
def test_stimulus_validation(kwargs: dict, message: str) -> None:
    args = {"id": "s1", "book_id": "b", "pages": (0, 1, 2, 3), "versions": VERSIONS} | kwargs
    with pytest.raises(ValueError, match=message):
        Stimulus(**args)


def test_duplicate_stimulus_ids_refused() -> None:
    s = Stimulus("s1", "b", (0, 1, 2, 3), VERSIONS)
    with pytest.raises(ValueError, match="duplicate stimulus id 's1'"):
        Study("x", "t", "within-scene", "symbolic", (s, s), "consent")


def test_load_reports_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "study.json"
    path.write_text("{", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_study(path)


def test_audio_paths_and_missing_files(tmp_path: Path) -> None:
    study = make_study(n_stimuli=1)
    stimulus = study.stimuli[0]
    study_dir = tmp_path / "studies" / "s"
    expected = study_dir / "../runs/TestBook/baseline/audio/page-002.ogg"
    assert audio_path(study_dir, stimulus, "baseline", 2) == expected
    assert len(missing_files(study, study_dir)) == 12
    for path in missing_files(study, study_dir):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"OggS")
    assert missing_files(study, study_dir) == ()
    with pytest.raises(ValueError, match="page 9 is not part of stimulus 's1'"):
        audio_path(study_dir, stimulus, "m2m", 9)


# --- pick_stimuli ------------------------------------------------------------------------------

SCENES = [tuple(range(0, 6)), (6, 7), tuple(range(8, 16)), tuple(range(16, 20)), (20, 21, 22), tuple(range(23, 30))]


def _scene_of(page: int) -> int:
    return next(i for i, scene in enumerate(SCENES) if page in scene)


def test_within_scene_picks_four_pages_inside_one_scene() -> None:
    for seed in range(20):
        picked = pick_stimuli(SCENES, "within-scene", 4, seed)
        assert len(picked) == 4
        assert picked == sorted(picked)
        for window in picked:
            assert len(window) == 4 and list(window) == list(range(window[0], window[0] + 4))
            assert len({_scene_of(p) for p in window}) == 1
        # one stimulus per scene, as the paper's six scenes
        assert len({_scene_of(w[0]) for w in picked}) == 4


def test_pick_is_deterministic_per_seed() -> None:
    assert pick_stimuli(SCENES, "within-scene", 3, 7) == pick_stimuli(SCENES, "within-scene", 3, 7)
    assert len({tuple(pick_stimuli(SCENES, "within-scene", 2, s)) for s in range(20)}) > 1


def test_between_scenes_spans_exactly_one_boundary() -> None:
    for seed in range(20):
        picked = pick_stimuli(SCENES, "between-scenes", 3, seed)
        used: set[int] = set()
        for window in picked:
            assert list(window) == list(range(window[0], window[0] + 4))
            scenes = [_scene_of(p) for p in window]
            assert len(set(scenes)) == 2 and scenes == sorted(scenes)
            assert used.isdisjoint(window)
            used.update(window)


def test_between_scenes_prefers_the_boundary_in_the_middle() -> None:
    scenes = [tuple(range(0, 10)), tuple(range(10, 20))]
    assert pick_stimuli(scenes, "between-scenes", 1, 0) == [(8, 9, 10, 11)]


def test_no_span_inside_a_scene_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"no span of 4 consecutive pages inside one scene \(scene sizes in pages: \[3, 2, 3\]\)"):
        pick_stimuli([(0, 1, 2), (3, 4), (5, 6, 7)], "within-scene", 1, 0)


def test_no_span_across_scenes_is_a_clear_error() -> None:
    # The only boundary is not between consecutive pages (pages 4-9 are missing).
    with pytest.raises(ValueError, match="no span of 4 consecutive pages across the boundary"):
        pick_stimuli([(0, 1, 2, 3), (10, 11, 12, 13)], "between-scenes", 1, 0)
    # Three one-page scenes: any four pages would cover three scenes.
    with pytest.raises(ValueError, match="across the boundary"):
        pick_stimuli([(0,), (1,), (2,), (3,)], "between-scenes", 1, 0)


def test_too_few_spans_names_the_count() -> None:
    with pytest.raises(ValueError, match="asked for n=5 stimuli but the book has only 4"):
        pick_stimuli(SCENES, "within-scene", 5, 0)


@pytest.mark.parametrize(
    ("scenes", "design", "n", "message"),
    [
        (SCENES, "sideways", 1, "design must be one of"),
        (SCENES, "within-scene", 0, "n must be a positive integer, got 0"),
        ([(0, 1), (1, 2)], "within-scene", 1, "pages must ascend across scenes"),
        ([(0, 1), ()], "within-scene", 1, r"scene_pages\[1\] must be a non-empty tuple"),
    ],
)
def test_pick_validation(scenes: list, design: str, n: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pick_stimuli(scenes, design, n, 0)
