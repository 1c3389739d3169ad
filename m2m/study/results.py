"""What a study's analysis finds: the result records, apart from the statistics that compute them.

``analysis`` fills these from the ratings and ``report`` writes them out; both import them from
here, so the report needs none of the statistics and neither module imports the other. They are
plain frozen dataclasses, and this module needs nothing heavier than the questionnaire.
"""

from __future__ import annotations

from dataclasses import dataclass

from .questionnaire import CRITERIA

# Listening time below which a rating is counted as possibly rushed in the report. A version is four
# pages with a looping clip: under ten seconds nobody has read the pages and heard the music change.
RUSHED_BELOW_S = 10.0


def plural(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless n is 1 ("1 participant", "3 participants")."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


@dataclass(frozen=True)
class ConditionSummary:
    """Mean of participant means for one criterion and condition, with a t-based CI."""

    criterion: str
    condition: str
    n: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class AnovaResult:
    """Repeated-measures ANOVA for one criterion: F(df_num, df_den), p, partial eta squared.

    When the test is undefined, F, p and eta are NaN and ``note`` says why in plain words."""

    criterion: str
    f_value: float
    df_num: float
    df_den: float
    p_value: float
    partial_eta_squared: float
    note: str = ""


@dataclass(frozen=True)
class PairwiseTest:
    """Paired t-test of condition_a against condition_b; mean_difference = a - b over participant means.

    When the test is undefined, t and both p are NaN, ``significant`` is False and ``note`` says why."""

    criterion: str
    condition_a: str
    condition_b: str
    mean_difference: float
    t: float
    df: int
    p_value: float
    p_holm: float
    significant: bool
    note: str = ""


@dataclass(frozen=True)
class ScreenedOut:
    participant: str
    reason: str


@dataclass(frozen=True)
class Cohort:
    """Every participant in exactly one group, so the report accounts for all of them.

    ``rule`` is the screening rule applied (None: everyone included); ``registered`` is None when the
    analysis was given ratings only, without the participants' screening answers."""

    rule: str | None
    registered: int | None
    screened_out: tuple[ScreenedOut, ...]
    not_started: tuple[str, ...]
    incomplete: tuple[str, ...]
    complete: tuple[str, ...]
    ratings: int

    def status(self) -> str:
        """One line for the researcher: how many registered, analysed, left out and screened out."""
        total = self.registered if self.registered is not None else (
            len(self.not_started) + len(self.incomplete) + len(self.complete))
        counted = "registered" if self.registered is not None else "in the ratings"
        if self.rule is not None:
            screening = f"{len(self.screened_out)} screened out by the paper's rule"
        elif self.registered is not None:
            screening = "none screened out (every participant included)"
        else:
            screening = "screening not applied (no screening answers)"
        left_out = len(self.incomplete) + len(self.not_started)
        return (f"{plural(total, 'participant')} {counted}: {len(self.complete)} complete "
                f"({plural(self.ratings, 'rating')} analysed), {left_out} left out ({len(self.incomplete)} "
                f"incomplete, {len(self.not_started)} with no ratings), {screening}.")


@dataclass(frozen=True)
class ListeningSummary:
    """How long the analysed ratings of one condition were listened to before rating.

    ``recorded`` counts ratings with a listening time (older ones have none); ``median_s`` is NaN and
    ``rushed`` 0 when none has."""

    condition: str
    ratings: int
    recorded: int
    median_s: float
    rushed: int


@dataclass(frozen=True)
class StudyAnalysis:
    conditions: tuple[str, ...]
    participants: tuple[str, ...]
    dropped: tuple[str, ...]
    n_stimuli: int
    n_ratings: int
    alpha: float
    summaries: tuple[ConditionSummary, ...]
    anovas: tuple[AnovaResult, ...]
    posthoc: tuple[PairwiseTest, ...]
    cohort: Cohort
    listening: tuple[ListeningSummary, ...] = ()

    def summary(self, criterion: str, condition: str) -> ConditionSummary:
        for s in self.summaries:
            if s.criterion == criterion and s.condition == condition:
                return s
        raise ValueError(f"no summary for criterion {criterion!r} and condition {condition!r}")

    def anova(self, criterion: str) -> AnovaResult:
        for a in self.anovas:
            if a.criterion == criterion:
                return a
        raise ValueError(f"criterion must be one of {list(CRITERIA)}, got {criterion!r}")
