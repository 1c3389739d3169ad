"""The whole flow, one numbered step a call: book -> scenes -> emotions -> directives -> captions -> music.

1. scenes (m2m/scenes.py), 2. emotions (m2m/emotions.py), 3. directives and 4. captions
(m2m/directives.py; the baseline's descriptions and captions: m2m/baseline.py) are ``plan_book``;
5. page clips (m2m/music/render.py) and 6. the soundtrack (m2m/soundtrack.py) are ``render_book``
for a command and ``render_pages`` for a reader, a few pages a step. ``open_run`` reads a run as it
stands. What a condition runs comes from m2m/conditions.py.

Each step reads and writes its file in the run folder (``runs/<book-id>/<condition>/``). A step
reruns only when its inputs or settings changed; a file a person edited is kept and everything
after it reruns (see m2m/runs.py). Progress goes to a ``Callable[[str, int, int], None]``
(message, done, total); gradio is never imported here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from m2m import baseline, directives, emotions, leitmotifs, llm, scenes, transitions
from m2m.book import Book
from m2m.conditions import condition_of
from m2m.cues import CaptionSheet, Transition, TransitionSheet, check_transition
from m2m.directives import DirectiveSheet
from m2m.director import Director, load_director_or_offline
from m2m.emotions import EmotionModel, EmotionReport
from m2m.music import engine_options, load_engine
from m2m.music.base import DEFAULT_SAMPLE_RATE, Clip, Engine, RenderOptions, check_sample_rate
from m2m.music.render import SoundtrackSettings, clip_hashes, warm_up
from m2m.runs import Condition, Provenance, RunFolder, Staged, StageRecord, hash_inputs
from m2m.scenes import ScenePlan
from m2m.soundtrack import Soundtrack, build_soundtrack, page_entries
from m2m.stingers import StingerClip, current_stingers, reused_stingers

if TYPE_CHECKING:
    from m2m.music.library_builder import ClipMaker

ProgressFn = Callable[[str, int, int], None]
T = TypeVar("T")


def no_progress(message: str, done: int, total: int) -> None:
    """The default progress callback: says nothing."""


@dataclass(frozen=True)
class Settings:
    """Everything a reader or a command chooses. The API key lives here only for the session."""

    director: str = "offline"
    model: str = "gpt-4o"
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    emotion_backend: str | None = None  # None: the book's labels when it has them, else dialogue
    emotion_checkpoint: str | None = None  # clip-finetuned: a file from `m2m emotions train` or a repo id
    engine: str = "composer"
    condition: Condition = "m2m"
    runs_root: Path = Path("runs")
    crossfade_s: float = 1.5
    seconds_per_page: float = 20.0
    seed: int = 0
    device: str | None = None  # None: the GPU when there is one (MusicGen, CLIP)
    allow_download: bool = False  # may MusicGen weights download into the Hugging Face cache
    whole_file: bool = True  # also write the whole book as one file at the reading pace
    sample_rate: int = DEFAULT_SAMPLE_RATE  # of the clips and the whole-book file

    def __post_init__(self) -> None:
        # Frozen, so normalise through object.__setattr__: callers may pass runs_root as a str.
        object.__setattr__(self, "runs_root", Path(self.runs_root))
        condition_of(self.condition)  # an unknown one raises, naming the valid ones
        if not 0.0 <= self.crossfade_s <= 30.0:
            raise ValueError(f"crossfade_s: {self.crossfade_s} is outside 0..30 s")
        if not 2.0 <= self.seconds_per_page <= 3600.0:
            raise ValueError(f"seconds_per_page: {self.seconds_per_page} is outside 2..3600 s")
        check_sample_rate(self.sample_rate)

    def public(self) -> dict[str, Any]:
        """The settings that may be written to run files and shown in the browser (no key)."""
        return {"director": self.director, "model": self.model, "emotion_backend": self.emotion_backend,
                "engine": self.engine, "condition": self.condition, "crossfade_s": self.crossfade_s,
                "seed": self.seed}


@dataclass(frozen=True)
class PlanResult:
    """Stages 1-4 as they stand on disk (None for stages the condition skips)."""

    run: RunFolder
    scenes: ScenePlan | None
    emotions: EmotionReport | None
    directives: DirectiveSheet | None
    descriptions: baseline.PageDescriptions | None
    captions: CaptionSheet
    computed: tuple[str, ...] = ()  # the stages that ran (the rest were reused from disk)
    transitions: TransitionSheet | None = None  # how the music moves at scene changes (None: plain crossfades)


def run_folder(book: Book, settings: Settings) -> RunFolder:
    return condition_of(settings.condition).run_folder(settings.runs_root, book.id)


def book_fingerprint(book: Book) -> str:
    """What the plan stages read from a book: dialogue, speakers, glosses and faces (not where images sit)."""
    return hash_inputs(book.id, [(t.id, t.page, t.text, t.speaker, t.gloss) for t in book.dialogue()],
                       [(f.id, f.page, f.bbox, f.character) for p in book.pages for f in p.faces])


def plan_book(book: Book, settings: Settings, progress: ProgressFn = no_progress) -> PlanResult:
    """Stages 1-4 for the settings' condition; returns what the run folder now holds.

    An OpenAI director without a key falls back to the offline one, and every file it writes says so.
    """
    condition = condition_of(settings.condition)
    if condition.plan_from is not None:
        # No plan of its own (the random condition): it plays the other condition's pages and scenes.
        plan = plan_book(book, replace(settings, condition=condition.plan_from), progress)
        return replace(plan, run=run_folder(book, settings))
    director, fallback = load_director_or_offline(settings.director, llm_settings(settings))
    return plan_stages(book, run_folder(book, settings), director, fallback=fallback,
                       emotion_backend=settings.emotion_backend, progress=progress,
                       emotion_model=emotion_model(settings))


def emotion_model(settings: Settings) -> EmotionModel:
    return EmotionModel(checkpoint=settings.emotion_checkpoint, device=settings.device,
                        allow_download=settings.allow_download)


def plan_stages(book: Book, run: RunFolder, director: Director, *, fallback: str | None = None,
                emotion_backend: str | None = None, progress: ProgressFn = no_progress,
                emotion_model: EmotionModel | None = None) -> PlanResult:
    """Stages 1-4 (or the baseline's two) through the run folder: reuse, keep edits, redo what follows.

    ``emotion_model`` says where the image emotion backends' weights come from (default: the cache, no download).

    Each stage's input hash covers the book, the upstream stages' data and the director's fingerprint
    (backend, settings, prompt hash), so an edited upstream file changes every hash after it.
    """
    computed: list[str] = []
    fingerprint = book_fingerprint(book)

    def stage(name: str, cls: type[T], inputs: Sequence[Any], compute: Callable[[], Staged[T]],
              stage_fallback: str | None = fallback) -> T:
        input_hash = hash_inputs(*inputs)
        record = run.reusable(name, cls, input_hash)
        if record is not None:
            return record.data
        staged = compute()  # a failure raises before anything is written: no half-written run
        provenance = replace(staged.provenance, input_hash=input_hash,
                             fallback=staged.provenance.fallback or stage_fallback)
        run.write(name, staged.data, provenance)
        computed.append(name)
        return staged.data

    stages = condition_of(run.condition).stages
    if not stages:
        raise ValueError(f"condition {run.condition!r} has no plan of its own; plan the one it plays")
    if stages[0] == "descriptions":
        # The paper's baseline: page image + dialogue -> description -> caption, page by page.
        progress("1/2 page descriptions", 0, 2)
        descriptions = stage("descriptions", baseline.PageDescriptions,
                             (fingerprint, [Path(p.image).name for p in book.pages],
                              director.fingerprint("descriptions")),
                             lambda: baseline.describe_pages(book, director))
        progress("2/2 captions", 1, 2)
        captions = stage("captions", CaptionSheet,
                         (fingerprint, descriptions, director.fingerprint("baseline_caption")),
                         lambda: baseline.caption_pages(book, descriptions, director))
        progress("plan ready", 2, 2)
        return PlanResult(run, None, None, None, descriptions, captions, tuple(computed))

    progress("1/4 scenes", 0, 4)
    scene_plan = stage("scenes", ScenePlan, (fingerprint, director.fingerprint("scenes")),
                       lambda: scenes.detect_scenes(book, director))
    try:
        scenes.check_scene_plan(scene_plan, book)
    except ValueError as e:  # a hand edit gone wrong: say which file, before anything is built on it
        raise ValueError(f"{run.file('scenes')}: {e}") from e
    progress("2/4 emotions", 1, 4)
    backend = emotion_backend or emotions.choose_emotion_backend(book)
    backend_options = (emotion_model or EmotionModel()).options_for(backend)
    report = stage("emotions", EmotionReport, (fingerprint, scene_plan, backend, backend_options.get("checkpoint")),
                   lambda: emotions.recognise_emotions(book, scene_plan, backend,
                                                       emotions.EmotionOptions(backend_options=backend_options)),
                   stage_fallback=None)
    progress("3/4 directives", 2, 4)
    sheet = stage("directives", DirectiveSheet,
                  (fingerprint, scene_plan, report, director.fingerprint("directives")),
                  lambda: directives.write_directives(book, scene_plan, report, director))
    progress("4/4 captions", 3, 4)
    captions = stage("captions", CaptionSheet,
                     (fingerprint, scene_plan, report, sheet, director.fingerprint("captions")),
                     lambda: directives.write_captions(book, scene_plan, report, sheet, director))
    moves = None
    if "transitions" in stages:
        moves = stage("transitions", TransitionSheet,
                      (fingerprint, scene_plan, report, captions, director.fingerprint("transitions")),
                      lambda: transitions.choose_transitions(book, scene_plan, report, captions, director))
        try:
            transitions.check_transition_sheet(moves, scene_plan)
        except ValueError as e:  # a hand edit gone wrong: say which file
            raise ValueError(f"{run.file('transitions')}: {e}") from e
    progress("plan ready", 4, 4)
    return PlanResult(run, scene_plan, report, sheet, None, captions, tuple(computed), moves)


def llm_settings(settings: Settings) -> llm.LLMSettings:
    return llm.LLMSettings(model=settings.model, api_key=settings.api_key, base_url=settings.base_url,
                           cache_dir=settings.runs_root / ".llm-cache")


def read_stage(book: Book, settings: Settings, stage: str, cls: type[T]) -> StageRecord[T] | None:
    """A stage's record as it stands on disk (for the reader's panels)."""
    return run_folder(book, settings).read(stage, cls)


def stage_provenance(book: Book, settings: Settings, stage: str) -> Provenance | None:
    record = read_stage(book, settings, stage, dict)  # provenance only; the data stays untyped
    return record.provenance if record else None


def soundtrack_settings(settings: Settings) -> SoundtrackSettings:
    return SoundtrackSettings(engine=engine_for(settings), pace_seconds=settings.seconds_per_page,
                              crossfade_seconds=min(settings.crossfade_s, settings.seconds_per_page),
                              seed=settings.seed, whole_file=settings.whole_file,
                              sample_rate=settings.sample_rate)


def engine_for(settings: Settings) -> str:
    """The music engine the settings' condition uses (the random one always draws from the library)."""
    return condition_of(settings.condition).engine_for(settings.engine)


