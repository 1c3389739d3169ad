"""The leitmotif detector on composer clips: a page played with a character's theme is found, the
same page without it (or with another character's theme) is not; and the run figures add up."""

from __future__ import annotations

import pytest

from m2m.cues import CaptionSheet, Cue, Plan, Theme
from m2m.evaluation.features import analysis_signal
from m2m.evaluation.recurrence import (
    DECOYS,
    decoy_motifs,
    motif_score,
    motif_semitones,
    pitch_onsets,
    pitch_salience,
    recurrence,
)

from .conftest import RATE

# the two themes of the bundled example book's first characters (its 04-captions.json)
AKI = Theme("a", "Aki", "Flute", ((0.0, 1.0, 0), (1.0, 0.5, -2), (1.5, 0.5, -3), (2.0, 1.5, -2), (3.5, 0.5, 0)))
BEN = Theme("b", "Ben", "Oboe", ((0.0, 2.0, 0), (2.0, 0.5, -1), (2.5, 0.5, 1), (3.0, 1.0, 4)))
PLANS = (Plan(96, "D", "major", ("Acoustic Grand Piano", "String Ensemble 1"), 0.4, "calm"),
         Plan(72, "E", "minor", ("Acoustic Grand Piano", "String Ensemble 1"), 0.2, "sad"),
         Plan(120, "A", "major", ("Acoustic Grand Piano", "String Ensemble 1", "Drums"), 0.6, "happy"),
         Plan(84, "F", "minor", ("String Ensemble 1", "Harp"), 0.3, "tense"))


@pytest.fixture(scope="module")
def pages():
    """Each plan's page (a scene of its own) composed with Aki's theme, with Ben's, and with none."""
    from m2m.music.base import RenderOptions
    from m2m.music.composer import ComposerEngine

    engine = ComposerEngine(sample_rate=RATE)

    def mono(theme, page, plan):
        audio = engine.render(Cue(page, page, "", plan, theme=theme),
                              RenderOptions(seconds=10.0, seed=5, sample_rate=RATE)).audio
        return analysis_signal(audio.samples, audio.sample_rate)

    return {name: [mono(theme, page, plan) for page, plan in enumerate(PLANS)]
            for name, theme in (("aki", AKI), ("ben", BEN), ("none", None))}


def found(mono, theme: Theme, plan: Plan) -> bool:
    salience = pitch_salience(mono)
    onsets = pitch_onsets(salience)
    score = motif_score(salience, onsets, theme.motif, plan.mode, plan.tempo)
    return score.z > max(motif_score(salience, onsets, d, plan.mode, plan.tempo).z for d in decoy_motifs(theme.motif))


def test_the_theme_is_found_where_it_is_played_and_not_where_it_is_not(pages):
    assert sum(found(m, AKI, p) for m, p in zip(pages["aki"], PLANS, strict=True)) >= 3
    assert not any(found(m, AKI, p) for m, p in zip(pages["none"], PLANS, strict=True))
    # another character's theme in its place is not Aki's
    assert not any(found(m, AKI, p) for m, p in zip(pages["ben"], PLANS, strict=True))


def test_decoys_share_the_rhythm_and_never_the_contour():
    decoys = decoy_motifs(AKI.motif)
    assert len(decoys) == DECOYS
    shape = [b[2] - a[2] for a, b in zip(AKI.motif, AKI.motif[1:], strict=False)]
    for decoy in decoys:
        assert [(o, d) for o, d, _ in decoy] == [(o, d) for o, d, _ in AKI.motif]
        assert [b[2] - a[2] for a, b in zip(decoy, decoy[1:], strict=False)] != shape
    # the scale steps become semitones the way the composer plays them
    assert motif_semitones(AKI.motif, "major") == [0, -3, -5, -3, 0]
    assert motif_semitones(AKI.motif, "minor") == [0, -4, -5, -4, 0]


def test_a_run_reports_recall_false_alarms_and_the_scenes_a_theme_recurs_in(pages):
    # four pages in two scenes: Aki themed on pages 0 and 3 (one in each scene), Ben on page 2
    themes = (AKI, None, BEN, AKI)
    monos = [pages["aki"][0], pages["none"][1], pages["ben"][2], pages["aki"][3]]
    sheet = CaptionSheet(tuple(Cue(k, k // 2, "", plan, theme=theme)
                               for k, (plan, theme) in enumerate(zip(PLANS, themes, strict=True))))
    result = recurrence([0, 1, 2, 3], [0, 0, 1, 1], monos, sheet, "the test plan")
    aki, ben = result.characters
    assert (result.themed_checks, result.other_checks) == (3, 5)
    found = {(c.page, c.character) for c in result.checks if c.found}
    assert aki.themed_pages == 2 and aki.found_pages == tuple(p for p in (0, 3) if (p, "a") in found)
    assert aki.scenes_found == tuple(sorted({p // 2 for p in aki.found_pages}))
    assert aki.recurs == (len(aki.scenes_found) == 2) and aki.recurs  # found on pages 0 and 3, as played
    assert ben.themed_pages == 1 and not ben.recurs  # themed in one scene only: cannot recur
    assert result.recall == round(sum(c.found for c in result.checks if c.themed) / 3, 4)
    alarms = [c for c in result.checks if not c.themed and c.found]
    assert result.false_alarm_rate == round(len(alarms) / 5, 4) and len(alarms) <= 1
    assert all(c.character != "a" for c in alarms)  # Aki's theme is never found where it is not played
    none = recurrence([0], [0], monos[:1], CaptionSheet((Cue(0, 0, "", PLANS[0]),)), "a plan without themes")
    assert not none.available and "no character has a theme in a plan without themes" in none.note


def test_a_page_whose_motif_was_edited_is_asked_for_the_motif_it_plays(pages):
    # Aki's theme edited on page 3 (a person rewrote the steps there): page 1 still plays the first motif
    from dataclasses import replace

    from m2m.music.base import RenderOptions
    from m2m.music.composer import ComposerEngine

    edited = replace(AKI, motif=((0.0, 1.0, 0), (1.0, 0.5, -1), (1.5, 0.5, 1), (2.0, 1.5, 3), (3.5, 0.5, 0)))
    audio = ComposerEngine(sample_rate=RATE).render(Cue(3, 3, "", PLANS[3], theme=edited),
                                                    RenderOptions(seconds=10.0, seed=5, sample_rate=RATE)).audio
    edited_page = analysis_signal(audio.samples, audio.sample_rate)
    assert found(edited_page, edited, PLANS[3]) and not found(edited_page, AKI, PLANS[3])
    sheet = CaptionSheet((Cue(1, 0, "", PLANS[1], theme=AKI), Cue(3, 1, "", PLANS[3], theme=edited)))
    result = recurrence([1, 3], [0, 1], [pages["aki"][1], edited_page], sheet, "the edited plan")
    # page 1 plays the first motif, not the edited one: asking it for the edited motif would miss it
    assert found(pages["aki"][1], AKI, PLANS[1]) and not found(pages["aki"][1], edited, PLANS[1])
    assert {c.page: c.found for c in result.checks} == {1: True, 3: True}
    assert result.characters[0].recurs
