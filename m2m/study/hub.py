"""Optional backup of study results to a Hugging Face dataset repo.

Off unless both a repo id and a token are configured. A Space's disk is wiped on restart, so a
study run on a Space should turn this on; a local study does not need it. The local SQLite file
stays the source of truth: the Hub copy is a periodic JSONL export of it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import CommitScheduler

from .store import RatingsStore, default_store_path

REPO_ENV = "M2M_STUDY_HF_REPO"
TOKEN_ENVS: tuple[str, ...] = ("M2M_STUDY_HF_TOKEN", "HF_TOKEN")
EVERY_ENV = "M2M_STUDY_HF_EVERY_MINUTES"
DEFAULT_EVERY_MINUTES = 5.0


@dataclass(frozen=True)
class HubSyncConfig:
    """Where and how often to push. ``folder`` is a local staging folder the scheduler uploads."""

    repo_id: str
    token: str
    folder: Path
    every_minutes: float = DEFAULT_EVERY_MINUTES
    private: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.repo_id, str) or self.repo_id.count("/") != 1 or not all(self.repo_id.split("/")):
            raise ValueError(f"repo_id must look like 'owner/name', got {self.repo_id!r}")
        if not isinstance(self.token, str) or not self.token:
            raise ValueError("token must be a non-empty string")
        if not isinstance(self.every_minutes, (int, float)) or isinstance(self.every_minutes, bool) or not self.every_minutes > 0:
            raise ValueError(f"every_minutes must be a positive number, got {self.every_minutes!r}")
        object.__setattr__(self, "folder", Path(self.folder))

    def __repr__(self) -> str:
        # Keep the token out of logs and tracebacks.
        return f"HubSyncConfig(repo_id={self.repo_id!r}, token='***', folder={str(self.folder)!r}, every_minutes={self.every_minutes!r}, private={self.private!r})"


def hub_config_from_env(env: Mapping[str, str] | None = None) -> HubSyncConfig | None:
    """The push configuration from the environment, or None (off) unless repo and token are both set.

    ``M2M_STUDY_HF_REPO`` names the dataset repo; the token is ``M2M_STUDY_HF_TOKEN`` or else
    ``HF_TOKEN``; ``M2M_STUDY_HF_EVERY_MINUTES`` sets the interval. The staging folder sits next
    to the default store: ``$M2M_DATA_DIR/hub`` (or ``./data/hub``).
    """
    env = os.environ if env is None else env
    repo_id = env.get(REPO_ENV, "").strip()
    token = next((env[name].strip() for name in TOKEN_ENVS if env.get(name, "").strip()), "")
    if not repo_id or not token:
        return None
    raw_every = env.get(EVERY_ENV, "").strip()
    try:
        every = float(raw_every) if raw_every else DEFAULT_EVERY_MINUTES
    except ValueError as e:
        raise ValueError(f"{EVERY_ENV} must be a number of minutes, got {raw_every!r}") from e
    folder = default_store_path(env).parent / "hub"
    return HubSyncConfig(repo_id=repo_id, token=token, folder=folder, every_minutes=every)


class _ExportingScheduler(CommitScheduler):
    """A CommitScheduler that refreshes the JSONL exports just before each upload.

    The export runs inside ``push_to_hub``, which the scheduler serialises on its own worker, so
    no export can replace a file while an upload of it is being read.
    """

    def __init__(self, *, store: RatingsStore, study_id: str | None, **kwargs: object) -> None:
        # Set before super().__init__: the base class starts its thread, which pushes at once.
        self._store = store
        self._study_id = study_id
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def push_to_hub(self):  # type: ignore[override]
        with self.lock:
            self._store.export_jsonl(self.folder_path / "ratings.jsonl", self._study_id)
            self._store.export_participants_jsonl(self.folder_path / "participants.jsonl", self._study_id)
        return super().push_to_hub()


def start_hub_sync(store: RatingsStore, config: HubSyncConfig, study_id: str | None = None) -> CommitScheduler:
    """Start pushing ``ratings.jsonl`` and ``participants.jsonl`` to the dataset repo every few minutes.

    Contacts the Hub immediately (creates the repo if needed). Call ``.stop()`` on the result to end it.
    """
    if not isinstance(config, HubSyncConfig):
        raise ValueError(f"config must be a HubSyncConfig, got {type(config).__name__}")
    config.folder.mkdir(parents=True, exist_ok=True)
    return _ExportingScheduler(
        store=store,
        study_id=study_id,
        repo_id=config.repo_id,
        repo_type="dataset",
        folder_path=config.folder,
        every=config.every_minutes,
        private=config.private,
        token=config.token,
        allow_patterns=["*.jsonl"],
        path_in_repo="data",
    )