def render_book(book: Book, settings: Settings, progress: ProgressFn = no_progress, *,
                order: Sequence[int] | None = None, force: Sequence[int] = (),
                only: Sequence[int] | None = None,
                on_clip: Callable[[Clip], None] | None = None) -> Soundtrack:
    """Stages 1-6: plan the book, then render every page's music (``order`` first) and the soundtrack;
    ``only`` renders just those pages (the listening study's), with no whole-book file."""
    # the engine loads what its first renders need (the composer: its SoundFont) on the core the plan
    # stages leave idle
    engine = load_engine(engine_for(settings))
    warm_up(engine, render_options(settings, engine))
    plan = plan_book(book, settings, progress)
    return build_soundtrack(book.id, settings.condition, plan.captions, plan.run, engine_for(settings),
                            soundtrack_settings(settings), progress, render=render_options(settings, engine),
                            order=order, force=force, only=only, on_clip=on_clip,
                            transitions=transitions_played(settings, plan))


def render_pages(book: Book, settings: Settings, pages: Sequence[int], progress: ProgressFn = no_progress, *,
                 force: Sequence[int] = (), engine: Engine | None = None) -> RunView:
    """A reader's step: plan (reusing what is on disk), then render at most ``len(pages)`` pages,
    ``pages`` first (pages already made give their turn to the next missing ones in reading order);
    ``progress("music", done, total)`` as each lands. No whole-book file: that is the command line's
    (``m2m render``), so the CPU goes to the pages a reader is about to see. The condition's clip
    library must exist (``ensure_library``). ``engine`` replaces the registry's (tests)."""
    plan = plan_book(book, settings, progress)
    build_soundtrack(book.id, settings.condition, plan.captions, plan.run, engine_for(settings),
                     soundtrack_settings(replace(settings, whole_file=False)), progress,
                     render=render_options(settings, engine), order=list(pages), force=list(force),
                     at_most=len(pages), engine=engine, transitions=transitions_played(settings, plan))
    return open_run(book, settings, engine=engine)


