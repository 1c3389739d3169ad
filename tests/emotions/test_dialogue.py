"""The dialogue backend: ML-Ask on Japanese lines, the mapping table, attribution to faces."""

from __future__ import annotations

import json

import pytest

from m2m.book import Frame
from m2m.emotion_backends.dialogue import (
    MLASK_CLASSES,
    NO_CUES,
    line_emotion,
    load_cues,
    load_mapping,
    mlask_emotions,
)
from m2m.emotions import EMOTIONS, EmotionOptions, recognise_emotions
from m2m.scenes import Scene, ScenePlan

from .conftest import make_book


def top(text: str) -> str:
    d = line_emotion(text).distribution
    return max(EMOTIONS, key=lambda e: (d[e], -EMOTIONS.index(e)))


@pytest.mark.parametrize("line, expected", [
    ("本当にうれしい！", "happiness"),
    ("腹が立つ！", "anger"),
    ("とても悲しい…", "sadness"),
    ("怖い…", "fear"),
    ("あいつは嫌いだ", "disgust"),
    ("びっくりした", "surprise"),
    ("明日は月曜日です", "neutral"),
    ("お前のことが好きだ", "happiness"),
])
def test_mlask_lines_give_the_expected_class(line, expected):
    assert top(line) == expected


@pytest.mark.parametrize("line, dislike", [
    ("いや、違うよ", False),  # "no, ..." (a conjunction): no dislike in the line
    ("いやいや、大丈夫だって", False),  # "no, no" (an adverb)
    ("いやだ！", True),  # "I don't want to" (嫌だ)
    ("いやな予感がする", True),  # "a bad feeling"
    ("いや、いやだよ", True),  # the marker, then the dislike
    ("いや、嫌だよ", True),
])
def test_iya_as_a_discourse_marker_is_not_dislike(line, dislike):
    assert ("iya" in mlask_emotions(line)) is dislike
    assert (top(line) == "disgust") is dislike


def test_every_mlask_class_maps_as_the_table_says():
    table = load_mapping()
    # one line per ML-Ask class, checked against ML-Ask itself so the test also covers pymlask's spellings
    lines = {"yorokobi": "うれしい", "ikari": "腹が立つ", "aware": "悲しい", "kowagari": "怖い", "haji": "恥ずかしい",
             "suki": "好きだ", "iya": "嫌いだ", "takaburi": "興奮した", "yasuragi": "ほっとした", "odoroki": "驚いた"}
    assert set(lines) == set(MLASK_CLASSES)
    for cls, line in lines.items():
        found = {table.names[k] for k in mlask_emotions(line)}
        assert cls in found, (cls, line, found)
        if found == {cls}:
            assert line_emotion(line).distribution == pytest.approx(table.mapping[cls]), cls


def test_table_rows_sum_to_one_over_the_seven_classes():
    table = load_mapping()
    for cls in MLASK_CLASSES:
        assert set(table.mapping[cls]) == set(EMOTIONS)
        assert sum(table.mapping[cls].values()) == pytest.approx(1.0)
    assert table.names["kowa"] == "kowagari" and table.names["yasu"] == "yasuragi"


def test_no_emotion_is_neutral():
    assert line_emotion("").distribution["neutral"] == 1.0
    plain = line_emotion("はい")
    assert plain.distribution["neutral"] == 1.0 and not plain.emotive
    assert line_emotion("うれ\nしい").distribution["happiness"] == 1.0  # bubble line breaks are joined


@pytest.mark.parametrize("line, expected", [
    ("やったあ！", "happiness"),
    ("バカモン！！", "anger"),
    ("危ない！！", "fear"),
    ("ごめんなさい", "sadness"),
    ("えっ、まさか", "surprise"),
    ("げっ、気持ち悪", "disgust"),
])
def test_cues_catch_what_mlask_misses(line, expected):
    assert not mlask_emotions(line)
    assert top(line) == expected
    assert line_emotion(line, cues=NO_CUES).distribution["neutral"] == 1.0  # ML-Ask alone: neutral


def test_mlask_wins_over_cues():
    # "うれしい" is ML-Ask's; the "!?" cue must not dilute it
    le = line_emotion("うれしい!?")
    assert le.distribution["happiness"] == 1.0 and le.cues == 0
    startled = line_emotion("そうなの!?")
    assert startled.cues == 1 and startled.distribution["surprise"] == 0.5


