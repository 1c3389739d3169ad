"""The side panels: every step's output for the page on screen, as small HTML fragments.

Each function takes the book, the run's view and a page and returns escaped HTML. A stage that has
not run yet (or does not exist in a condition, like emotions in the baseline) says so in words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

from m2m.book import Book, Page
from m2m.emotions import EMOTIONS, percentages, render_distribution
from m2m.scenes import Scene

STAGE_LABELS: dict[str, str] = {
    "scenes": "1 · scenes",
    "emotions": "2 · emotions",
    "directives": "3 · directive",
    "descriptions": "3 · page descriptions",
    "captions": "4 · captions",
    "transitions": "4 · transitions",
    "soundtrack": "5 · music",
}


@dataclass(frozen=True)
class PanelTexts:
    """What the side column shows for one page; the editable texts go to textboxes."""

    scene: str
    emotions: str
    directive: str
    directive_text: str
    caption: str
    caption_text: str
    provenance: str
    scene_index: int | None
    theme: str = ""  # the page's leitmotif and the scene's incoming transition, for their editors
    theme_voice: str = ""
    theme_steps: str = ""
    transition: str = ""
    transition_kind: str | None = None
    transition_seconds: float | None = None
    transition_why: str = ""


def _empty(message: str) -> str:
    return f'<p class="m2m-empty">{escape(message)}</p>'


def page_of(book: Book, index: int) -> Page:
    for page in book.pages:
        if page.index == index:
            return page
    raise ValueError(f"page: {index} is not a page of {book.id} (0..{len(book.pages) - 1})")


def scene_for(view: Any, page: int) -> Scene | None:
    plan = getattr(view, "scenes", None) if view is not None else None
    if plan is None:
        return None
    for scene in plan.scenes:
        if page in scene.pages:
            return scene
    return None


def planned_without_scenes(view: Any) -> bool:
    """Whether the run is planned but has no scenes: the baseline, which describes each page on its
    own (so no scene changes to choose, no leitmotifs to recur), as against a plan not run yet."""
    return view is not None and getattr(view, "captions", None) is not None and getattr(view, "scenes", None) is None


NO_SCENES = "This run plans no scenes: the baseline describes each page on its own"


def speaker_label(book: Book, speaker: str | None) -> str:
    """Who says a line, for the panel: a box with no speaker is narration or a caption, not an
    "unknown" person."""
    return book.character_name(speaker) if speaker is not None else "(no speaker)"


def scene_panel(book: Book, view: Any, page: int) -> str:
    """The scene's pages and its dialogue with speakers (Japanese, with the English gloss under it)."""
    scene = scene_for(view, page)
    pages = [page_of(book, p) for p in scene.pages] if scene else [page_of(book, page)]
    head = (f'<div class="m2m-kv"><b>Scene {scene.index + 1}</b> · pages '
            f'{escape(_page_range(scene.pages))}</div>' if scene else
            f'<div class="m2m-kv">{NO_SCENES}; this page\'s dialogue:</div>' if planned_without_scenes(view) else
            '<div class="m2m-kv">Scenes are not planned yet; this page\'s dialogue:</div>')
    summary = f'<p class="m2m-summary">{escape(scene.summary)}</p>' if scene and scene.summary else ""
    rows: list[str] = []
    for p in pages:
        here = " m2m-here" if p.index == page else ""
        rows.append(f'<li class="m2m-pagehead{here}">page {p.index + 1}</li>')
        if not p.texts:
            rows.append('<li class="m2m-line m2m-muted">(no dialogue)</li>')
        for t in p.texts:
            gloss = f'<div class="m2m-gloss" lang="en">{escape(t.gloss)}</div>' if t.gloss else ""
            rows.append(f'<li class="m2m-line{here}"><span class="m2m-speaker">'
                        f'{escape(speaker_label(book, t.speaker))}</span>'
                        f'<div class="m2m-ja" lang="ja">{escape(t.text)}</div>{gloss}</li>')
    # data-m2m-page: the reader checks the panels are for the page on screen (see reader.js)
    return (f'<div class="m2m-panel" data-m2m-page="{page}">{head}{summary}'
            f'<ul class="m2m-dialogue">{"".join(rows)}</ul></div>')


def _page_range(pages: tuple[int, ...]) -> str:
    if not pages:
        return "none"
    first, last = min(pages) + 1, max(pages) + 1
    return str(first) if first == last else f"{first}–{last}"


def distribution_bars(probabilities: Mapping[str, float]) -> str:
    shares = percentages(probabilities)  # the same whole percentages as the paper's text line
    bars = []
    for e in EMOTIONS:
        bars.append(f'<div class="m2m-bar"><span class="m2m-bar-label">{e}</span>'
                    f'<span class="m2m-bar-track"><span class="m2m-bar-fill m2m-emo-{e}" '
                    f'style="width:{shares[e]}%"></span></span><span class="m2m-bar-pct">{shares[e]}%</span></div>')
    return "".join(bars)


