"""The Study tab: participants take the listening study; researchers read the results.

The participant side is a small browser app (``static/study.js``) in a gr.HTML: it talks to the
study HTTP API (``study_api.py``) directly, so ratings go straight to the store, survive a reload
(the anonymous id sits in localStorage) and never pass through a Gradio queue. The researcher side
is ordinary Gradio: a token field, the report and its chart, CSV/JSONL downloads.

Use inside the app's Blocks:

    with gr.Tab("Study"):
        build_study_tab()          # study folder from $M2M_STUDY_DIR

and give ``launch`` the API routes: ``launch(..., app_kwargs=study_app_kwargs())``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import gradio as gr

from m2m.study import RatingsStore, StoreError, Study, default_store_path, load_study
from m2m.study.questionnaire import PAPER_SCREENING_RULE
from m2m.ui.study_api import (
    ADMIN_TOKEN_ENV,
    RESULTS_DIR,
    STUDY_DIR_ENV,
    admin_allowed,
    admin_token_from_env,
    manifest_path,
    researcher_report,
    study_dir_from_env,
    study_folder,
)

STATIC = Path(__file__).with_name("static")
# Relative, so it resolves against the page's own address (behind a proxy or at a sub-path too).
API_ROOT = "study/api"
TEMPLATE = '<div class="st-root" data-screen="loading" tabindex="-1"><div class="st-body">Loading the study…</div></div>'

NO_STUDY = f"""### No listening study is configured

Prepare one from a book, then start the app with the study folder in `{STUDY_DIR_ENV}`:

```
m2m study prepare examples/manga109 --book ShiokazeDays --design within-scene --scenes 3 --out studies/within
{STUDY_DIR_ENV}=studies/within {ADMIN_TOKEN_ENV}=<a long random secret> python app.py
```

`--design between-scenes` picks passages that cross a scene boundary instead. Ratings go to
`$M2M_DATA_DIR/study.sqlite3`; `m2m study analyze studies/within` writes the report, and
`m2m study export studies/within --format csv` the raw ratings.
"""


@cache
def _asset(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


class StudyPanel(gr.HTML):
    """The participant's study page: consent, screening, then every version played and rated."""

    def __init__(self, api_root: str = API_ROOT, **kwargs: Any) -> None:
        super().__init__(
            value=None,
            html_template=TEMPLATE,
            css_template="",
            js_on_load=_asset("crossfade.js") + _asset("study.js"),
            apply_default_css=False,
            padding=False,
            study_css=_asset("study.css"),
            api_root=api_root,
            **kwargs,
        )

    def api_info(self) -> dict[str, Any]:
        return {"type": "null", "description": "the study page has no value; it talks to /study/api"}


@dataclass(frozen=True)
class ResearcherView:
    """What the researcher's button shows: a message, the report, its chart and the exports."""

    message: str
    markdown: str
    figure: str | None
    exports: list[str] | None


def researcher_view(token: str, study: Study, folder: Path, store: RatingsStore,
                    expected: str | None, include_all: bool = False) -> ResearcherView:
    """Check the token, then analyse (only participants meeting the paper's screening rule, unless
    ``include_all``). Every failure is a message for the page, never a traceback."""
    if not expected:
        return ResearcherView(f"The researcher view is off: set `{ADMIN_TOKEN_ENV}` on the server.", "", None, None)
    if not admin_allowed((token or "").strip(), expected):
        return ResearcherView("That is not the researcher token.", "", None, None)
    try:
        report = researcher_report(study, folder, store, include_all)
        results = folder / RESULTS_DIR
        # named after the study, as the API's downloads are: two studies' files must not overwrite
        # each other in a researcher's downloads folder
        exports = [str(store.export_csv(results / f"{study.id}-ratings.csv", study.id)),
                   str(store.export_jsonl(results / f"{study.id}-ratings.jsonl", study.id))]
    except StoreError as e:
        return ResearcherView(f"The ratings store is unavailable: {e}", "", None, None)
    except (ValueError, OSError) as e:
        return ResearcherView(f"The report could not be made: {e}", "", None, None)
    # The chart is shown beside the text; its relative link in the Markdown would not resolve here.
    markdown = re.sub(r"^!\[[^\]]*\]\([^)]*\)\s*$", "", report.markdown or "", flags=re.MULTILINE)
    markdown = "\n\n".join(part for part in (markdown.strip(), report.figures) if part)
    return ResearcherView(report.message, markdown, str(report.figure) if report.figure else None, exports)


UNBLINDED = ("**This app also has the Read tab**, whose Settings name the conditions your participants rate "
             "blind and whose music plays them. For a study, run it with `M2M_STUDY_ONLY=1`: the study alone.")


def build_study_tab(study_dir: str | os.PathLike[str] | None = None, store: RatingsStore | None = None,
                    beside_reader: bool = False) -> None:
    """Lay out the Study tab's contents in the current Blocks context (call it inside ``gr.Tab``).

    ``study_dir`` defaults to ``$M2M_STUDY_DIR``; without a study the tab explains how to prepare one.
    ``store`` defaults to ``$M2M_DATA_DIR/study.sqlite3`` (the API must use the same file).
    ``beside_reader``: the app has the Read tab too, which the researcher view warns of (it unblinds).
    """
    folder = study_folder(study_dir) if study_dir is not None else study_dir_from_env()
    study: Study | None = None
    problem = ""
    if folder is not None:
        try:
            study = load_study(manifest_path(folder))
        except ValueError as e:
            problem = f"\n\n**The study in `{folder}` cannot be read:** {e}"
    if study is None or folder is None:
        gr.Markdown(NO_STUDY + problem, elem_classes="st-none")
        return
    StudyPanel(elem_id="study-panel")
    with gr.Accordion("Researcher", open=False, elem_id="study-researcher"):
        if beside_reader:
            gr.Markdown(UNBLINDED, elem_id="study-unblinded")
        token = gr.Textbox(label="Researcher token", type="password", max_lines=1, elem_id="study-admin-token")
        everyone = gr.Checkbox(label=f"Include every participant (skip the paper's screening rule: {PAPER_SCREENING_RULE})",
                               value=False,
                               elem_id="study-admin-all")
        show = gr.Button("Show results", size="sm", elem_id="study-admin-show")
        status = gr.Markdown()
        chart = gr.Image(label="Mean scores (95% CI)", type="filepath", interactive=False, visible=False)
        report = gr.Markdown()
        files = gr.File(label="Ratings (CSV, JSON Lines)", file_count="multiple", interactive=False, visible=False)
    resolved = folder.resolve()
    expected = admin_token_from_env()
    opened: dict[str, RatingsStore] = {}

    def show_results(given: str, include_all: bool) -> tuple[Any, ...]:
        if "store" not in opened:
            try:
                opened["store"] = store or RatingsStore(default_store_path())
            except StoreError as e:
                return f"The ratings store is unavailable: {e}", gr.update(visible=False), "", gr.update(visible=False)
        view = researcher_view(given, study, resolved, opened["store"], expected, bool(include_all))
        return (view.message, gr.update(value=view.figure, visible=view.figure is not None), view.markdown,
                gr.update(value=view.exports, visible=bool(view.exports)))

    show.click(show_results, inputs=[token, everyone], outputs=[status, chart, report, files], api_visibility="private")


def build_study_blocks(study_dir: str | os.PathLike[str] | None = None, store: RatingsStore | None = None) -> gr.Blocks:
    """The Study tab on its own page (for running a study without the reader)."""
    with gr.Blocks(title="Listening study") as demo, gr.Tab("Study"):
        build_study_tab(study_dir, store)
    return demo
