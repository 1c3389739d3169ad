"""ReaderApp's generation step without a browser: what the reader is told when generation fails, and
when the plan is checked again."""

from __future__ import annotations

from pathlib import Path

from m2m import pipeline
from m2m.book import load_book
from m2m.ui.config import AppConfig
from m2m.ui.layout import ReaderApp
from m2m.ui.session import PANELS, Session


class FailingPlan:
    """A service whose plan step fails (a dead LLM server, missing weights ...)."""

    Settings = pipeline.Settings

    def __init__(self) -> None:
        self.plans = 0

    def plan_book(self, book, settings, progress):
        self.plans += 1
        raise RuntimeError("could not connect to 127.0.0.1:9")

    def open_run(self, book, settings):
        return None


def test_a_failed_step_tells_the_reader_it_stopped(manga109_root: Path, tmp_path: Path) -> None:
    service = FailingPlan()
    app = ReaderApp(AppConfig(runs_root=tmp_path / "runs"), service)  # type: ignore[arg-type]
    session = Session(load_book(manga109_root), pipeline.Settings(runs_root=tmp_path / "runs"))
    value, status, *_ = list(app.tick(session, 0))[-1]
    assert value["status"]["stopped"] is True  # the reader shows "stopped", not "planning…" forever
    assert "could not connect to 127.0.0.1:9" in value["status"]["message"]
    assert "Generation stopped" in str(status)


class RecordingPlans:
    """A service whose run is planned and fully rendered; records what each plan step was asked."""

    Settings = pipeline.Settings

    def __init__(self, book) -> None:
        self.asked: list[tuple[int, str | None]] = []
        self.view = type("View", (), {"captions": object(), "clips": {p.index: None for p in book.pages}})()

    def plan_book(self, book, settings, progress):
        self.asked.append((len(book.pages), settings.emotion_backend))

    def open_run(self, book, settings):
        return self.view


def test_every_step_plans_with_the_readers_book_and_settings(manga109_root: Path, tmp_path: Path,
                                                             monkeypatch) -> None:
    """Files on disk from other settings, an earlier upload of the book or another reader of the run
    folder are not enough: every step runs the plan (which reuses what still holds), even when the
    music is complete (it used to plan only when nothing was planned, so Apply settings did nothing)."""
    import m2m.ui.layout as layout

    monkeypatch.setattr(layout, "panel_values", lambda texts: [None] * PANELS)
    monkeypatch.setattr(layout, "panels", lambda book, view, page: None)
    monkeypatch.setattr(layout, "reader_value", lambda *a, **k: {})
    book = load_book(manga109_root)
    service = RecordingPlans(book)
    app = ReaderApp(AppConfig(runs_root=tmp_path / "runs"), service)  # type: ignore[arg-type]
    list(app.tick(Session(book, pipeline.Settings(runs_root=tmp_path / "runs")), 0))
    list(app.tick(Session(book, pipeline.Settings(runs_root=tmp_path / "runs", emotion_backend="dialogue")), 0))
    shorter = type(book)(**{**book.__dict__, "pages": book.pages[:1]})
    list(app.tick(Session(shorter, pipeline.Settings(runs_root=tmp_path / "runs")), 0))
    assert service.asked == [(len(book.pages), None), (len(book.pages), "dialogue"), (1, None)]


def test_refreshes_leave_a_caption_being_typed_alone(manga109_root: Path, tmp_path: Path) -> None:
    """Clips land every second or so during generation, and each refreshed the side panels: the
    caption box was reset to the server's text under the reader's cursor, and a Save sent that."""
    from types import SimpleNamespace

    from m2m.cues import CaptionSheet, Cue, Plan
    from m2m.ui.session import EDITABLE

    book = load_book(manga109_root)
    app = ReaderApp(AppConfig(runs_root=tmp_path / "runs"), RecordingPlans(book))  # type: ignore[arg-type]
    session = Session(book, pipeline.Settings(runs_root=tmp_path / "runs"))
    plan = Plan(90, "C", "major", ("acoustic grand piano",), 0.4, "calm")
    view = SimpleNamespace(captions=CaptionSheet(tuple(Cue.planned(p.index, 0, f"page {p.index}", plan)
                                                       for p in book.pages)), clips={}, scenes=None,
                           emotions=None, directives=None, provenance={})
    caption = EDITABLE["caption"]
    assert app.panels_for(session, view, 1)[caption] == "page 1"  # a turn: the box gets the page's caption
    skipped = app.panels_for(session, view, 1, refresh=True)[caption]
    assert not isinstance(skipped, str)  # gr.skip(): the box keeps what the reader typed
    # the server's caption changed (an edit saved, a new plan): the refresh brings it
    edited = SimpleNamespace(**{**vars(view), "captions": CaptionSheet(tuple(
        Cue.planned(p.index, 0, "new words" if p.index == 1 else f"page {p.index}", plan) for p in book.pages))})
    assert app.panels_for(session, edited, 1, refresh=True)[caption] == "new words"
    # another page: the box follows it
    assert app.panels_for(session, edited, 0, refresh=True)[caption] == "page 0"


