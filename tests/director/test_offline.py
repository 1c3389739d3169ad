"""The offline director: boundaries scored against ground truth, captions that follow the scenes, determinism."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from m2m.baseline import caption_pages, describe_pages
from m2m.book import load_book
from m2m.cues import check_plan
from m2m.directives import Directive, DirectiveSheet, write_captions, write_directives
from m2m.director import load_director
from m2m.jsonio import dumps
from m2m.scenes import (
    SceneSpan,
    boundaries,
    check_spans,
    detect_scenes,
    ground_truth_path,
    load_ground_truth,
    merge_windows,
    page_windows,
    score_boundaries,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "manga109"

# The example book has 3 true boundaries. F1 >= 0.8 allows one false boundary (P 0.75, R 1: F1 0.86)
# or one missed boundary (P 1, R 0.67: F1 0.8), not both; the rules were written without looking at
# the example's dialogue and score 1.0 on it today, so the floor catches a real regression, not noise.
EXAMPLE_F1_FLOOR = 0.8


def _f1(book) -> float:
    plan = detect_scenes(book, load_director("offline")).data
    score = score_boundaries(boundaries(plan), load_ground_truth(ground_truth_path(book)))
    print(f"{book.id}: predicted {score.predicted}, truth {score.truth}, P {score.precision:.2f} "
          f"R {score.recall:.2f} F1 {score.f1:.2f}")
    return score.f1


def test_boundary_f1_on_the_fixture(book):
    # The fixture's scenes change cast and open with 「その夜」 and 「翌朝」: every cue agrees, so anything
    # below a perfect score is a bug.
    assert _f1(book) == 1.0


@pytest.mark.skipif(not (EXAMPLE / "books.txt").is_file(), reason="the example book isn't drawn yet")
def test_boundary_f1_on_the_example_book():
    book = load_book(EXAMPLE)
    assert _f1(book) >= EXAMPLE_F1_FLOOR


def test_scene_plan_covers_the_book_with_lines(book):
    staged = detect_scenes(book, load_director("offline"))
    plan = staged.data
    assert [p for s in plan.scenes for p in s.pages] == [p.index for p in book.pages]
    assert sum(len(s.lines) for s in plan.scenes) == len(book.dialogue())
    assert "その夜" in plan.scenes[1].summary
    assert staged.provenance.backend == "offline"
    assert staged.provenance.prompt_file == "prompts/offline_director.json" and staged.provenance.prompt_hash


def test_captions_follow_the_mood_of_each_scene(book):
    director = load_director("offline")
    plan = detect_scenes(book, director).data
    sheet = write_directives(book, plan, None, director).data
    captions = write_captions(book, plan, None, sheet, director).data
    picnic, chase, farewell = (captions.cue(p) for p in (1, 5, 9))
    assert picnic.plan.mode == "major" and chase.plan.mode == "minor" and farewell.plan.mode == "minor"
    assert farewell.plan.tempo < picnic.plan.tempo
    assert chase.plan.energy > farewell.plan.energy
    assert len({c.caption for c in captions.cues}) == len(captions.cues)  # every page its own caption
    # Within a scene the key stays, so the pages sound like one piece.
    assert len({captions.cue(p).plan.key for p in range(4, 8)}) == 1
    for cue in captions.cues:
        assert check_plan(cue.plan) == cue.plan
        assert f"{cue.plan.tempo} BPM" in cue.caption and cue.plan.key in cue.caption


def test_face_emotions_change_the_music(book, emotions):
    director = load_director("offline")
    plan = detect_scenes(book, director).data
    scared = replace(emotions, scenes={**emotions.scenes, 0: emotions.scenes[1]},
                     pages={**emotions.pages, **{p: emotions.pages[5] for p in range(4)}})
    calm = write_directives(book, plan, emotions, director).data.directive(0).text
    fearful = write_directives(book, plan, scared, director).data.directive(0).text
    assert "The faces show 55% happiness" in calm and "major" in calm
    assert "The faces show 55% fear" in fearful and "minor" in fearful


def test_an_edited_directive_carries_into_the_captions(book):
    director = load_director("offline")
    plan = detect_scenes(book, director).data
    sheet = write_directives(book, plan, None, director).data
    edited = DirectiveSheet((Directive(0, "A melancholic solo piano piece in F# minor at 66 BPM with cello."),
                             *sheet.directives[1:]))
    captions = write_captions(book, plan, None, edited, director).data
    cue = captions.cue(1)
    assert (cue.plan.key, cue.plan.mode) == ("F#", "minor")
    assert cue.plan.instruments[:2] == ("Acoustic Grand Piano", "Cello")
    assert abs(cue.plan.tempo - 66) <= 20
    assert captions.cue(5) == write_captions(book, plan, None, sheet, director).data.cue(5)  # other scenes unchanged


def test_offline_output_is_deterministic_across_processes(book_root, book):
    director = load_director("offline")
    plan = detect_scenes(book, director).data
    sheet = write_directives(book, plan, None, director).data
    here = dumps(write_captions(book, plan, None, sheet, director).data)
    script = (
        "import sys; from m2m.book import load_book; from m2m.director import load_director;"
        "from m2m.scenes import detect_scenes; from m2m.directives import write_directives, write_captions;"
        "from m2m.jsonio import dumps; b = load_book(sys.argv[1], 'Fixture'); d = load_director('offline');"
        "p = detect_scenes(b, d).data; s = write_directives(b, p, None, d).data;"
        "print(dumps(write_captions(b, p, None, s, d).data))"
    )
    other = subprocess.run([sys.executable, "-c", script, str(book_root)], capture_output=True, text=True,
                           check=True, cwd=ROOT, env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout
    assert json.loads(other) == json.loads(here)


def test_baseline_describes_measured_pages_without_scene_context(book):
    director = load_director("offline")
    descriptions = describe_pages(book, director).data
    night, day = descriptions.description(5), descriptions.description(1)
    assert "dark page" in night.text and night.features["ink"] > day.features["ink"]
    assert "bright" in day.text and day.features["panels"] == 4
    assert "「怖い…足音が近づいてくる…」" in night.text
    captions = caption_pages(book, descriptions, director).data
    assert [c.scene for c in captions.cues] == list(range(12))
    assert captions.cue(5).plan.mode == "minor" and captions.cue(1).plan.mode == "major"


def test_windows_overlap_and_merge(book):
    windows = page_windows(book.pages, max_lines=8)
    assert windows[0][0] == 0 and windows[-1][1] == len(book.pages)
    assert all(b[0] < a[1] for a, b in zip(windows, windows[1:], strict=False))  # each overlaps the next
    answers = []
    for start, stop in windows:
        pages = [p.index for p in book.pages[start:stop]]
        cuts = [c for c in (4, 8) if pages[0] < c <= pages[-1]]
        starts = [pages[0], *cuts]
        answers.append([SceneSpan(a, b) for a, b in zip(starts, [c - 1 for c in cuts] + [pages[-1]], strict=True)])
    merged = merge_windows(book.pages, windows, answers)
    assert [(s.first_page, s.last_page) for s in merged] == [(0, 3), (4, 7), (8, 11)]


def test_check_spans_names_the_problem():
    check_spans([SceneSpan(0, 2), SceneSpan(3, 5)], [0, 1, 2, 3, 4, 5])
    with pytest.raises(ValueError, match="leaves a gap"):
        check_spans([SceneSpan(0, 2), SceneSpan(4, 5)], range(6))
    with pytest.raises(ValueError, match="overlaps"):
        check_spans([SceneSpan(0, 2), SceneSpan(2, 5)], range(6))
    with pytest.raises(ValueError, match="run to 5"):
        check_spans([SceneSpan(0, 4)], range(6))
    with pytest.raises(ValueError, match="no scenes"):
        check_spans([], range(6))


def test_score_boundaries_with_tolerance():
    score = score_boundaries([3, 9], [4, 12], tolerance=1)
    assert (score.precision, score.recall) == (0.5, 0.5)
    assert score_boundaries([], []).f1 == 1.0
    assert score_boundaries([5], []).f1 == 0.0
    # One prediction can't claim two true boundaries.
    assert score_boundaries([5], [4, 6]).recall == 0.5


def test_a_book_without_dialogue_or_speakers_still_gets_music(tmp_path):
    from PIL import Image

    root = tmp_path / "silent"
    root.mkdir()
    pages = []
    for n in range(5):
        Image.new("RGB", (200, 300), (255 - 40 * n,) * 3).save(root / f"{n}.png")
        lines = [{"text": "……"}] if n == 2 else []
        pages.append({"image": f"{n}.png", "lines": lines})
    (root / "transcript.json").write_text(json.dumps({"title": "Silent", "pages": pages}), encoding="utf-8")
    book = load_book(root)
    director = load_director("offline")
    plan = detect_scenes(book, director).data
    assert [p for s in plan.scenes for p in s.pages] == [0, 1, 2, 3, 4]
    sheet = write_directives(book, plan, None, director).data
    captions = write_captions(book, plan, None, sheet, director).data
    assert [c.page for c in captions.cues] == [0, 1, 2, 3, 4]
    assert "wordless" in sheet.directives[0].text or "single voice" in sheet.directives[0].text
    baseline = caption_pages(book, describe_pages(book, director).data, director).data
    assert len(baseline.cues) == 5


def test_a_style_never_promises_an_instrument_the_plan_lacks():
    """"A sunny ukulele-style folk piece ... with piano, xylophone and flute" named a ukulele nobody plays."""
    from m2m.director.offline import OfflineDirector, _style_for

    tables = OfflineDirector().tables
    promises = tables["style_promises"]
    for mood, table in tables["moods"].items():
        for palette in table["palettes"]:
            for count in (2, 3, 4):
                instruments = palette[:count]
                names = " ".join(instruments).lower()
                for seed in range(12):
                    style = _style_for(table["styles"], instruments, promises, "book", seed, "style")
                    for word, keeping in promises.items():
                        if word != "about" and word in style.lower():
                            assert any(gm in names for gm in keeping), (mood, style, instruments)


def test_example_captions_name_no_missing_instrument(tmp_path):
    from m2m.director.offline import OfflineDirector
    from m2m.pipeline import Settings, plan_book

    promises = OfflineDirector().tables["style_promises"]
    result = plan_book(load_book(ROOT / "examples" / "manga109"), Settings(runs_root=tmp_path))
    for cue in result.captions.cues:
        style = cue.caption.split(" in ", 1)[0].lower()  # "A cheerful bright pop-orchestral piece"
        names = " ".join(cue.plan.instruments).lower()
        for word, keeping in promises.items():
            if word != "about" and word in style:
                assert any(gm in names for gm in keeping), cue.caption


def test_within_a_scene_a_page_continues_the_one_before(tmp_path):
    # the energy climbs or falls by at most PAGE_ENERGY_STEP a page, and a calmer page keeps the band:
    # an instrument dropped at a turn reshuffles who plays what inside a 1.5 s crossfade
    from m2m.director.offline import PAGE_ENERGY_STEP
    from m2m.pipeline import Settings, plan_book

    cues = plan_book(load_book(ROOT / "examples" / "manga109"), Settings(runs_root=tmp_path)).captions.cues
    pairs = [(a, b) for a, b in zip(cues, cues[1:], strict=False) if a.scene == b.scene]
    assert pairs
    for a, b in pairs:
        assert abs(b.plan.energy - a.plan.energy) <= PAGE_ENERGY_STEP + 0.01, (a.page, b.page)
        assert len(b.plan.instruments) >= len(a.plan.instruments), (a.page, b.plan.instruments)
    # the scenes still differ: the step limit holds inside a scene only
    assert any(abs(b.plan.energy - a.plan.energy) > PAGE_ENERGY_STEP
               for a, b in zip(cues, cues[1:], strict=False) if a.scene != b.scene)


def test_a_scene_keeps_its_tempo_and_the_drums_that_came_in(tmp_path):
    # two grooves a few BPM apart flam through every crossfade, and drums that stop at a turn inside a
    # scene are a texture switch; the example's last scene climbs to a drum page, then calms
    from m2m.cues import DRUM_KIT, canonical_instrument
    from m2m.director.offline import DRUMS_ENERGY
    from m2m.pipeline import Settings, plan_book

    cues = plan_book(load_book(ROOT / "examples" / "manga109"), Settings(runs_root=tmp_path)).captions.cues
    for a, b in zip(cues, cues[1:], strict=False):
        if a.scene == b.scene:
            assert b.plan.tempo == a.plan.tempo, (a.page, b.page)
            assert DRUM_KIT not in a.plan.instruments or DRUM_KIT in b.plan.instruments, (a.page, b.page)
    drummed = [c for c in cues if DRUM_KIT in c.plan.instruments]
    assert drummed and any(c.plan.energy < DRUMS_ENERGY for c in drummed)  # kept on the calmer pages
    assert all(c.plan.energy >= DRUMS_ENERGY for c in drummed
               if not any(o.scene == c.scene and o.page < c.page for o in drummed))  # first in: a loud page
    assert "drums" in next(c for c in drummed).caption
    assert canonical_instrument("drums") == DRUM_KIT  # a plan, an edit or an LLM may name the kit


def test_a_page_of_exclamations_is_accented_in_the_words_of_its_mood(tmp_path):
    # manga shouts: on the example 9 of 16 pages are mostly exclamations; a sad page's are a swell
    # of feeling and a happy one's bright accents, the "sharp accents" of a tense page nowhere else
    from m2m.director.offline import OfflineDirector
    from m2m.pipeline import Settings, plan_book

    phrases = OfflineDirector().tables["texture"]["exclamation"]
    cues = plan_book(load_book(ROOT / "examples" / "manga109"), Settings(runs_root=tmp_path)).captions.cues
    accented = {c.page: next(m for m, p in phrases.items() if p in c.caption)
                for c in cues if any(p in c.caption for p in phrases.values())}
    assert len(set(accented.values())) >= 3, accented  # sad, happy and tense pages among them
    for cue in cues:
        if cue.page in accented:
            words = OfflineDirector().tables["moods"][accented[cue.page]]["words"]
            assert any(w in cue.caption for w in words), cue.caption  # the phrase is the page's own mood's


def test_no_texture_phrase_says_an_energy_or_a_mood_the_caption_parser_would_read():
    # an edited caption is read back (m2m.music.plans.parse_caption): a texture phrase that names an
    # energy ("driving", "lively") or a mood ("bright") would move the page's plan on an unrelated edit
    from m2m.director.offline import OfflineDirector
    from m2m.music.plans import parse_caption

    texture = OfflineDirector().tables["texture"]
    phrases = [p for v in texture.values() for p in ([v] if isinstance(v, str) else v.values())]
    for phrase in phrases:
        hints = parse_caption(phrase)
        assert hints.energy_range is None and hints.mood is None, (phrase, hints)
