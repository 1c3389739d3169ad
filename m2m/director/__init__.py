"""The director: who writes scene boundaries, directives and captions (stages 1, 3, 4 and the baseline).

Two directors share one interface: ``openai`` (gpt-4o or any OpenAI-compatible server, see
:mod:`m2m.llm`) and ``offline``, the embedded rule-based director that needs no key. The stage
functions in :mod:`m2m.scenes`, :mod:`m2m.directives` and :mod:`m2m.baseline` take either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from m2m.llm import LLMError, LLMSettings, Meter

if TYPE_CHECKING:
    from m2m.baseline import PageDescription
    from m2m.book import Book, Page
    from m2m.cues import Cue
    from m2m.emotions import EmotionReport
    from m2m.scenes import Scene, SceneSpan

DIRECTORS: tuple[str, ...] = ("offline", "openai")


class Director(Protocol):
    """What the stage functions ask of a director. Every method adds its calls to ``meter``."""

    @property
    def backend(self) -> str:
        """What run files record: "offline" or "openai:<model>"."""
        ...

    @property
    def window_lines(self) -> int | None:
        """Most dialogue lines one boundary request can take (None: the whole book at once)."""
        ...

    def settings_record(self) -> dict[str, Any]:
        """Settings safe to write to a run file (never a key)."""
        ...

    def prompt_name(self, step: str) -> str | None:
        """The prompt or data file behind ``step``, relative to the repository ("prompts/...")."""
        ...

    def prompt_hash(self, step: str) -> str | None:
        ...

    def fingerprint(self, stage: str) -> dict[str, Any]:
        """What ``stage``'s output depends on besides its data (backend, settings, prompt hash), for
        the run folder's input hash. ``stage`` is a run-file stage or a prompt step name."""
        ...

    def scene_boundaries(self, book: Book, pages: Sequence[Page], meter: Meter) -> list[SceneSpan]:
        """Scenes covering exactly ``pages`` (consecutive pages of the book), in order."""
        ...

    def scene_directive(self, book: Book, scene: Scene, emotions: EmotionReport | None, meter: Meter) -> str:
        ...

    def page_captions(self, book: Book, scene: Scene, emotions: EmotionReport | None, directive: str,
                      meter: Meter) -> list[Cue]:
        """One cue for every page of ``scene``."""
        ...

    def describe_page(self, book: Book, page: Page, meter: Meter) -> PageDescription:
        ...

    def caption_page(self, book: Book, page: Page, description: PageDescription, meter: Meter) -> Cue:
        ...


def available_directors() -> tuple[str, ...]:
    return DIRECTORS


def load_director(name: str, settings: LLMSettings | None = None) -> Director:
    """The director called ``name``. "openai" needs a key (settings or ``OPENAI_API_KEY``) unless
    ``base_url`` points at a local server; without one this is an :class:`LLMError` saying so."""
    if name == "offline":
        from m2m.director.offline import OfflineDirector

        return OfflineDirector()
    if name == "openai":
        from m2m.director.llm_director import LLMDirector

        return LLMDirector(settings if settings is not None else LLMSettings.from_env())
    raise ValueError(f"director: {name!r} is not one of {', '.join(DIRECTORS)}")


def fallback_reason(name: str, settings: LLMSettings | None = None) -> str | None:
    """Why ``name`` can't run here (a sentence for ``Provenance.fallback``), or None when it can.

    The pipeline or the UI decides whether to fall back to "offline"; this only says why it would.
    """
    if name not in DIRECTORS:
        return f"director {name!r} is unknown (valid: {', '.join(DIRECTORS)}); the offline director ran instead"
    if name == "openai":
        settings = settings if settings is not None else LLMSettings.from_env()
        if settings.api_key is None and settings.needs_key:
            return ("the openai director needs an API key (OPENAI_API_KEY or the settings field) and none was "
                    "given; the offline director ran instead")
    return None


def load_director_or_offline(name: str, settings: LLMSettings | None = None) -> tuple[Director, str | None]:
    """The director asked for, or the offline one with the reason it stood in (for Provenance.fallback)."""
    reason = fallback_reason(name, settings)
    if reason is not None:
        return load_director("offline"), reason
    try:
        return load_director(name, settings), None
    except LLMError as e:
        return load_director("offline"), f"{e}; the offline director ran instead"


__all__ = ["DIRECTORS", "Director", "available_directors", "fallback_reason", "load_director",
           "load_director_or_offline"]