def transitions_played(settings: Settings, plan: PlanResult) -> TransitionSheet | None:
    """The scene transitions the settings' condition plays: its own plan's (the random condition,
    playing another's pages, keeps plain crossfades: its clips follow no plan)."""
    return plan.transitions if condition_of(settings.condition).plan_from is None else None


@dataclass(frozen=True)
class Entrance:
    """How the music enters a page from the one before, as the cue sheet has it: the kind chosen at
    a scene change ("" within a scene), the old page's ``crossfade`` (its fade-out) and the
    ``silence`` between; a stinger is played first for ``stinger_seconds``, from its clip at
    ``stinger`` (None while it is not made). Known from the plan, before the page's clip is made, so
    a reader who turns there early still plays the chosen move when the clip lands."""

    transition: str = ""
    crossfade: float = 0.0
    silence: float = 0.0
    stinger_seconds: float = 0.0
    stinger: Path | None = None
    stinger_version: str = ""


@dataclass(frozen=True)
class ClipInfo:
    """A page's clip as a reader plays it; ``version`` changes whenever the music does (how the
    music enters the page is the run's ``entrances``)."""

    path: Path
    seconds: float
    engine: str
    caption: str
    scene: int
    version: str
    bar: float = 0.0  # seconds a bar of the clip lasts (SoundtrackCue.bar_seconds; 0: no bar grid)


