"""Stage 1: scene boundaries from the book's dialogue transcript."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scene:
    """A run of consecutive pages that share time, place and cast. ``lines`` are text ids in reading order."""

    index: int
    pages: tuple[int, ...]
    lines: tuple[str, ...] = ()
    summary: str = ""


@dataclass(frozen=True)
class ScenePlan:
    scenes: tuple[Scene, ...]

    def scene_of(self, page: int) -> Scene:
        for scene in self.scenes:
            if page in scene.pages:
                return scene
        raise ValueError(f"page: {page} belongs to no scene")
