"""The ``library`` engine (the paper's random condition) and building a library of clips.

A library is a folder of clips made by an engine from varied random plans, indexed by
``library.json``. The engine picks a clip per page at random, seeded by (book seed, page), so a run
is reproducible while pages get unrelated music: the lower bound of the listening study.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from m2m.cues import Cue, Plan
from m2m.jsonio import from_jsonable, to_jsonable, write_json_atomic
from m2m.music.base import (
    DEFAULT_SAMPLE_RATE,
    Audio,
    EngineInfo,
    Rendered,
    RenderOptions,
    load_table,
    stable_seed,
)

INDEX = "library.json"
_INSTRUMENT_POOL = (
    "acoustic grand piano", "electric piano 1", "string ensemble 1", "flute", "cello", "violin", "french horn",
    "acoustic guitar (nylon)", "orchestral harp", "celesta", "pad 2 (warm)", "clarinet", "marimba", "oboe",
    "electric guitar (clean)", "choir aahs", "trumpet", "koto", "vibraphone", "brass section",
)
_KEYS = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


@dataclass(frozen=True)
class LibraryClip:
    """One clip of a library: ``file`` relative to the library folder; seconds; Hz."""

    file: str
    seconds: float
    sample_rate: int
    loop: bool
    caption: str
    plan: Plan


@dataclass(frozen=True)
class Library:
    engine: str
    clips: tuple[LibraryClip, ...]


def read_library(folder: Path) -> Library:
    path = Path(folder) / INDEX
    if not path.is_file():
        raise ValueError(f"library_dir: {folder} has no {INDEX}; make one with "
                         "`m2m library build --engine composer --out DIR --count N`")
    import json

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from e
    library = from_jsonable(Library, raw, source=str(path))
    if not library.clips:
        raise ValueError(f"{path}: the library has no clips")
    return library


def random_plan(rng: np.random.Generator) -> tuple[str, Plan]:
    """A varied random plan and a caption saying the same."""
    families = sorted(load_table("moods.json")["families"])
    mood = families[int(rng.integers(len(families)))]
    energy = round(float(rng.uniform(0.1, 0.95)), 2)
    tempo = int(rng.integers(60, 150))
    mode = "minor" if rng.random() < 0.5 else "major"
    key = _KEYS[int(rng.integers(len(_KEYS)))]
    count = int(rng.integers(1, 4))
    instruments = tuple(str(x) for x in rng.choice(_INSTRUMENT_POOL, size=count, replace=False))
    if energy > 0.6 and rng.random() < 0.7:
        instruments += ("drums",)
    caption = (f"{mood} background music in {key} {mode}, {tempo} BPM, "
               f"{', '.join(instruments)}, energy {energy:.1f}")
    return caption, Plan(tempo, key, mode, instruments, energy, mood)


def build_library(engine, out: Path, count: int, options: RenderOptions,
                  progress: Callable[[int, int], None] | None = None) -> Library:
    """Render ``count`` clips from varied random plans into ``out`` and index them."""
    from m2m.soundtrack import SoundtrackSettings, render_page

    if not 1 <= count <= 10000:
        raise ValueError(f"count: {count} is outside 1..10000")
    out = Path(out)
    rng = np.random.default_rng(stable_seed("library", options.seed))
    settings = SoundtrackSettings(engine=engine.name, sample_rate=options.sample_rate or DEFAULT_SAMPLE_RATE)
    # Plans are drawn in order first, so the library is the same whatever order the clips finish in.
    cues = [Cue.planned(page=i + 1, scene=i, caption=caption, plan=plan)
            for i, (caption, plan) in enumerate(random_plan(rng) for _ in range(count))]

    def render(cue: Cue) -> LibraryClip:
        clip = render_page(cue, engine, replace(options, seed=options.seed + cue.page - 1),
                           out / f"clip-{cue.page:04d}.ogg", settings)
        return LibraryClip(Path(clip.path).name, clip.seconds, clip.sample_rate, clip.loop, cue.caption, cue.plan)

    done: dict[int, LibraryClip] = {}
    # Two workers for two cores: synthesis and Vorbis encoding run outside the GIL.
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {pool.submit(render, cue): cue.page for cue in cues}
        for future in as_completed(futures):
            done[futures[future]] = future.result()
            library = Library(engine.name, tuple(done[p] for p in sorted(done)))
            write_json_atomic(out / INDEX, to_jsonable(library))  # usable even if the build stops midway
            if progress is not None:
                progress(len(done), count)
    library = Library(engine.name, tuple(done[p] for p in sorted(done)))
    # clips of an earlier, larger build into the same folder are not in this index: remove them
    kept = {clip.file for clip in library.clips}
    for stale in out.glob("clip-*.ogg"):
        if stale.name not in kept:
            stale.unlink(missing_ok=True)
    return library


class LibraryEngine:
    """The ``library`` engine: a seeded random clip per page from ``RenderOptions.library_dir``."""

    name = "library"
    continues = False
    version = "library-1"

    def render(self, cue: Cue, options: RenderOptions) -> Rendered:
        from m2m.soundtrack import read_audio

        if options.library_dir is None:
            raise ValueError("library_dir: the library engine needs a clip library folder "
                             "(`m2m library build --engine composer --out DIR --count N`)")
        library = read_library(options.library_dir)
        rng = np.random.default_rng(stable_seed(options.seed, "library", cue.page))
        pick = library.clips[int(rng.integers(len(library.clips)))]
        audio = read_audio(Path(options.library_dir) / pick.file)
        info = EngineInfo(engine=self.name, model=f"{library.engine} library {options.library_dir}",
                          details={"clip": pick.file, "clip_caption": pick.caption})
        if options.progress is not None:
            options.progress(1, 1)
        return Rendered(cue.page, Audio(audio.samples, audio.sample_rate), pick.loop, info)

    def render_many(self, cues: Sequence[Cue], options: RenderOptions, *,
                    after: Mapping[int, int | None] | None = None, previous: Mapping[int, Audio] | None = None,
                    on_rendered: Callable[[Rendered], None] | None = None) -> list[Rendered]:
        out = []
        for cue in cues:
            rendered = self.render(cue, options)
            if on_rendered is not None:
                on_rendered(rendered)
            out.append(rendered)
        return out
