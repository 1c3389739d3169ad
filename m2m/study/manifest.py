"""Study manifests: which pages of which book, and which run folder plays each condition.

A manifest is a JSON file a person can read and edit. It names the three versions of every
stimulus by condition; the condition names never leave the server (see ``sessions.py``).
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

# The paper's three conditions (section IV.A), as run folders name them: M2M-Gen, the page-description
# baseline, and a random clip from a library of generated music (the lower bound).
from m2m.runs import CONDITIONS

if TYPE_CHECKING:
    from m2m.soundtrack import Soundtrack

# within-scene: the paper's first study; between-scenes: its follow-up across a scene boundary.
DESIGNS: tuple[str, ...] = ("within-scene", "between-scenes")
PAGES_PER_STIMULUS = 4
MANIFEST_FORMAT = 1

# Ids end up in URLs and in the browser, so they are kept to a plain, unambiguous alphabet.
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class Stimulus:
    """Consecutive pages of one book, heard in each condition.

    ``versions`` maps a condition to its run folder (``runs/<book>/<condition>/`` layout),
    relative to the manifest's folder so a study directory can be moved as a whole.
    """

    id: str
    book_id: str
    pages: tuple[int, ...]
    versions: Mapping[str, str]

    def __post_init__(self) -> None:
        _check_id("stimulus.id", self.id)
        # The stimulus id is shown to participants; a condition name inside it would unblind them.
        lowered = self.id.lower()
        for condition in CONDITIONS:
            if condition in lowered:
                raise ValueError(
                    f"stimulus.id {self.id!r} contains the condition name {condition!r}; "
                    "stimulus ids are shown to participants and must not reveal a condition"
                )
        if not isinstance(self.book_id, str) or not self.book_id.strip():
            raise ValueError(f"stimulus {self.id!r}: book_id must be a non-empty string, got {self.book_id!r}")
        pages = tuple(self.pages) if isinstance(self.pages, (list, tuple)) else self.pages
        if not isinstance(pages, tuple) or not pages:
            raise ValueError(f"stimulus {self.id!r}: pages must be a non-empty list of page indices, got {self.pages!r}")
        for page in pages:
            if not isinstance(page, int) or isinstance(page, bool) or page < 0:
                raise ValueError(f"stimulus {self.id!r}: pages must be non-negative integers, got {page!r}")
        # Music is heard while turning pages in order, so a stimulus is one unbroken run of pages.
        if any(b != a + 1 for a, b in zip(pages, pages[1:], strict=False)):
            raise ValueError(f"stimulus {self.id!r}: pages must be consecutive and ascending, got {list(pages)!r}")
        object.__setattr__(self, "pages", pages)
        if not isinstance(self.versions, Mapping):
            raise ValueError(f"stimulus {self.id!r}: versions must be a mapping condition -> folder, got {self.versions!r}")
        if set(self.versions) != set(CONDITIONS):
            raise ValueError(
                f"stimulus {self.id!r}: versions must name exactly the conditions {list(CONDITIONS)}, "
                f"got {sorted(map(str, self.versions))}"
            )
        for condition, folder in self.versions.items():
            if not isinstance(folder, str) or not folder.strip():
                raise ValueError(f"stimulus {self.id!r}: versions[{condition!r}] must be a folder path, got {folder!r}")
            # Absolute paths would tie the manifest to one machine.
            if Path(folder).is_absolute():
                raise ValueError(
                    f"stimulus {self.id!r}: versions[{condition!r}] must be relative to the manifest folder, got {folder!r}"
                )
        # Read-only view in canonical condition order, so equal manifests compare and serialise equal.
        ordered = {condition: self.versions[condition] for condition in CONDITIONS}
        object.__setattr__(self, "versions", MappingProxyType(ordered))


@dataclass(frozen=True)
class Study:
    """A listening study: every participant hears every stimulus in all three conditions."""

    id: str
    title: str
    design: str
    engine: str
    stimuli: tuple[Stimulus, ...]
    consent_text: str

    def __post_init__(self) -> None:
        _check_id("study.id", self.id)
        for name in ("title", "engine", "consent_text"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"study.{name} must be a non-empty string, got {value!r}")
        if self.design not in DESIGNS:
            raise ValueError(f"study.design must be one of {list(DESIGNS)}, got {self.design!r}")
        stimuli = tuple(self.stimuli) if isinstance(self.stimuli, (list, tuple)) else self.stimuli
        if not isinstance(stimuli, tuple) or not stimuli:
            raise ValueError(f"study.stimuli must be a non-empty list, got {self.stimuli!r}")
        seen: set[str] = set()
        for stimulus in stimuli:
            if not isinstance(stimulus, Stimulus):
                raise ValueError(f"study.stimuli must hold Stimulus objects, got {stimulus!r}")
            if stimulus.id in seen:
                raise ValueError(f"study.stimuli: duplicate stimulus id {stimulus.id!r}")
            seen.add(stimulus.id)
        object.__setattr__(self, "stimuli", stimuli)

    def stimulus(self, stimulus_id: str) -> Stimulus:
        """The stimulus with this id; ValueError naming the id when the study has none."""
        for stimulus in self.stimuli:
            if stimulus.id == stimulus_id:
                return stimulus
        raise ValueError(f"stimulus {stimulus_id!r} is not part of study {self.id!r}")

    def stimulus_index(self, stimulus_id: str) -> int:
        """Position of the stimulus in the manifest (the counterbalancing index, not the play order)."""
        for index, stimulus in enumerate(self.stimuli):
            if stimulus.id == stimulus_id:
                return index
        raise ValueError(f"stimulus {stimulus_id!r} is not part of study {self.id!r}")


def _check_id(name: str, value: object) -> None:
    if not isinstance(value, str) or not _ID_PATTERN.match(value):
        raise ValueError(
            f"{name} must be 1-128 characters of letters, digits, '_', '.', '-' (starting with a letter or digit), "
            f"got {value!r}"
        )


# --- JSON -----------------------------------------------------------------------------------


def study_to_dict(study: Study) -> dict[str, object]:
    """Plain JSON-ready dict; ``study_from_dict`` inverts it exactly."""
    return {
        "format": MANIFEST_FORMAT,
        "id": study.id,
        "title": study.title,
        "design": study.design,
        "engine": study.engine,
        "consent_text": study.consent_text,
        "stimuli": [
            {
                "id": s.id,
                "book_id": s.book_id,
                "pages": list(s.pages),
                "versions": dict(s.versions),
            }
            for s in study.stimuli
        ],
    }


def study_from_dict(data: Mapping[str, object]) -> Study:
    """Build a validated Study from parsed JSON; ValueError names the bad field and value."""
    if not isinstance(data, Mapping):
        raise ValueError(f"study manifest must be a JSON object, got {type(data).__name__}")
    fmt = data.get("format", MANIFEST_FORMAT)
    if fmt != MANIFEST_FORMAT:
        raise ValueError(f"study.format must be {MANIFEST_FORMAT}, got {fmt!r}")
    required = ("id", "title", "design", "engine", "consent_text", "stimuli")
    missing = [key for key in required if key not in data]
    if missing:
        raise ValueError(f"study manifest is missing field(s) {missing}")
    unknown = sorted(set(data) - set(required) - {"format"})
    if unknown:
        raise ValueError(f"study manifest has unknown field(s) {unknown}")
    raw_stimuli = data["stimuli"]
    if not isinstance(raw_stimuli, list):
        raise ValueError(f"study.stimuli must be a list, got {raw_stimuli!r}")
    return Study(
        id=data["id"],  # type: ignore[arg-type]
        title=data["title"],  # type: ignore[arg-type]
        design=data["design"],  # type: ignore[arg-type]
        engine=data["engine"],  # type: ignore[arg-type]
        consent_text=data["consent_text"],  # type: ignore[arg-type]
        stimuli=tuple(_stimulus_from_dict(i, raw) for i, raw in enumerate(raw_stimuli)),
    )


def _stimulus_from_dict(position: int, raw: object) -> Stimulus:
    if not isinstance(raw, Mapping):
        raise ValueError(f"study.stimuli[{position}] must be an object, got {raw!r}")
    required = ("id", "book_id", "pages", "versions")
    missing = [key for key in required if key not in raw]
    if missing:
        raise ValueError(f"study.stimuli[{position}] is missing field(s) {missing}")
    unknown = sorted(set(raw) - set(required))
    if unknown:
        raise ValueError(f"study.stimuli[{position}] has unknown field(s) {unknown}")
    pages = raw["pages"]
    if not isinstance(pages, list):
        raise ValueError(f"study.stimuli[{position}].pages must be a list, got {pages!r}")
    return Stimulus(id=raw["id"], book_id=raw["book_id"], pages=tuple(pages), versions=raw["versions"])


def load_study(path: str | os.PathLike[str]) -> Study:
    """Read and validate a manifest file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"study manifest {str(path)!r} cannot be read: {e}") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"study manifest {str(path)!r} is not valid JSON: {e}") from e
    return study_from_dict(data)


