"""The composer honours the plan, measured on its audio and its MIDI."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest

from m2m.music.base import RenderOptions
from m2m.music.plans import program_of, resolve_instrument
from m2m.music.synth import seam_jump
from m2m.music.theory import estimate_key

from . import measure
from .conftest import cue

OPTIONS = RenderOptions(seconds=12.0, seed=7)


def render(engine, c, options=OPTIONS):
    return engine.render(c, options)


def mono(rendered) -> np.ndarray:
    return rendered.audio.samples.mean(axis=0)


def notes_per_second(rendered) -> float:
    midi = rendered.midi
    return sum(len(i.notes) for i in midi.instruments) / midi.get_end_time()


def melody_notes(rendered):
    track = next(i for i in rendered.midi.instruments if i.name.startswith("melody:"))
    return sorted(track.notes, key=lambda n: n.start)


@pytest.mark.parametrize("tempo", [96, 128])
def test_tempo_found_by_beat_tracking(composer, tempo):
    r = render(composer, cue(instruments=("acoustic grand piano", "drums"), energy=0.75, mood="happy", tempo=tempo))
    found = measure.tempo(mono(r), r.audio.sample_rate)
    # A beat tracker may lock onto half or double the pulse (an octave error) when the drums
    # accent every other beat; either is the same tempo musically, so those are accepted.
    ratio = min(abs(found * k / tempo - 1) for k in (1, 0.5, 2))
    assert ratio < 0.05, f"planned {tempo} BPM, tracked {found:.1f}"


@pytest.mark.parametrize(("key", "mode"), [("D", "major"), ("A", "minor"), ("F#", "minor"), ("Bb", "major")])
def test_key_found_from_chroma(composer, key, mode):
    from m2m.music.theory import tonic_pitch_class

    r = render(composer, cue(key=key, mode=mode, energy=0.5, instruments=("acoustic grand piano", "string ensemble 1"),
                             mood="calm", tempo=90))
    tonic, found_mode, _ = estimate_key(measure.chroma(mono(r), r.audio.sample_rate))
    assert (tonic, found_mode) == (tonic_pitch_class(key), mode)


def test_planned_instruments_are_in_the_midi(composer):
    planned = ("cello", "orchestral harp", "flute", "drums")
    r = render(composer, cue(instruments=planned, energy=0.7, mood="romantic"))
    programs = {(i.program, i.is_drum) for i in r.midi.instruments if i.notes}
    for name in planned:
        program = program_of(resolve_instrument(name))
        assert ((0, True) in programs) if program < 0 else ((program, False) in programs), name


def test_higher_energy_is_denser_and_louder(composer):
    low = render(composer, cue(energy=0.15, instruments=("acoustic grand piano", "string ensemble 1"), mood="calm"))
    high = render(composer, cue(energy=0.9, instruments=("acoustic grand piano", "string ensemble 1"), mood="calm"))
    assert notes_per_second(high) > 2 * notes_per_second(low)
    meter = pyloudnorm.Meter(low.audio.sample_rate)
    loud_low = meter.integrated_loudness(low.audio.samples.T)
    loud_high = meter.integrated_loudness(high.audio.samples.T)
    assert loud_high > loud_low + 3.0, (loud_low, loud_high)


def test_scenes_of_different_moods_sound_different(composer):
    calm = render(composer, cue(scene=0, tempo=70, energy=0.2, mood="calm", caption="a calm, gentle lullaby",
                                instruments=("acoustic grand piano", "string ensemble 1")))
    fight = render(composer, cue(scene=1, tempo=150, energy=0.9, mood="battle", mode="minor", key="E",
                                 caption="an intense battle", instruments=("brass section", "drums")))
    sr = calm.audio.sample_rate
    onset_rate = [measure.onsets_per_second(mono(r), sr) for r in (calm, fight)]
    centroid = [measure.spectral_centroid(mono(r), sr) for r in (calm, fight)]
    assert onset_rate[1] > 1.5 * onset_rate[0], onset_rate
    assert centroid[1] > 1.2 * centroid[0], centroid
    assert calm.info.details["progression"] != fight.info.details["progression"]


def _motif(rendered, beats: float = 4.0):
    """Rhythm (onsets in beats) and pitch intervals of the melody's first bar."""
    tempo = rendered.info.details["tempo"]
    notes = [n for n in melody_notes(rendered) if n.start * tempo / 60 < beats - 0.1]
    onsets = tuple(round(n.start * tempo / 60 * 4) for n in notes)  # in sixteenths, humanising removed
    return onsets, tuple(np.diff([n.pitch for n in notes]))


