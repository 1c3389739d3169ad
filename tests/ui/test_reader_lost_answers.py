"""The reader converges when event answers never reach it (Chromium).

Each test's app runs the real handlers, but the answers of some events are thrown away after the
server has done the work (its gr.State is kept, as Gradio keeps it server-side): as when an answer
is lost on the event stream. The page must still show the new clip, panels and status line, through
its pull (m2m/ui/live.py), within about one pull interval.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import gradio as gr
import pytest

from tests.ui.conftest import Served, pipeline_service, serve
from tests.ui.test_reader_browser import (
    STATE,
    open_reader,
    start_and_edit_caption,
    wait_all_clips,
    wait_or_explain,
)

pytestmark = pytest.mark.browser

PULL_S = 1.5  # reader.js PULL_MS


class Losses:
    """Which answers to lose: ``lose[name]`` is how many more answers of the handler ``name`` go
    missing (None: all), and ``only`` the outputs to lose (None: every output but gr.State's)."""

    def __init__(self) -> None:
        self.lose: dict[str, int | None] = {}
        self.only: dict[str, type] = {}
        self.lost: dict[str, int] = {}
        self.timer_stopped = threading.Event()  # a generation step answered that nothing is left to do

    def wait_generation_over(self) -> None:
        """Until a step has stopped the timer: a step still to come would say something after an edit's
        status line (rightly: it would be the newest news)."""
        assert self.timer_stopped.wait(30), "the generation's timer never stopped"

    def take(self, name: str) -> bool:
        if name not in self.lose:
            return False
        left = self.lose[name]
        if left is not None:
            if left <= 0:
                return False
            self.lose[name] = left - 1
        self.lost[name] = self.lost.get(name, 0) + 1
        return True


def losing(block_fn, losses: Losses) -> Callable:
    """``block_fn``'s function, whose answers lose their component outputs when ``losses`` says so."""
    fn, name = block_fn.fn, block_fn.name
    kept = [isinstance(block, gr.State) for block in block_fn.outputs]

    def censor(answer):
        if isinstance(answer, tuple) and any(isinstance(v, gr.Timer) and v.active is False for v in answer):
            losses.timer_stopped.set()
        if not isinstance(answer, tuple) or not losses.take(name):
            return answer
        only = losses.only.get(name)
        return tuple(value if keep or (only is not None and not isinstance(block, only)) else gr.skip()
                     for value, keep, block in zip(answer, kept, block_fn.outputs, strict=True))

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator(*args, **kwargs) -> Iterator:
            for answer in fn(*args, **kwargs):
                yield censor(answer)
        return generator

    @functools.wraps(fn)
    def plain(*args, **kwargs):
        return censor(fn(*args, **kwargs))
    return plain


@pytest.fixture()
def lossy(example_root: Path, tmp_path: Path) -> Iterator[tuple[Served, Losses]]:
    """A fresh app (its own runs folder) whose handlers' answers can be lost."""
    losses = Losses()
    for served in serve(example_root, tmp_path, pipeline_service()):
        for block_fn in served.demo.fns.values():
            if block_fn.fn is not None and block_fn.name in ("load", "turn", "tick", "edit_caption"):
                block_fn.fn = losing(block_fn, losses)
        yield served, losses


def test_an_edit_whose_every_answer_is_lost_still_plays_and_shows(browser, lossy):
    """The caption is saved and its page rendered, and not one of the edit's answers arrives: the new
    clip plays, and the status line says the new music is in."""
    served, losses = lossy
    context, page, errors = open_reader(browser, served.url)
    try:
        def lose_the_edit_s_answers() -> None:
            losses.wait_generation_over()
            losses.lose["edit_caption"] = None

        old = start_and_edit_caption(page, "a tense, dark string ostinato in D minor, 120 BPM",
                                     before_save=lose_the_edit_s_answers)
        wait_or_explain(page, f"window.m2mReader.state().voices.some(v => v.page === 0 && v.version !== '{old}' "
                              "&& v.target === 1)", 15_000, "the edited page's new clip, through the pull")
        wait_or_explain(page, "document.querySelector('.m2m-status-box')?.innerText.includes('Saved to the run file')",
                        int((3 * PULL_S + 3) * 1000), "the status line, asked for again")
        state = page.evaluate(STATE)
        assert losses.lost.get("edit_caption", 0) >= 3, losses.lost  # saved, the clip, the confirmation
        assert state["resyncs"] >= 1 and any(p.get("applied") for p in state["pullLog"])
        assert not errors, errors
    finally:
        context.close()


def test_turns_whose_answers_are_lost_still_bring_the_page_s_panels(browser, lossy):
    served, losses = lossy
    context, page, errors = open_reader(browser, served.url)
    try:
        wait_all_clips(page)
        losses.lose["turn"] = 2
        page.evaluate("window.m2mReader.go(3)")
        wait_or_explain(page, "document.querySelector('[data-m2m-page]')?.dataset.m2mPage === '3'",
                        int((2 * 3 * PULL_S + 6) * 1000), "the panels of page 4")
        assert losses.lost.get("turn") == 2
        assert page.evaluate(STATE)["resyncs"] >= 2
        assert not errors, errors
    finally:
        context.close()


def test_music_whose_start_was_lost_is_made_all_the_same(browser, lossy):
    """The open's answer arrives without the timer that starts the generation: the pull finds the
    music stalled and the page asks for it to go on."""
    served, losses = lossy
    losses.lose["load"] = 1
    losses.only["load"] = gr.Timer
    context, page, errors = open_reader(browser, served.url)
    try:
        wait_or_explain(page, "(() => { const s = window.m2mReader.state(); "
                              "return s.status && s.status.ready === s.status.total; })()", 40_000,
                        "every page's music, though the generation's start was lost")
        assert losses.lost == {"load": 1}
        assert any("stalled" in p.get("behind", []) for p in page.evaluate(STATE)["pullLog"])
        assert not errors, errors
    finally:
        context.close()
