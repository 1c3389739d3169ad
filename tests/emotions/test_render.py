"""Aggregation per page and scene, and the paper's text form."""

from __future__ import annotations

import pytest

from m2m.emotions import (
    EMOTIONS,
    Distribution,
    FaceEmotion,
    aggregate,
    describe_distribution,
    mean_distribution,
    render_distribution,
)
from m2m.scenes import Scene, ScenePlan

from .conftest import make_book


def face(page: int, fid: str, **probs: float) -> FaceEmotion:
    return FaceEmotion(page=page, face_id=fid, character="c", probabilities={e: probs.get(e, 0.0) for e in EMOTIONS}
                       if probs else {}, backend="test")


def test_paper_example():
    # 4 neutral, 1 surprise, 1 fear, 1 sadness of 7 faces: the paper's "57% neutral, 13% surprise, 13% fear"
    # is this shape; with 7 faces the shares are 57/14/14/14.
    probs = {"neutral": 4 / 7, "surprise": 1 / 7, "fear": 1 / 7, "sadness": 1 / 7}
    assert render_distribution(probs) == "57% neutral, 14% fear, 14% sadness, 14% surprise"


def test_rounding_sums_to_100_and_orders_by_share():
    text = render_distribution({"neutral": 0.571, "surprise": 0.134, "fear": 0.126, "anger": 0.169}, top=7)
    assert text == "57% neutral, 17% anger, 13% fear, 13% surprise"
    assert sum(int(part.split("%")[0]) for part in text.split(", ")) == 100


def test_ties_get_equal_percentages_and_are_not_split():
    assert render_distribution({"anger": 1, "fear": 1, "sadness": 1}) == "33% anger, 33% fear, 33% sadness"
    # four-way tie at the cut-off: all four are shown rather than dropping one arbitrarily
    assert render_distribution({e: 1 for e in ("anger", "fear", "sadness", "surprise")}) == \
        "25% anger, 25% fear, 25% sadness, 25% surprise"
    assert render_distribution({e: 1 for e in EMOTIONS}, top=1).count("%") == 7


def test_top_and_zero_classes():
    assert render_distribution({"happiness": 0.9, "neutral": 0.1, "anger": 0.0}, top=1) == "90% happiness"
    assert render_distribution({"happiness": 1.0}) == "100% happiness"
    with pytest.raises(ValueError, match="top"):
        render_distribution({"happiness": 1.0}, top=0)


def test_no_weight_is_neutral():
    assert render_distribution({}) == "100% neutral"
    assert render_distribution({e: 0.0 for e in EMOTIONS}) == "100% neutral"
    assert render_distribution({"anger": -1.0}) == "100% neutral"


def test_mean_distribution_skips_skipped_faces():
    d = mean_distribution([face(0, "a", anger=1.0), face(0, "b", fear=1.0), face(0, "c")])
    assert d.faces == 2 and d.probabilities["anger"] == pytest.approx(0.5)
    empty = mean_distribution([face(0, "c")])
    assert empty.faces == 0 and empty.probabilities["neutral"] == 1.0
    assert describe_distribution(empty) == "no faces"
    assert describe_distribution(d) == "50% anger, 50% fear"


def test_aggregate_pages_and_scenes_weighted_by_faces(tmp_path):
    book = make_book(tmp_path, [{}, {}, {}, {}])
    faces = [face(0, "a", anger=1.0), face(1, "b", happiness=1.0), face(1, "c", happiness=1.0), face(3, "d", fear=1.0)]
    plan = ScenePlan((Scene(0, (0, 1)), Scene(1, (2,))))
    pages, scenes, orphans = aggregate(book, plan, faces)
    assert set(pages) == {0, 1, 2, 3}
    assert pages[2] == Distribution({e: float(e == "neutral") for e in EMOTIONS}, 0)
    assert scenes[0].faces == 3 and scenes[0].probabilities["happiness"] == pytest.approx(2 / 3)
    assert scenes[1].faces == 0  # a scene with no faces
    assert describe_distribution(scenes[1]) == "no faces"
    assert orphans == (3,)


def test_bars_and_text_use_the_same_percentages() -> None:
    from m2m.emotions import percentages, render_distribution
    from m2m.ui.panels import distribution_bars

    probabilities = {"neutral": 0.875, "surprise": 0.125 - 1e-4, "fear": 1e-4}
    shares = percentages(probabilities)
    assert sum(shares.values()) == 100
    assert render_distribution(probabilities).startswith(f"{shares['neutral']}% neutral")
    assert f">{shares['neutral']}%<" in distribution_bars(probabilities)