def save_study(study: Study, path: str | os.PathLike[str]) -> Path:
    """Write the manifest atomically (temp file + rename), so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(study_to_dict(study), ensure_ascii=False, indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def version_folder(study_dir: str | os.PathLike[str], stimulus: Stimulus, condition: str) -> Path:
    """Run folder of one condition of a stimulus, resolved against the manifest's folder."""
    if condition not in stimulus.versions:
        raise ValueError(f"condition must be one of {list(CONDITIONS)}, got {condition!r}")
    return Path(study_dir) / stimulus.versions[condition]


def audio_path(study_dir: str | os.PathLike[str], stimulus: Stimulus, condition: str, page: int) -> Path:
    """Audio clip of one page in one condition: ``<run folder>/audio/page-NNN.ogg`` (DESIGN.md)."""
    if page not in stimulus.pages:
        raise ValueError(f"page {page!r} is not part of stimulus {stimulus.id!r} (pages {list(stimulus.pages)})")
    return version_folder(study_dir, stimulus, condition) / "audio" / f"page-{page:03d}.ogg"


@dataclass(frozen=True)
class PageEntry:
    """How one version's music enters a page, from its cue sheet: the transition its director
    chose into a scene's first page (``kind``; "" for a plain crossfade), the old music's ``fade``,
    the ``silence`` after it and, for a stinger, its length and clip (None while not made: the
    player waits out its length); ``bar``: a bar of the page's clip, whose grid the next page keeps."""

    kind: str
    fade: float
    silence: float
    stinger_seconds: float = 0.0
    stinger: Path | None = None
    bar: float = 0.0  # seconds a bar of the page's clip lasts (SoundtrackCue.bar_seconds; 0: no bar grid)


