"""The director: who writes scene boundaries, directives and captions (stages 1, 3, 4 and the baseline).

Two directors share one interface: ``openai`` (gpt-4o or any OpenAI-compatible server, see
:mod:`m2m.llm`) and ``offline``, the embedded rule-based director that needs no key. The stage
functions in :mod:`m2m.scenes`, :mod:`m2m.directives` and :mod:`m2m.baseline` take either.
"""

from __future__ import annotations

from typing import Any, Protocol

from m2m.baseline import PageDirector
from m2m.directives import MusicDirector
from m2m.llm import LLMError, LLMSettings
from m2m.scenes import SceneDirector
from m2m.transitions import TransitionDirector

DIRECTORS: tuple[str, ...] = ("offline", "openai")


class Director(SceneDirector, MusicDirector, TransitionDirector, PageDirector, Protocol):
    """A director writes every stage's text: what stage 1 (:class:`m2m.scenes.SceneDirector`),
    stages 3 and 4 (:class:`m2m.directives.MusicDirector`), the transitions at scene changes
    (:class:`m2m.transitions.TransitionDirector`) and the baseline
    (:class:`m2m.baseline.PageDirector`) ask, and what the pipeline hashes."""

    def fingerprint(self, stage: str) -> dict[str, Any]:
        """What ``stage``'s output depends on besides its data (backend, settings, prompt hash), for
        the run folder's input hash. ``stage`` is a run-file stage or a prompt step name."""
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
