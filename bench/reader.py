"""Reader benchmark in a real browser (Debian's Chromium): prints figures, asserts nothing.

    python bench/reader.py                   # the bundled example, the real pipeline
    python bench/reader.py --pipeline chord  # the pipeline with tests/ui/chord_engine.py's instant clips

Figures:
  open (cold)      navigation -> reader shown; start gesture -> first page audible (target < 1.5 s)
  turn latency     input event -> crossfade scheduled, median and worst (target < 50 ms)
  prefetch hits    turning a page every --every seconds through the whole book, the share of turns whose
                   clip was decoded before the turn (target 100 % with the composer): from a cold start
                   (right after the first page sounds, while the rest is being composed) and warm
  server memory    RSS of the server process with --readers readers open at once

The server runs as a subprocess (``bench/reader.py serve``) on a fresh runs folder, so "cold" is cold.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
STATE = "window.m2mReader.state()"


def serve(port: int, pipeline: str) -> None:
    """The app on 127.0.0.1:port with the chosen pipeline (run in the subprocess)."""
    sys.path.insert(0, str(ROOT))
    from m2m.ui import AppConfig, build_app, launch_kwargs
    if pipeline == "chord":
        from tests.ui.chord_engine import chord_service
        service = chord_service()
    else:
        from m2m.ui.service import default_service
        service = default_service()
    config = AppConfig.from_env()
    kwargs = launch_kwargs(config) | {"server_port": port, "server_name": "127.0.0.1", "quiet": True}
    build_app(config, service).queue(default_concurrency_limit=2).launch(**kwargs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(pipeline: str, runs: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = os.environ | {"M2M_RUNS": str(runs), "PYTHONPATH": str(ROOT)}
    log = (runs.parent / "server.log").open("wb")  # a file, not a pipe: a full pipe would stall the server
    proc = subprocess.Popen([sys.executable, __file__, "serve", "--port", str(port), "--pipeline", pipeline],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(120):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"server exited: {(runs.parent / 'server.log').read_text()[-2000:]}") from None
            time.sleep(0.5)
    raise SystemExit("server did not start in 60 s")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_page(browser, url: str):
    context = browser.new_context(viewport={"width": 1366, "height": 800})
    page = context.new_page()
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_selector(".m2m-start-btn", state="visible", timeout=60_000)
    page.wait_for_function("window.m2mReader && window.m2mReader.state().pages > 0", timeout=60_000)
    return context, page, time.perf_counter() - t0


def bench_open(browser, url: str, every: float) -> dict[str, float]:
    """Cold: open, press start at once, and once page 1 sounds read on, a turn every ``every`` s, while
    the server is still composing the rest of the book."""
    context, page, opened = open_page(browser, url)
    page.click(".m2m-start-btn")
    page.wait_for_function("window.m2mReader.state().firstAudibleAt !== null", timeout=120_000)
    s = page.evaluate(STATE)
    first = {"open_s": opened, "first_audible_s": (s["firstAudibleAt"] - s["startGestureAt"]) / 1000}
    cold = read_through(page, every)
    context.close()
    return first | {f"cold_{k}": v for k, v in cold.items()}


def bench_read_through(browser, url: str, every: float) -> dict[str, float]:
    """Warm: every clip composed before the first turn."""
    context, page, _ = open_page(browser, url)
    page.wait_for_function("(() => { const s = window.m2mReader.state(); return s.status && s.status.ready === "
                           "s.status.total; })()", timeout=300_000)
    page.click(".m2m-start-btn")
    page.wait_for_function("window.m2mReader.state().playingPage === 0", timeout=30_000)
    figures = read_through(page, every)
    context.close()
    return figures


def read_through(page, every: float) -> dict[str, float]:
    pages = page.evaluate(STATE)["pages"]
    for _ in range(pages - 1):
        time.sleep(every)
        page.keyboard.press("ArrowLeft" if page.evaluate(STATE)["direction"] == "rtl" else "ArrowRight")
    time.sleep(0.5)
    s = page.evaluate(STATE)
    turns = [t for t in s["turns"] if t["how"] == "key"]
    fades = {f["turnAt"]: f for f in s["fades"] if f["reason"] == "turn"}
    latencies = [fades[t["at"]]["at"] - t["at"] for t in turns if t["at"] in fades]
    hits = sum(1 for t in turns if t["at"] in fades and fades[t["at"]]["hadBuffer"])
    return {"turns": len(turns), "latency_median_ms": statistics.median(latencies),
            "latency_worst_ms": max(latencies), "prefetch_hit_rate": hits / max(1, len(turns)),
            "reached_page": s["page"] + 1, "pages": pages}


def bench_memory(browser, url: str, pid: int, readers: int) -> dict[str, float]:
    idle = rss_mb(pid)
    contexts = []
    for _ in range(readers):
        context, page, _ = open_page(browser, url)
        contexts.append((context, page))
    for _, page in contexts:
        page.click(".m2m-start-btn")
    # Each reader turns a few pages so their sessions all ask for work.
    for i, (_, page) in enumerate(contexts):
        for _ in range(i % 4):
            page.keyboard.press("ArrowLeft")
    time.sleep(8)
    peak = rss_mb(pid)
    for context, _ in contexts:
        context.close()
    return {"rss_idle_mb": idle, f"rss_{readers}_readers_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="bench", choices=["bench", "serve"])
    parser.add_argument("--pipeline", default="real", choices=["real", "chord"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--every", type=float, default=3.0, help="seconds between turns in the read-through")
    parser.add_argument("--readers", type=int, default=10)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.port, args.pipeline)
        return
    from playwright.sync_api import sync_playwright
    with tempfile.TemporaryDirectory(prefix="m2m-bench-") as tmp, sync_playwright() as p:
        proc, url = start_server(args.pipeline, Path(tmp) / "runs")
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            figures: dict[str, float] = {}
            figures |= bench_open(browser, url, args.every)
            figures |= bench_read_through(browser, url, args.every)
            figures |= bench_memory(browser, url, proc.pid, args.readers)
        finally:
            browser.close()
            proc.terminate()
            proc.wait(timeout=20)
    print(f"pipeline: {args.pipeline}")
    print(f"open (cold): reader shown after {figures['open_s']:.2f} s; first page audible "
          f"{figures['first_audible_s']:.2f} s after the start gesture (target < 1.5 s)")
    print(f"turn -> crossfade: median {figures['latency_median_ms']:.1f} ms, worst {figures['latency_worst_ms']:.1f} ms "
          f"over {figures['turns']} turns (target < 50 ms)")
    print(f"prefetch hit rate turning every {args.every:g} s from a cold start (composing while reading): "
          f"{100 * figures['cold_prefetch_hit_rate']:.0f}% (reached page {figures['cold_reached_page']} of "
          f"{figures['cold_pages']}); turn -> crossfade median {figures['cold_latency_median_ms']:.1f} ms")
    print(f"prefetch hit rate turning every {args.every:g} s, all clips composed: {100 * figures['prefetch_hit_rate']:.0f}% "
          f"(reached page {figures['reached_page']} of {figures['pages']})")
    print(f"server RSS: {figures['rss_idle_mb']:.0f} MB idle after the runs above, "
          f"{figures[f'rss_{args.readers}_readers_mb']:.0f} MB with {args.readers} readers at once")


if __name__ == "__main__":
    main()
