"""The ``openai`` director: gpt-4o (or any OpenAI-compatible server) writes every step.

Each step has a prompt file in ``prompts/`` and an answer model below; the answer models are the JSON
schemas sent as ``response_format`` and the validators of what comes back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from m2m.baseline import PageDescription
from m2m.book import Book, Page
from m2m.cues import (
    KEYS,
    MAX_SECONDS,
    PLAN_INSTRUMENTS,
    TEMPO_RANGE,
    Cue,
    Plan,
    Transition,
    TransitionKind,
    canonical_instrument,
    check_transition,
)
from m2m.directives import check_scene_cues, emotion_sentence
from m2m.emotions import EmotionReport
from m2m.llm import LLMClient, LLMSettings, Meter
from m2m.prompts import Prompt, image_data_url, load_prompt, quote
from m2m.scenes import Scene, SceneSpan, check_spans, transcript

STEPS = ("scene_boundaries", "scene_directive", "page_captions", "scene_transition", "baseline_describe",
         "baseline_caption")
_STAGE_STEPS = {"scenes": "scene_boundaries", "directives": "scene_directive", "captions": "page_captions",
                "transitions": "scene_transition", "descriptions": "baseline_describe"}
"""Run-file stage names -> the prompt step behind them (fingerprint accepts either)."""

# -- answer models (JSON schemas) ---------------------------------------------------------------


class SceneAnswer(BaseModel):
    first_page: int
    last_page: int
    summary: str


class BoundariesAnswer(BaseModel):
    scenes: list[SceneAnswer]


class DirectiveAnswer(BaseModel):
    directive: str = Field(min_length=1)


Instrument = Annotated[str, Field(json_schema_extra={"enum": list(PLAN_INSTRUMENTS)})]


class PlanAnswer(BaseModel):
    tempo: int
    key: Literal[KEYS]  # type: ignore[valid-type]
    mode: Literal["major", "minor"]
    instruments: list[Instrument]
    energy: float
    mood: str

    @field_validator("tempo")
    @classmethod
    def _tempo(cls, value: int) -> int:
        low, high = TEMPO_RANGE
        if not low <= value <= high:
            raise ValueError(f"tempo {value} BPM is outside {low}-{high}")
        return value

    @field_validator("energy")
    @classmethod
    def _energy(cls, value: float) -> float:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"energy {value} is outside 0-1")
        return value

    @field_validator("instruments")
    @classmethod
    def _instruments(cls, value: list[str]) -> list[str]:
        if not 1 <= len(value) <= 6:
            raise ValueError(f"give one to four instruments, not {len(value)}")
        return [canonical_instrument(name) for name in value]

    def plan(self) -> Plan:
        return Plan(self.tempo, self.key, self.mode, tuple(self.instruments), float(self.energy), self.mood)


class PageCaptionAnswer(PlanAnswer):
    page: int
    caption: str = Field(min_length=1)


class PageCaptionsAnswer(BaseModel):
    pages: list[PageCaptionAnswer]


class DescriptionAnswer(BaseModel):
    description: str = Field(min_length=1)


class TransitionAnswer(BaseModel):
    kind: TransitionKind
    seconds: float = Field(ge=0.0, le=MAX_SECONDS)
    why: str = Field(min_length=1)


class CaptionAnswer(PlanAnswer):
    caption: str = Field(min_length=1)


# -- the director ---------------------------------------------------------------------------------


class LLMDirector:
    """Stages 1, 3, 4 and the baseline through an OpenAI-compatible chat model."""

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        self._client = LLMClient(settings)  # raises LLMError when a key is needed and missing
        self._prompts: dict[str, Prompt] = {step: load_prompt(f"{step}.txt", settings.prompts_dir) for step in STEPS}

    def __repr__(self) -> str:
        return f"LLMDirector(model={self.settings.model!r}, host={self.settings.host!r})"

    @property
    def backend(self) -> str:
        return f"openai:{self.settings.model}"

    @property
    def window_lines(self) -> int | None:
        return self.settings.window_lines

    def settings_record(self) -> dict[str, Any]:
        return self.settings.public()

    def prompt_name(self, step: str) -> str | None:
        step = _STAGE_STEPS.get(step, step)
        return f"prompts/{step}.txt" if step in self._prompts else None

    def prompt_hash(self, step: str) -> str | None:
        prompt = self._prompts.get(_STAGE_STEPS.get(step, step))
        return prompt.hash if prompt else None

    def fingerprint(self, stage: str) -> dict[str, Any]:
        """What a stage's output depends on besides its data: backend, settings, prompt hash."""
        return {"backend": self.backend, "settings": self.settings_record(), "prompt_hash": self.prompt_hash(stage)}

    # stage 1
    def scene_boundaries(self, book: Book, pages: Sequence[Page], meter: Meter) -> list[SceneSpan]:
        indexes = [p.index for p in pages]
        prompt = self._prompts["scene_boundaries"]
        user = prompt.render(first_page=str(indexes[0]), last_page=str(indexes[-1]), title=_name(book.title),
                             characters=_cast(book, pages), transcript=transcript(book, pages))

        def check(answer: BoundariesAnswer) -> None:
            check_spans(_spans(answer), indexes)

        answer = self._client.ask("scene_boundaries", prompt, user, BoundariesAnswer, meter, check=check)
        return _spans(answer)

    # stage 3
    def scene_directive(self, book: Book, scene: Scene, emotions: EmotionReport | None, meter: Meter) -> str:
        pages = _scene_pages(book, scene)
        prompt = self._prompts["scene_directive"]
        user = prompt.render(scene=str(scene.index), title=_name(book.title), first_page=str(scene.pages[0]),
                             last_page=str(scene.pages[-1]), cast=_cast(book, pages),
                             emotions=emotion_sentence(emotions, scene=scene.index),
                             summary=f"Summary: {quote(scene.summary)}" if scene.summary else "",
                             transcript=transcript(book, pages))
        answer = self._client.ask("scene_directive", prompt, user, DirectiveAnswer, meter)
        return answer.directive.strip()

    # stage 4
    def page_captions(self, book: Book, scene: Scene, emotions: EmotionReport | None, directive: str,
                      meter: Meter) -> list[Cue]:
        pages = _scene_pages(book, scene)
        prompt = self._prompts["page_captions"]
        page_lines = "\n".join(f"PAGE {p.index}: {emotion_sentence(emotions, page=p.index)}" for p in pages)
        user = prompt.render(pages=", ".join(str(i) for i in scene.pages), title=_name(book.title),
                             transcript=transcript(book, pages),
                             emotions=emotion_sentence(emotions, scene=scene.index),
                             page_emotions=page_lines, directive=quote(directive))

        def cues(answer: PageCaptionsAnswer) -> list[Cue]:
            return [Cue(item.page, scene.index, item.caption, item.plan()) for item in answer.pages]

        def check(answer: PageCaptionsAnswer) -> None:
            check_scene_cues(scene, cues(answer))

        answer = self._client.ask("page_captions", prompt, user, PageCaptionsAnswer, meter, check=check)
        return cues(answer)

    # stage 4b
    def scene_transition(self, book: Book, before: Scene, after: Scene, last: Cue, first: Cue,
                         emotions: EmotionReport | None, meter: Meter) -> Transition:
        prompt = self._prompts["scene_transition"]
        page = book.pages[first.page]
        user = prompt.render(before=str(before.index), after=str(after.index), title=_name(book.title),
                             last_page=str(last.page), first_page=str(first.page),
                             last_caption=quote(last.caption), first_caption=quote(first.caption),
                             last_plan=_plan_words(last.plan), first_plan=_plan_words(first.plan),
                             first_emotions=emotion_sentence(emotions, page=first.page),
                             transcript=transcript(book, [page]))

        def transition(answer: TransitionAnswer) -> Transition:
            # a cut has no length, whatever number came with it
            seconds = 0.0 if answer.kind == "cut" else answer.seconds
            return Transition(after.index, answer.kind, seconds, answer.why.strip())

        def check(answer: TransitionAnswer) -> None:
            check_transition(transition(answer), after.index)

        return transition(self._client.ask("scene_transition", prompt, user, TransitionAnswer, meter, check=check))

    # baseline
    def describe_page(self, book: Book, page: Page, meter: Meter) -> PageDescription:
        prompt = self._prompts["baseline_describe"]
        user = prompt.render(page=str(page.index), title=_name(book.title), transcript=transcript(book, [page]))
        image = image_data_url(page.image, self.settings.image_max_side)
        answer = self._client.ask("baseline_describe", prompt, user, DescriptionAnswer, meter, image_url=image)
        return PageDescription(page.index, answer.description.strip())

    def caption_page(self, book: Book, page: Page, description: PageDescription, meter: Meter) -> Cue:
        prompt = self._prompts["baseline_caption"]
        user = prompt.render(page=str(page.index), description=quote(description.text))
        answer = self._client.ask("baseline_caption", prompt, user, CaptionAnswer, meter)
        return Cue(page.index, page.index, answer.caption, answer.plan())


def _plan_words(plan: Plan) -> str:
    return f"{plan.key} {plan.mode}, {plan.tempo} BPM, energy {plan.energy:.2f}, {plan.mood or 'no mood given'}"


def _spans(answer: BoundariesAnswer) -> list[SceneSpan]:
    return [SceneSpan(s.first_page, s.last_page, s.summary.strip()) for s in answer.scenes]


def _scene_pages(book: Book, scene: Scene) -> list[Page]:
    wanted = set(scene.pages)
    return [p for p in book.pages if p.index in wanted]


def _cast(book: Book, pages: Sequence[Page]) -> str:
    names = dict.fromkeys(book.character_name(t.speaker) for p in pages for t in p.texts if t.speaker)
    return ", ".join(quote(n) for n in names) or "unknown"


def _name(title: str) -> str:
    """A title inside quotes in the template: keep it on one line and without quote marks."""
    return " ".join(title.replace('"', "'").split())
