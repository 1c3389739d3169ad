"""Run the study API alone under uvicorn: ``python -m tests.study_app.serve_study STUDY_DIR DB PORT``.

The crash test starts this as a subprocess and kills it with SIGKILL mid-study.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import uvicorn
from fastapi import FastAPI

from m2m.study import RatingsStore

STUDY_API = Path(__file__).resolve().parents[2] / "m2m" / "ui" / "study_api.py"


def load_study_api() -> ModuleType:
    """m2m/ui/study_api.py by its path: importing it as m2m.ui.study_api would first run m2m/ui/__init__,
    which imports gradio (seconds of start-up per restart). The API itself needs only FastAPI."""
    spec = importlib.util.spec_from_file_location("study_api", STUDY_API)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> None:
    study_dir, db, port = Path(argv[0]), Path(argv[1]), int(argv[2])
    app = FastAPI()
    app.include_router(load_study_api().study_routes(study_dir, RatingsStore(db), admin_token=None, env={}))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main(sys.argv[1:])
