"""``python -m m2m`` is the ``m2m`` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_python_dash_m_runs_the_command():
    done = subprocess.run([sys.executable, "-m", "m2m", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: m2m ") and "render" in done.stdout


def test_python_dash_m_reports_bad_input_as_the_command_does(tmp_path):
    done = subprocess.run([sys.executable, "-m", "m2m", "inspect", str(tmp_path / "missing")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "m2m inspect: error:" in done.stderr
