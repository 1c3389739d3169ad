"""The LLM client: structured JSON answers from OpenAI or any OpenAI-compatible server.

Every step sends a system prompt (a file in ``prompts/``) and a user message holding the data, asks
for JSON against a schema made from a pydantic model, and validates the answer. An answer that fails
validation is sent back once with the error; a second failure is an :class:`LLMError` naming the step.
Transport faults (429, 5xx, timeouts, dropped connections) are retried with exponential backoff.
Answers are cached on disk, keyed by model, server, prompt hash, schema and input, so reopening a
book costs no calls.

What a step sends (prompt files, quoted book text, page images) is :mod:`m2m.prompts`; its names
are importable from here too.

The API key travels in :class:`LLMSettings` (one per call or per session, never a shared global
client) as a pydantic ``SecretStr``: it prints, serialises and logs as ``**********``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from pydantic import BaseModel, SecretStr, ValidationError

from m2m.jsonio import write_json_atomic
from m2m.prompts import PROMPTS_DIR, Prompt, image_data_url, load_prompt, quote

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

DEFAULT_MODEL = "gpt-4o"
DEFAULT_CACHE_DIR = Path("runs") / ".llm-cache"
OPENAI_HOST = "api.openai.com"


class LLMError(ValueError):
    """An LLM step that could not produce a valid answer; the message names the step and the cause."""


@dataclass(frozen=True)
class LLMSettings:
    """How to reach the model, passed per call.

    ``api_key`` is stored as a ``SecretStr`` (a plain str is wrapped on construction) so it never shows in
    a repr, a log line or a JSON dump. ``timeout_s`` is per request in seconds; ``max_retries`` counts
    retries after the first attempt for transport faults; ``backoff_s`` is the first wait (doubling).
    ``cache_dir`` None turns the answer cache off. ``window_lines`` caps the dialogue lines of one
    scene-boundary request (longer books are split into overlapping windows).
    """

    model: str = DEFAULT_MODEL
    base_url: str | None = None
    api_key: SecretStr | None = field(default=None, repr=False)
    timeout_s: float = 60.0
    max_retries: int = 3
    backoff_s: float = 1.0
    cache_dir: Path | None = DEFAULT_CACHE_DIR
    cache_max_entries: int = 20_000  # least recently used answers beyond this are removed (a few KB each)
    temperature: float | None = 0.2  # None: not sent (reasoning models accept only their default)
    image_max_side: int = 1024
    window_lines: int = 240
    prompts_dir: Path = PROMPTS_DIR

    def __post_init__(self) -> None:
        if isinstance(self.api_key, str):
            object.__setattr__(self, "api_key", SecretStr(self.api_key) if self.api_key.strip() else None)
        if not self.model.strip():
            raise ValueError(f"model: {self.model!r} is empty")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s: {self.timeout_s} must be positive")
        if self.cache_max_entries < 1:
            raise ValueError(f"cache_max_entries: {self.cache_max_entries} must be 1 or more")
        if self.max_retries < 0:
            raise ValueError(f"max_retries: {self.max_retries} must be 0 or more")
        if self.window_lines < 20:
            raise ValueError(f"window_lines: {self.window_lines} is too small (20 or more)")
        if self.base_url is not None and urlparse(self.base_url).scheme not in {"http", "https"}:
            raise ValueError(f"base_url: {self.base_url!r} is not an http(s) URL")
        if self.cache_dir is not None and not isinstance(self.cache_dir, Path):
            object.__setattr__(self, "cache_dir", Path(self.cache_dir))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> LLMSettings:
        """Settings from ``OPENAI_API_KEY``, ``OPENAI_BASE_URL`` and ``OPENAI_MODEL`` (overrides win)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {
            "model": env.get("OPENAI_MODEL") or DEFAULT_MODEL,
            "base_url": env.get("OPENAI_BASE_URL") or None,
            "api_key": env.get("OPENAI_API_KEY") or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def host(self) -> str:
        """The server's host (and port): what run files may record about where answers came from."""
        if self.base_url is None:
            return OPENAI_HOST
        return urlparse(self.base_url).netloc or self.base_url

    @property
    def needs_key(self) -> bool:
        """OpenAI itself needs a key; a local compatible server (vLLM, Ollama, llama.cpp) usually doesn't."""
        return self.host == OPENAI_HOST

    def public(self) -> dict[str, Any]:
        """The settings a run file records: never the key, and only the host of the base URL."""
        return {"model": self.model, "host": self.host, "temperature": self.temperature,
                "timeout_s": self.timeout_s, "max_retries": self.max_retries,
                "window_lines": self.window_lines}


@dataclass
class Meter:
    """Calls and tokens spent by one stage (a fresh meter per stage call, never shared across runs)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: int = 0
    without_temperature: int = 0  # calls sent without a temperature (the model refused one)

    def as_usage(self) -> dict[str, int]:
        usage = {"calls": self.calls, "prompt_tokens": self.prompt_tokens,
                 "completion_tokens": self.completion_tokens, "cached": self.cached}
        if self.without_temperature:
            usage["without_temperature"] = self.without_temperature
        return usage


def strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema in the form OpenAI's strict structured outputs accept.

    Strict mode wants every object closed (additionalProperties false) with every property required,
    and no defaults; numeric ranges are checked by pydantic after the answer arrives instead.
    """
    schema = model.model_json_schema()

    def fix(node: Any) -> None:
        if isinstance(node, dict):
            node.pop("default", None)
            for bound in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength",
                          "maxLength", "minItems", "maxItems"):
                node.pop(bound, None)
            if node.get("type") == "object" and "properties" in node:
                node["additionalProperties"] = False
                node["required"] = list(node["properties"])
            for value in node.values():
                fix(value)
        elif isinstance(node, list):
            for value in node:
                fix(value)

    fix(schema)
    return schema