def emotions_panel(view: Any, page: int) -> str:
    """Page and scene distributions, as bars and as the paper's text line."""
    report = getattr(view, "emotions", None) if view is not None else None
    if report is None:
        return _empty("No emotion report for this run (the baseline condition has none, "
                      "or the plan stages have not run yet).")
    parts: list[str] = [f'<div class="m2m-kv">backend <code>{escape(str(report.backend))}</code></div>']
    dist = report.pages.get(page)
    if dist is not None:
        parts.append(f'<h4>This page <small>({dist.faces} faces)</small></h4>'
                     f'<p class="m2m-line-text">“{escape(render_distribution(dist.probabilities))}”</p>'
                     f'{distribution_bars(dist.probabilities)}')
    scene = scene_for(view, page)
    sdist = report.scenes.get(scene.index) if scene else None
    if sdist is not None and scene is not None:
        parts.append(f'<h4>Scene {scene.index + 1} <small>({sdist.faces} faces)</small></h4>'
                     f'<p class="m2m-line-text">“{escape(render_distribution(sdist.probabilities))}”</p>'
                     f'{distribution_bars(sdist.probabilities)}')
    warned = [f for f in report.faces if f.page == page and f.warning]
    if warned:
        parts.append("<ul class=\"m2m-warn\">" + "".join(
            f"<li>face {escape(f.face_id)}: {escape(f.warning)}</li>" for f in warned[:6]) + "</ul>")
    return f'<div class="m2m-panel">{"".join(parts)}</div>'


def directive_for(view: Any, scene: Scene | None) -> str | None:
    sheet = getattr(view, "directives", None) if view is not None else None
    if sheet is None or scene is None:
        return None
    for d in sheet.directives:
        if d.scene == scene.index:
            return d.text
    return None


TRANSITION_WORDS = {"continue": "the music carries on", "crossfade": "a crossfade",
                    "stinger": "a stinger, the old scene's closing cadence", "silence": "a silence", "cut": "a cut"}


def transition_html(view: Any, scene: Scene | None) -> str:
    """How the music moves into this scene, as the director chose it (04-transitions.json)."""
    chosen = transition_into(view, scene)
    if chosen is None:
        return ""
    length = "" if chosen.kind == "cut" else f" ({chosen.seconds:g} s)"
    words = TRANSITION_WORDS.get(chosen.kind, chosen.kind)
    return (f'<div class="m2m-kv m2m-transition">Into this scene: <b>{escape(words)}'
            f'{length}</b>. <span>{escape(chosen.why)}</span></div>')


def transition_into(view: Any, scene: Scene | None) -> Any | None:
    """The transition the music takes into ``scene`` (None: the first scene, or a run without them)."""
    sheet = getattr(view, "transitions", None) if view is not None else None
    return sheet.into(scene.index) if sheet is not None and scene is not None else None


def transition_editor_html(view: Any, scene: Scene | None) -> str:
    """What the transition editor below edits, or why there is nothing to edit."""
    if scene is None and planned_without_scenes(view):
        return _empty(f"{NO_SCENES}, so there is no scene change to edit (only M2M-Gen chooses transitions).")
    if scene is None:
        return _empty("No scenes yet: the plan has not run.")
    if transition_into(view, scene) is None:
        why = ("the music starts here" if scene.index == 0 else
               "this run chooses no transitions (only M2M-Gen does)")
        return _empty(f"Scene {scene.index + 1}: no transition leads into it ({why}).")
    return (f'<div class="m2m-kv">Scene {scene.index + 1} begins on page {scene.pages[0] + 1}.</div>'
            f"{transition_html(view, scene)}")


def cue_for(view: Any, page: int) -> Any | None:
    sheet = getattr(view, "captions", None) if view is not None else None
    if sheet is None:
        return None
    for cue in sheet.cues:
        if cue.page == page:
            return cue
    return None


def caption_panel(view: Any, page: int) -> str:
    """The page's caption is in the textbox below; here the plan, as chips, and the clip's engine.

    After a person's edit the composer reads the caption against the director's plan (tempo, key,
    mode, instruments and mood it names win), so the chips show that reconciled plan, the one the
    music follows, with the fields taken from the caption marked; not the director's old plan."""
    cue = cue_for(view, page)
    if cue is None:
        return _empty("No caption for this page yet.")
    edited = getattr(cue, "planned_with", None) is not None and cue.caption_edited
    plan, from_caption, note = cue.plan, (), ""
    mood = plan.mood
    if edited:
        from m2m.music.plans import resolve_plan

        try:
            resolved = resolve_plan(cue)
        except ValueError as e:  # a plan the composer refuses: its render says so too
            note = f'<div class="m2m-kv m2m-warn">caption edited; the plan is not playable: {escape(str(e))}</div>'
        else:
            plan, from_caption = resolved.plan, resolved.from_caption
            # the composer takes a mood the caption names as its mood family; the plan's words stay
            mood = resolved.family if "mood" in from_caption else plan.mood
            taken = f" ({', '.join(from_caption)} from it)" if from_caption else " (it names nothing that changes it)"
            note = (f'<div class="m2m-kv m2m-muted">caption edited: the plan the composer follows, read from '
                    f"the caption{escape(taken)}</div>")
    chips = [("tempo", f"{plan.tempo} BPM"), ("key", f"{plan.key} {plan.mode}"), ("energy", f"energy {plan.energy:.2f}")]
    if mood:
        chips.append(("mood", mood))
    chips += [("instruments", name) for name in plan.instruments]
    fields = set(from_caption) | ({"key"} if "mode" in from_caption else set())
    clip = (getattr(view, "clips", {}) or {}).get(page)
    music = (f'<div class="m2m-kv">music: <code>{escape(clip.engine)}</code>, {clip.seconds:.1f} s loop, '
             f'version <code>{escape(clip.version[:8])}</code></div>' if clip else
             '<div class="m2m-kv m2m-muted">music: not rendered yet</div>')
    return ('<div class="m2m-panel"><div class="m2m-chips">'
            + "".join(f'<span class="m2m-chip{" m2m-chip-edited" if field in fields else ""}">{escape(str(text))}</span>'
                      for field, text in chips)
            + f"</div>{note}{music}</div>")


