"""The API key never shows: not in logs, run files, the cache, exception messages, reprs or CLI output."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from m2m.cli import main
from m2m.director import load_director
from m2m.jsonio import dumps
from m2m.llm import LLMClient, LLMError
from m2m.pipeline import plan_stages
from m2m.runs import RunFolder

from .conftest import Reply, smart_answer

KEY = "sk-LEAKCANARY-9d8e7f6a5b4c"


def _chain(error: BaseException) -> list[str]:
    """Every message and repr down the exception's cause and context chain."""
    texts: list[str] = []
    seen: BaseException | None = error
    while seen is not None:
        texts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return texts


def test_the_key_never_leaks(book, book_root, tmp_path, fake_openai, llm_settings, caplog, capsys, monkeypatch):
    caplog.set_level(logging.DEBUG)  # the openai SDK and httpx log requests at DEBUG
    settings = replace(llm_settings, api_key=KEY, cache_dir=tmp_path / "cache", max_retries=1, timeout_s=0.3)
    director = load_director("openai", settings)
    seen: list[str] = [repr(settings), str(settings), repr(director), repr(LLMClient(settings)), dumps(settings)]

    # The happy path, both conditions: run files and cache entries are written.
    fake_openai.responder = smart_answer
    plan_stages(book, RunFolder(tmp_path / "runs", book.id, "m2m"), director, emotion_backend="annotations")
    plan_stages(book, RunFolder(tmp_path / "runs", book.id, "baseline"), director)
    assert fake_openai.headers[0]["authorization"] == f"Bearer {KEY}"  # it was sent, to the server only

    # Every failure path, including a server that quotes the key back in its error.
    failures = [[Reply(status=401)], [Reply(status=500), Reply(status=500)], [Reply(status=400, echo_auth=True)],
                [Reply(status=503, echo_auth=True), Reply(status=503, echo_auth=True)],
                [Reply(content="{}", delay_s=1.0), Reply(content="{}", delay_s=1.0)], ["oops", "oops"]]
    fresh = load_director("openai", replace(settings, cache_dir=None))
    for replies in failures:
        fake_openai.reset()
        fake_openai.push(*replies)
        with pytest.raises(LLMError) as caught:
            plan_stages(book, RunFolder(tmp_path / "failed", book.id, "m2m"), fresh, emotion_backend="annotations")
        seen += _chain(caught.value)
    assert any("you sent Bearer **********" in text for text in seen)  # the echo was scrubbed, not just absent

    # The CLI, with the key in the environment.
    fake_openai.reset()
    fake_openai.responder = smart_answer
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    assert main(["plan", str(book_root), "--out", str(tmp_path / "cli"), "--llm", "openai", "--emotions",
                 "annotations"]) == 0
    fake_openai.push(Reply(status=400, echo_auth=True))
    assert main(["eval-scenes", str(book_root), "--llm", "openai"]) == 2
    printed = capsys.readouterr()
    seen += [printed.out, printed.err]

    seen.append(caplog.text)
    seen += [p.read_text(encoding="utf-8") for p in tmp_path.rglob("*.json")]
    assert len([p for p in tmp_path.rglob("*.json")]) > 10
    leaks = [text[:200] for text in seen if KEY in text]
    assert not leaks, leaks
