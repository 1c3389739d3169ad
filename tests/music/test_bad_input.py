"""Bad input gets a clear message and leaves nothing half-written."""

from __future__ import annotations

import pytest

from m2m.cues import CaptionSheet
from m2m.music import available_engines, load_engine
from m2m.music.base import RenderOptions
from m2m.music.composer import ComposerEngine, ComposerOptions
from m2m.music.library import LibraryOptions
from m2m.music.plans import parse_caption
from m2m.music.render import SoundtrackSettings
from m2m.music.synth import MissingSoundFontError
from m2m.runs import RunFolder
from m2m.soundtrack import build_soundtrack

from .conftest import cue

FAST = RenderOptions(seconds=2.0)


def test_unknown_engine_lists_the_valid_ones():
    with pytest.raises(ValueError, match="composer, musicgen-small.*library"):
        load_engine("musicgen-huge")
    assert "composer" in available_engines()


def test_unknown_instrument_is_named_with_suggestions(composer):
    with pytest.raises(ValueError, match=r"plan.instruments: unknown instrument 'violen'.*'violin'"):
        composer.render(cue(instruments=("violen",)), FAST)
    with pytest.raises(ValueError, match="unknown instrument 'theremin-9000'"):
        composer.render(cue(instruments=("theremin-9000",)), FAST)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("tempo", 900, "plan.tempo: 900 BPM"), ("key", "H", "plan.key: 'H'"), ("energy", 1.7, "plan.energy: 1.7"),
    ("mode", "dorian", "plan.mode: 'dorian'"),
])
def test_bad_plan_fields_are_named(composer, field, value, message):
    with pytest.raises(ValueError, match=message):
        composer.render(cue(**{field: value}), FAST)


def test_empty_caption_still_composes_from_the_plan(composer):
    r = composer.render(cue(caption=""), FAST)
    assert r.audio.seconds > 1.0


def test_absurd_captions(composer):
    hints = parse_caption("a 9000 BPM piece in the key of Q, with a kazoo orchestra and 80 gongs!!!")
    assert hints.tempo is None and any("9000" in w for w in hints.warnings)
    r = composer.render(cue(caption="zzzz 9000 BPM ### ¿¿¿ 🎵🎵"), FAST)
    assert any("9000" in w for w in r.info.warnings)
    with pytest.raises(ValueError, match="caption: 5000 characters"):
        composer.render(cue(caption="x" * 5000), FAST)


def test_missing_soundfont_names_the_package_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("M2M_SOUNDFONT", raising=False)
    engine = ComposerEngine(soundfonts=(tmp_path / "nowhere.sf2",))
    with pytest.raises(MissingSoundFontError, match="apt-get install fluid-soundfont-gm"):
        engine.render(cue(), FAST)
    run = RunFolder(tmp_path / "runs", "book", "m2m")
    with pytest.raises(MissingSoundFontError):
        build_soundtrack("book", "m2m", CaptionSheet((cue(),)), run, "composer",
                         SoundtrackSettings(clip_seconds=2.0, pace_seconds=2.0), engine=engine)
    assert not run.audio_dir.exists() or not any(run.audio_dir.iterdir())


def test_explicit_missing_soundfont_is_named(composer, tmp_path):
    with pytest.raises(MissingSoundFontError, match="nope.sf2 does not exist"):
        composer.render(cue(), RenderOptions(seconds=2.0, engine_options=ComposerOptions(soundfont=tmp_path / "nope.sf2")))


def test_fallback_soundfont_is_reported():
    from pathlib import Path

    import pretty_midi

    small = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    r = ComposerEngine(soundfonts=(small,)).render(cue(), FAST)
    assert "TimGM6mb" in r.info.soundfont and any("fluid-soundfont-gm" in w for w in r.info.warnings)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="pace_seconds: 0.5"):
        SoundtrackSettings(pace_seconds=0.5)
    with pytest.raises(ValueError, match="seconds: 0.1"):
        RenderOptions(seconds=0.1)


def test_empty_caption_sheet_and_unknown_order_page(tmp_path, composer):
    run = RunFolder(tmp_path, "book", "m2m")
    with pytest.raises(ValueError, match="captions: no cues"):
        build_soundtrack("book", "m2m", CaptionSheet(()), run, "composer")
    with pytest.raises(ValueError, match="order: page 9 has no caption"):
        build_soundtrack("book", "m2m", CaptionSheet((cue(),)), run, "composer", order=[9], engine=composer)


def test_library_engine_without_a_library(tmp_path):
    engine = load_engine("library")
    with pytest.raises(ValueError, match="library_dir"):
        engine.render(cue(), FAST)
    with pytest.raises(ValueError, match="m2m library build"):
        engine.render(cue(), RenderOptions(seconds=2.0, engine_options=LibraryOptions(tmp_path)))


def test_library_build_and_random_pick(tmp_path, composer):
    from m2m.music.library import read_library
    from m2m.music.library_builder import build_library

    build_library(composer, tmp_path, 3, RenderOptions(seconds=2.0, seed=1))
    library = read_library(tmp_path)
    assert len(library.clips) == 3 and library.engine == "composer"
    engine = load_engine("library")
    picks = {engine.render(cue(page=p), RenderOptions(seconds=2.0, engine_options=LibraryOptions(tmp_path))).info.details["clip"]
             for p in range(1, 9)}
    assert len(picks) >= 2  # pages get different clips, reproducibly
    again = engine.render(cue(page=1), RenderOptions(seconds=2.0, engine_options=LibraryOptions(tmp_path))).info.details["clip"]
    assert again == engine.render(cue(page=1), RenderOptions(seconds=2.0, engine_options=LibraryOptions(tmp_path))).info.details["clip"]


def test_library_rebuilt_smaller_leaves_no_clips_outside_its_index(tmp_path, composer):
    from m2m.music.library import read_library
    from m2m.music.library_builder import build_library

    build_library(composer, tmp_path, 3, RenderOptions(seconds=2.0, seed=1))
    (tmp_path / "notes.txt").write_text("mine")  # not a clip: left alone
    build_library(composer, tmp_path, 2, RenderOptions(seconds=2.0, seed=2))
    assert sorted(p.name for p in tmp_path.glob("clip-*.ogg")) == sorted(c.file for c in read_library(tmp_path).clips)
    assert len(read_library(tmp_path).clips) == 2 and (tmp_path / "notes.txt").is_file()