def unwrap(scene_html: str) -> str:
    """The scene panel without the wrapper that carries the panels' digest."""
    import re
    match = re.fullmatch(r'<div class="m2m-panels" data-m2m-digest="[0-9a-f]{16}">(.*)</div>', scene_html, re.S)
    assert match, scene_html
    return match.group(1)


def labelled_panels(monkeypatch, manga109_root: Path, tmp_path: Path) -> Session:
    """Panels that say which page they are for (no HTML), and a session on the fixture book."""
    import m2m.ui.layout as layout

    monkeypatch.setattr(layout, "panel_values", lambda texts: [texts] * PANELS)
    monkeypatch.setattr(layout, "panels", lambda book, view, page: f"panels of page {page}")
    monkeypatch.setattr(layout, "reader_value", lambda *a, **k: {})
    return Session(load_book(manga109_root), pipeline.Settings(runs_root=tmp_path / "runs"))


def test_turns_overtaken_by_newer_ones_leave_the_panels_alone(manga109_root: Path, tmp_path: Path,
                                                              monkeypatch) -> None:
    """Turn events run side by side; one that arrives or finishes after a newer one must not put an
    earlier page in the panels (Gradio's always_last re-ran a burst's last turn without its page)."""
    from types import SimpleNamespace

    import m2m.ui.layout as layout

    session = labelled_panels(monkeypatch, manga109_root, tmp_path)
    book = session.book
    app = ReaderApp(AppConfig(runs_root=tmp_path / "runs"), RecordingPlans(book))  # type: ignore[arg-type]

    def turn(page: int, seq: int) -> tuple:
        return app.turn(SimpleNamespace(_data={"page": page, "seq": seq}), session)

    def shown(answer: tuple) -> tuple:
        """(page, what the scene panel says) of a turn's answer (page, status, timer, *panels)."""
        return answer[0], unwrap(answer[3])

    assert shown(turn(1, 2)) == (1, "panels of page 1")
    assert not isinstance(turn(0, 1)[0], int)  # older than the turn already shown: skipped
    assert session.live.page == 1
    assert shown(turn(0, 3)) == (0, "panels of page 0")
    assert turn(99, 4)[0] == len(book.pages) - 1  # clamped to the book
    assert shown(turn(0, 0)) == (0, "panels of page 0")  # no sequence number (an API client): taken as is
    assert session.live.page == 0

    # overtaken while its panels are built: the newer turn's panels stand, this one sends nothing
    def overtaken(book, view, page):
        if page == 0:
            session.live.turned(6, 1)
        return f"panels of page {page}"

    monkeypatch.setattr(layout, "panels", overtaken)
    assert not isinstance(turn(0, 5)[0], int) and session.live.page == 1


def test_a_step_refreshes_the_panels_of_the_page_on_screen_now(manga109_root: Path, tmp_path: Path,
                                                               monkeypatch) -> None:
    """A generation step starts with the page input of its tick; when the reader turns while it runs,
    the refresh that comes as a clip lands shows the page on screen, not the one the step began on."""
    from types import SimpleNamespace

    session = labelled_panels(monkeypatch, manga109_root, tmp_path)
    book = session.book

    class TurnsWhileRendering(RecordingPlans):
        def __init__(self, book) -> None:
            super().__init__(book)
            self.view.clips = {}

        def render_pages(self, book, settings, pages, progress):
            session.live.turned(1, 1)  # the reader turns to page 2 while page 1 renders
            self.view.clips = {0: SimpleNamespace(version="v")}
            progress("music", 1, len(book.pages))

    app = ReaderApp(AppConfig(runs_root=tmp_path / "runs"), TurnsWhileRendering(book))  # type: ignore[arg-type]
    steps = list(app.tick(session, 0))
    assert unwrap(steps[-1][3]) == "panels of page 1"


def test_an_edit_s_refreshes_follow_the_reader_to_another_page(manga109_root: Path, tmp_path: Path,
                                                               monkeypatch) -> None:
    """A saved caption re-renders its page; the reader turns meanwhile: the refresh as the clip lands
    shows the page on screen (it used to put the edited page's panels back)."""
    from types import SimpleNamespace

    session = labelled_panels(monkeypatch, manga109_root, tmp_path)
    book = session.book

    class Edits(RecordingPlans):
        def edit_caption(self, book, settings, page, text):
            self.saved = (page, text)

        def render_pages(self, book, settings, pages, progress):
            session.live.turned(1, 1)  # the reader moves on while page 1's new music renders
            self.view.clips = {0: SimpleNamespace(version="new")}
            progress("music", 1, len(book.pages))

    service = Edits(book)
    app = ReaderApp(AppConfig(runs_root=tmp_path / "runs"), service)  # type: ignore[arg-type]
    steps = list(app.edit_caption(session, 0, "a quiet harp"))
    assert service.saved == (0, "a quiet harp")
    assert unwrap(steps[-2][2]) == "panels of page 1"
    assert "Saved to the run file; the new music for page 1 is in" in steps[-1][1]
