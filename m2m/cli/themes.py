"""``m2m themes PATH [--book NAME] [--out runs] [--condition m2m]``: each character's leitmotif as the
composer wrote it, read back from the run's MIDI files: on every page where it sounds, its voice, its
notes and those notes as scale steps from the page's tonic (the same steps in every scene: the theme
recurs, in each scene's key and orchestration). Needs a run made with the composer (``m2m render``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from m2m.book import load_book
from m2m.cues import CaptionSheet, Cue
from m2m.midi import pretty_midi
from m2m.music.plans import resolve_plan
from m2m.music.theory import scale_pitches, tonic_pitch_class
from m2m.runs import CONDITIONS
from m2m.soundtrack import Soundtrack


def register(subparsers: argparse._SubParsersAction) -> None:
    from m2m.cli import add_book_arguments

    parser = subparsers.add_parser("themes", help="the leitmotifs in a rendered run's MIDI: voice, notes, scale steps")
    add_book_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("runs"), help="runs folder (as m2m render's --out)")
    parser.add_argument("--condition", default="m2m", choices=CONDITIONS, help="whose run (default m2m)")
    parser.set_defaults(func=run)


@dataclass(frozen=True)
class HeardTheme:
    """A page's leitmotif as its MIDI file holds it: the theme track's program and first statement."""

    page: int
    scene: int
    key: str
    voice: str
    program: int
    pitches: tuple[int, ...]
    steps: tuple[int, ...]


def heard_theme(cue: Cue, midi: pretty_midi.PrettyMIDI) -> HeardTheme:
    """The theme track of a page's MIDI: its first statement (as many notes as the motif has) and
    those notes as scale steps from the tonic the statement is built on (the page's key and mode,
    as the composer read them). A ValueError when the file has no theme track."""
    if cue.theme is None:
        raise ValueError(f"page {cue.page + 1}: no leitmotif in its cue")
    track = next((i for i in midi.instruments if i.name.startswith("theme")), None)
    if track is None:
        raise ValueError(f"page {cue.page + 1}: its MIDI file has no theme track")
    plan = resolve_plan(cue).plan
    tonic = tonic_pitch_class(plan.key)
    scale = scale_pitches(tonic, plan.mode, 0, 127)
    notes = sorted(track.notes, key=lambda n: (n.start, n.pitch))[:len(cue.theme.motif)]
    indices = [scale.index(n.pitch) if n.pitch in scale else None for n in notes]
    if not notes or indices[0] is None:
        raise ValueError(f"page {cue.page + 1}: the theme's first note is outside {plan.key} {plan.mode}")
    # the tonic the statement counts from: the one its first note's written step puts it on
    tonics = [i for i, p in enumerate(scale) if p % 12 == tonic]
    home = min(tonics, key=lambda i: abs(i - (indices[0] - cue.theme.motif[0][2])))
    steps = tuple(i - home if i is not None else 99 for i in indices)
    return HeardTheme(cue.page, cue.scene, f"{plan.key} {plan.mode}", track.name.split(": ", 1)[-1], track.program,
                      tuple(n.pitch for n in notes), steps)


def theme_report(captions: CaptionSheet, sheet: Soundtrack, run_path: Path) -> str:
    """Per character, every page of theirs whose MIDI file is on disk (pages and scenes from 1)."""
    midis = {c.page: run_path / c.midi for c in sheet.cues if c.midi}
    by_character: dict[str, list[Cue]] = {}
    for cue in captions.cues:
        if cue.theme is not None:
            by_character.setdefault(cue.theme.character, []).append(cue)
    if not by_character:
        return "No leitmotifs in this run (no character speaks in two scenes or more)."
    lines = []
    for cues in by_character.values():
        theme = cues[0].theme
        assert theme is not None
        lines.append(f"{theme.name}'s theme (their own instrument: {theme.instrument.lower()}; written motif "
                     f"{theme.steps})")
        for cue in cues:
            path = midis.get(cue.page)
            if path is None or not path.is_file():
                lines.append(f"  page {cue.page + 1:>3}: no MIDI file (render the run with the composer)")
                continue
            heard = heard_theme(cue, pretty_midi.PrettyMIDI(str(path)))
            names = " ".join(pretty_midi.note_number_to_name(p) for p in heard.pitches)
            steps = " ".join(f"{s:+d}" if s else "0" for s in heard.steps)
            mood = f"{cue.theme.mood}: {cue.theme.manner}" if cue.theme and cue.theme.mood else ""
            lines.append(f"  page {cue.page + 1:>3} · scene {cue.scene + 1} · {heard.key:<9} · {heard.voice} "
                         f"(program {heard.program}) · {mood}\n"
                         f"             notes {names}  ->  scale steps {steps}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from m2m.pipeline import Settings, run_folder

    book = load_book(args.path, args.book)
    folder = run_folder(book, Settings(runs_root=args.out, condition=args.condition))
    captions = folder.read("captions", CaptionSheet)
    sheet = folder.read("soundtrack", Soundtrack)
    if captions is None or sheet is None:
        raise ValueError(f"{folder.path}: no captions or cue sheet yet; run `m2m render` first")
    print(theme_report(captions.data, sheet.data, folder.path))
    return 0