def version_entries(study_dir: str | os.PathLike[str], stimulus: Stimulus, condition: str) -> dict[int, PageEntry]:
    """Page -> how the version's music enters it, for every page of ``stimulus`` its cue sheet lists
    (a plain crossfade too: its length is the cue sheet's, the scene crossfade where the version's
    pages lie in different scenes, as the whole-book file plays it). Read from the version's run folder's ``soundtrack.json``;
    empty when the folder has none or is not laid out as ``runs/<book>/<condition>/`` (a study put
    together by hand). A broken cue sheet is a ValueError naming the file."""
    folder = version_folder(study_dir, stimulus, condition)
    sheet = version_cue_sheet(study_dir, stimulus, condition)
    if sheet is None:
        return {}
    return {cue.page: PageEntry(cue.transition, cue.crossfade, cue.silence, cue.stinger_seconds,
                                folder / cue.stinger if cue.stinger else None, cue.bar_seconds())
            for cue in sheet.cues if cue.page in stimulus.pages}


def version_cue_sheet(study_dir: str | os.PathLike[str], stimulus: Stimulus, condition: str) -> Soundtrack | None:
    """The version's ``soundtrack.json``; None when the folder has none or is not laid out as
    ``runs/<book>/<condition>/``. A broken cue sheet is a ValueError naming the file."""
    from m2m.runs import RunFolder
    from m2m.soundtrack import Soundtrack  # the cue sheet's schema; imported here: it pulls in numpy

    folder = version_folder(study_dir, stimulus, condition)
    if folder.name not in CONDITIONS:
        return None
    record = RunFolder(folder.parent.parent, folder.parent.name, folder.name).read("soundtrack", Soundtrack)
    return record.data if record is not None else None


def missing_files(study: Study, study_dir: str | os.PathLike[str]) -> tuple[Path, ...]:
    """Every audio clip the manifest needs that is not on disk; empty when the study is ready to run."""
    return tuple(
        path
        for stimulus in study.stimuli
        for condition in CONDITIONS
        for page in stimulus.pages
        if not (path := audio_path(study_dir, stimulus, condition, page)).is_file()
    )


