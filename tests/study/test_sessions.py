"""Counterbalancing (balanced Latin square) and blinding (what the browser sees)."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from m2m.study import CONDITIONS, LABELS, build_session, condition_for, stimulus_order, version_order
from m2m.study.manifest import PageEntry, audio_path
from m2m.study.sessions import WILLIAMS_SQUARE, new_participant_id

from .conftest import BOOK, make_study

SECRET = b"0123456789abcdef0123456789abcdef"


def page_image(book_id: str, page: int) -> Path:
    return Path("/srv/books") / book_id / "images" / f"{page:03d}.jpg"


def test_square_is_all_six_orders_and_balances_carry_over() -> None:
    assert sorted(WILLIAMS_SQUARE) == sorted(itertools.permutations(range(3)))
    neighbours = Counter(pair for row in WILLIAMS_SQUARE for pair in zip(row, row[1:], strict=False))
    assert set(neighbours.values()) == {2} and len(neighbours) == 6


@pytest.mark.parametrize("first", [0, 1, 5, 12])
def test_every_condition_in_every_position_equally_often_per_stimulus(first: int) -> None:
    # Any six consecutive participants, for every stimulus: each condition twice in each position.
    for stimulus_index in range(6):
        counts = Counter(
            (position, condition)
            for participant in range(first, first + 6)
            for position, condition in enumerate(version_order(participant, stimulus_index))
        )
        assert set(counts.values()) == {2}
        assert len(counts) == 9


def test_balanced_within_a_participant_too() -> None:
    # Six stimuli: a participant hears each condition twice under A, twice under B, twice under C,
    # so a label never stands for one condition for the whole session.
    for participant in range(6):
        counts = Counter((p, c) for s in range(6) for p, c in enumerate(version_order(participant, s)))
        assert set(counts.values()) == {2}


def test_condition_for_inverts_the_order() -> None:
    study = make_study()
    for participant, stimulus in itertools.product(range(7), study.stimuli):
        order = version_order(participant, study.stimulus_index(stimulus.id))
        assert tuple(condition_for(study, participant, stimulus.id, label) for label in LABELS) == order
    with pytest.raises(ValueError, match="label must be one of"):
        condition_for(study, 0, "s1", "D")
    with pytest.raises(ValueError, match="stimulus 'nope' is not part of study"):
        condition_for(study, 0, "nope", "A")


def test_stimulus_order_is_random_per_participant_and_stable() -> None:
    study = make_study()
    ids = [new_participant_id() for _ in range(30)]
    orders = [stimulus_order(study, pid) for pid in ids]
    assert all(sorted(o) == sorted(s.id for s in study.stimuli) for o in orders)
    assert len(set(orders)) > 10
    assert stimulus_order(study, ids[0]) == orders[0]


def test_participant_ids_are_anonymous_tokens() -> None:
    ids = {new_participant_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", pid) for pid in ids)


def _session(participant_id: str = "p-7f3a", number: int = 4, study_dir: Path = Path("/srv/studies/within")):
    return build_session(make_study(), study_dir, participant_id, number, SECRET, page_image)


def test_public_view_hides_conditions_and_files() -> None:
    study_dir = Path("/srv/studies/within")
    session = _session(study_dir=study_dir)
    text = session.public.to_json()
    lowered = text.lower()
    for condition in CONDITIONS:
        assert condition not in lowered
    for leak in ("/", "\\", ".ogg", ".jpg", "audio/", "page-", "runs", "srv", BOOK.lower(), "within"):
        assert leak not in lowered, leak
    data = json.loads(text)
    assert set(data) == {"participant", "stimuli"}
    token = re.compile(r"[A-Za-z0-9_-]{22}")
    for stimulus in data["stimuli"]:
        assert set(stimulus) == {"stimulus", "versions"}
        assert [v["label"] for v in stimulus["versions"]] == list(LABELS)
        for version in stimulus["versions"]:
            assert set(version) == {"stimulus", "label", "pages", "audio", "enter", "fades", "bars"}
            assert version["enter"] == version["fades"] == version["bars"] == [None] * 4, \
                "without a cue sheet: the study's crossfade, from the clip's beginning"
            assert version["stimulus"] == stimulus["stimulus"]
            assert len(version["pages"]) == len(version["audio"]) == 4
            assert all(token.fullmatch(t) for t in version["pages"] + version["audio"])
    assert [s["stimulus"] for s in data["stimuli"]] == list(stimulus_order(make_study(), "p-7f3a"))


def test_tokens_resolve_server_side_to_the_right_files() -> None:
    study_dir = Path("/srv/studies/within")
    study = make_study()
    session = _session(study_dir=study_dir)
    for public in session.public.stimuli:
        stimulus = study.stimulus(public.stimulus)
        for version in public.versions:
            condition = session.condition(stimulus.id, version.label)
            assert condition == condition_for(study, 4, stimulus.id, version.label)
            for page, audio, image in zip(stimulus.pages, version.audio, version.pages, strict=True):
                assert session.asset(audio).path == audio_path(study_dir, stimulus, condition, page)
                assert session.asset(audio).kind == "audio"
                assert session.asset(image).path == page_image(BOOK, page)
    with pytest.raises(ValueError, match="does not belong to this session"):
        session.asset("not-a-token")


def test_tokens_are_stable_per_participant_and_differ_between_them() -> None:
    assert _session().public == _session().public
    mine = set(_session("p-1").assets)
    theirs = set(_session("p-2").assets)
    assert mine.isdisjoint(theirs)
    other_secret = build_session(make_study(), Path("/x"), "p-1", 4, b"x" * 32, page_image)
    assert set(other_secret.assets).isdisjoint(mine)


def test_build_session_validates() -> None:
    with pytest.raises(ValueError, match="secret must be bytes"):
        build_session(make_study(), Path("/x"), "p", 0, b"short", page_image)
    with pytest.raises(ValueError, match="participant_number must be a non-negative integer, got -1"):
        build_session(make_study(), Path("/x"), "p", -1, SECRET, page_image)
    with pytest.raises(ValueError, match="participant_id must be a non-empty string"):
        build_session(make_study(), Path("/x"), "", 0, SECRET, page_image)


def test_a_version_s_chosen_transitions_reach_the_browser_as_moves_and_tokens() -> None:
    """The m2m version's cue sheet enters page 1 by a silence and page 2 by a stinger (whose clip is
    served by a token like any other); the passage's first page has no turn into it, and the other
    versions crossfade (the baseline over its cue sheet's length). Nothing in the moves names a condition or a file."""
    study, stinger = make_study(), Path("/srv/runs/m2m/audio/stinger-002.ogg")

    def entries(stimulus, condition):
        first = stimulus.pages[0]
        if condition == "baseline":  # plain crossfades of its scene crossfade (each page its own scene)
            return {page: PageEntry("", 5.0, 0.0, bar=2.5) for page in stimulus.pages}
        if condition != "m2m":
            return {}
        return {first: PageEntry("cut", 0.05, 0.0), first + 1: PageEntry("silence", 1.0, 1.5),
                first + 2: PageEntry("stinger", 1.0, 0.0, 2.5, stinger)}

    session = build_session(study, Path("/srv/studies/within"), "p-7f3a", 4, SECRET, page_image, entries)
    lowered = session.public.to_json().lower()
    assert not any(leak in lowered for leak in ("m2m", "baseline", "random", ".ogg", "/"))
    for public in session.public.stimuli:
        for version in public.versions:
            condition = session.condition(public.stimulus, version.label)
            if condition != "m2m":
                assert version.enter == (None,) * 4
                assert version.fades == ((None, 5.0, 5.0, 5.0) if condition == "baseline" else (None,) * 4)
                assert version.bars == ((2.5,) * 4 if condition == "baseline" else (None,) * 4)
                continue
            assert version.fades == (None, 1.0, 1.0, None)  # the chosen moves' fades; page 4: no entry, the study's
            first, silence, stinger_move, last = version.enter
            assert first is None, "no turn into the passage's first page"
            assert silence == {"kind": "silence", "fade": 1.0, "silence": 1.5}
            assert {k: v for k, v in stinger_move.items() if k != "stinger"} == \
                {"kind": "stinger", "fade": 1.0, "silence": 0.0, "seconds": 2.5}
            assert session.asset(stinger_move["stinger"]).path == stinger
            assert last is None
