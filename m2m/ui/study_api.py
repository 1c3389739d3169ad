"""HTTP API of the listening study: what a participant's browser (``static/study.js``) talks to.

Mounted under ``/study/api`` on the app's FastAPI server (``study_routes``). Participant routes:

    GET  /study/api/info                        title, consent text, questions (never a condition)
    POST /study/api/register                    {"consent": true, "screening": {...}} -> {"participant": id}
    GET  /study/api/session/{participant}       the blinded session: stimulus ids, labels A/B/C, tokens
    GET  /study/api/state/{participant}         what this participant has rated (to resume after a reload)
    POST /study/api/rate/{participant}          {"stimulus", "label", "relevancy", "quality", "consistency",
                                                 optional "listened_s": seconds listened, 0..21600}
    GET  /study/api/asset/{participant}/{token} a page image or a page's clip, by opaque token

Researcher routes (``/study/api/admin/...``) need ``Authorization: Bearer <token>`` matching
``$M2M_STUDY_ADMIN_TOKEN``; without that variable they do not exist (404).

Blinding: no response names a condition, a run folder or a file; assets are served without a
file name. A rating is acknowledged (200) only after the store has committed it; a refused one
(400) leaves the store unchanged; a failing database is a 503, so the browser keeps the answer
and retries.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from m2m.study import (
    RatingsStore,
    Screening,
    Session,
    StoreError,
    Study,
    build_session,
    default_store_path,
    load_questionnaire,
    load_study,
)
from m2m.study.hub import hub_config_from_env, start_hub_sync
from m2m.study.manifest import PageEntry, Stimulus, version_entries
from m2m.study.questionnaire import CRITERIA, Questionnaire
from m2m.ui.fallback_audio import flac_copy

# Where a study lives and the researcher's report have their own modules; their names are
# importable from here as before, so the Study tab and other callers need not change.
from m2m.ui.study_config import (
    ADMIN_TOKEN_ENV,
    IMAGE_SUFFIXES,
    MANIFEST_NAME,
    PAGES_DIR,
    RESULTS_DIR,
    STUDY_DIR_ENV,
    admin_allowed,
    admin_token_from_env,
    manifest_path,
    page_image_path,
    study_dir_from_env,
    study_folder,
)
from m2m.ui.study_report import ResearcherReport, researcher_report

LOG = logging.getLogger(__name__)

API_PREFIX = "/study/api"
DEFAULT_CROSSFADE_S = 1.5
# Request bodies are a handful of small fields; anything larger is not a participant's answer.
MAX_BODY_BYTES = 16_384
# Sessions are pure functions of (participant, number, secret), so caching them only saves work;
# the bound keeps a long study from holding every session ever built.
SESSION_CACHE_SIZE = 2048
MEDIA_TYPES: Mapping[str, str] = {
    ".ogg": "audio/ogg", ".flac": "audio/flac", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
}
NO_STORE = {"Cache-Control": "no-store"}

__all__ = [
    "ADMIN_TOKEN_ENV", "API_PREFIX", "DEFAULT_CROSSFADE_S", "IMAGE_SUFFIXES", "MANIFEST_NAME", "MAX_BODY_BYTES",
    "MEDIA_TYPES", "NO_STORE", "PAGES_DIR", "RESULTS_DIR", "SESSION_CACHE_SIZE", "STUDY_DIR_ENV", "ResearcherReport",
    "StudyServer", "admin_allowed", "admin_token_from_env", "manifest_path", "mount_study", "page_image_path",
    "public_info", "researcher_report", "start_study_backup", "study_app_kwargs", "study_dir_from_env",
    "study_folder", "study_routes",
]


# --- what the browser may see -----------------------------------------------------------------------


def public_info(study: Study, questionnaire: Questionnaire, crossfade_s: float) -> dict[str, Any]:
    """Texts and shape of the study for the participant's page. No condition names, no paths.

    The questionnaire's ``report_condition_names`` stay out on purpose: they are for reports only.
    """
    return {
        "study": study.id,
        "title": study.title,
        "consent_text": study.consent_text,
        "stimuli": len(study.stimuli),
        "versions_per_stimulus": 3,
        "crossfade_s": crossfade_s,
        "criteria": [{"key": c.key, "name": c.name, "question": c.question} for c in questionnaire.criteria],
        "scale": list(questionnaire.scale),
        "screening": [{"key": key, "question": text} for key, text in questionnaire.screening.items()],
        "interest_scale": list(questionnaire.interest_scale),
        "japanese_levels": [{"key": key, "label": label} for key, label in questionnaire.japanese_levels.items()],
    }


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=NO_STORE)


def _decode_body(raw: bytes) -> object:
    if len(raw) > MAX_BODY_BYTES:
        raise ValueError(f"request body must be at most {MAX_BODY_BYTES} bytes, got {len(raw)}")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"request body must be JSON: {e}") from e


# --- the routes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyServer:
    """What the routes share: the study, where its files are, the store, the researcher token."""

    study: Study
    folder: Path
    store: RatingsStore
    questionnaire: Questionnaire
    admin_token: str | None
    crossfade_s: float


class _SessionCache:
    """Participant id -> Session, bounded; dropped wholesale when full (sessions are cheap to rebuild)."""

    def __init__(self, build: Callable[[str, int], Session], size: int = SESSION_CACHE_SIZE) -> None:
        self._build = build
        self._size = size
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def get(self, participant_id: str, number: int) -> Session:
        with self._lock:
            session = self._sessions.get(participant_id)
        if session is not None:
            return session
        session = self._build(participant_id, number)
        with self._lock:
            if len(self._sessions) >= self._size:
                self._sessions.clear()
            self._sessions[participant_id] = session
        return session


def study_routes(study_dir: str | os.PathLike[str], store: RatingsStore, *,
                 admin_token: str | None = None, crossfade_s: float = DEFAULT_CROSSFADE_S,
                 env: Mapping[str, str] | None = None) -> APIRouter:
    """The study API as a router with prefix ``/study/api``, for ``app.include_router``.

    ``study_dir`` is the folder of ``study.json`` (or the manifest file). ``admin_token`` defaults to
    ``$M2M_STUDY_ADMIN_TOKEN``; when neither is set the researcher routes answer 404.
    ValueError when the manifest cannot be read.
    """
    if not isinstance(store, RatingsStore):
        raise ValueError(f"store must be a RatingsStore, got {type(store).__name__}")
    if not isinstance(crossfade_s, (int, float)) or isinstance(crossfade_s, bool) or not 0 < crossfade_s <= 30:
        raise ValueError(f"crossfade_s must be a number of seconds in (0, 30], got {crossfade_s!r}")
    study = load_study(manifest_path(study_dir))
    folder = study_folder(study_dir).resolve()
    server = StudyServer(study, folder, store, load_questionnaire(),
                         admin_token if admin_token is not None else admin_token_from_env(env), float(crossfade_s))
    return _router(server)


def _router(s: StudyServer) -> APIRouter:
    router = APIRouter(prefix=API_PREFIX)
    info = public_info(s.study, s.questionnaire, s.crossfade_s)

    def page_image(book_id: str, page: int) -> Path:
        return page_image_path(s.folder, book_id, page)

    moves: dict[tuple[str, str], Mapping[int, PageEntry]] = {}

    def entries(stimulus: Stimulus, condition: str) -> Mapping[int, PageEntry]:
        """How each version's music enters its pages, read once from its cue sheet; a broken one
        costs only its transitions (the version crossfades), said in the server's log."""
        if (stimulus.id, condition) not in moves:
            try:
                moves[stimulus.id, condition] = version_entries(s.folder, stimulus, condition)
            except ValueError as e:
                LOG.warning("study %s, stimulus %s: transitions not played, every turn crossfades: %s",
                            s.study.id, stimulus.id, e)
                moves[stimulus.id, condition] = {}
        return moves[stimulus.id, condition]

    def build(participant_id: str, number: int) -> Session:
        return build_session(s.study, s.folder, participant_id, number, s.store.server_secret(), page_image,
                             entries)

    sessions = _SessionCache(build)

    def session_of(participant_id: str) -> Session:
        """The participant's session; ValueError when the id is not registered for this study."""
        participant = s.store.participant(participant_id)
        if participant.study != s.study.id:
            # A browser remembering an id from an earlier study: it registers again.
            raise ValueError(f"participant {participant_id!r} is not registered for this study")
        return sessions.get(participant.id, participant.number)

    async def call(fn: Callable[..., Any], *args: Any, not_found: bool = False) -> Any:
        """Run a blocking store call off the event loop; map its errors to the API's statuses."""
        try:
            return await run_in_threadpool(fn, *args)
        except StoreError as e:
            raise _Refused(503, f"the ratings store is unavailable, please retry: {e}") from e
        except ValueError as e:
            raise _Refused(404 if not_found else 400, str(e)) from e

    @router.get("/info")
    def get_info() -> JSONResponse:
        return JSONResponse(info, headers=NO_STORE)

    @router.post("/register")
    async def register(request: Request) -> Response:
        try:
            body = _decode_body(await request.body())
            screening = _registration(body)
            participant = await call(s.store.register, s.study, screening)
        except _Refused as e:
            return e.response()
        except ValueError as e:
            return _error(400, str(e))
        return JSONResponse({"participant": participant.id}, headers=NO_STORE)

    @router.get("/session/{participant_id}")
    async def get_session(participant_id: str) -> Response:
        try:
            session = await call(session_of, participant_id, not_found=True)
        except _Refused as e:
            return e.response()
        return JSONResponse(session.public.to_dict(), headers=NO_STORE)

    @router.get("/state/{participant_id}")
    async def get_state(participant_id: str) -> Response:
        try:
            await call(session_of, participant_id, not_found=True)
            rated = await call(_rated_by, s.store, s.study, participant_id)
        except _Refused as e:
            return e.response()
        total = len(s.study.stimuli) * 3
        return JSONResponse({"participant": participant_id, "rated": rated, "total": total,
                             "complete": len(rated) == total}, headers=NO_STORE)

    @router.post("/rate/{participant_id}")
    async def rate(participant_id: str, request: Request) -> Response:
        try:
            body = _decode_body(await request.body())
            if not isinstance(body, Mapping):
                raise ValueError(f"submission must be a JSON object, got {type(body).__name__}")
            rating = await call(s.store.submit_payload, s.study, participant_id, body)
        except _Refused as e:
            return e.response()
        except ValueError as e:
            return _error(400, str(e))
        # The stored row carries the condition; only the participant's own fields go back.
        return JSONResponse({"stimulus": rating.stimulus, "label": rating.label,
                             **{c: getattr(rating, c) for c in CRITERIA}, "updated": rating.updated},
                            headers=NO_STORE)

    @router.get("/asset/{participant_id}/{token}")
    async def asset(participant_id: str, token: str, format: str | None = None) -> Response:  # noqa: A002
        try:
            session = await call(session_of, participant_id, not_found=True)
            item = session.asset(token)
        except _Refused as e:
            return e.response()
        except ValueError:
            return _error(404, "unknown asset")
        if not item.path.is_file():
            return _error(404, "this asset is missing on the server")
        path = item.path
        if format == "flac" and path.suffix.lower() == ".ogg":
            # a browser that could not decode the OGG asks for the same clip as FLAC (fallback_audio)
            try:
                path = await run_in_threadpool(flac_copy, path)
            except (OSError, RuntimeError, ValueError):  # ValueError: an unreadable clip
                return _error(500, "this clip could not be converted")
        elif format is not None:
            return _error(404, "unknown format")
        media_type = MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
        # No filename: a Content-Disposition would name the file, and file names can hint at the source.
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, max-age=3600"})

    # --- researcher ---

    def admin_check(request: Request) -> Response | None:
        if not s.admin_token:
            return _error(404, "Not Found")
        header = request.headers.get("authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("x-admin-token")
        if not admin_allowed(given, s.admin_token):
            return _error(403, "a valid researcher token is required")
        return None

    @router.get("/admin/results")
    async def admin_results(request: Request) -> Response:
        if (refused := admin_check(request)) is not None:
            return refused
        try:
            # ?all=1: every participant, not only those meeting the paper's screening rule
            everyone = request.query_params.get("all", "").lower() in ("1", "true", "yes")
            report = await call(researcher_report, s.study, s.folder, s.store, everyone)
        except _Refused as e:
            return e.response()
        return JSONResponse({"participants": report.participants, "ratings": report.ratings,
                             "report": report.markdown, "figure": f"{API_PREFIX}/admin/report.png" if report.figure else None,
                             "message": report.message, "figures": report.figures}, headers=NO_STORE)

    @router.get("/admin/report.png")
    async def admin_figure(request: Request) -> Response:
        if (refused := admin_check(request)) is not None:
            return refused
        figure = s.folder / RESULTS_DIR / "report.png"
        if not figure.is_file():
            return _error(404, "no report yet: ask for /study/api/admin/results first")
        return FileResponse(figure, media_type="image/png", headers=NO_STORE)

    @router.get("/admin/export.{fmt}")
    async def admin_export(fmt: str, request: Request) -> Response:
        if (refused := admin_check(request)) is not None:
            return refused
        if fmt not in ("csv", "jsonl"):
            return _error(404, f"export format must be csv or jsonl, got {fmt!r}")
        try:
            text = await call(_export_text, s.store, s.study.id, fmt)
        except _Refused as e:
            return e.response()
        media = "text/csv" if fmt == "csv" else "application/x-ndjson"
        return Response(text, media_type=f"{media}; charset=utf-8",
                        headers={**NO_STORE, "Content-Disposition": f'attachment; filename="{s.study.id}-ratings.{fmt}"'})

    return router


class _Refused(Exception):
    """An API refusal with its HTTP status (raised inside a route, answered as JSON)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> JSONResponse:
        return _error(self.status, self.message)


def _registration(body: object) -> Screening:
    if not isinstance(body, Mapping):
        raise ValueError(f"registration must be a JSON object, got {type(body).__name__}")
    unknown = sorted(str(k) for k in body if k not in ("consent", "screening"))
    if unknown:
        raise ValueError(f"registration has unknown field(s) {unknown}")
    if body.get("consent") is not True:
        raise ValueError(f"consent must be true to take part, got {body.get('consent')!r}")
    screening = body.get("screening")
    if not isinstance(screening, Mapping):
        raise ValueError(f"screening must be an object, got {screening!r}")
    return Screening.from_mapping(screening)


def _rated_by(store: RatingsStore, study: Study, participant_id: str) -> list[dict[str, object]]:
    """This participant's answers (stimulus, label, scores; never the condition), for resuming and editing."""
    return [{"stimulus": r.stimulus, "label": r.label, **{c: getattr(r, c) for c in CRITERIA}}
            for r in store.ratings(study.id) if r.participant == participant_id]


def _export_text(store: RatingsStore, study_id: str, fmt: str) -> str:
    with tempfile.TemporaryDirectory(prefix="m2m-export-") as tmp:
        path = Path(tmp) / f"ratings.{fmt}"
        (store.export_csv if fmt == "csv" else store.export_jsonl)(path, study_id)
        return path.read_text(encoding="utf-8")


def mount_study(app: FastAPI, study_dir: str | os.PathLike[str] | None = None,
                store: RatingsStore | None = None, env: Mapping[str, str] | None = None) -> bool:
    """Add the study routes to a running app when a study is configured; True when mounted.

    ``study_dir`` defaults to ``$M2M_STUDY_DIR``; ``store`` to ``$M2M_DATA_DIR/study.sqlite3``.
    Without a study nothing is added (the Study tab then explains how to prepare one).
    """
    folder = study_folder(study_dir) if study_dir is not None else study_dir_from_env(env)
    if folder is None or not manifest_path(folder).is_file():
        return False
    app.include_router(study_routes(folder, store or RatingsStore(default_store_path(env)), env=env))
    return True


def study_app_kwargs(study_dir: str | os.PathLike[str] | None = None, store: RatingsStore | None = None,
                     env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``app_kwargs`` for ``gr.Blocks.launch``: the study routes built into Gradio's FastAPI app.

    Gradio passes ``app_kwargs`` to FastAPI's constructor, and ``routes=`` there adds our routes
    before Gradio's own, so they are live from the first request. ``{}`` when no study is configured.
    """
    folder = study_folder(study_dir) if study_dir is not None else study_dir_from_env(env)
    if folder is None or not manifest_path(folder).is_file():
        return {}
    router = study_routes(folder, store or RatingsStore(default_store_path(env)), env=env)
    return {"routes": list(router.routes)}


def start_study_backup(env: Mapping[str, str] | None = None) -> object | None:
    """Push the study's ratings to a Hugging Face dataset on a schedule, when a repo and token are set.

    Off (None) by default: no study configured, or no ``M2M_STUDY_HF_REPO`` and token.
    """
    config = hub_config_from_env(env)
    folder = study_dir_from_env(env)
    if config is None or folder is None or not manifest_path(folder).is_file():
        return None
    study = load_study(manifest_path(folder))
    return start_hub_sync(RatingsStore(default_store_path(env)), config, study.id)
