"""Listening study: manifests, blinded sessions, the ratings store and the analysis.

The usual flow (the app's Study tab and HTTP API call these):

    study = load_study("studies/within/study.json")
    store = RatingsStore()                                   # $M2M_DATA_DIR/study.sqlite3
    participant = store.register(study, Screening(4, 5, "fluent"))
    session = build_session(study, "studies/within", participant.id, participant.number,
                            store.server_secret(), page_image)
    session.public.to_json()                                 # -> browser
    store.submit_payload(study, participant.id, {"stimulus": ..., "label": "A",
                                                 "relevancy": 4, "quality": 3, "consistency": 5})
    result = analyse(ratings_frame(store.ratings(study.id)))
    write_report(result, "studies/within/results", study.title)

``analysis`` (pandas, scipy, statsmodels, matplotlib) and ``hub`` (huggingface_hub) load on first
use, so a server that only collects ratings does not pay for them at import.
"""

from __future__ import annotations

import importlib
from types import MappingProxyType
from typing import TYPE_CHECKING

from .exports import read_ratings_csv, read_ratings_jsonl
from .manifest import (
    CONDITIONS,
    DESIGNS,
    Stimulus,
    Study,
    audio_path,
    load_study,
    missing_files,
    pick_stimuli,
    save_study,
)
from .questionnaire import CRITERIA, JAPANESE_LEVELS, load_questionnaire
from .records import Participant, Rating, Scores, Screening
from .sessions import (
    LABELS,
    PublicSession,
    Session,
    build_session,
    condition_for,
    stimulus_order,
    version_order,
)
from .store import RatingsStore, StoreError, default_store_path

if TYPE_CHECKING:
    from .analysis import StudyAnalysis, analyse, plot_means, ratings_frame, render_report, write_report
    from .hub import HubSyncConfig, hub_config_from_env, start_hub_sync

_LAZY = MappingProxyType({
    "StudyAnalysis": "analysis",
    "analyse": "analysis",
    "plot_means": "analysis",
    "ratings_frame": "analysis",
    "render_report": "analysis",
    "write_report": "analysis",
    "HubSyncConfig": "hub",
    "hub_config_from_env": "hub",
    "start_hub_sync": "hub",
})


def __getattr__(name: str) -> object:
    # PEP 562: import the heavy submodules only when one of their names is first used.
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CONDITIONS",
    "CRITERIA",
    "DESIGNS",
    "JAPANESE_LEVELS",
    "LABELS",
    "HubSyncConfig",
    "Participant",
    "PublicSession",
    "Rating",
    "RatingsStore",
    "Scores",
    "Screening",
    "Session",
    "Stimulus",
    "StoreError",
    "Study",
    "StudyAnalysis",
    "analyse",
    "audio_path",
    "build_session",
    "condition_for",
    "default_store_path",
    "hub_config_from_env",
    "load_questionnaire",
    "load_study",
    "missing_files",
    "pick_stimuli",
    "plot_means",
    "ratings_frame",
    "read_ratings_csv",
    "read_ratings_jsonl",
    "render_report",
    "save_study",
    "start_hub_sync",
    "stimulus_order",
    "version_order",
    "write_report",
]
