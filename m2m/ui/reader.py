"""The reader: a gr.HTML subclass that shows the book and plays each page's music in the browser.

Its value is the manifest from :mod:`m2m.ui.manifest` (a dict). Its template is static, so a new
value never re-renders the DOM; the browser code applies it as a diff (``watch('value')``). The
browser fires a ``turn`` event with ``{"page": n}`` when the page on screen changes, so the server
can render that page's music first.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import gradio as gr

STATIC = Path(__file__).with_name("static")


@cache
def _asset(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


class Reader(gr.HTML):
    """The book on screen with its music. Events: ``turn`` (EventData.page: the 0-based page shown)."""

    def __init__(self, value: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(
            value=value,
            html_template=_asset("reader.html"),
            css_template="",
            js_on_load=_asset("crossfade.js") + _asset("reader.js"),
            apply_default_css=False,
            padding=False,
            reader_css=_asset("reader.css"),
            **kwargs,
        )

    def api_info(self) -> dict[str, Any]:
        return {"type": "object", "description": "the reader's manifest: book pages, clips, status"}