@dataclass(frozen=True)
class RunView:
    """A run as it stands on disk: the plan's stages (None where missing or skipped), their
    provenance, and the clips that are this plan's music with these settings."""

    scenes: ScenePlan | None
    emotions: EmotionReport | None
    directives: DirectiveSheet | None
    captions: CaptionSheet | None
    provenance: dict[str, Provenance]
    clips: dict[int, ClipInfo]
    transitions: TransitionSheet | None = None
    entrances: dict[int, Entrance] = field(default_factory=dict)  # every planned page's, clip made or not


def open_run(book: Book, settings: Settings, *, engine: Engine | None = None) -> RunView:
    """Read the settings' run folder (its plan from the condition's plan folder)."""
    condition = condition_of(settings.condition)
    run = condition.run_folder(settings.runs_root, book.id)
    kinds: dict[str, type] = {"scenes": ScenePlan, "emotions": EmotionReport, "directives": DirectiveSheet,
                              "descriptions": dict, "captions": CaptionSheet, "transitions": TransitionSheet,
                              "soundtrack": Soundtrack}
    records = {stage: run.read(stage, cls) for stage, cls in kinds.items()}
    if condition.plan_from is not None:
        plan = condition.plan_folder(settings.runs_root, book.id)
        records |= {stage: plan.read(stage, kinds[stage]) for stage in ("scenes", "emotions", "captions")}
    clips: dict[int, ClipInfo] = {}
    entrances: dict[int, Entrance] = {}
    sheet, captions = records["soundtrack"], records["captions"]
    if captions is not None:
        moves = records["transitions"].data if records["transitions"] and condition.plan_from is None else None
        soundtrack = soundtrack_settings(settings)
        current: dict[int, str] = {}
        stingers: dict[int, StingerClip] = {}
        if sheet is not None:
            # Only clips made from this plan with these settings are this reader's music: a clip from
            # another engine, an older plan or an earlier upload of the book renders again.
            render = render_options(settings, engine)
            current = clip_hashes(book.id, captions.data, soundtrack.engine, soundtrack, render, engine, moves)
            if sheet.data.stingers:
                stingers = reused_stingers(run, current_stingers(book.id, captions.data, soundtrack.engine, soundtrack,
                                                                 render, engine, moves), sheet.data.stingers)
        # how each page's music enters, from the transitions as they are now (an edit shows at once)
        cues = sorted(captions.data.cues, key=lambda c: c.page)
        entries = page_entries(cues, soundtrack, moves)
        for cue in cues:
            entry = entries[cue.page]
            stinger = stingers.get(cue.scene) if entry.stinger > 0 else None
            entrances[cue.page] = Entrance(entry.transition, entry.fade, entry.silence, entry.stinger,
                                           run.path / stinger.file if stinger else None,
                                           stinger.file_hash if stinger else "")
        for cue in sheet.data.cues if sheet is not None else ():
            path = run.path / cue.file
            if path.is_file() and cue.hash == current.get(cue.page) and cue.page in entrances:
                clips[cue.page] = ClipInfo(path, cue.seconds, cue.engine, cue.caption, cue.scene,
                                           cue.file_hash or cue.hash, cue.bar_seconds())
    data = {stage: (r.data if r else None) for stage, r in records.items()}
    return RunView(data["scenes"], data["emotions"], data["directives"], data["captions"],
                   {stage: r.provenance for stage, r in records.items() if r}, clips,
                   data["transitions"] if condition.plan_from is None else None, entrances)


