"""The Blocks layout: the reader on the left, every step's output in collapsible sections on the right."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import gradio as gr

from m2m.cues import KINDS, MAX_SECONDS
from m2m.emotions import available_emotion_backends
from m2m.music import available_engines
from m2m.music.render import SoundtrackSettings
from m2m.ui.config import AppConfig
from m2m.ui.fallback_audio import fallback_routes
from m2m.ui.layout import CONDITIONS, DIRECTORS, ReaderApp
from m2m.ui.reader import STATIC, Reader
from m2m.ui.service import Service, default_service
from m2m.ui.session import Controls, Session
from m2m.ui.study_api import start_study_backup, study_app_kwargs, study_dir_from_env
from m2m.ui.study_tab import build_study_tab

log = logging.getLogger(__name__)

INTRO = ('<div class="m2m-title"><span class="m2m-logo">m2m</span><span class="m2m-sub">background music for '
         'manga, made from the book itself (<a href="https://arxiv.org/abs/2410.09928" target="_blank" '
         'rel="noopener">M2M-Gen</a>)</span></div>')

UPLOAD_HELP = """Upload a **.zip** or **.cbz**: either page images with a `transcript.json`
(the simple format) or one book in the **Manga109 layout** (`books.txt`, `annotations/`, `images/`).
JPEG, PNG or WebP pages. The book opens at page 1 and its music is composed as you read."""

FORCE_DARK = """() => {
  // A reading room is dark: use Gradio's dark theme whatever the system setting says.
  document.body.classList.add('dark');
  document.documentElement.classList.add('dark');
}"""


def build_app(config: AppConfig | None = None, service: Service | None = None) -> gr.Blocks:
    config = config or AppConfig.from_env()
    if config.study_only:
        return build_study_only()
    if study_dir_from_env() is not None:
        log.warning("A listening study is configured and the Read tab is on: its Settings name the conditions "
                    "participants rate blind, and it plays them. For a study, set M2M_STUDY_ONLY=1.")
    app = ReaderApp(config, service or default_service())  # type: ignore[arg-type]
    with gr.Blocks(title="m2m — manga with music", fill_width=True) as demo:
        session = gr.State(Session())
        page = gr.State(0)
        with gr.Row(elem_classes="m2m-top"):
            gr.HTML(INTRO, padding=False)
            status = gr.HTML(elem_classes="m2m-status-box", padding=False)
        with gr.Tab("Read", elem_id="m2m-tab-read") as read_tab:
            with gr.Row(equal_height=False, elem_classes="m2m-main"):
                with gr.Column(scale=5, min_width=340):
                    reader = Reader(elem_id="m2m-reader", server_functions=[_pull(app)])
                with gr.Column(scale=2, min_width=320, elem_classes="m2m-side"):
                    c = _side_panels(reader, status)
                    settings = _settings_panel()
                    upload = _book_panel()
        with gr.Tab("Listening study", elem_id="m2m-tab-study") as study_tab:
            build_study_tab(beside_reader=True)  # the study in $M2M_STUDY_DIR, or how to prepare one
        # The reader's music must not play under a study's clips (it would colour the ratings): it
        # pauses while the study tab is open and goes on where it was on the way back.
        study_tab.select(None, js="() => { window.m2mReader && window.m2mReader.suspend(); }")
        read_tab.select(None, js="() => { window.m2mReader && window.m2mReader.resume(); }")
        timer = gr.Timer(config.tick_s, active=False)
        controls = Controls(reader=reader, status=status, timer=timer, **c)
        _wire(demo, app, controls, session, page, settings, upload, config)
    return demo


def _pull(app: ReaderApp) -> Callable[[Any], dict[str, Any]]:
    """The reader's pull as a gr.HTML server function (its page calls ``server.reader_state``):
    Gradio marks the function it is given, so it gets one of its own, not the bound method."""
    def reader_state(data: Any) -> dict[str, Any]:
        return app.reader_state(data)
    return reader_state


def build_study_only() -> gr.Blocks:
    """The listening study alone (M2M_STUDY_ONLY=1): participants rate the conditions blind, so the page
    has no reader, whose settings name them and whose music plays them, and nothing composes meanwhile."""
    with gr.Blocks(title="m2m — listening study", fill_width=True) as demo:
        with gr.Row(elem_classes="m2m-top"):
            gr.HTML(INTRO, padding=False)
        with gr.Tab("Listening study", elem_id="m2m-tab-study"):
            build_study_tab()
    return demo


SCROLL_TO_PAGE = """() => {
  const list = document.querySelector('#m2m-scene .m2m-dialogue');
  const here = list && list.querySelector('.m2m-pagehead.m2m-here');
  if (here) list.scrollTop = here.offsetTop - list.offsetTop;
}"""


def _side_panels(reader: Reader, status: gr.HTML) -> dict[str, Any]:
    with gr.Accordion("Scene · dialogue", open=True, elem_classes="m2m-acc"):
        scene = gr.HTML(padding=False, elem_id="m2m-scene")
        # The list scrolls inside its own box: bring the page on screen's lines into view there
        # (not the whole window) whenever the panel changes.
        scene.change(None, js=SCROLL_TO_PAGE)
    with gr.Accordion("Emotions", open=True, elem_classes="m2m-acc"):
        emotions = gr.HTML(padding=False)
    with gr.Accordion("Caption · plan (this page)", open=True, elem_classes="m2m-acc"):
        caption_box = gr.Textbox(label="Music caption", lines=3, max_lines=8, elem_id="m2m-caption")
        caption = gr.HTML(padding=False)
        caption_btn = gr.Button("Save caption & regenerate this page", size="sm", elem_id="m2m-caption-save")
    with gr.Accordion("Theme & transition", open=True, elem_classes="m2m-acc"):
        theme = gr.HTML(padding=False, elem_id="m2m-theme-info")
        with gr.Row():
            theme_voice = gr.Textbox(label="Theme instrument", max_lines=1, scale=3, elem_id="m2m-theme-voice",
                                     placeholder="a General MIDI instrument: Oboe, Cello, French Horn…")
            theme_motif = gr.Textbox(label="Motif (scale steps)", max_lines=1, scale=2,
                                     elem_id="m2m-theme-motif", placeholder="0 +2 +4 +2 0")
        theme_btn = gr.Button("Save theme & regenerate this page", size="sm", elem_id="m2m-theme-save")
        transition = gr.HTML(padding=False, elem_id="m2m-transition-info")
        with gr.Row():
            # the kinds the soundtrack can play, read from where they are defined
            transition_kind = gr.Dropdown(list(KINDS), label="Into this scene", scale=2,
                                          elem_id="m2m-transition-kind")
            # no minimum/maximum: Gradio refuses an out-of-range number before the handler runs and
            # marks every output of the event as failed; the save says what is wrong in the status line
            transition_seconds = gr.Number(label=f"Seconds (0–{MAX_SECONDS:g})", step=0.1, scale=1,
                                           elem_id="m2m-transition-seconds")
        transition_why = gr.Textbox(label="Why", lines=2, max_lines=4, elem_id="m2m-transition-why")
        transition_btn = gr.Button("Save transition & rebuild the scene change", size="sm",
                                   elem_id="m2m-transition-save")
    with gr.Accordion("Directive (this scene)", open=False, elem_classes="m2m-acc"):
        directive = gr.HTML(padding=False)
        directive_box = gr.Textbox(label="Music directive", lines=4, max_lines=10, elem_id="m2m-directive")
        directive_btn = gr.Button("Save directive & regenerate the scene", size="sm", elem_id="m2m-directive-save")
    with gr.Accordion("Which backend made what", open=False, elem_classes="m2m-acc"):
        provenance = gr.HTML(padding=False)
    return {"scene": scene, "emotions": emotions, "directive": directive, "directive_box": directive_box,
            "caption": caption, "caption_box": caption_box, "provenance": provenance,
            "caption_btn": caption_btn, "directive_btn": directive_btn, "theme": theme, "theme_voice": theme_voice,
            "theme_motif": theme_motif, "transition": transition, "transition_kind": transition_kind,
            "transition_seconds": transition_seconds, "transition_why": transition_why, "theme_btn": theme_btn,
            "transition_btn": transition_btn}


def _settings_panel() -> dict[str, Any]:
    with gr.Accordion("Settings", open=False, elem_classes="m2m-acc"):
        condition = gr.Radio(CONDITIONS, value="m2m", label="Condition (listen side by side)")
        director = gr.Radio(DIRECTORS, value="offline", label="Director (scenes, directives, captions)")
        api_key = gr.Textbox(label="OpenAI API key (kept for this session only; never stored)",
                             type="password", placeholder="sk-…", max_lines=1)
        emotion_backend = gr.Dropdown(list(available_emotion_backends()),
                                      value="dialogue", label="Emotion backend")
        engine = gr.Dropdown(list(available_engines()), value="composer", label="Music engine")
        crossfade = gr.Slider(0.2, 6.0, value=1.5, step=0.1, label="Crossfade between pages (seconds)",
                              info="Within a scene. At a scene change: the director's transition, or a "
                                   f"{SoundtrackSettings.scene_crossfade_seconds:g} s crossfade where it chose "
                                   "none (the baseline's every turn).")
        apply_btn = gr.Button("Apply settings", size="sm", variant="primary", elem_id="m2m-apply")
    return {"director": director, "api_key": api_key, "emotion_backend": emotion_backend, "engine": engine,
            "condition": condition, "crossfade": crossfade, "apply": apply_btn}


def _book_panel() -> gr.File:
    with gr.Accordion("Open your own book", open=False, elem_classes="m2m-acc"):
        gr.Markdown(UPLOAD_HELP)
        upload = gr.File(label="Book archive", file_types=[".zip", ".cbz"], type="filepath",
                         elem_id="m2m-upload")
    return upload


WAKE_READER = "() => { window.m2mReader && window.m2mReader.wake(); }"

STREAM_KEEPALIVE_S = 10.0


async def keep_event_stream_open() -> AsyncIterator[None]:
    """An event that never completes while the page is open, so the session's event stream stays open.

    Gradio's server closes a session's stream when its last pending event completes, and its client
    opens one only when it joins an event while none is open. An event joined as the stream closes
    (a page turn or a caption saved just as a generation step ends) finds the client still counting
    the stream as open, then sees it aborted: the event is reported as "Connection errored out" and
    its result never reaches the page. With this event pending the stream is never closed, so that
    moment never comes. It sleeps in the event loop (no worker thread) and yields now and then only
    so that Gradio can end it once the page has gone (it checks after each yield)."""
    while True:
        await asyncio.sleep(STREAM_KEEPALIVE_S)
        yield None


def _wire(demo: gr.Blocks, app: ReaderApp, c: Controls, session: gr.State, page: gr.State,
          s: dict[str, Any], upload: gr.File, config: AppConfig) -> None:
    panels = c.panel_outputs()
    setting_inputs = [s["director"], s["api_key"], s["emotion_backend"], s["engine"], s["condition"], s["crossfade"]]
    opened = [session, page, c.reader, c.status, c.timer, *panels]
    # first, so that it is pending before the page's first event can complete
    demo.load(keep_event_stream_open, concurrency_id="keepalive", concurrency_limit=None,
              show_progress="hidden", api_visibility="private")
    demo.load(app.load, inputs=[session, *setting_inputs], outputs=opened, api_visibility="private",
              concurrency_id="open", concurrency_limit=4)
    c.timer.tick(app.tick, inputs=[session, page], outputs=[c.reader, c.status, c.timer, *panels],
                 concurrency_id="generate", concurrency_limit=config.render_concurrency,
                 show_progress="hidden", api_visibility="private")
    # "multiple": Gradio's "always_last" re-runs a deferred event without its event data, which lost
    # the last turn of a burst (the panels stayed on an earlier page); each turn carries a sequence
    # number instead, and the session's Reading drops one that a newer turn overtook.
    c.reader.turn(app.turn, inputs=[session], outputs=[page, c.status, c.timer, *panels], concurrency_id="turn",
                  concurrency_limit=None, trigger_mode="multiple", show_progress="hidden",
                  api_visibility="private")
    upload.upload(app.upload, inputs=[upload, session], outputs=opened, concurrency_id="open",
                  api_name="open_book")
    s["apply"].click(app.apply_settings, inputs=[session, page, *setting_inputs],
                     outputs=[session, c.reader, c.status, c.timer, *panels], api_visibility="private")
    c.caption_btn.click(app.edit_caption, inputs=[session, page, c.caption_box],
                      outputs=[c.reader, c.status, *panels], concurrency_id="generate", api_name="edit_caption")
    c.directive_btn.click(app.edit_directive, inputs=[session, page, c.directive_box],
                        outputs=[c.reader, c.status, *panels], concurrency_id="generate", api_name="edit_directive")
    c.theme_btn.click(app.edit_theme, inputs=[session, page, c.theme_voice, c.theme_motif],
                      outputs=[c.reader, c.status, *panels], concurrency_id="generate", api_name="edit_theme")
    c.transition_btn.click(app.edit_transition,
                           inputs=[session, page, c.transition_kind, c.transition_seconds, c.transition_why],
                           outputs=[c.reader, c.status, *panels], concurrency_id="generate",
                           api_name="edit_transition")
    # What may change the reader's music makes the reader pull more often for a while, so an answer
    # lost on the way costs one pull (its own event, in the browser only: nothing to lose).
    for control in (s["apply"], c.caption_btn, c.directive_btn, c.theme_btn, c.transition_btn):
        control.click(None, js=WAKE_READER)
    upload.upload(None, js=WAKE_READER)


def theme() -> gr.themes.Base:
    """Gradio's dark theme in the reader's palette: near-black panels, warm amber accents (the stock
    slate neutrals read blue-grey beside the pages)."""
    return gr.themes.Base(
        primary_hue="amber", neutral_hue="zinc",
        font=[gr.themes.Font("Noto Sans"), gr.themes.Font("Noto Sans CJK JP"), "system-ui", "sans-serif"],
    ).set(
        body_background_fill_dark="#0c0e11",
        background_fill_primary_dark="#14171c",
        background_fill_secondary_dark="#171a20",
        block_background_fill_dark="#14171c",
        block_border_color_dark="#262b33",
        border_color_primary_dark="#262b33",
        input_background_fill_dark="#1b1f26",
        input_background_fill_focus_dark="#1f242c",
        input_border_color_dark="#2e343e",
        input_border_color_focus_dark="#c9a86a",
        button_secondary_background_fill_dark="#232830",
        button_secondary_background_fill_hover_dark="#2c323c",
        button_secondary_border_color_dark="#2e343e",
        button_secondary_text_color_dark="#d9dde4",
        checkbox_label_background_fill_dark="#1b1f26",
        checkbox_label_background_fill_hover_dark="#232830",
        checkbox_label_background_fill_selected_dark="#2a2620",
        checkbox_label_border_color_dark="#2e343e",
    )


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for this process (True if it could).

    Every render step runs in its own thread and the composer renders in a thread pool; glibc gives
    threads their own arenas (up to 8 per core) and keeps their freed memory, so a server that has
    composed one book sat at ~820 MB instead of ~480 MB (bench/reader.py's RSS figure). The
    ``MALLOC_ARENA_MAX`` environment variable does the same when set before the process starts.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None)
    except OSError:  # not glibc (musl has no mallopt): nothing to cap
        return False
    return bool(mallopt and mallopt(-8, arenas))  # -8: M_ARENA_MAX


def launch_kwargs(config: AppConfig | None = None) -> dict[str, Any]:
    """What ``demo.launch`` needs: where to listen, what may be served, the look."""
    config = config or AppConfig.from_env()
    limit_malloc_arenas()
    for folder in (config.runs_root, config.uploads_root):
        folder.mkdir(parents=True, exist_ok=True)
    on_space = bool(os.environ.get("SPACE_ID"))
    start_study_backup()  # pushes ratings to a Hugging Face dataset only when configured
    return {
        "server_name": os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0" if on_space else "127.0.0.1"),
        "server_port": int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        "allowed_paths": config.served_paths(),
        "max_file_size": config.max_upload,
        "theme": theme(),
        "css": (STATIC / "app.css").read_text(encoding="utf-8"),
        "js": FORCE_DARK,
        "ssr_mode": False,
        "footer_links": ["api"],
        # FLAC copies of clips for browsers without OGG Vorbis, and the listening study's HTTP API
        # (when a study is configured): FastAPI routes that Gradio's app serves before its own.
        "app_kwargs": {"routes": fallback_routes([config.runs_root]) + study_app_kwargs().get("routes", [])},
    }
