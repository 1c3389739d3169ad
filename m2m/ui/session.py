"""One reader's session and the values the reader's handlers send: the session's book and settings,
the components they write to (in output order), and the panels' and status line's HTML with the
digests the page's pulls compare (see m2m/ui/live.py)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from m2m.book import Book
from m2m.ui.live import Live, digest
from m2m.ui.panels import PanelTexts
from m2m.ui.reader import Reader


@dataclass(frozen=True)
class Session:
    """One reader's book and settings. ``settings`` may carry an API key: never render or log it.

    ``shown`` is what each editable box (caption, directive) last got from the server, as (page,
    text): the refreshes that come as clips land leave a box alone while that is unchanged, so a
    caption being typed during generation is not replaced under the reader's cursor."""

    book: Book | None = None
    settings: Any = None
    shown: dict[str, tuple[int, str]] = field(default_factory=dict, compare=False, repr=False)
    live: Live = field(default_factory=Live, compare=False, repr=False)


@dataclass(frozen=True)
class Controls:
    """The components the handlers write to, in output order."""

    reader: Reader
    status: gr.HTML
    timer: gr.Timer
    scene: gr.HTML
    emotions: gr.HTML
    directive: gr.HTML
    directive_box: gr.Textbox
    caption: gr.HTML
    caption_box: gr.Textbox
    provenance: gr.HTML
    caption_btn: gr.Button
    directive_btn: gr.Button
    theme: gr.HTML
    theme_voice: gr.Textbox
    theme_motif: gr.Textbox
    transition: gr.HTML
    transition_kind: gr.Dropdown
    transition_seconds: gr.Number
    transition_why: gr.Textbox
    theme_btn: gr.Button
    transition_btn: gr.Button

    def panel_outputs(self) -> list[Any]:
        return [self.scene, self.emotions, self.directive, self.directive_box, self.caption,
                self.caption_box, self.provenance, self.theme, self.theme_voice, self.theme_motif,
                self.transition, self.transition_kind, self.transition_seconds, self.transition_why]


def panel_values(p: PanelTexts) -> list[Any]:
    return [p.scene, p.emotions, p.directive, p.directive_text, p.caption, p.caption_text, p.provenance,
            p.theme, p.theme_voice, p.theme_steps, p.transition, p.transition_kind, p.transition_seconds,
            p.transition_why]


PANELS = 14
"""How many values ``panel_values`` gives (the handlers skip that many when the panels stay)."""

EDITABLE = {"directive": 3, "caption": 5, "theme-voice": 8, "theme-motif": 9, "transition-kind": 11,
            "transition-seconds": 12, "transition-why": 13}
"""Where the editable boxes' values stand in ``panel_values``; each box's element id is ``m2m-<name>``
(the page says which ones the reader is typing in, m2m/ui/static/reader.js)."""


def work_left(session: Session, view: Any | None) -> bool:
    """Whether the reader's book still lacks its plan or a page's music."""
    if session.book is None:
        return False
    if view is None or getattr(view, "captions", None) is None:
        return True
    return len(getattr(view, "clips", {}) or {}) < len(session.book.pages)


def with_digest(scene_html: str, panels_digest: str) -> str:
    """The scene panel, carrying the digest of every panel sent with it (the page's pulls compare it
    with the digest of the panels the server would send now)."""
    return f'<div class="m2m-panels" data-m2m-digest="{panels_digest}">{scene_html}</div>'


def status_html(message: str, kind: str = "info") -> tuple[str, str]:
    """(the status line, its digest): the line carries its digest as ``data-m2m-said``, which the
    page's pulls compare with the server's (reader_state)."""
    body = f'<div class="m2m-status m2m-status-{kind}">{html.escape(message)}</div>'
    key = digest(body)
    return f'<div data-m2m-said="{key}">{body}</div>', key


def pages_label(pages: list[int]) -> str:
    """'page 3', 'pages 3–5' (0-based pages, shown 1-based)."""
    if len(pages) == 1:
        return f"page {pages[0] + 1}"
    return f"pages {min(pages) + 1}–{max(pages) + 1}"
