"""Fixtures for the reader's tests: a small example book, the app served on 127.0.0.1, a browser.

The app runs the real pipeline with ``tests/ui/chord_engine.py``'s engine (fast, deterministic clips)
unless M2M_UI_PIPELINE=real asks for the registry's engines (the composer) on the bundled example.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import chromium, free_port
from tests.ui import bookmaker
from tests.ui.chord_engine import chord_service

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"


REAL = os.environ.get("M2M_UI_PIPELINE") == "real"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "manga109"


def pipeline_service() -> object:
    if REAL:
        from m2m.ui.service import default_service
        return default_service()
    return chord_service()


@dataclass(frozen=True)
class Served:
    url: str
    config: object
    service: object
    demo: object = None


@pytest.fixture(scope="session")
def example_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if REAL:  # the bundled example, as a reader opens it
        return EXAMPLES
    return bookmaker.manga109_book(tmp_path_factory.mktemp("examples"), pages=8)


def serve(example_root: Path, tmp: Path, service: object) -> Iterator[Served]:
    from m2m.ui import AppConfig, build_app, launch_kwargs
    config = AppConfig(examples_root=example_root, runs_root=tmp / "runs", uploads_root=tmp / "uploads",
                       max_upload="20mb")
    demo = build_app(config, service)
    kwargs = launch_kwargs(config) | {"server_port": free_port(), "server_name": "127.0.0.1",
                                      "prevent_thread_lock": True, "quiet": True}
    demo.queue(default_concurrency_limit=2).launch(**kwargs)
    try:
        yield Served(f"http://127.0.0.1:{kwargs['server_port']}/", config, service, demo)
    finally:
        demo.close()


@pytest.fixture(scope="module")
def served(example_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serve(example_root, tmp_path_factory.mktemp("app"), pipeline_service())


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as b:
        yield b


@pytest.fixture()
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
