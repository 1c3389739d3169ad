"""Is one condition's music smoother at the page turns than another's, or are the two alike?

The conditions of one book turn at the same pages, so their joins pair up: the m2m run's join into
page k against the baseline's join into page k. Over the joins both played seamless (a deliberate
break, a cut or a silence, is meant to be heard and is left out of both), each measure's paired
differences are tested with the Wilcoxon signed-rank test (two-sided; scipy's exact distribution
where it can use it, its normal approximation where joins tie or do not differ). Why: a book has a dozen joins, and a mean that differs by a few hundredths of an LU, well
inside the music's own movement from one 3 s to the next, says nothing by itself; the p-value says
whether the difference stands out of the joins' spread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from m2m.evaluation.sources import REFERENCE_CONDITION
from m2m.evaluation.transitions import Join

REFERENCE = REFERENCE_CONDITION  # the condition every other one is paired with: the one judged by its own plan
# the measures paired: (JSON name, what the table calls it, the join's value)
MEASURES: tuple[tuple[str, str, Callable[[Join], float]], ...] = (
    ("loudness_jump_lu", "loudness jump LU", lambda j: j.loudness_jump_lu),
    ("spectral_distance_db", "spectral distance dB", lambda j: j.spectral_distance_db),
)


@dataclass(frozen=True)
class PairedJoins:
    """One measure over the ``joins`` seamless joins two runs of ``book_id`` share: the reference
    run's (m2m's) mean, the ``other`` condition's, and the Wilcoxon signed-rank test's two-sided
    ``p_value`` of their paired differences (None with no joins to pair; 1.0 when the two are equal
    at every join). ``note`` says why there is no figure."""

    book_id: str
    other: str
    measure: str
    joins: int
    mean: float | None
    other_mean: float | None
    p_value: float | None
    note: str = ""


def signed_rank_p(a: Sequence[float], b: Sequence[float]) -> float:
    """The two-sided Wilcoxon signed-rank p of the paired ``a - b`` (1.0 when they never differ)."""
    from scipy.stats import wilcoxon  # imported here: scipy is slow to import and only this needs it

    if all(x == y for x, y in zip(a, b, strict=True)):
        return 1.0
    return float(wilcoxon(a, b).pvalue)


def pair_measure(book_id: str, other: str, reference: Sequence[Join], joins: Sequence[Join], measure: str,
                 value: Callable[[Join], float]) -> PairedJoins:
    """``measure`` over the joins of two runs of one book that both played seamless, paired by page."""
    theirs = {(j.page_before, j.page_after): j for j in joins}
    pairs = [(mine, theirs[key]) for mine in reference
             if (key := (mine.page_before, mine.page_after)) in theirs and not mine.deliberate and not theirs[key].deliberate]
    if not pairs:
        return PairedJoins(book_id, other, measure, 0, None, None, None, "no seamless join both runs share")
    a, b = [value(x) for x, _ in pairs], [value(y) for _, y in pairs]
    return PairedJoins(book_id, other, measure, len(pairs), round(sum(a) / len(a), 3), round(sum(b) / len(b), 3),
                       signed_rank_p(a, b))


def paired_with_reference(runs: Sequence[tuple[str, str, Sequence[Join]]]) -> tuple[PairedJoins, ...]:
    """Every run of a book that has an m2m run, paired with it on each measure; ``runs`` are
    (book id, condition, the run's joins)."""
    references = {book: joins for book, condition, joins in runs if condition == REFERENCE}
    return tuple(pair_measure(book, condition, references[book], joins, name, value)
                 for book, condition, joins in runs if condition != REFERENCE and book in references
                 for name, _, value in MEASURES)
