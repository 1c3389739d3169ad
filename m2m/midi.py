"""pretty_midi and pyfluidsynth, imported with pyfluidsynth's import-time print kept out of stdout.

pyfluidsynth prints where it found the library when the ``CI`` variable is set, and pretty_midi
imports pyfluidsynth on its own import. That print would land in the stdout of ``m2m`` commands and
of anything piping them, so every import of either goes through this module, which sends it to
the log instead.
"""

from __future__ import annotations

import io
import logging
import threading
from contextlib import redirect_stdout
from types import ModuleType

log = logging.getLogger(__name__)

# Swapping sys.stdout from two threads at once could leave it swapped; imports take this lock.
_IMPORT_LOCK = threading.Lock()


def _quiet_import_fluidsynth() -> tuple[ModuleType | None, BaseException | None]:
    printed = io.StringIO()
    try:
        with _IMPORT_LOCK, redirect_stdout(printed):
            import fluidsynth
    except (ImportError, OSError) as e:  # no pyfluidsynth, or no libfluidsynth on the machine
        return None, e
    finally:
        if printed.getvalue().strip():
            log.debug("pyfluidsynth: %s", printed.getvalue().strip())
    return fluidsynth, None


_FLUIDSYNTH, _FLUIDSYNTH_ERROR = _quiet_import_fluidsynth()

import pretty_midi  # noqa: E402  (after the quiet import above, which it would otherwise repeat aloud)


def import_fluidsynth() -> ModuleType:
    """The pyfluidsynth module, or a clear error naming what to install."""
    if _FLUIDSYNTH is None:
        raise RuntimeError("FluidSynth is unavailable: `pip install pyfluidsynth` and "
                           "`apt-get install libfluidsynth3` (packages.txt on a Space)") from _FLUIDSYNTH_ERROR
    return _FLUIDSYNTH


__all__ = ["import_fluidsynth", "pretty_midi"]
