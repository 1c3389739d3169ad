"""Each engine's own options (ComposerOptions, MusicGenOptions, LibraryOptions) inside RenderOptions."""

from __future__ import annotations

from pathlib import Path

import pytest

from m2m.cues import CaptionSheet, Cue, Plan
from m2m.music import engine_options, load_engine
from m2m.music.base import RenderOptions
from m2m.music.composer import ComposerEngine, ComposerOptions
from m2m.music.library import LibraryOptions
from m2m.music.musicgen import MusicGenEngine
from m2m.music.musicgen_model import MusicGenOptions
from m2m.music.render import SoundtrackSettings, clip_hashes

PLAN = Plan(80, "C", "major", ("acoustic grand piano",), 0.3, "calm")
SHEET = CaptionSheet((Cue(0, 0, "a calm piano", PLAN), Cue(1, 0, "calm piano again", PLAN)))


def test_clips_made_before_engines_had_options_of_their_own_keep_their_hashes() -> None:
    """The hashes these pages' clips had at 9e8bb68, when RenderOptions carried every engine's knobs:
    a run made then is not rendered again (by the composer of then: one that sounds different since,
    with a version of its own, renders them again)."""

    class ComposerOfThen(ComposerEngine):
        version = ""

    assert clip_hashes("book", SHEET, "composer", SoundtrackSettings(), RenderOptions(),
                       engine=ComposerOfThen()) == {0: "f85a9d88339547fa", 1: "fd48f192e30f64e7"}
    now = clip_hashes("book", SHEET, "composer", SoundtrackSettings(), RenderOptions())
    assert ComposerEngine.version and set(now.values()).isdisjoint({"f85a9d88339547fa", "fd48f192e30f64e7"})
    library = RenderOptions(engine_options=LibraryOptions(Path("/x/lib")))
    assert clip_hashes("book", SHEET, "library", SoundtrackSettings(), library) == {
        0: "00909b091d9e0108", 1: "6a5e94fa532e7ca5"}


def test_options_that_change_the_music_change_the_hash_and_others_do_not() -> None:
    def hashes(options: MusicGenOptions) -> dict[int, str]:
        return clip_hashes("book", SHEET, "musicgen-small", SoundtrackSettings(), RenderOptions(engine_options=options))

    assert hashes(MusicGenOptions(guidance_scale=4.0)) != hashes(MusicGenOptions())
    assert hashes(MusicGenOptions(device="cpu", batch_size=1)) == hashes(MusicGenOptions())


def test_each_engine_takes_only_its_own_fields_from_the_choices() -> None:
    choices = {"device": "cpu", "allow_download": True, "library_dir": Path("/x/lib")}
    assert engine_options(load_engine("composer"), **choices) == ComposerOptions()
    assert engine_options(load_engine("library"), **choices) == LibraryOptions(Path("/x/lib"))
    assert engine_options(MusicGenEngine("musicgen-small"), **choices) == MusicGenOptions(device="cpu",
                                                                                          allow_download=True)


def test_another_engines_options_are_refused_by_name() -> None:
    options = RenderOptions(engine_options=LibraryOptions(Path("/x/lib")))
    with pytest.raises(ValueError, match="LibraryOptions given to an engine that takes ComposerOptions"):
        options.options_for(ComposerOptions)
    assert RenderOptions().options_for(MusicGenOptions) == MusicGenOptions()


@pytest.mark.parametrize("bad, message", [({"prompt_seconds": 11.0}, "prompt_seconds"), ({"batch_size": 0}, "batch_size")])
def test_musicgen_options_are_checked(bad: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MusicGenOptions(**bad)
