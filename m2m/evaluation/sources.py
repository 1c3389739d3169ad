"""What ``m2m evaluate`` reads: run folders found from the paths it is given, each run's cue sheet,
the plan its music was asked to follow, the scenes it is judged against, and its audio as played.

A RUN is a run folder (``runs/<book>/<condition>/``, holding ``soundtrack.json``) or a book folder
(``runs/<book>/``: every condition it holds, in the paper's order).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from m2m.audio import read_audio
from m2m.conditions import condition_of
from m2m.cues import CaptionSheet
from m2m.music.render import stereo_at
from m2m.runs import CONDITIONS, Condition, RunFolder
from m2m.soundtrack import Join, Soundtrack, cue_join, mix_book

# The scenes a run is judged against are the m2m plan's when the book has one: the baseline's cue
# sheet gives every page a scene of its own, so judged by its own scenes it would have no
# "within-scene" pairs, and the random condition plays the m2m plan's scenes anyway.
REFERENCE_CONDITION: Condition = "m2m"


@dataclass(frozen=True)
class RunInput:
    """One run to evaluate, as it stands on disk.

    ``plan`` is the caption sheet the condition's music was asked to follow (the random condition
    plays the m2m plan's); ``scenes`` the reference scene of each cue, in cue order, and
    ``scene_source`` where they come from.
    """

    folder: RunFolder
    book_id: str
    soundtrack: Soundtrack
    plan: CaptionSheet | None
    scenes: tuple[int, ...]
    scene_source: str

    @property
    def condition(self) -> Condition:
        return self.folder.condition


def find_runs(paths: Iterable[Path]) -> list[RunInput]:
    """The runs the paths name, in the order given (a book folder's in the paper's condition order)."""
    runs: list[RunInput] = []
    for path in paths:
        path = Path(path)
        if (path / "soundtrack.json").is_file():
            runs.append(read_run(path))
            continue
        found = [path / c for c in CONDITIONS if (path / c / "soundtrack.json").is_file()]
        if not found:
            raise ValueError(f"{path}: neither a run folder (with soundtrack.json) nor a book folder holding "
                             f"one ({', '.join(CONDITIONS)}); run `m2m render` first")
        runs.extend(read_run(p) for p in found)
    if not runs:
        raise ValueError("no runs given")
    return runs


def read_run(path: Path) -> RunInput:
    """The run in ``runs/<book>/<condition>/``, with its plan and reference scenes."""
    path = path.resolve()
    condition, book_id, root = path.name, path.parent.name, path.parent.parent
    if condition not in CONDITIONS:
        raise ValueError(f"{path}: the folder's name should be its condition ({', '.join(CONDITIONS)})")
    spec = condition_of(condition)
    folder = spec.run_folder(root, book_id)
    record = folder.read("soundtrack", Soundtrack)
    if record is None or not record.data.cues:
        raise ValueError(f"{folder.file('soundtrack')}: no cue sheet with pages; run `m2m render` first")
    captions = spec.plan_folder(root, book_id).read("captions", CaptionSheet)
    scenes, source = reference_scenes(record.data, RunFolder(root, book_id, REFERENCE_CONDITION))
    return RunInput(folder, book_id, record.data, captions.data if captions else None, scenes, source)


def reference_scenes(soundtrack: Soundtrack, reference: RunFolder) -> tuple[tuple[int, ...], str]:
    """Each cue's scene in the book's m2m plan when it covers every page, else the cue sheet's own."""
    record = reference.read("captions", CaptionSheet)
    if record is not None:
        by_page = {c.page: c.scene for c in record.data.cues}
        if all(c.page in by_page for c in soundtrack.cues):
            return tuple(by_page[c.page] for c in soundtrack.cues), f"the m2m plan ({reference.file('captions')})"
    return tuple(c.scene for c in soundtrack.cues), "this run's cue sheet"


def clip_samples(run: RunInput) -> list[np.ndarray]:
    """Each page's clip as ``[2, samples]`` at the soundtrack's rate, in cue order (as the mix reads them)."""
    rate = run.soundtrack.settings.sample_rate
    clips = []
    for cue in run.soundtrack.cues:
        path = run.folder.path / cue.file
        if not path.is_file():
            raise ValueError(f"{path}: page {cue.page}'s clip is missing; run `m2m render` again")
        clips.append(stereo_at(read_audio(path), rate))
    return clips


def stinger_samples(run: RunInput) -> dict[int, np.ndarray]:
    """Cue index -> the stinger played into that page, ``[2, samples]`` at the soundtrack's rate."""
    rate = run.soundtrack.settings.sample_rate
    stingers = {}
    for k, cue in enumerate(run.soundtrack.cues):
        if cue.stinger:
            path = run.folder.path / cue.stinger
            if not path.is_file():
                raise ValueError(f"{path}: the stinger into page {cue.page} is missing; run `m2m render` again")
            stingers[k] = stereo_at(read_audio(path), rate)
    return stingers


def played_joins(run: RunInput) -> list[Join]:
    """The join into each page as the mix played it (a silence or a stinger chosen at a scene change
    included), from the cue sheet."""
    return [cue_join(cue.crossfade, cue.silence, cue.stinger_seconds if cue.stinger else 0.0)
            for cue in run.soundtrack.cues]


def played_book(run: RunInput, clips: Sequence[np.ndarray]) -> np.ndarray:
    """The whole book as ``audio/soundtrack.ogg`` plays it (before encoding): the same mix, from the
    cue sheet's clips, loop flags, bars, crossfades and pace, so a run made with ``--no-whole-file`` is
    judged the same way (a silence or a stinger chosen at a scene change included)."""
    return played_mix(run, clips)[0]


def played_mix(run: RunInput, clips: Sequence[np.ndarray]) -> tuple[np.ndarray, list[int]]:
    """``played_book``, and the sample of each clip its page entered at (on the page before's bar grid)."""
    settings, cues = run.soundtrack.settings, run.soundtrack.cues
    return mix_book([(c, cue.loop) for c, cue in zip(clips, cues, strict=True)], played_joins(run),
                    settings.pace_seconds, settings.sample_rate, stingers=stinger_samples(run),
                    bars=[cue.bar_seconds() for cue in cues])