def test_pages_of_a_scene_share_the_motif_and_scenes_differ(composer):
    plan = dict(tempo=92, key="G", mode="major", energy=0.5, mood="happy",
                instruments=("flute", "acoustic guitar (nylon)"))
    pages = [render(composer, cue(page=p, scene=3, **plan)) for p in (10, 11, 12)]
    motifs = {_motif(r) for r in pages}
    assert len(motifs) == 1, motifs
    assert len(_motif(pages[0])[0]) >= 2
    others = {_motif(render(composer, cue(page=20 + s, scene=s, **plan))) for s in (4, 5, 6)}
    assert motifs.isdisjoint(others) or len(others | motifs) >= 3
    # the whole pages are not copies: each page varies the motif differently
    assert len({tuple(n.pitch for n in melody_notes(r)) for r in pages}) > 1


def test_same_inputs_same_audio(composer):
    c = cue(energy=0.6, instruments=("electric piano 1", "drums"))
    a, b = render(composer, c), render(composer, c)
    assert np.array_equal(a.audio.samples, b.audio.samples)


@pytest.mark.parametrize("rate", [None, 44100, 48000])
def test_clip_is_whole_bars_and_loops_without_a_click(composer, rate):
    options = replace(OPTIONS, sample_rate=rate)
    for c in (cue(tempo=75, energy=0.2), cue(tempo=140, energy=0.9, instruments=("brass section", "drums"))):
        r = render(composer, c, options)
        # synthesised at the rate asked for (the soundtrack's), never resampled; by default MusicGen's
        assert r.audio.sample_rate == (rate or 32000)
        bars = r.info.details["bars"]
        assert r.audio.seconds == pytest.approx(bars * 4 * 60 / c.plan.tempo, abs=1 / r.audio.sample_rate)
        jump, typical = seam_jump(r.audio.samples)
        # the seam must be no rougher than the clip's own sample-to-sample motion (99.9th percentile)
        assert jump <= max(typical, 0.005), (jump, typical)
        samples = r.audio.samples
        assert np.abs(samples).max() < 0.99  # no clipping
        assert np.sqrt(np.mean(samples**2)) > 0.005  # not silent


def test_caption_edit_overrides_a_stale_plan(composer):
    c = cue(tempo=70, key="C", mode="major", energy=0.2, instruments=("acoustic grand piano",),
            caption="A driving 140 BPM battle theme in E minor with distorted guitar and drums")
    r = render(composer, c)
    d = r.info.details
    assert (d["tempo"], d["key"], d["mode"]) == (140, "E", "minor")
    assert {"distortion guitar", "drums"} <= {inst for _, inst in d["roles"]}
    assert any("caption" in w for w in r.info.warnings)


def test_a_directors_caption_does_not_overrule_its_own_plan_until_a_person_edits_it():
    """A genre word in the director's prose ("dark ambient") must not pull a planned energy of 0.88
    down, nor be reported as an edit; once a person changes the caption, its words win."""
    from dataclasses import replace

    from m2m.cues import Cue, Plan
    from m2m.music.plans import resolve_plan

    plan = Plan(132, "D", "minor", ("string ensemble 2", "timpani"), 0.88, "startled")
    written = Cue.planned(6, 1, "A startled, dark ambient cue with slow strings rising to a peak", plan)
    resolved = resolve_plan(written)
    assert resolved.plan == plan and resolved.from_caption == ()
    edited = replace(written, caption="A calm, slow piano lullaby at 60 BPM")
    assert edited.caption_edited
    resolved = resolve_plan(edited)
    assert resolved.plan.tempo == 60 and resolved.plan.energy < 0.5
    assert {"tempo", "energy", "instruments"} <= set(resolved.from_caption)


def test_offline_director_plans_reach_the_composer_unchanged():
    from m2m.book import load_book
    from m2m.directives import write_captions, write_directives
    from m2m.director import load_director
    from m2m.emotions import recognise_emotions
    from m2m.music.plans import resolve_plan, validate_plan
    from m2m.scenes import detect_scenes

    book = load_book(Path(__file__).resolve().parents[2] / "examples" / "manga109", None)
    director = load_director("offline")
    scenes = detect_scenes(book, director).data
    report = recognise_emotions(book, scenes, "dialogue").data
    sheet = write_directives(book, scenes, report, director).data
    for c in write_captions(book, scenes, report, sheet, director).data.cues:
        resolved = resolve_plan(c)
        assert (resolved.plan, resolved.from_caption) == (validate_plan(c.plan), ()), c.page


