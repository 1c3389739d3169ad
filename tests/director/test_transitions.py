"""Stage 4b: the transition at each scene change, by the offline rule and by the LLM director."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from m2m.cues import Plan, Transition, TransitionSheet
from m2m.director import load_director
from m2m.director.offline_transitions import transition_between
from m2m.llm import LLMError
from m2m.pipeline import Settings, plan_book
from m2m.transitions import check_transition, check_transition_sheet, choose_transitions

from .conftest import smart_answer

CALM = Plan(80, "C", "major", ("Acoustic Grand Piano",), 0.3, "calm")


@pytest.mark.parametrize("first, faces, kind", [
    (replace(CALM, energy=0.85, tempo=150, key="E", mode="minor"), None, "cut"),  # a surge of energy
    (replace(CALM, energy=0.65), {"surprise": 0.4, "fear": 0.3}, "cut"),  # startled faces on a loud page
    (replace(CALM, energy=0.55), {"neutral": 1.0}, "continue"),  # same key and pace
    (replace(CALM, tempo=84), None, "continue"),
    (replace(CALM, key="A", mode="minor", tempo=70), None, "crossfade"),
])
def test_the_offline_rule_reads_the_music_on_both_sides(first, faces, kind):
    chosen = transition_between(2, CALM, first, faces)
    assert chosen.kind == kind and chosen.scene == 2 and chosen.why
    assert check_transition(chosen, 2) == chosen


def test_a_fall_of_energy_leaves_a_silence_and_distant_music_a_longer_dissolve():
    loud = replace(CALM, energy=0.8)
    assert transition_between(1, loud, CALM, None).kind == "silence"
    near = transition_between(1, CALM, replace(CALM, key="G"), None)
    far = transition_between(1, CALM, replace(CALM, key="F#", tempo=140), None)
    assert near.kind == far.kind == "crossfade" and far.seconds > near.seconds


@pytest.mark.parametrize("last, first, kind", [
    # A major into C# minor, the energy holding: the old scene closes on a cadence (the example book's first change)
    (Plan(119, "A", "major", ("Flute",), 0.47), Plan(96, "C#", "minor", ("Cello",), 0.56), "stinger"),
    (Plan(70, "D", "minor", ("Cello",), 0.4), Plan(90, "E", "major", ("Flute",), 0.3), "stinger"),
    (CALM, replace(CALM, key="A", mode="minor"), "crossfade"),  # the relative minor shares its notes: a dissolve
    (CALM, replace(CALM, key="E", mode="minor", energy=0.8), "cut"),  # a surge still cuts
    (replace(CALM, energy=0.8), replace(CALM, key="E", mode="minor", energy=0.3), "silence"),  # a fall is a breath
])
def test_the_offline_rule_closes_a_scene_with_a_stinger_where_a_cadence_is_apt(last, first, kind):
    chosen = transition_between(3, last, first, None)
    assert chosen.kind == kind and check_transition(chosen, 3) == chosen
    if kind == "stinger":
        # a cadence at the old scene's tempo (six beats, 2-3.5 s), and the reason says so
        assert chosen.seconds == pytest.approx(min(3.5, max(2.0, 6 * 60 / last.tempo)), abs=0.05)
        assert "cadence" in chosen.why and last.key in chosen.why and first.key in chosen.why


def test_the_bundled_example_gets_a_stinger_with_the_other_kinds(tmp_path):
    from m2m.manga109 import load_manga109

    examples = Path(__file__).resolve().parents[2] / "examples" / "manga109"
    result = plan_book(load_manga109(examples), Settings(runs_root=tmp_path / "runs"))
    assert [t.kind for t in result.transitions.transitions] == ["stinger", "silence", "cut"]


@pytest.mark.parametrize("bad, message", [(Transition(1, "fade", 2.0, "x"), "not one of"),  # type: ignore[arg-type]
                                          (Transition(1, "crossfade", 30.0, "x"), "outside"),
                                          (Transition(1, "silence", 0.0, "x"), "needs a length"),
                                          (Transition(1, "stinger", 0.0, "x"), "needs a length"),
                                          (Transition(1, "stinger", 8.0, "x"), "stinger of 8.0 s is outside"),
                                          (Transition(1, "cut", 0.0, " "), "reason is empty")])
def test_unplayable_transitions_are_refused_clearly(bad, message):
    with pytest.raises(ValueError, match=message):
        check_transition(bad, 1)


def test_the_llm_director_chooses_through_its_prompt_and_nonsense_is_refused(book, fake_openai, llm_settings, tmp_path):
    fake_openai.responder = smart_answer
    settings = Settings(director="openai", base_url=llm_settings.base_url, api_key="sk-test-key",
                        runs_root=tmp_path / "runs", emotion_backend="annotations")
    result = plan_book(book, settings)
    asked = [r for r in fake_openai.requests if r["response_format"]["json_schema"]["name"] == "scene_transition"]
    assert len(asked) == len(result.scenes.scenes) - 1 == len(result.transitions.transitions)
    assert "The music of page" in asked[0]["messages"][1]["content"]
    assert '"stinger": the old scene\'s music ends on a short closing cadence' in asked[0]["messages"][0]["content"]
    # the fake model answers each kind in turn: a stinger is accepted with its length
    assert "stinger" in {t.kind for t in result.transitions.transitions}
    assert all(t.why.startswith("A ") for t in result.transitions.transitions)

    def nonsense(body):
        if body["response_format"]["json_schema"]["name"] == "scene_transition":
            return {"kind": "explode", "seconds": 99, "why": ""}
        return smart_answer(body)

    fake_openai.responder = nonsense
    director = load_director("openai", replace(llm_settings, cache_dir=None))
    with pytest.raises(LLMError, match="scene_transition: the model's answer failed validation twice"):
        choose_transitions(book, result.scenes, result.emotions, result.captions, director)


def test_a_hand_edit_that_breaks_the_sheet_names_the_file(book, tmp_path):
    settings = Settings(runs_root=tmp_path / "runs", emotion_backend="annotations")
    result = plan_book(book, settings)
    path = result.run.file("transitions")
    raw = json.loads(path.read_text())
    raw["data"]["transitions"][0]["kind"] = "wobble"
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"04-transitions.json: .*'wobble'"):
        plan_book(book, settings)
    check_transition_sheet(TransitionSheet(result.transitions.transitions), result.scenes)