def theme_html(cue: Any) -> str:
    """The page's leitmotif: whose theme, on what (and why: the scene's mood, the character's own
    instrument or a person's choice), and its figure in scale steps from the tonic."""
    theme = getattr(cue, "theme", None)
    if theme is None:
        return ""
    if theme.keeps_voice:
        why = "the instrument is your choice"
    elif theme.played_by == theme.instrument:
        why = "their own instrument"
    else:
        why = f"their own instrument is the {theme.instrument.lower()}"
    mood = f"the {escape(theme.mood)} scene plays it {escape(theme.manner)}; " if theme.mood else ""
    if theme.edited and not theme.keeps_voice:
        why += "; the figure is yours"  # a motif-only edit: the voice still follows the scene's mood
    return (f'<div class="m2m-kv m2m-theme">{escape(theme.name)}\'s theme · {escape(theme.played_by.lower())} · '
            f"scale steps {escape(theme.steps)} <small>({mood}{escape(why)})</small></div>")


def provenance_panel(view: Any, page: int) -> str:
    """Which backend made each stage, any fallback said plainly, warnings, and hand edits."""
    prov: Mapping[str, Any] = (getattr(view, "provenance", None) or {}) if view is not None else {}
    if not prov:
        return _empty("Nothing has run yet.")
    rows = []
    for stage, label in STAGE_LABELS.items():
        p = prov.get(stage)
        if p is None:
            continue
        note = ""
        if getattr(p, "fallback", None):
            note += f'<div class="m2m-fallback">fell back: {escape(p.fallback)}</div>'
        for w in getattr(p, "warnings", ())[:4]:
            note += f'<div class="m2m-warnline">{escape(str(w))}</div>'
        model = f" · {escape(str(p.settings.get('model')))}" if getattr(p, "settings", None) and \
            p.backend not in ("offline", "rule-based") and p.settings.get("model") else ""
        rows.append(f"<tr><td>{escape(label)}</td><td><code>{escape(str(p.backend))}</code>{model}{note}</td></tr>")
    clip = (getattr(view, "clips", {}) or {}).get(page)
    if clip is not None:
        rows.append(f"<tr><td>this page's clip</td><td><code>{escape(clip.engine)}</code></td></tr>")
    return f'<div class="m2m-panel"><table class="m2m-prov">{"".join(rows)}</table></div>'


def panels(book: Book, view: Any, page: int) -> PanelTexts:
    scene = scene_for(view, page)
    directive = directive_for(view, scene)
    cue = cue_for(view, page)
    theme = getattr(cue, "theme", None) if cue is not None else None
    into = transition_into(view, scene)
    directive_html = (f'<div class="m2m-kv">Scene {scene.index + 1} · the director\'s brief for its music</div>'
                      + transition_html(view, scene)
                      if scene and directive is not None else
                      _empty("No directive (the baseline has none, or the plan has not run)."))
    return PanelTexts(
        scene=scene_panel(book, view, page),
        emotions=emotions_panel(view, page),
        directive=directive_html,
        directive_text=directive or "",
        caption=caption_panel(view, page),
        caption_text=cue.caption if cue else "",
        provenance=provenance_panel(view, page),
        scene_index=scene.index if scene else None,
        theme=(theme_html(cue) if theme is not None else
               _empty(f"{NO_SCENES}, so no character has a theme that recurs across scenes (only M2M-Gen "
                      "gives them leitmotifs).") if planned_without_scenes(view) else
               _empty("No leitmotif on this page: none of the characters who recur across scenes speaks most here.")),
        theme_voice=theme.played_by if theme is not None else "",
        theme_steps=theme.steps if theme is not None else "",
        transition=transition_editor_html(view, scene),
        transition_kind=into.kind if into is not None else None,
        transition_seconds=into.seconds if into is not None else None,
        transition_why=into.why if into is not None else "",
    )