Check = Callable[[Any], None]
"""A semantic check on a parsed answer (pages in range...): raises ValueError saying what is wrong."""

_RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}


class LLMClient:
    """One client per settings (per session): the OpenAI SDK client is built for this key only."""

    def __init__(self, settings: LLMSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        import openai  # imported here so the offline app never needs the SDK at import time

        if settings.api_key is None and settings.needs_key:
            raise LLMError("openai: no API key; set OPENAI_API_KEY or enter a key in the settings "
                           "(or set OPENAI_BASE_URL to a local OpenAI-compatible server)")
        self.settings = settings
        self._openai = openai
        self._sleep = sleep
        key = settings.api_key.get_secret_value() if settings.api_key is not None else "no-key-needed"
        # The SDK's own retries are off: ours count every attempt and scrub the key from errors.
        self._client = openai.OpenAI(api_key=key, base_url=settings.base_url, timeout=settings.timeout_s,
                                     max_retries=0)
        # Reasoning models (o1, o3, gpt-5 ...) refuse any temperature but their own; after the first
        # such refusal this client stops sending one, and each run file counts the calls without it.
        self._send_temperature = settings.temperature is not None

    def __repr__(self) -> str:
        return f"LLMClient(model={self.settings.model!r}, host={self.settings.host!r})"

    # -- the one public call ---------------------------------------------------------------------

    def ask(self, step: str, prompt: Prompt, user_text: str, answer: type[M], meter: Meter, *,
            image_url: str | None = None, check: Check | None = None) -> M:
        """Send one step, return its validated answer.

        ``user_text`` is the filled user template; ``image_url`` an optional data: URL sent as an
        image part of the same user message; ``check`` a semantic check run after schema validation.
        """
        content: Any = user_text
        if image_url is not None:
            content = [{"type": "text", "text": user_text},
                       {"type": "image_url", "image_url": {"url": image_url, "detail": "high"}}]
        messages: list[dict[str, Any]] = [{"role": "system", "content": prompt.system},
                                          {"role": "user", "content": content}]
        schema = strict_schema(answer)
        cache_path = self._cache_path(step, prompt, schema, messages)
        cached = self._read_cache(cache_path, answer, check)
        if cached is not None:
            meter.cached += 1
            return cached
        last_error = ""
        for attempt in (1, 2):
            raw = self._complete(step, messages, schema, meter)
            try:
                parsed = _parse(raw, answer, check)
            except ValueError as e:
                last_error = str(e)
                log.info("%s: answer %d failed validation: %s", step, attempt, last_error)
                # Send the bad answer back with what was wrong, once.
                messages = [*messages, {"role": "assistant", "content": raw},
                            {"role": "user", "content": "Your answer did not pass validation: "
                             f"{last_error}\nPlease answer again with JSON that fits the schema."}]
                continue
            self._write_cache(cache_path, parsed)
            return parsed
        raise LLMError(f"{step}: the model's answer failed validation twice; last problem: {last_error}")

    # -- transport -------------------------------------------------------------------------------

    def _complete(self, step: str, messages: Sequence[dict[str, Any]], schema: dict[str, Any],
                  meter: Meter) -> str:
        openai = self._openai
        attempts = self.settings.max_retries + 1
        failure = LLMError(f"{step}: no request was made")
        cause: Exception | None = None
        attempt = 0
        while attempt < attempts:
            attempt += 1
            meter.calls += 1
            extra: dict[str, Any] = {"temperature": self.settings.temperature} if self._send_temperature else {}
            if not self._send_temperature:
                meter.without_temperature += 1
            try:
                response = self._client.chat.completions.create(
                    model=self.settings.model,
                    messages=list(messages),  # type: ignore[arg-type]
                    response_format={"type": "json_schema",
                                     "json_schema": {"name": step, "schema": schema, "strict": True}},
                    timeout=self.settings.timeout_s,
                    **extra,
                )
            except (openai.APITimeoutError, openai.APIConnectionError, openai.APIStatusError) as e:
                if extra and isinstance(e, openai.BadRequestError) and getattr(e, "param", None) == "temperature":
                    log.warning("%s: %s refuses temperature %s; sending requests without it", step,
                                self.settings.model, self.settings.temperature)
                    self._send_temperature = False
                    attempt -= 1  # not the server's fault: this try does not count as one
                    continue
                status = getattr(e, "status_code", None)
                retryable = status is None or status in _RETRYABLE_STATUS
                reason = self._describe(e)
                if not retryable or attempt == attempts:
                    tried = f" after {attempt} attempts" if attempt > 1 else ""
                    failure = LLMError(self._scrub(f"{step}: request failed{tried}: {reason}"))
                    # A server that echoes the key must not leak it through the exception chain, so its
                    # exception is dropped; raising outside this block keeps it out of __context__ too.
                    cause = None if self._contains_key(repr(e)) else e
                    break
                wait = self._backoff(attempt, e)
                log.warning("%s: %s; retrying in %.2f s (attempt %d of %d)", step, reason, wait, attempt + 1,
                            attempts)
                self._sleep(wait)
                continue
            usage = getattr(response, "usage", None)
            if usage is not None:
                meter.prompt_tokens += int(usage.prompt_tokens or 0)
                meter.completion_tokens += int(usage.completion_tokens or 0)
            if not response.choices:
                raise LLMError(f"{step}: the server answered with no choices")
            message = response.choices[0].message
            if getattr(message, "refusal", None):
                raise LLMError(f"{step}: the model refused: {self._scrub(message.refusal)}")
            return message.content or ""
        raise failure from cause

    def _backoff(self, attempt: int, error: Exception) -> float:
        """Seconds to wait: the server's Retry-After when it gives one (capped), else doubling from backoff_s."""
        response = getattr(error, "response", None)
        header = response.headers.get("retry-after") if response is not None else None
        try:
            if header is not None:
                return min(float(header), 30.0)
        except ValueError:
            pass  # an HTTP-date Retry-After: fall back to our own schedule
        return self.settings.backoff_s * (2 ** (attempt - 1))

    def _describe(self, error: Exception) -> str:
        openai = self._openai
        if isinstance(error, openai.APITimeoutError):
            return f"timed out after {self.settings.timeout_s:g} s"
        if isinstance(error, openai.APIConnectionError):
            return f"could not connect to {self.settings.host}"
        status = getattr(error, "status_code", "?")
        return f"HTTP {status} from {self.settings.host}: {self._scrub(str(error))[:300]}"

    def _contains_key(self, text: str) -> bool:
        key = self.settings.api_key
        return key is not None and key.get_secret_value() in text

    def _scrub(self, text: str) -> str:
        key = self.settings.api_key
        if key is None:
            return text
        return text.replace(key.get_secret_value(), "**********")

    # -- cache -----------------------------------------------------------------------------------

    def _cache_path(self, step: str, prompt: Prompt, schema: dict[str, Any],
                    messages: Sequence[dict[str, Any]]) -> Path | None:
        if self.settings.cache_dir is None:
            return None
        key = hashlib.sha256(json.dumps(
            {"model": self.settings.model, "host": self.settings.host, "temperature": self.settings.temperature,
             "step": step, "prompt_hash": prompt.hash, "schema": schema, "messages": messages},
            sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
        return self.settings.cache_dir / step / f"{key[:32]}.json"

    def _read_cache(self, path: Path | None, answer: type[M], check: Check | None) -> M | None:
        if path is None or not path.is_file():
            return None
        try:
            parsed = _parse(path.read_text(encoding="utf-8"), answer, check)
            os.utime(path)  # recently used: the last to be pruned
            return parsed
        except (OSError, ValueError) as e:
            log.info("ignoring unusable cache entry %s: %s", path, e)
            return None

    def _write_cache(self, path: Path | None, parsed: BaseModel) -> None:
        if path is None or self.settings.cache_dir is None:
            return
        try:
            write_json_atomic(path, parsed.model_dump(mode="json"))
            prune_cache(self.settings.cache_dir, self.settings.cache_max_entries)
        except OSError as e:
            # A read-only cache costs calls next time, not this answer.
            log.warning("could not write the LLM cache at %s: %s", path, e)


def prune_cache(cache_dir: Path, max_entries: int) -> int:
    """Keep the ``max_entries`` most recently used answers (by modification time, which a cache hit
    refreshes); remove the rest. Returns how many were removed. Listing a full cache takes a few
    milliseconds, small beside the LLM call that preceded the write."""
    entries = list(cache_dir.glob("*/*.json"))
    if len(entries) <= max_entries:
        return 0

    def last_used(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:
            return 0.0  # removed meanwhile by another process

    entries.sort(key=last_used)
    stale = entries[: len(entries) - max_entries]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def _parse(raw: str, answer: type[M], check: Check | None) -> M:
    """Parse and validate an answer; every problem is a ValueError a model can act on."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from e
    try:
        parsed = answer.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
                             for err in e.errors()[:5])
        raise ValueError(f"does not fit the schema: {problems}") from e
    if check is not None:
        check(parsed)
    return parsed


__all__ = ["DEFAULT_CACHE_DIR", "DEFAULT_MODEL", "OPENAI_HOST", "PROMPTS_DIR", "Check", "LLMClient", "LLMError",
           "LLMSettings", "Meter", "Prompt", "image_data_url", "load_prompt", "prune_cache", "quote", "strict_schema"]
