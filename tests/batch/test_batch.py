"""`m2m batch` on a local Ray with 2 CPUs: a broken book fails alone, a killed worker's page is
retried, a killed driver resumes without redoing a landed page, and a second run does no work."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile

from m2m.batch.catalogue import catalogue
from m2m.batch.driver import BatchOptions, run_batch, task_resources
from m2m.pipeline import Settings
from tests.batch.conftest import cue_sheet, write_catalogue
from tests.conftest import free_port

pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[2]


def settings(tmp_path: Path) -> Settings:
    return Settings(runs_root=tmp_path / "runs", seconds_per_page=4.0)


def clip_times(run: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted((run / "audio").glob("page-*.ogg"))}


def test_three_books_one_broken_then_a_second_run_does_no_work(tmp_path):
    root = write_catalogue(tmp_path / "shelf", pages=3)
    books = catalogue(root)
    seen: list[tuple[str, int, int]] = []
    report = run_batch(books, settings(tmp_path), BatchOptions(workers=2), lambda *a: seen.append(a))

    by_name = {b.name: b for b in report.books}
    assert (report.done, report.failed) == (2, 1)
    assert by_name["gamma"].status == "failed" and "transcript.json" in by_name["gamma"].error
    for name in ("alpha", "beta.cbz"):
        book = by_name[name]
        assert (book.status, book.pages, book.rendered, book.reused) == ("done", 3, 3, 0)
        sheet = cue_sheet(Path(book.run))
        assert sheet["complete"] and [c["page"] for c in sheet["cues"]] == [0, 1, 2]
        assert Path(book.soundtrack).is_file() and book.audio_seconds > 3 * 4.0
    assert ("books", 3, 3) in seen and ("pages", 6, 6) in seen  # the bars reached the end
    saved = json.loads(Path(report.path).read_text(encoding="utf-8"))
    assert saved["totals"]["done"] == 2 and saved["totals"]["failed"] == 1
    assert saved["totals"]["pages_rendered"] == 6 and saved["totals"]["real_time_factor"] > 0
    assert [b["status"] for b in saved["books"]] == ["done", "done", "failed"]

    before = {name: clip_times(Path(by_name[name].run)) for name in ("alpha", "beta.cbz")}
    again = run_batch(books, settings(tmp_path), BatchOptions(workers=2))
    for book in again.books[:2]:
        assert (book.status, book.rendered, book.reused, book.planned) == ("done", 0, 3, ())
        assert clip_times(Path(book.run)) == before[book.name]
    assert again.books[2].status == "failed" and again.pages_rendered == 0 and again.audio_seconds == 0


def render_workers() -> list[int]:
    """The Ray workers busy with a page right now (Ray titles a worker by the task it runs)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(b"ray::render_clip"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def test_a_worker_killed_mid_batch_still_gives_every_page(tmp_path):
    root = write_catalogue(tmp_path / "shelf", pages=6, broken=False)
    killed: list[int] = []
    stop = threading.Event()

    def kill_one_worker() -> None:
        while not stop.is_set() and not killed:
            busy = render_workers()
            if busy:
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_worker, daemon=True)
    killer.start()
    try:
        report = run_batch(catalogue(root), settings(tmp_path), BatchOptions(workers=2, max_retries=3))
    finally:
        stop.set()
        killer.join()
    assert killed, "no worker was seen rendering"
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)
    assert [b.status for b in report.books] == ["done", "done"]
    for book in report.books:
        assert book.rendered == 6 and len(cue_sheet(Path(book.run))["cues"]) == 6
    assert killed[0] not in report.worker_pids or len(report.worker_pids) > 2  # a new worker took over