# --- choosing pages ----------------------------------------------------------------------


def pick_stimuli(
    scene_pages: Sequence[tuple[int, ...]],
    design: str,
    n: int,
    seed: int,
    length: int = PAGES_PER_STIMULUS,
) -> list[tuple[int, ...]]:
    """Choose ``n`` non-overlapping runs of ``length`` consecutive pages from one book.

    ``scene_pages`` lists each scene's page indices in reading order (the output of scene
    detection). within-scene: each run lies inside one scene, at most one run per scene, as in
    the paper's six scenes. between-scenes: each run covers the end of one scene and the start of
    the next (exactly two scenes), preferring the boundary in the middle so both contexts are heard.
    Deterministic for a given seed; the result is in reading order.
    """
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {list(DESIGNS)}, got {design!r}")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not isinstance(length, int) or isinstance(length, bool) or length < 2:
        raise ValueError(f"length must be an integer >= 2, got {length!r}")
    scenes = _check_scene_pages(scene_pages)
    rng = random.Random(seed)
    if design == "within-scene":
        groups = [_windows_inside(scene, length) for scene in scenes]
        what = f"span of {length} consecutive pages inside one scene"
    else:
        groups = [_windows_across(scenes, i, length) for i in range(len(scenes) - 1)]
        what = f"span of {length} consecutive pages across the boundary between two scenes"
    groups = [g for g in groups if g]
    if not groups:
        sizes = [len(scene) for scene in scenes]
        raise ValueError(f"the book has no {what} (scene sizes in pages: {sizes})")
    rng.shuffle(groups)
    chosen: list[tuple[int, ...]] = []
    used: set[int] = set()
    for windows in groups:
        free = [w for w in windows if used.isdisjoint(w)]
        if not free:
            continue
        window = rng.choice(free)
        chosen.append(window)
        used.update(window)
        if len(chosen) == n:
            return sorted(chosen)
    raise ValueError(f"asked for n={n} stimuli but the book has only {len(chosen)} non-overlapping {what}")


def _check_scene_pages(scene_pages: Sequence[tuple[int, ...]]) -> list[tuple[int, ...]]:
    if not isinstance(scene_pages, Sequence) or isinstance(scene_pages, (str, bytes)):
        raise ValueError(f"scene_pages must be a list of page tuples, got {scene_pages!r}")
    scenes: list[tuple[int, ...]] = []
    previous = -1
    for i, pages in enumerate(scene_pages):
        if not isinstance(pages, (tuple, list)) or not pages:
            raise ValueError(f"scene_pages[{i}] must be a non-empty tuple of page indices, got {pages!r}")
        for page in pages:
            if not isinstance(page, int) or isinstance(page, bool) or page < 0:
                raise ValueError(f"scene_pages[{i}] must hold non-negative integers, got {page!r}")
            # Scenes come from reading the book front to back: pages ascend and never repeat.
            if page <= previous:
                raise ValueError(f"scene_pages[{i}]: pages must ascend across scenes without repeats, got {page!r} after {previous!r}")
            previous = page
        scenes.append(tuple(pages))
    return scenes


def _consecutive(pages: Sequence[int]) -> bool:
    return all(b == a + 1 for a, b in zip(pages, pages[1:], strict=False))


def _windows_inside(scene: tuple[int, ...], length: int) -> list[tuple[int, ...]]:
    windows = (scene[i : i + length] for i in range(len(scene) - length + 1))
    return [w for w in windows if _consecutive(w)]


def _windows_across(scenes: list[tuple[int, ...]], boundary: int, length: int) -> list[tuple[int, ...]]:
    """Windows over scenes[boundary] + scenes[boundary + 1] that include pages of both, best-balanced first."""
    left, right = scenes[boundary], scenes[boundary + 1]
    candidates: list[tuple[int, tuple[int, ...]]] = []
    for k in range(1, length):  # k pages from the left scene, length - k from the right one
        if k > len(left) or length - k > len(right):
            continue
        window = left[len(left) - k :] + right[: length - k]
        if _consecutive(window):
            candidates.append((abs(2 * k - length), window))
    if not candidates:
        return []
    best = min(imbalance for imbalance, _ in candidates)
    return [window for imbalance, window in candidates if imbalance == best]