def render_options(settings: Settings, engine: Engine | None = None) -> RenderOptions:
    """The options of the settings' engine (``engine`` replaces the registry's); the clip length and
    seed come from the soundtrack settings."""
    engine = engine or load_engine(engine_for(settings))
    library = library_dir(settings) if condition_of(settings.condition).uses_library else None
    return RenderOptions(engine_options=engine_options(engine, device=settings.device,
                                                       allow_download=settings.allow_download, library_dir=library))


def library_dir(settings: Settings) -> Path:
    """The random condition's clip library, made once per engine and sample rate and shared by every
    book (at another rate its clips would be resampled: upsampled, they would lack the top band the
    other conditions have)."""
    return settings.runs_root / ".library" / f"{settings.engine}-{settings.sample_rate}"


def ensure_library(settings: Settings, count: int, progress: ProgressFn = no_progress,
                   make_clips: ClipMaker | None = None) -> bool:
    """Build the random condition's clip library with the settings' engine if there is none yet;
    True when it was built. Progress goes to ``progress("library", done, total)``. It is built beside
    its place and moved in when complete, so a stopped build leaves no half library. One build at a
    time per folder is the caller's to ensure (the app holds a lock). ``make_clips``: where the
    clips are rendered (default this machine; ``m2m batch`` renders them on its Ray workers)."""
    import shutil

    from m2m.music.library import INDEX
    from m2m.music.library_builder import build_library

    folder = library_dir(settings)
    if (folder / INDEX).is_file():
        return False
    partial = folder.with_name(folder.name + ".building")
    shutil.rmtree(partial, ignore_errors=True)
    build_library(load_engine(settings.engine), partial, count,
                  RenderOptions(seed=settings.seed, sample_rate=settings.sample_rate),
                  lambda done, total: progress("library", done, total),
                  make_clips)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return True


def edit_caption(book: Book, settings: Settings, page: int, caption: str) -> None:
    """Save a person's caption for one page; that page's music re-renders on the next render_book."""
    text = caption.strip()
    if not text:
        raise ValueError("caption: empty; say what the music should sound like")
    run = run_folder(book, settings)
    record = run.read("captions", CaptionSheet)
    if record is None:
        raise ValueError("captions: the plan has not run yet")
    if page not in {c.page for c in record.data.cues}:
        raise ValueError(f"page: {page} has no caption in {run.file('captions')}")
    cues = tuple(replace(c, caption=text) if c.page == page else c for c in record.data.cues)
    run.save_edit("captions", CaptionSheet(cues))