def wait_for_landed_pages(out: Path, name: str, count: int, driver: subprocess.Popen) -> Path:
    """The cue sheet of book ``name`` (its id is the name and a hash) once ``count`` pages are on it."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None:
        for sheet in out.glob(f"{name}-*/m2m/soundtrack.json"):
            try:
                if len(json.loads(sheet.read_text(encoding="utf-8"))["data"]["cues"]) >= count:
                    return sheet
            except (OSError, ValueError):
                pass  # between two writes
        time.sleep(0.05)
    raise AssertionError(f"{count} pages of {name} never landed (driver exit code {driver.poll()})")


def test_a_killed_driver_resumes_with_the_same_command_and_redoes_no_landed_page(tmp_path):
    root = write_catalogue(tmp_path / "shelf", pages=8, broken=False)
    out = tmp_path / "runs"
    command = [sys.executable, "-m", "m2m", "batch", str(root), "--out", str(out), "--workers", "2", "--pace", "4"]
    first = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        sheet = wait_for_landed_pages(out, "alpha", 3, first)
        os.kill(first.pid, signal.SIGKILL)  # the driver alone, as an out-of-memory killer would
        first.wait(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)  # what Ray left of that run
    landed = {c["page"]: c for c in cue_sheet(sheet.parent)["cues"]}
    assert len(landed) >= 3 and not cue_sheet(sheet.parent)["complete"]
    before = clip_times(sheet.parent)

    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    reports = sorted((out / "batches").glob("batch-*.json"))  # the killed run wrote none
    assert len(reports) == 1
    report = json.loads(reports[0].read_text(encoding="utf-8"))
    alpha = next(b for b in report["books"] if b["name"] == "alpha")
    assert alpha["status"] == "done" and alpha["reused"] >= len(landed)
    assert alpha["rendered"] + alpha["reused"] == 8
    after = clip_times(sheet.parent)
    assert len(after) == 8 and all(after[name] == t for name, t in before.items() if int(name[5:8]) in landed)
    assert cue_sheet(sheet.parent)["complete"] and "done" in done.stdout


def test_random_condition_library_is_made_by_the_workers_and_is_the_one_m2m_render_makes(tmp_path, monkeypatch):
    """The random condition's library: its clips rendered as Ray tasks (not on the driver), landed
    into the same library a plain `m2m render --condition random` builds, and every page drawn from it."""
    from m2m.music import library_builder
    from m2m.music.library import INDEX
    from m2m.pipeline import ensure_library, library_dir

    here_clips = library_builder.make_clips_here

    def not_on_the_driver(*args):
        raise AssertionError("the batch rendered library clips on the driver")

    monkeypatch.setattr(library_builder, "make_clips_here", not_on_the_driver)  # Ray's workers are other processes
    root = write_catalogue(tmp_path / "shelf", pages=3, broken=False)
    chosen = replace(settings(tmp_path), condition="random")
    seen: list[tuple[str, int, int]] = []
    report = run_batch(catalogue(root), chosen, BatchOptions(workers=2, library_clips=4), lambda *a: seen.append(a))

    assert (report.done, report.failed, report.pages_rendered) == (2, 0, 6)
    assert ("library", 4, 4) in seen
    folder = library_dir(chosen)
    built = json.loads((folder / INDEX).read_text(encoding="utf-8"))
    assert not folder.with_name(folder.name + ".building").exists()
    for book in report.books:
        for cue in cue_sheet(Path(book.run))["cues"]:
            assert cue["details"]["clip"] in {c["file"] for c in built["clips"]}

    monkeypatch.setattr(library_builder, "make_clips_here", here_clips)
    here = replace(chosen, runs_root=tmp_path / "here")
    assert ensure_library(here, 4)  # the same plans and seeds, rendered in this process
    local = library_dir(here)
    assert json.loads((local / INDEX).read_text(encoding="utf-8")) == built
    for clip in built["clips"]:  # the same audio (an Ogg stream's serial number differs per encode)
        np.testing.assert_array_equal(soundfile.read(local / clip["file"])[0], soundfile.read(folder / clip["file"])[0])


def test_a_books_stingers_are_made_by_the_workers_and_a_rerun_keeps_them(tmp_path, monkeypatch):
    """The example book's offline plan closes scene 0 on a stinger: the batch renders it as a Ray
    task (never on the driver), lists it in the cue sheet, mixes it into the whole-book file, and a
    second run keeps it."""
    from m2m import soundtrack

    def not_on_the_driver(*args, **kwargs):
        raise AssertionError("the batch rendered a stinger on the driver")

    monkeypatch.setattr(soundtrack, "render_stinger", not_on_the_driver)  # Ray's workers are other processes
    books = catalogue(ROOT / "examples" / "manga109")
    (book,) = run_batch(books, settings(tmp_path), BatchOptions(workers=2)).books
    assert book.status == "done", book.error
    run = Path(book.run)
    sheet = cue_sheet(run)
    assert sheet["complete"] and sheet["file"] and len(sheet["stingers"]) >= 1
    for stinger in sheet["stingers"]:
        assert (run / stinger["file"]).is_file() and stinger["seconds"] > 0.5
    entered = [c for c in sheet["cues"] if c["stinger"]]
    assert {c["stinger"] for c in entered} == {s["file"] for s in sheet["stingers"]}
    made = {s["file"]: (run / s["file"]).stat().st_mtime_ns for s in sheet["stingers"]}

    (again,) = run_batch(books, settings(tmp_path), BatchOptions(workers=2)).books
    assert (again.status, again.rendered) == ("done", 0)
    assert {f: (run / f).stat().st_mtime_ns for f in made} == made


def test_page_tasks_ask_for_what_their_engine_needs():
    assert task_resources("composer", gpus=4) == {"num_cpus": 1}
    assert task_resources("musicgen-small", gpus=1) == {"num_gpus": 1, "num_cpus": 1}
    assert task_resources("musicgen-small", gpus=0) == {"num_cpus": 2}  # a CPU cluster still runs it


def test_musicgen_pages_continue_from_the_page_before_across_workers(tmp_path, monkeypatch):
    """A tiny random MusicGen in a hub cache, loaded by the workers' real loader: each page of a
    scene is a task that starts once the page before has landed, and is prompted with its audio."""
    from tests.batch.conftest import write_book, write_tiny_musicgen_cache

    monkeypatch.setenv("HF_HUB_CACHE", str(write_tiny_musicgen_cache(tmp_path / "hub")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the workers inherit both: nothing is downloaded
    root = tmp_path / "shelf"
    write_book(root / "one", pages=3)
    chosen = replace(settings(tmp_path), engine="musicgen-small", device="cpu")
    report = run_batch(catalogue(root), chosen, BatchOptions(workers=2))
    book = report.books[0]
    assert book.status == "done", book.error
    cues = cue_sheet(Path(book.run))["cues"]
    assert len(cues) == 3 and all(c["engine"] == "musicgen-small" for c in cues)
    for before, cue in zip(cues, cues[1:], strict=False):
        if cue["scene"] == before["scene"]:
            assert cue["details"]["continues_from"] == before["page"] and cue["details"]["prompt_seconds"] > 0
        else:
            assert cue["details"]["continues_from"] is None
    assert any(c["details"]["continues_from"] is not None for c in cues), "no page continued"


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 90.0) -> None:
    """Until the head's GCS accepts connections on ``port`` (the head exiting first fails the test)."""
    import socket

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()[-2000:] if process.stdout else "ray start exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the Ray head did not listen on port {port} within {seconds:g} s")


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to ``process``'s group (``ray start --block`` stops what it started), SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            if sig == signal.SIGTERM:
                os.killpg(process.pid, signal.SIGKILL)  # what the head left behind in its group
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def test_joins_a_cluster_started_with_ray_start(tmp_path):
    """The cluster recipe on one machine: `ray start --head`, then `m2m batch --address`."""
    ray_cli = str(Path(sys.executable).with_name("ray"))
    port = str(free_port())
    # --block in a process group of its own, stopped by that group: `ray stop --force` would stop
    # every Ray on the machine, a developer's own batch or a parallel test run's among them
    head = subprocess.Popen([ray_cli, "start", "--head", "--block", "--port", port, "--num-cpus", "2",
                             "--include-dashboard=false", "--disable-usage-stats"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for_port(int(port), head)
        root = write_catalogue(tmp_path / "shelf", pages=2, broken=False)
        done = subprocess.run([sys.executable, "-m", "m2m", "batch", str(root), "--address", f"127.0.0.1:{port}",
                               "--out", str(tmp_path / "runs"), "--pace", "4"],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
    finally:
        stop_group(head)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(next((tmp_path / "runs" / "batches").glob("batch-*.json")).read_text(encoding="utf-8"))
    assert report["totals"]["done"] == 2 and report["totals"]["pages_rendered"] == 4
    assert report["ray_address"].endswith(f":{port}") and report["cluster_cpus"] == 2.0