def test_broken_mapping_table_is_refused(tmp_path):
    with open(load_mapping().path, encoding="utf-8") as f:
        data = json.load(f)
    data["mapping"]["haji"] = {"fear": 0.7}
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="sum to 1"):
        load_mapping(str(bad))
    del data["mapping"]["haji"]
    bad.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="missing ML-Ask classes"):
        load_mapping(str(bad))
    data["mapping"]["haji"] = {"shame": 1.0}
    bad.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="not classes"):
        load_mapping(str(bad))


def test_faces_get_their_speakers_lines_else_the_page_else_the_scene(tmp_path):
    book = make_book(tmp_path, [
        {"faces": [("a0", (0, 0, 10, 10), "aki"), ("m0", (20, 0, 30, 10), "mina"), ("k0", (40, 0, 50, 10), "ken")],
         "texts": [("t1", "本当にうれしい！", "aki"), ("t2", "怖い…", "mina"), ("t3", "明日は月曜日", None)]},
        {"faces": [("a1", (0, 0, 10, 10), "aki")]},
        {"faces": [("a2", (0, 0, 10, 10), "aki")]},
    ])
    plan = ScenePlan((Scene(0, (0, 1), ("t1", "t2", "t3")), Scene(1, (2,))))
    staged = recognise_emotions(book, plan, "dialogue")
    faces = {f.face_id: f for f in staged.data.faces}
    assert faces["a0"].label == "happiness" and "by this character on the page" in faces["a0"].evidence
    assert faces["m0"].label == "fear"
    # ken says nothing: the page's three lines (happiness, fear, neutral); emotive lines weigh 3
    assert faces["k0"].probabilities["happiness"] == pytest.approx(3 / 7)
    assert faces["k0"].evidence == "3 lines on the page (2 emotive)"
    assert faces["a1"].probabilities["fear"] == pytest.approx(3 / 7) and "in the scene" in faces["a1"].evidence
    assert faces["a2"].label == "neutral" and "no dialogue" in faces["a2"].evidence
    assert staged.provenance.backend == "dialogue" and staged.provenance.stage == "emotions"
    assert staged.provenance.settings["mapping_sha256"]
    assert staged.data.scenes[0].faces == 4


def test_faces_take_the_lines_of_their_panel(tmp_path):
    book = make_book(tmp_path, [{
        "faces": [("left", (10, 10, 30, 30), "aki"), ("right", (110, 10, 130, 30), "aki"), ("out", (190, 90, 199, 99), "aki")],
        "texts": [("t1", "本当にうれしい！", "mina"), ("t2", "怖い…", "mina")]}])
    page = book.pages[0]
    from dataclasses import replace

    texts = (replace(page.texts[0], bbox=(40, 10, 60, 40)), replace(page.texts[1], bbox=(140, 10, 160, 40)))
    frames = (Frame("fl", 0, (0, 0, 99, 80)), Frame("fr", 0, (100, 0, 199, 80)))
    book = replace(book, pages=(replace(page, texts=texts, frames=frames),))
    faces = {f.face_id: f for f in recognise_emotions(book, ScenePlan((Scene(0, (0,)),)), "dialogue").data.faces}
    assert faces["left"].label == "happiness" and "in the panel" in faces["left"].evidence
    assert faces["right"].label == "fear"
    assert "on the page" in faces["out"].evidence  # outside every frame: the page's lines
    flat = {f.face_id: f for f in recognise_emotions(book, ScenePlan((Scene(0, (0,)),)), "dialogue",
            EmotionOptions(backend_options={"panels": False})).data.faces}
    assert flat["left"].probabilities["happiness"] == pytest.approx(0.5)


def test_cue_file_is_checked(tmp_path):
    assert load_cues().cues
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"cues": [{"pattern": "(", "distribution": {"anger": 1.0}}]}))
    with pytest.raises(ValueError, match=r"cues\[0\]\.pattern"):
        load_cues(str(bad))
    bad.write_text(json.dumps({"cues": [{"pattern": "x", "distribution": {"rage": 1.0}}]}))
    with pytest.raises(ValueError, match="not classes"):
        load_cues(str(bad))