def edit_directive(book: Book, settings: Settings, scene: int, text: str) -> None:
    """Save a person's directive for one scene and rewrite that scene's captions from it."""
    text = text.strip()
    if not text:
        raise ValueError("directive: empty; say what the scene's music should do")
    run = run_folder(book, settings)
    record = run.read("directives", DirectiveSheet)
    if record is None:
        raise ValueError("directives: this run has none (the baseline), or the plan has not run yet")
    if scene not in {d.scene for d in record.data.directives}:
        raise ValueError(f"scene: {scene} has no directive in {run.file('directives')}")
    run.save_edit("directives", DirectiveSheet(tuple(replace(d, text=text) if d.scene == scene else d
                                                     for d in record.data.directives)))
    plan = plan_book(book, settings)  # the captions follow from the directives; earlier stages are reused
    captions = run.read("captions", CaptionSheet)
    if captions is not None and captions.edited and plan.scenes is not None:
        # The captions file holds a person's edits, so the plan kept it whole: keep those edits and
        # rewrite only the edited scene's pages from the new directive.
        director, _ = load_director_or_offline(settings.director, llm_settings(settings))
        fresh = directives.write_captions(book, plan.scenes, plan.emotions, plan.directives, director).data
        pages = set(plan.scenes.scenes[scene].pages)
        # A theme a person set on one of those pages stands in the rewritten caption (orchestrated
        # for the scene's new mood, their voice and motif kept).
        kept = {c.page: c.theme for c in captions.data.cues if c.page in pages and c.theme and c.theme.edited}
        rewritten = leitmotifs.with_themes(book, plan.scenes, [fresh.cue(p) for p in sorted(pages)], kept)
        by_page = {c.page: c for c in rewritten}
        run.save_edit("captions", CaptionSheet(tuple(by_page.get(c.page, c) for c in captions.data.cues)))


def edit_theme(book: Book, settings: Settings, page: int, voice: str, steps: str) -> None:
    """Save a person's leitmotif for one page: who plays it (a General MIDI instrument or an alias;
    "" keeps it) and its motif as scale steps from the tonic ("0 +2 +4 +2 0"; "" keeps it). The
    caption names the new voice; that page's music re-renders on the next render. A ValueError says
    what is wrong, and nothing is written then."""
    run = run_folder(book, settings)
    record = run.read("captions", CaptionSheet)
    if record is None:
        raise ValueError("captions: the plan has not run yet")
    cue = record.data.cue(page)
    if cue.theme is None:
        raise ValueError(f"theme: page {page + 1} has no leitmotif (no character who recurs across scenes "
                         "speaks most on it)")
    theme = leitmotifs.edited_theme(cue.theme, voice, steps)
    themed = leitmotifs.name_theme(cue, leitmotifs.orchestrate(theme, cue.theme.mood))
    run.save_edit("captions", CaptionSheet(tuple(themed if c.page == page else c for c in record.data.cues)))


def edit_transition(book: Book, settings: Settings, scene: int, kind: str, seconds: float | None, why: str) -> None:
    """Save a person's transition into ``scene`` (kind from m2m.cues.KINDS, seconds, the reason);
    the cue sheet and the reader play it from the next render. A ValueError says what is wrong, and
    nothing is written then."""
    run = run_folder(book, settings)
    record = run.read("transitions", TransitionSheet)
    if record is None:
        raise ValueError("transitions: this run has none (only M2M-Gen chooses them), or the plan has not run yet")
    if record.data.into(scene) is None:
        first = " (the first scene: the music starts there)" if scene == 0 else ""
        raise ValueError(f"transition: no scene change leads into scene {scene + 1}{first}")
    if seconds is None:
        raise ValueError(f"transition into scene {scene + 1}: say how many seconds it lasts (0 for a cut)")
    try:
        chosen = check_transition(Transition(scene, kind, round(float(seconds), 3), why.strip()), scene)  # type: ignore[arg-type]
    except ValueError as e:  # said with the scene as the panels number it (from 1)
        raise ValueError(f"transition into scene {scene + 1}: {str(e).split(': ', 1)[-1]}") from e
    run.save_edit("transitions", TransitionSheet(tuple(chosen if t.scene == scene else t
                                                       for t in record.data.transitions)))
