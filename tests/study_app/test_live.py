"""The API on a real uvicorn server on 127.0.0.1: many participants at once, and a crash mid-study."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from m2m.study import RatingsStore, load_study
from m2m.ui.study_api import API_PREFIX, study_routes
from tests.conftest import free_port

from .conftest import serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
SCREENING = {"manga_interest": 3, "music_interest": 4, "japanese": "native"}
PARTICIPANTS = 50


def scores_for(pid: str, stimulus: str, label: str, round_: int) -> tuple[int, int, int]:
    rng = random.Random(f"{pid}|{stimulus}|{label}|{round_}")
    return rng.randint(1, 5), rng.randint(1, 5), rng.randint(1, 5)


def participant_run(url: str, results: dict[str, dict], errors: list[str], barrier: threading.Barrier) -> None:
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            barrier.wait()  # everyone registers at the same moment
            pid = http.post(f"{API_PREFIX}/register", json={"consent": True, "screening": SCREENING}).json()["participant"]
            session = http.get(f"{API_PREFIX}/session/{pid}").json()
            first = session["stimuli"][0]["versions"][0]
            assert http.get(f"{API_PREFIX}/asset/{pid}/{first['audio'][0]}").status_code == 200
            final: dict[tuple[str, str], tuple[int, int, int]] = {}
            for stim in session["stimuli"]:
                for version in stim["versions"]:
                    key = (stim["stimulus"], version["label"])
                    rounds = 2 if version["label"] == "B" else 1  # B is resubmitted: the second answer wins
                    for round_ in range(rounds):
                        scores = scores_for(pid, *key, round_)
                        body = {"stimulus": key[0], "label": key[1], "relevancy": scores[0],
                                "quality": scores[1], "consistency": scores[2]}
                        response = http.post(f"{API_PREFIX}/rate/{pid}", json=body)
                        assert response.status_code == 200, response.text
                        final[key] = scores
            results[pid] = final
    except Exception as e:  # noqa: BLE001 - collected and reported by the test, not swallowed
        errors.append(repr(e))


def test_fifty_participants_at_once_every_rating_stored_exactly_once(study_dir: Path, tmp_path: Path) -> None:
    study = load_study(study_dir / "study.json")
    store = RatingsStore(tmp_path / "study.sqlite3")
    app = FastAPI()
    app.include_router(study_routes(study_dir, store, admin_token=None, env={}))
    server, thread = serve_in_thread(app, free_port())
    url = f"http://127.0.0.1:{server.config.port}"
    try:
        results: dict[str, dict] = {}
        errors: list[str] = []
        barrier = threading.Barrier(PARTICIPANTS)
        threads = [threading.Thread(target=participant_run, args=(url, results, errors, barrier))
                   for _ in range(PARTICIPANTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        assert len(results) == PARTICIPANTS
        rows = store.ratings(study.id)
        keys = Counter((r.participant, r.stimulus, r.label) for r in rows)
        assert len(rows) == PARTICIPANTS * 6 and set(keys.values()) == {1}
        for row in rows:
            assert (row.relevancy, row.quality, row.consistency) == results[row.participant][(row.stimulus, row.label)]
        # Registration numbers are the Latin-square rows: all different, 0..49.
        assert sorted(p.number for p in store.participants(study.id)) == list(range(PARTICIPANTS))
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()


def start_server(study_dir: Path, db: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "tests.study_app.serve_study", str(study_dir), str(db), str(port)],
                               cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{API_PREFIX}/info", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start")


def test_sigkill_mid_study_loses_no_acknowledged_rating_and_participants_resume(study_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "study.sqlite3"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_server(study_dir, db, port)
    acknowledged: dict[tuple[str, str, str], tuple[int, int, int]] = {}
    lock = threading.Lock()
    stop = threading.Event()
    pids: list[str] = []
    sessions: dict[str, dict] = {}
    try:
        with httpx.Client(base_url=url, timeout=10) as http:
            for _ in range(6):
                pid = http.post(f"{API_PREFIX}/register", json={"consent": True, "screening": SCREENING}).json()["participant"]
                pids.append(pid)
                sessions[pid] = http.get(f"{API_PREFIX}/session/{pid}").json()

        def submitter(pid: str) -> None:
            # Each version once: an acknowledged key has exactly one possible value.
            with httpx.Client(base_url=url, timeout=10) as http:
                for stim in sessions[pid]["stimuli"]:
                    for version in stim["versions"]:
                        if stop.is_set():
                            return
                        scores = scores_for(pid, stim["stimulus"], version["label"], 0)
                        body = {"stimulus": stim["stimulus"], "label": version["label"], "relevancy": scores[0],
                                "quality": scores[1], "consistency": scores[2]}
                        try:
                            response = http.post(f"{API_PREFIX}/rate/{pid}", json=body)
                        except httpx.HTTPError:
                            return  # the server died under this request: not acknowledged
                        if response.status_code == 200:
                            with lock:
                                acknowledged[(pid, stim["stimulus"], version["label"])] = scores
                        time.sleep(0.01)

        threads = [threading.Thread(target=submitter, args=(pid,)) for pid in pids]
        for t in threads:
            t.start()
        # Kill once some but not all ratings are in: the study is mid-way.
        deadline = time.monotonic() + 30
        while len(acknowledged) < 8 and time.monotonic() < deadline:
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        stop.set()
        for t in threads:
            t.join(15)
        assert 8 <= len(acknowledged) < len(pids) * 6
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)

    process = start_server(study_dir, db, port)
    try:
        with httpx.Client(base_url=url, timeout=10) as http:
            for pid in pids:
                # Same session after the restart (tokens are HMACs under the stored secret).
                assert http.get(f"{API_PREFIX}/session/{pid}").json() == sessions[pid]
                state = http.get(f"{API_PREFIX}/state/{pid}").json()
                stored = {(pid, r["stimulus"], r["label"]): (r["relevancy"], r["quality"], r["consistency"])
                          for r in state["rated"]}
                mine = {k: v for k, v in acknowledged.items() if k[0] == pid}
                assert mine.items() <= stored.items(), "an acknowledged rating was lost"
            # A participant resumes: the first version not yet rated is still open, and rating it works.
            pid = pids[0]
            rated = {(r["stimulus"], r["label"]) for r in http.get(f"{API_PREFIX}/state/{pid}").json()["rated"]}
            todo = [(s["stimulus"], v["label"]) for s in sessions[pid]["stimuli"] for v in s["versions"]
                    if (s["stimulus"], v["label"]) not in rated]
            for stimulus, label in todo:
                body = {"stimulus": stimulus, "label": label, "relevancy": 3, "quality": 3, "consistency": 3}
                assert http.post(f"{API_PREFIX}/rate/{pid}", json=body).status_code == 200
            assert http.get(f"{API_PREFIX}/state/{pid}").json()["complete"] is True
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    with RatingsStore(db) as store:
        keys = Counter((r.participant, r.stimulus, r.label) for r in store.ratings())
        assert set(keys.values()) == {1}


pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
