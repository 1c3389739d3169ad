"""The reader's pull without a browser: the server's versioned state of a session, which the page
asks for whenever an event's answer may not have reached it (m2m/ui/live.py, ReaderApp.reader_state)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from m2m.book import load_book
from m2m.ui import live
from m2m.ui.config import AppConfig
from m2m.ui.layout import ReaderApp
from m2m.ui.live import Lives
from m2m.ui.session import Session
from tests.ui.chord_engine import chord_service


@pytest.fixture()
def opened(manga109_root: Path, tmp_path: Path) -> tuple[ReaderApp, Session, tuple]:
    """An app over the pipeline (chord clips) with the book open (what ``open_book`` answered)."""
    app = ReaderApp(AppConfig(runs_root=tmp_path / "runs"), chord_service())
    settings = app.service.Settings(runs_root=tmp_path / "runs")
    answer = app.open_book(load_book(manga109_root), Session(settings=settings))
    return app, answer[0], answer


def pull(app: ReaderApp, session: Session, page: int = 0, seq: int = 0) -> dict:
    return app.reader_state({"token": session.live.token, "page": page, "seq": seq})


def attribute(html: str, name: str) -> str:
    match = re.search(rf'{name}="([0-9a-f]+)"', html)
    assert match, html
    return match.group(1)


def test_a_pull_brings_what_the_server_made_after_the_last_answer(opened) -> None:
    """The open's answer had no music; clips made since (their answers lost) come with the next pull,
    with a newer version than anything sent before."""
    app, session, answer = opened
    sent = answer[2]
    assert sent["sync"] == session.live.token and sent["clips"] == {}
    app.service.plan_book(session.book, session.settings)
    app.service.render_pages(session.book, session.settings, [0])
    state = pull(app, session)
    assert state["known"] and state["value"]["version"] > sent["version"]
    assert list(state["value"]["clips"]) == ["0"]
    assert len(session.book.pages) > 1 and state["working"]  # pages still to make


def test_the_digests_match_what_the_page_was_sent(opened) -> None:
    """The pull's digests are those the page's panels and status line carry when it has the server's
    latest answer, and differ when it does not."""
    app, session, answer = opened
    status, panels = answer[3], answer[5]
    state = pull(app, session)
    assert state["said"] == attribute(status, "data-m2m-said")
    assert state["panels"] == attribute(panels, "data-m2m-digest")
    app.service.plan_book(session.book, session.settings)  # the plan lands; its answer is lost
    assert pull(app, session)["panels"] != attribute(panels, "data-m2m-digest")
    turned = app.turn(SimpleNamespace(_data={"page": 0, "seq": 1, "said": state["said"]}), session)
    assert pull(app, session)["panels"] == attribute(turned[3], "data-m2m-digest")
    assert not isinstance(turned[1], str)  # the page's status line was current: not sent again


def test_a_pull_counts_as_the_turn_it_carries(opened) -> None:
    """A turn whose event never reached the server: the pull's page moves the generation there, and a
    pull with an older turn number than the newest turn does not move it back."""
    app, session, _ = opened
    assert pull(app, session, page=1, seq=3)["page"] == 1 and session.live.page == 1
    assert pull(app, session, page=0, seq=2)["page"] == 1
    assert pull(app, session, page=0, seq=4)["page"] == 0
    assert pull(app, session, page=99, seq=5)["page"] == len(session.book.pages) - 1


def test_a_generation_whose_start_was_lost_is_restarted(opened, monkeypatch) -> None:
    """Music missing, no step running for a while, nothing failed: the pull says it stalled, and the
    page's turn answers with the timer started again."""
    app, session, _ = opened
    assert not pull(app, session)["stalled"]  # just opened: the first step is on its way
    monkeypatch.setattr(live, "STALL_S", -1.0)
    assert pull(app, session)["stalled"]
    answer = app.turn(SimpleNamespace(_data={"page": 0, "seq": 1}), session)
    assert answer[2].active is True  # the timer
    with session.live.working():  # a step is running: not stalled, no second timer
        assert not pull(app, session)["stalled"]
    session.live.stamp("The music stopped: RuntimeError: no", True)  # a failure stopped it: stays stopped
    assert not pull(app, session)["stalled"]


def test_values_are_ordered_and_stopped_stays_stopped(opened) -> None:
    app, session, _ = opened
    versions = [pull(app, session)["value"]["version"] for _ in range(3)]
    assert versions == sorted(versions) and len(set(versions)) == 3
    list(app.tick(replace_service(session), 0))  # a failed step
    state = pull(app, session)
    assert state["value"]["status"]["stopped"] and "boom" in state["value"]["status"]["message"]
    assert "boom" in session.live.status


def replace_service(session: Session) -> Session:
    """The session with settings whose plan fails."""
    from dataclasses import replace

    return replace(session, settings=replace(session.settings, runs_root=Path("/dev/null/boom")))


def test_unknown_or_malformed_pulls_learn_nothing(opened) -> None:
    app, session, _ = opened
    assert app.reader_state({"token": "nope", "page": 0}) == {"known": False}
    assert app.reader_state("not a dict") == {"known": False}
    assert app.reader_state({"token": session.live.token, "page": "x"}) == {"known": False}


def test_lives_forget_old_sessions() -> None:
    def session() -> SimpleNamespace:
        return SimpleNamespace(live=live.Live())

    lives = Lives(capacity=2, idle_s=3600)
    a, b, c = session(), session(), session()
    for s in (a, b):
        lives.put(s)
    assert lives.get(a.live.token) is a  # seen: now the newest
    lives.put(c)
    assert lives.get(b.live.token) is None and lives.get(a.live.token) is a and len(lives) == 2
    idle = Lives(capacity=10, idle_s=-1)
    idle.put(a)
    idle.put(b)
    assert len(idle) == 1  # a was unseen for longer than idle_s
    lives.drop(a.live.token)
    assert lives.get(a.live.token) is None
