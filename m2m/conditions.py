"""The paper's three conditions as objects: which plan stages each runs, where its run lives, which
engine makes its music, and what a reader may edit in it.

The pipeline, the reader and the commands ask the condition instead of testing its name, so a fourth
condition is one more entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from m2m.runs import CONDITIONS, Condition, RunFolder


@dataclass(frozen=True)
class ConditionSpec:
    """One listening condition.

    ``stages`` are the plan stages (1-4) it computes itself, in order; ``plan_from`` names the
    condition whose plan it plays instead of a plan of its own; ``engine`` fixes the music engine
    (None: the reader's choice); ``editable`` says whether a person's caption or directive changes
    its music.
    """

    name: Condition
    label: str
    stages: tuple[str, ...]
    plan_from: Condition | None = None
    engine: str | None = None
    editable: bool = True

    def run_folder(self, runs_root: Path, book_id: str) -> RunFolder:
        """Where this condition's files for a book live: ``<runs_root>/<book-id>/<condition>/``."""
        return RunFolder(runs_root, book_id, self.name)

    def plan_folder(self, runs_root: Path, book_id: str) -> RunFolder:
        """Where the plan it plays (scenes, emotions, captions) is written."""
        return RunFolder(runs_root, book_id, self.plan_from or self.name)

    def engine_for(self, chosen: str) -> str:
        return self.engine or chosen

    @property
    def uses_library(self) -> bool:
        """Its music is drawn from a clip library, which must exist before it renders."""
        return self.engine == "library"


M2M = ConditionSpec("m2m", "M2M-Gen (the paper's method)",
                    ("scenes", "emotions", "directives", "captions", "transitions"))
# The paper's baseline: page image + dialogue -> description -> caption, page by page.
BASELINE = ConditionSpec("baseline", "Baseline (page descriptions)", ("descriptions", "captions"))
# The paper's lower bound: the m2m plan's pages and scenes, a seeded random library clip per page
# (the library engine ignores the captions, so editing them changes nothing).
RANDOM = ConditionSpec("random", "Random clips (lower bound)", (), plan_from="m2m", engine="library",
                       editable=False)

SPECS: dict[Condition, ConditionSpec] = {spec.name: spec for spec in (M2M, BASELINE, RANDOM)}
assert tuple(SPECS) == CONDITIONS, "every condition runs.py names has a spec, in the same order"


def condition_of(name: str) -> ConditionSpec:
    """The condition called ``name``; an unknown name lists the valid ones."""
    spec = SPECS.get(name)  # type: ignore[call-overload]
    if spec is None:
        raise ValueError(f"condition: {name!r} is not one of {', '.join(CONDITIONS)}")
    return spec
