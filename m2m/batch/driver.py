"""``m2m batch`` on Ray: plan the books on the driver, render their pages as Ray tasks, land the clips.

Work is split where it is independent. Planning (stages 1-4) runs on the driver, several books at a
time on threads: with an LLM director it is mostly waiting on the API (the client retries rate
limits itself), and the run files it writes stay on the machine that holds the runs folder. Each
page's clip is a Ray task that declares what it needs (MusicGen a GPU when the cluster has one, the
composer one CPU); a page that continues from the page before gets that task's result as its
argument, so Ray runs it after, on any worker; a stinger chosen at a scene change is a task of the
same kind once the book's pages have landed. Clips come back as bytes (m2m.batch.clips) and the
driver writes them and the cue sheet, so a finished book's run folder is the one ``m2m render`` would
have made, and a reader can open it.

Faults: a worker that dies has its task retried by Ray (``max_retries``); a task that raises fails
its book alone, and the batch goes on; a driver stopped or killed loses only the pages in flight:
the same command plans nothing again and renders only the pages not yet landed.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from m2m.batch.catalogue import BookRef
from m2m.batch.clips import (
    ClipJob,
    LandedClip,
    LandedStinger,
    StingerTask,
    land_clip,
    land_stinger,
    render_clip,
    render_stinger_clip,
)
from m2m.batch.library import RayClipMaker
from m2m.batch.report import BatchReport, BookResult
from m2m.book import load_book
from m2m.book_data import Book
from m2m.conditions import condition_of
from m2m.music import load_engine
from m2m.music.base import Engine, RenderOptions
from m2m.music.render import SoundtrackCue
from m2m.pipeline import (
    PlanResult,
    Settings,
    engine_for,
    ensure_library,
    plan_book,
    render_options,
    soundtrack_settings,
    transitions_played,
)
from m2m.soundtrack import ClipWork, build_soundtrack, clip_work, record_clips
from m2m.stingers import StingerClip, StingerJob, reused_stingers, stinger_jobs

ProgressFn = Callable[[str, int, int], None]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchOptions:
    """How a batch runs. ``address`` None starts a local Ray instance for the run with ``workers``
    CPUs (default: this machine's); with an address it joins that cluster, and ``workers`` caps the
    page tasks in flight. ``plan_concurrency``: books planned at once (LLM calls wait on the network)."""

    address: str | None = None
    workers: int | None = None
    plan_concurrency: int = 8
    max_retries: int = 3
    library_clips: int = 24
    report_dir: Path | None = None  # None: <runs>/batches/

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"--workers must be a positive number, got {self.workers}")
        if self.plan_concurrency < 1:
            raise ValueError(f"plan concurrency must be a positive number, got {self.plan_concurrency}")


@dataclass
class _BookState:
    """The driver's view of one book while the batch runs."""

    ref: BookRef
    result: BookResult
    book: Book | None = None
    plan: PlanResult | None = None
    work: ClipWork | None = None
    done: dict[int, SoundtrackCue] = field(default_factory=dict)
    landed: dict[int, Any] = field(default_factory=dict)  # page -> its task's ObjectRef, for the next page
    outstanding: set[int] = field(default_factory=set)  # pages queued or in flight
    stingers: dict[int, StingerClip] = field(default_factory=dict)  # scene -> this run's stinger, made
    stingers_outstanding: set[int] = field(default_factory=set)  # scenes whose stinger is queued or in flight
    stingers_queued: bool = False
    finishing: bool = False

    @property
    def failed(self) -> bool:
        return self.result.status == "failed"


@dataclass(frozen=True)
class Cluster:
    address: str
    cpus: float
    gpus: float


def task_resources(engine: str, gpus: float) -> dict[str, float]:
    """What a page task of ``engine`` asks Ray for: MusicGen a whole GPU where the cluster has any
    (else two CPUs, for torch's threads), every other engine one CPU."""
    if engine.startswith("musicgen"):
        return {"num_gpus": 1, "num_cpus": 1} if gpus > 0 else {"num_cpus": 2}
    return {"num_cpus": 1}


@contextmanager
def ray_session(options: BatchOptions) -> Iterator[Cluster]:
    """A local Ray instance for the run (nothing to set up), or the cluster at ``options.address``."""
    if options.address:
        use_cluster_token()  # before Ray is imported: it reads its auth mode once
    try:
        import ray
    except ImportError as e:  # an optional dependency: the reader and `m2m render` do without it
        raise RuntimeError("m2m batch runs on Ray: `pip install 'ray>=2.40'` (or `pip install -e '.[batch]'`)") from e
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    if options.address:
        info = ray.init(address=options.address, **quiet)
    else:
        # address="local": always a Ray of the run's own; without it Ray joins whatever cluster its
        # /tmp/ray/ray_current_cluster names (another user's, or a head that was killed) and refuses num_cpus
        info = ray.init(address="local", num_cpus=options.workers or os.cpu_count() or 1, include_dashboard=False,
                        **quiet)
    try:
        resources = ray.cluster_resources()
        yield Cluster(str(info.address_info.get("address", options.address or "local")),
                      float(resources.get("CPU", 0)), float(resources.get("GPU", 0)))
    finally:
        ray.shutdown()


def use_cluster_token() -> None:
    """Ray 2.59+ gives a cluster started with ``ray start --head`` token authentication, but a driver
    that joins it by address asks without a token unless RAY_AUTH_MODE says otherwise; so when this
    machine has the token (Ray's own places for it) and nobody chose a mode, use it."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    token_file = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))
    if os.environ.get("RAY_AUTH_TOKEN") or token_file.is_file():
        os.environ["RAY_AUTH_MODE"] = "token"


def run_batch(books: Sequence[BookRef], settings: Settings, options: BatchOptions = BatchOptions(),
              progress: ProgressFn = lambda message, done, total: None) -> BatchReport:
    """Every book through the pipeline for the settings' condition; the report is also written to
    ``<report_dir>/batch-<time>.json`` (its path in ``report.path``). Ctrl-C stops it with the
    pages landed so far kept, and the report says which books were interrupted."""
    started = datetime.now(timezone.utc)
    clock = time.perf_counter()
    with ray_session(options) as cluster:
        report = BatchReport(started=started.isoformat(timespec="seconds"), condition=settings.condition,
                             engine=engine_for(settings), director=settings.director, ray_address=cluster.address,
                             cluster_cpus=cluster.cpus, cluster_gpus=cluster.gpus,
                             books=[BookResult(ref.name, str(ref.path)) for ref in books])
        report.path = str(report_path(options.report_dir or settings.runs_root / "batches", started))
        try:
            _Batch(books, settings, options, cluster, report, progress).run()
        finally:
            report.wall_seconds = time.perf_counter() - clock
            report.write(Path(report.path))
    return report


def report_path(folder: Path, started: datetime) -> Path:
    """``batch-<UTC time>.json``, with a number after it when a batch started in the same second."""
    stem = f"batch-{started.strftime('%Y%m%dT%H%M%SZ')}"
    path, n = folder / f"{stem}.json", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}.json"
    return path


class _Batch:
    """One batch's loop: plans finishing on threads, page tasks finishing on Ray, books finishing."""

    def __init__(self, books: Sequence[BookRef], settings: Settings, options: BatchOptions, cluster: Cluster,
                 report: BatchReport, progress: ProgressFn) -> None:
        import ray

        self.ray = ray
        self.settings, self.options, self.report, self.progress = settings, options, report, progress
        self.engine_name = engine_for(settings)
        self.sound = soundtrack_settings(settings)
        self.engine: Engine = load_engine(self.engine_name)  # for the clip hashes; models load on the workers
        self.render: RenderOptions = render_options(settings, self.engine)
        self.uses_library = condition_of(settings.condition).uses_library
        self.task = ray.remote(render_clip).options(
            max_retries=options.max_retries, retry_exceptions=False,
            **task_resources(self.engine_name, cluster.gpus), **self._page_placement())
        self.stinger_task = ray.remote(render_stinger_clip).options(
            max_retries=options.max_retries, retry_exceptions=False,
            **task_resources(self.engine_name, cluster.gpus), **self._page_placement())
        self.library_task = {"max_retries": options.max_retries, "retry_exceptions": False,
                             **task_resources(settings.engine, cluster.gpus)}
        # pages in flight at once: enough to keep every worker busy while the driver lands results
        task_cpus = task_resources(self.engine_name, cluster.gpus).get("num_cpus", 1)
        self.cap = options.workers if options.address and options.workers else \
            max(2, 2 * int(max(cluster.cpus, 1) / task_cpus))
        self.states = [_BookState(ref, result) for ref, result in zip(books, report.books, strict=True)]
        self.queue: deque[tuple[_BookState, ClipJob | StingerTask]] = deque()
        self.in_flight: dict[Any, tuple[_BookState, str]] = {}
        self.pids: set[int] = set()

    # -- the loop --------------------------------------------------------------------------------

    def _page_placement(self) -> dict[str, Any]:
        """Where page tasks may run: anywhere, except the library engine's, which read the clip
        library from this machine's runs folder: they run on this machine's Ray node (a page is a
        copy of a library clip, so that costs little). Soft: a head started with no CPUs for tasks
        (``ray start --head --num-cpus=0``) runs them elsewhere, where a library missing from that
        machine fails the book with its message rather than the batch waiting for good."""
        if not self.uses_library:
            return {}
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = self.ray.get_runtime_context().get_node_id()
        return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=here, soft=True)}

    def run(self) -> None:
        if self.uses_library:  # every book draws from it: made first, its clips on the workers
            ensure_library(self.settings, self.options.library_clips, self.progress,
                           RayClipMaker(self.ray, self.library_task, self.pids))
        planning: dict[Future, _BookState] = {}
        finishing: dict[Future, _BookState] = {}
        with ThreadPoolExecutor(self.options.plan_concurrency, thread_name_prefix="m2m-plan") as plans, \
                ThreadPoolExecutor(1, thread_name_prefix="m2m-finish") as finish:
            planning = {plans.submit(self._plan, state): state for state in self.states}
            try:
                while planning or finishing or self.queue or self.in_flight or self._unfinished():
                    for future in [f for f in planning if f.done()]:
                        self._planned(planning.pop(future), future)
                    self._submit()
                    for state in self._unfinished():
                        if not state.stingers_queued and self._queue_stingers(state):
                            continue  # its stingers first (page tasks' kin), then the book is finished
                        state.finishing = True
                        finishing[finish.submit(self._finish, state)] = state
                    for future in [f for f in finishing if f.done()]:
                        self._finished(finishing.pop(future), future)
                    self._land(timeout=0.05 if (planning or finishing) else 0.5)
                    self._report_progress()
            except BaseException:
                for future in planning:
                    future.cancel()
                for ref in self.in_flight:
                    self.ray.cancel(ref, force=True)
                raise
            finally:
                self.report.worker_pids = tuple(sorted(self.pids))

    def _unfinished(self) -> list[_BookState]:
        """Books whose pages have all landed and whose soundtrack is still to finish."""
        return [s for s in self.states if s.work is not None and not s.outstanding and not s.stingers_outstanding
                and not s.finishing and not s.failed]

    # -- planning (driver threads) ----------------------------------------------------------------

    def _plan(self, state: _BookState) -> tuple[Book, PlanResult, ClipWork]:
        """Stages 1-4 and the pages still to render (on a planning thread: it only reads ``state``)."""
        started = time.perf_counter()
        book = load_book(state.ref.path, state.ref.book)
        plan = plan_book(book, self.settings)
        transitions = transitions_played(self.settings, plan)
        work = clip_work(plan.captions, plan.run, self.engine, self.sound, self.render, transitions, book_id=book.id)
        state.result.plan_seconds = round(time.perf_counter() - started, 3)
        return book, plan, work

    def _planned(self, state: _BookState, future: Future) -> None:
        error = future.exception()
        if error is not None:
            self._fail(state, error)
            return
        # set on the loop's thread only, pages queued at once: a book is never seen planned with no
        # pages outstanding before its pages are queued
        state.book, state.plan, state.work = future.result()
        work, result = state.work, state.result
        result.book_id, result.run = state.book.id, str(state.plan.run.path)
        result.pages, result.reused = len(work.sheet), len(work.done)
        result.planned = state.plan.computed
        state.done = dict(work.done)
        state.stingers = reused_stingers(state.plan.run, self._stinger_jobs(state),
                                         work.record.data.stingers if work.record is not None else ())
        for cue in work.pending:
            job = ClipJob(state.book.id, self.settings.condition, cue, work.hashes[cue.page], self.engine_name,
                          work.render, self.sound, work.after[cue.page])
            self.queue.append((state, job))
            state.outstanding.add(cue.page)

    # -- page tasks (Ray) --------------------------------------------------------------------------

    def _submit(self) -> None:
        while self.queue and len(self.in_flight) < self.cap:
            state, job = self.queue.popleft()
            if state.failed:
                continue
            if isinstance(job, StingerTask):
                self.in_flight[self.stinger_task.remote(job)] = (state, f"the stinger into scene {job.job.scene}")
                continue
            ref = self.task.remote(job, self._previous(state, job))
            state.landed[job.cue.page] = ref
            self.in_flight[ref] = (state, f"page {job.cue.page}")

    def _previous(self, state: _BookState, job: ClipJob) -> Any:
        """What the page continues from: the task of the page before, when it is in this run (Ray
        runs this one after it), else that page's clip as landed earlier, else nothing."""
        if job.after is None:
            return None
        if job.after in state.landed:
            return state.landed.pop(job.after)  # only its successor needs it from here on
        if job.after in state.done and state.plan is not None:
            from m2m.audio import read_audio

            return read_audio(state.plan.run.path / state.done[job.after].file)
        return None

    def _land(self, timeout: float) -> None:
        if not self.in_flight:
            time.sleep(timeout / 5)
            return
        ready, _ = self.ray.wait(list(self.in_flight), num_returns=len(self.in_flight), timeout=timeout)
        for ref in ready:
            state, what = self.in_flight.pop(ref)
            try:
                clip: LandedClip | LandedStinger = self.ray.get(ref)
            except Exception as e:  # noqa: BLE001 - a task's error fails its book, not the batch
                if not state.failed:
                    self._fail(state, _task_error(e, what))
                continue
            if state.failed:
                continue  # a book that already failed keeps what landed, and no more
            if isinstance(clip, LandedStinger):
                self._land_stinger(state, clip)
            else:
                self._land_clip(state, clip)

    def _land_clip(self, state: _BookState, clip: LandedClip) -> None:
        assert state.work is not None and state.plan is not None and state.book is not None
        page = clip.record.page
        try:
            state.done[page] = land_clip(state.plan.run, clip, state.work.existing.get(page))
            record_clips(state.plan.run, state.book.id, self.settings.condition, state.work, state.done, self.sound,
                         transitions_played(self.settings, state.plan), state.stingers)
        except (OSError, ValueError) as e:
            self._fail(state, e)
            return
        state.outstanding.discard(page)
        state.result.rendered += 1
        state.result.audio_seconds = round(state.result.audio_seconds + clip.record.seconds, 3)
        state.result.worker_seconds = round(state.result.worker_seconds + clip.render_seconds, 3)
        self.pids.add(clip.worker_pid)

    # -- stingers (Ray), once a book's pages have landed ------------------------------------------------

    def _stinger_jobs(self, state: _BookState) -> dict[int, StingerJob]:
        assert state.work is not None and state.plan is not None
        return stinger_jobs(state.work.sheet, state.work.hashes, transitions_played(self.settings, state.plan),
                            self.sound, self.engine, state.work.render)

    def _queue_stingers(self, state: _BookState) -> bool:
        """Queue the book's stingers not yet made (each closes a scene whose last page has landed), as
        tasks like its pages, so a MusicGen stinger is made on the cluster's GPUs; True if any was."""
        assert state.work is not None and state.plan is not None and state.book is not None
        state.stingers_queued = True
        try:
            tasks = [self._stinger_task(state, job) for scene, job in sorted(self._stinger_jobs(state).items())
                     if scene not in state.stingers]
        except (OSError, ValueError) as e:  # the old page's clip unreadable: this book fails, not the batch
            self._fail(state, e)
            return True
        # ahead of other books' pages: this book is one stinger from finished (and readable)
        self.queue.extendleft((state, task) for task in reversed(tasks))
        state.stingers_outstanding.update(task.job.scene for task in tasks)
        return bool(tasks)

    def _stinger_task(self, state: _BookState, job: StingerJob) -> StingerTask:
        assert state.work is not None and state.plan is not None and state.book is not None
        previous = None
        if self.engine.continues:  # it continues from the old page's audio, as m2m render's does
            from m2m.audio import read_audio

            previous = read_audio(state.plan.run.path / state.done[job.cue.page].file)
        return StingerTask(state.book.id, self.settings.condition, job, self.engine_name, state.work.render,
                           self.sound, previous)

    def _land_stinger(self, state: _BookState, stinger: LandedStinger) -> None:
        assert state.work is not None and state.plan is not None and state.book is not None
        try:
            state.stingers[stinger.record.scene] = land_stinger(state.plan.run, stinger)
            record_clips(state.plan.run, state.book.id, self.settings.condition, state.work, state.done, self.sound,
                         transitions_played(self.settings, state.plan), state.stingers)
        except (OSError, ValueError) as e:
            self._fail(state, e)
            return
        state.stingers_outstanding.discard(stinger.record.scene)
        state.result.worker_seconds = round(state.result.worker_seconds + stinger.render_seconds, 3)
        self.pids.add(stinger.worker_pid)

    # -- finishing a book (driver thread) -----------------------------------------------------------

    def _finish(self, state: _BookState) -> str:
        """The cue sheet completed and the whole-book file made, from the landed clips and stingers
        (nothing renders here)."""
        assert state.plan is not None and state.book is not None
        started = time.perf_counter()
        soundtrack = build_soundtrack(state.book.id, self.settings.condition, state.plan.captions, state.plan.run,
                                      self.engine_name, self.sound, render=self.render, engine=self.engine,
                                      transitions=transitions_played(self.settings, state.plan))
        if not soundtrack.complete:  # build_soundtrack rendered what was missing, so this is a bug: say it
            raise RuntimeError(f"{state.plan.run.file('soundtrack')}: incomplete after every page landed")
        state.result.finish_seconds = round(time.perf_counter() - started, 3)
        return str(state.plan.run.path / soundtrack.file) if soundtrack.file else str(state.plan.run.file("soundtrack"))

    def _finished(self, state: _BookState, future: Future) -> None:
        error = future.exception()
        if error is not None:
            self._fail(state, error)
        else:
            state.result.status, state.result.soundtrack = "done", future.result()

    # -- book states --------------------------------------------------------------------------------

    def _fail(self, state: _BookState, error: BaseException) -> None:
        state.result.status, state.result.error = "failed", _message(error)
        for ref, (owner, _) in list(self.in_flight.items()):
            if owner is state:
                self.ray.cancel(ref)
        state.outstanding.clear()
        log.warning("%s: %s", state.ref.name, state.result.error)

    def _report_progress(self) -> None:
        settled = sum(s.result.status in ("done", "failed") for s in self.states)
        self.progress("books", settled, len(self.states))
        pages = sum(s.result.pages for s in self.states)
        self.progress("pages", sum(len(s.done) for s in self.states), pages)


def _task_error(error: Exception, what: str) -> Exception:
    """A task's failure as the person reads it: what it made ("page 3") and the engine's own message,
    not Ray's trace."""
    cause = getattr(error, "cause", None)
    message = _message(cause) if isinstance(cause, BaseException) else _message(error).splitlines()[-1]
    return RuntimeError(f"{what}: {message}")


def _message(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if not isinstance(error, (ValueError, RuntimeError, OSError)) \
        else str(error)