def test_an_edited_caption_s_bpm_is_played_exactly():
    """A caption edited to "120 BPM" over a plan at 119 plays at 120 (a 5 % tolerance kept 119, and the
    panel showed 119 under a caption saying 120)."""
    from dataclasses import replace

    from m2m.cues import Cue, Plan
    from m2m.music.plans import resolve_plan

    written = Cue.planned(0, 0, "A tense string ostinato in D minor at 119 BPM",
                          Plan(119, "D", "minor", ("string ensemble 1",), 0.5, "tense"))
    resolved = resolve_plan(replace(written, caption="A tense string ostinato in D minor, 120 BPM"))
    assert resolved.plan.tempo == 120 and resolved.from_caption == ("tempo",)


def test_caption_that_agrees_keeps_the_plan(composer):
    c = cue(tempo=84, key="D", mode="minor", energy=0.3, instruments=("acoustic grand piano", "cello"),
            caption="A slow, melancholic piano piece in D minor with a cello", mood="sad")
    d = render(composer, c).info.details
    assert (d["tempo"], d["key"], d["mode"], d["energy"]) == (84, "D", "minor", 0.3)


def test_warm_soundfont_cache_gives_the_same_audio(composer):
    from m2m.music.composer import compose
    from m2m.music.synth import SoundFontCache, render_midi

    piece, _ = compose(cue(energy=0.8, instruments=("brass section", "drums")), 6.0, seed=3)
    font = composer.soundfont(OPTIONS)
    cold = render_midi(piece.midi, font, seconds=piece.seconds)
    cache = SoundFontCache()
    try:
        warm = [render_midi(piece.midi, font, seconds=piece.seconds, cache=cache) for _ in range(2)]
    finally:
        cache.close()
    assert np.array_equal(cold, warm[0]) and np.array_equal(warm[0], warm[1])


def test_lent_soundfonts_in_parallel_renders_sound_as_their_own(composer):
    """Renders on threads borrow loaded fonts at once: each sounds exactly as with its own font."""
    from concurrent.futures import ThreadPoolExecutor

    from m2m.music.composer import compose
    from m2m.music.synth import SoundFontCache, render_midi

    pieces = [compose(cue(energy=e, instruments=instruments), 4.0, seed=s)[0]
              for e, instruments, s in ((0.9, ("brass section", "drums"), 1), (0.3, ("acoustic grand piano", "cello"), 2))]
    font = composer.soundfont(OPTIONS)
    alone = [render_midi(p.midi, font, seconds=p.seconds) for p in pieces]
    cache = SoundFontCache()
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            lent = list(pool.map(lambda k: render_midi(pieces[k % 2].midi, font, seconds=pieces[k % 2].seconds,
                                                       cache=cache), range(6)))
        assert 1 <= len(cache._all) <= 3  # as many loaded copies as renders at once, no more
    finally:
        cache.close()
    for k, audio in enumerate(lent):
        assert np.array_equal(audio, alone[k % 2]), k


def test_a_prepared_engine_renders_with_the_fonts_it_loaded_ahead(composer):
    """``prepare`` loads one copy per render thread; the renders then load nothing, and sound the same."""
    from m2m.music.composer import ComposerEngine

    engine = ComposerEngine(workers=2)
    try:
        engine.prepare(OPTIONS)
        engine.prepare(OPTIONS)  # a second call finds them loaded
        assert len(engine.soundfont_cache._all) == 2
        cues = [cue(page=p, energy=0.2 * p) for p in (1, 2, 3)]
        rendered = engine.render_many(cues, OPTIONS)
        assert len(engine.soundfont_cache._all) == 2
    finally:
        engine.soundfont_cache.close()
    for c, r in zip(cues, rendered, strict=True):
        assert np.array_equal(r.audio.samples, composer.render(c, OPTIONS).audio.samples)


def test_warm_up_with_a_missing_soundfont_leaves_the_error_to_the_render(tmp_path, caplog):
    import logging
    import time

    from m2m.music.composer import ComposerEngine
    from m2m.music.render import warm_up
    from m2m.music.synth import MissingSoundFontError

    engine = ComposerEngine(soundfonts=(tmp_path / "none.sf2",))
    with caplog.at_level(logging.DEBUG, logger="m2m.music.render"):
        warm_up(engine, OPTIONS)
        for _ in range(100):
            if "engine warm-up" in caplog.text:
                break
            time.sleep(0.02)
    assert "no General MIDI SoundFont" in caplog.text
    with pytest.raises(MissingSoundFontError, match="fluid-soundfont-gm"):
        engine.render(cue(), OPTIONS)


def test_pyfluidsynth_prints_nothing_into_our_stdout_on_ci():
    """pyfluidsynth prints where it found the library when ``CI`` is set (pretty_midi imports it
    too); that line must not reach the stdout of m2m commands or anything piping them."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = os.environ | {"CI": "true", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    script = ("import m2m.cli, m2m.music.composer, pretty_midi; from m2m.midi import import_fluidsynth; "
              "assert import_fluidsynth().Synth")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout == ""
