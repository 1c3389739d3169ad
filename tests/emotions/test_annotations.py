"""The annotations backend and the stage's JSON round trip."""

from __future__ import annotations

import json

import pytest

from m2m.book import find_label_file
from m2m.emotion_backends.annotations import read_ground_truth
from m2m.emotions import EmotionReport, choose_emotion_backend, recognise_emotions
from m2m.jsonio import from_jsonable, to_jsonable
from m2m.runs import Provenance, RunFolder

from .conftest import make_book, one_scene


def _book_with_labels(tmp_path, faces):
    (tmp_path / "ground_truth").mkdir()
    (tmp_path / "ground_truth" / "test.json").write_text(json.dumps({
        "scenes": [{"first_page": 0, "last_page": 0, "label": "opening"}], "faces": faces}), encoding="utf-8")
    return make_book(tmp_path, [{"faces": [("f1", (0, 0, 10, 10), "a"), ("f2", (20, 0, 30, 10), "b")]}],
                     source=str(tmp_path))


def test_labels_become_one_hot(tmp_path):
    book = _book_with_labels(tmp_path, [{"page": 0, "face_id": "f1", "character": "a", "emotion": "Happy"},
                                        {"page": 0, "face_id": "zz", "character": "a", "emotion": "fear"}])
    assert find_label_file(book) == tmp_path / "ground_truth" / "test.json"
    assert choose_emotion_backend(book) == "annotations"
    staged = recognise_emotions(book, one_scene(book), "annotations")
    f1, f2 = staged.data.faces
    assert f1.probabilities["happiness"] == 1.0 and f1.label == "happiness"
    assert f2.skipped and "no label" in f2.warning
    assert any("match no face" in w for w in staged.provenance.warnings)
    truth = read_ground_truth(find_label_file(book))
    assert truth.scene_plan(book).scenes[0].summary == "opening"


def test_bad_label_is_a_clear_error(tmp_path):
    book = _book_with_labels(tmp_path, [{"page": 0, "face_id": "f1", "emotion": "elated"}])
    with pytest.raises(ValueError, match=r"faces\[0\]\.emotion: 'elated' is not an emotion label"):
        recognise_emotions(book, one_scene(book), "annotations")


def test_no_label_file(tmp_path):
    book = make_book(tmp_path, [{"faces": [("f1", (0, 0, 10, 10), "a")]}], source=str(tmp_path))
    assert choose_emotion_backend(book) == "dialogue"
    with pytest.raises(ValueError, match="no label file"):
        recognise_emotions(book, one_scene(book), "annotations")


def test_report_round_trips_through_the_run_folder(tmp_path):
    book = _book_with_labels(tmp_path, [{"page": 0, "face_id": "f1", "emotion": "anger"}])
    staged = recognise_emotions(book, one_scene(book), "annotations")
    assert from_jsonable(EmotionReport, to_jsonable(staged.data)) == staged.data
    run = RunFolder(tmp_path / "runs", book.id)
    run.write("emotions", staged.data, staged.provenance)
    record = run.read("emotions", EmotionReport)
    assert record.data == staged.data and not record.edited
    assert isinstance(record.provenance, Provenance) and record.provenance.input_hash == ""


def test_unknown_backend_lists_the_valid_ones(tmp_path):
    book = make_book(tmp_path, [{}])
    with pytest.raises(ValueError, match="clip-finetuned, clip-zeroshot, dialogue, annotations"):
        recognise_emotions(book, one_scene(book), "resnet")
