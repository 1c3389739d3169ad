"""Making a clip library for the ``library`` engine: clips rendered from varied random plans.

Each clip goes through stage 5's ``render_page`` (rendered, loudness-matched and written), so a
library's clips sound as loud as a book's; ``library.json`` indexes them (``m2m.music.library``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

import numpy as np

from m2m.cues import Cue, Plan
from m2m.jsonio import to_jsonable, write_json_atomic
from m2m.music.base import DEFAULT_SAMPLE_RATE, Engine, RenderOptions, load_table, stable_seed
from m2m.music.library import INDEX, Library, LibraryClip
from m2m.music.render import SoundtrackSettings, render_page

_INSTRUMENT_POOL = (
    "acoustic grand piano", "electric piano 1", "string ensemble 1", "flute", "cello", "violin", "french horn",
    "acoustic guitar (nylon)", "orchestral harp", "celesta", "pad 2 (warm)", "clarinet", "marimba", "oboe",
    "electric guitar (clean)", "choir aahs", "trumpet", "koto", "vibraphone", "brass section",
)
_KEYS = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


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


# What renders a library's clips: (engine, cues, options, folder) -> (index, clip) pairs as they
# finish, each clip's file already in the folder. The default renders them on this machine;
# ``m2m batch`` renders them as Ray tasks (m2m.batch.library).
ClipMaker = Callable[[Engine, Sequence[Cue], RenderOptions, Path], Iterable[tuple[int, LibraryClip]]]


def library_cues(count: int, options: RenderOptions) -> list[Cue]:
    """The ``count`` random plans a library renders, drawn in order from the options' seed, so the
    library is the same whatever order (or machine) its clips finish in."""
    if not 1 <= count <= 10000:
        raise ValueError(f"count: {count} is outside 1..10000")
    rng = np.random.default_rng(stable_seed("library", options.seed))
    return [Cue.planned(page=i + 1, scene=i, caption=caption, plan=plan)
            for i, (caption, plan) in enumerate(random_plan(rng) for _ in range(count))]


def library_settings(engine_name: str, options: RenderOptions) -> SoundtrackSettings:
    return SoundtrackSettings(engine=engine_name, sample_rate=options.sample_rate or DEFAULT_SAMPLE_RATE)


def clip_file(cue: Cue) -> str:
    return f"clip-{cue.page:04d}.ogg"


def render_library_clip(engine: Engine, cue: Cue, options: RenderOptions, folder: Path) -> LibraryClip:
    """One library clip rendered, loudness-matched and written into ``folder`` (stage 5's render_page)."""
    clip = render_page(cue, engine, replace(options, seed=options.seed + cue.page - 1), folder / clip_file(cue),
                       library_settings(engine.name, options))
    return LibraryClip(Path(clip.path).name, clip.seconds, clip.sample_rate, clip.loop, cue.caption, cue.plan)


def make_clips_here(engine: Engine, cues: Sequence[Cue], options: RenderOptions,
                    out: Path) -> Iterator[tuple[int, LibraryClip]]:
    """Clips made on this machine, two at a time: synthesis and Vorbis encoding run outside the GIL."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {pool.submit(render_library_clip, engine, cue, options, out): cue.page for cue in cues}
        for future in as_completed(futures):
            yield futures[future], future.result()


def build_library(engine: Engine, out: Path, count: int, options: RenderOptions,
                  progress: Callable[[int, int], None] | None = None,
                  make_clips: ClipMaker | None = None) -> Library:
    """Render ``count`` clips from varied random plans into ``out`` and index them (``make_clips``:
    where they are rendered; default this machine)."""
    out = Path(out)
    cues = library_cues(count, options)
    out.mkdir(parents=True, exist_ok=True)
    done: dict[int, LibraryClip] = {}
    for index, clip in (make_clips or make_clips_here)(engine, cues, options, out):
        done[index] = clip
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
