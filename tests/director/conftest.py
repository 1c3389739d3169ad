"""Fixtures for the director tests: a small Manga109-layout book and a local OpenAI-compatible server.

The book has 12 pages in 3 scenes whose boundaries are written to ``ground_truth/Fixture.json``:
a sunny picnic (pages 0-3), a night chase (4-7, opened by 「その夜」) and a morning farewell (8-11,
opened by 「翌朝」). The server speaks the real chat.completions wire format through uvicorn, so the
real ``openai`` SDK is what the tests drive.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from PIL import Image, ImageDraw

W, H = 300, 420

CHARACTERS = {"c01": "Aki", "c02": "Ben", "c03": "Chika", "c04": "Dai"}

# (page, speaker id or None, text, gloss)
DIALOGUE: list[tuple[int, str | None, str, str]] = [
    (0, "c01", "いい天気だね！ピクニック日和！", "What nice weather! Perfect for a picnic!"),
    (0, "c02", "お弁当、作ってきたよ。", "I made lunch."),
    (0, "c01", "わーい、ありがとう！", "Yay, thank you!"),
    (1, "c02", "この卵焼き、自信作なんだ。", "This omelette is my masterpiece."),
    (1, "c01", "おいしい！最高！", "Delicious! The best!"),
    (1, "c02", "よかった、嬉しいな。", "Good, I'm glad."),
    (2, "c01", "ねえ、あの雲、うさぎみたい。", "Hey, that cloud looks like a rabbit."),
    (2, "c02", "ほんとだ。あはは。", "It really does. Haha."),
    (2, "c01", "楽しいね、ずっとこうしていたいな。", "This is fun, I wish it could last."),
    (3, "c02", "そろそろ帰ろうか。", "Shall we head home?"),
    (3, "c01", "うん。また明日ね！", "Yeah. See you tomorrow!"),
    (4, None, "その夜", "That night"),
    (4, "c03", "誰…？誰かいるの？", "Who...? Is someone there?"),
    (4, "c04", "静かに！こっちだ！", "Quiet! This way!"),
    (5, "c03", "怖い…足音が近づいてくる…", "I'm scared... the footsteps are coming closer..."),
    (5, "c04", "走れ！逃げろ！", "Run! Get away!"),
    (5, "c03", "きゃあっ！", "Kyaa!"),
    (6, None, "ドン！ドン！", "Bang! Bang!"),
    (6, "c04", "危ない！伏せろ！", "Watch out! Get down!"),
    (6, "c03", "助けて！", "Help!"),
    (7, "c04", "…行ったか。", "...Is it gone?"),
    (7, "c03", "まだ震えが止まらない…", "I still can't stop shaking..."),
    (8, None, "翌朝", "The next morning"),
    (8, "c01", "チカ、本当に行っちゃうの…？", "Chika, are you really leaving...?"),
    (8, "c03", "うん…ごめんね。", "Yes... I'm sorry."),
    (9, "c01", "寂しくなるな…", "It'll be lonely..."),
    (9, "c03", "手紙、書くから。", "I'll write letters."),
    (10, "c01", "…泣かないって決めてたのに。", "...I'd decided not to cry."),
    (10, "c03", "アキ…ありがとう。", "Aki... thank you."),
    (11, "c01", "さようなら…元気でね。", "Goodbye... take care."),
]

SCENES = [(0, 3, "picnic"), (4, 7, "night chase"), (8, 11, "farewell")]
FACES = {p: (["c01", "c02"] if p <= 3 else ["c03", "c04"] if p <= 7 else ["c01", "c03"]) for p in range(12)}
DARK_PAGES = {4, 5, 6, 7}


def draw_page(path: Path, page: int) -> None:
    """A page with four panels; the night pages are dark with a dot screentone."""
    im = Image.new("L", (W, H), 255)
    draw = ImageDraw.Draw(im)
    for box in panel_boxes():
        fill = 40 if page in DARK_PAGES else 235
        draw.rectangle(box, fill=fill, outline=0, width=3)
        if page in DARK_PAGES:
            for x in range(box[0] + 4, box[2] - 4, 4):
                for y in range(box[1] + 4, box[3] - 4, 4):
                    draw.point((x, y), fill=150)
    im.convert("RGB").save(path, quality=90)


def panel_boxes() -> list[tuple[int, int, int, int]]:
    return [(10, 10, 145, 200), (155, 10, 290, 200), (10, 215, 145, 410), (155, 215, 290, 410)]


def write_manga109(root: Path, title: str = "Fixture", dialogue: list[tuple[int, str | None, str, str]] | None = None,
                   pages: int = 12, scenes: list[tuple[int, int, str]] | None = None) -> Path:
    """A Manga109-layout root with one book; returns the root."""
    dialogue = DIALOGUE if dialogue is None else dialogue
    scenes = SCENES if scenes is None else scenes
    (root / "images" / title).mkdir(parents=True)
    (root / "annotations").mkdir()
    (root / "relationships").mkdir()
    (root / "glosses").mkdir()
    (root / "ground_truth").mkdir()
    (root / "books.txt").write_text(title + "\n", encoding="utf-8")
    chars = "".join(f'<character id="{cid}" name="{name}"/>' for cid, name in CHARACTERS.items())
    page_xml, speakers, glosses = [], [], {}
    serial = 0
    for p in range(pages):
        draw_page(root / "images" / title / f"{p:03d}.jpg", p)
        parts = [f'<frame id="f{p:03d}{n}" xmin="{b[0]}" ymin="{b[1]}" xmax="{b[2]}" ymax="{b[3]}"/>'
                 for n, b in enumerate(panel_boxes())]
        bodies = {}
        for n, cid in enumerate(FACES.get(p, [])):
            x = 20 + n * 140
            parts.append(f'<face id="fa{p:03d}{n}" xmin="{x}" ymin="40" xmax="{x + 50}" ymax="90" character="{cid}"/>')
            parts.append(f'<body id="bo{p:03d}{n}" xmin="{x}" ymin="40" xmax="{x + 80}" ymax="190" character="{cid}"/>')
            bodies[cid] = f"bo{p:03d}{n}"
        lines = [d for d in dialogue if d[0] == p]
        for n, (_, speaker, text, gloss) in enumerate(lines):
            serial += 1
            tid = f"t{serial:05d}"
            # Top-right first: right-to-left reading order inside the first panel, then down.
            x = 250 - 40 * (n % 5)
            y = 20 + 200 * (n // 5)
            parts.append(f'<text id="{tid}" xmin="{x}" ymin="{y}" xmax="{x + 30}" ymax="{y + 150}">{escape(text)}</text>')
            glosses[tid] = gloss
            if speaker is not None:
                if speaker not in bodies:
                    n_body = len(bodies) + 10
                    parts.append(f'<body id="bo{p:03d}{n_body}" xmin="100" ymin="250" xmax="180" ymax="400" '
                                 f'character="{speaker}"/>')
                    bodies[speaker] = f"bo{p:03d}{n_body}"
                speakers.append(f'<speaker_to_text text_id="{tid}" speaker_id="{bodies[speaker]}"/>')
        page_xml.append(f'<page index="{p}" width="{W}" height="{H}">{"".join(parts)}</page>')
    (root / "annotations" / f"{title}.xml").write_text(
        f'<?xml version="1.0" encoding="utf-8"?><book title="{title}"><characters>{chars}</characters>'
        f'<pages>{"".join(page_xml)}</pages></book>', encoding="utf-8")
    (root / "relationships" / f"{title}.xml").write_text(
        f'<?xml version="1.0" encoding="utf-8"?><relationships>{"".join(speakers)}</relationships>', encoding="utf-8")
    (root / "glosses" / f"{title}.json").write_text(json.dumps(glosses, ensure_ascii=False), encoding="utf-8")
    (root / "ground_truth" / f"{title}.json").write_text(json.dumps(
        {"scenes": [{"first_page": a, "last_page": b, "label": label} for a, b, label in scenes], "faces": []}),
        encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def book_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_manga109(tmp_path_factory.mktemp("manga109"))


@pytest.fixture(scope="session")
def book(book_root: Path):
    from m2m.book import load_book

    return load_book(book_root, "Fixture")


@pytest.fixture()
def emotions(book):
    """An emotion report by hand: happy faces in scene 0, fearful in scene 1, sad in scene 2."""
    from m2m.emotions import EMOTIONS, Distribution, EmotionReport

    def dist(main: str, share: float, faces: int = 2) -> Distribution:
        rest = (1.0 - share) / (len(EMOTIONS) - 1)
        return Distribution({e: share if e == main else rest for e in EMOTIONS}, faces)

    by_scene = {0: "happiness", 1: "fear", 2: "sadness"}
    pages = {p: dist(by_scene[0 if p <= 3 else 1 if p <= 7 else 2], 0.6) for p in range(12)}
    scenes = {s: dist(e, 0.55, 8) for s, e in by_scene.items()}
    return EmotionReport(backend="test", faces=(), pages=pages, scenes=scenes)


# ---------------------------------------------------------------------------------------------
# A local OpenAI-compatible server


@dataclass
class Reply:
    """One scripted answer: a JSON payload (as the message content), raw content, an HTTP error, or a delay."""

    content: Any = None
    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    echo_auth: bool = False  # an error that quotes the Authorization header back, as a careless server might
    error: dict[str, Any] | None = None  # the error body's fields (message, type, code, param), as OpenAI sends


@dataclass
class FakeOpenAI:
    base_url: str
    script: deque = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    responder: Callable[[dict[str, Any]], Any] | None = None

    def reset(self) -> None:
        self.script.clear()
        self.requests.clear()
        self.headers.clear()
        self.responder = None

    def push(self, *replies: Reply | dict | str) -> None:
        for reply in replies:
            self.script.append(reply if isinstance(reply, Reply) else Reply(content=reply))


def _build_app(state: FakeOpenAI) -> FastAPI:
    # FastAPI reads the handler's annotations, so Request is imported at module level.
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        state.requests.append(body)
        state.headers.append({k.lower(): v for k, v in request.headers.items()})
        if state.script:
            reply = state.script.popleft()
        elif state.responder is not None:
            reply = Reply(content=state.responder(body))
        else:
            reply = Reply(content="{}")
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.status != 200:
            message = f"scripted error {reply.status}"
            if reply.echo_auth:
                message += f"; you sent {request.headers.get('authorization')}"
            error = {"message": message, "type": "server_error", "code": None, "param": None} | (reply.error or {})
            return JSONResponse({"error": error}, status_code=reply.status, headers=reply.headers)
        content = reply.content if isinstance(reply.content, str) else json.dumps(reply.content, ensure_ascii=False)
        return JSONResponse({
            "id": f"chatcmpl-{len(state.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "?"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }, headers=reply.headers)

    return app


@pytest.fixture(scope="session")
def _server():
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    state = FakeOpenAI(base_url=f"http://127.0.0.1:{port}/v1")
    config = uvicorn.Config(_build_app(state), log_level="warning", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the fake OpenAI server did not start")
        time.sleep(0.02)
    yield state
    server.should_exit = True
    thread.join(timeout=5)
    sock.close()


@pytest.fixture()
def fake_openai(_server: FakeOpenAI) -> FakeOpenAI:
    _server.reset()
    yield _server
    _server.reset()


@pytest.fixture()
def llm_settings(fake_openai: FakeOpenAI, tmp_path: Path):
    from m2m.llm import LLMSettings

    return LLMSettings(model="gpt-4o", base_url=fake_openai.base_url, api_key="sk-test-key", timeout_s=5.0,
                       max_retries=2, backoff_s=0.01, cache_dir=tmp_path / "llm-cache")


def smart_answer(body: dict[str, Any]) -> dict[str, Any]:
    """A valid answer to any director step, computed from the request like a cooperative model would."""
    import re

    step = body["response_format"]["json_schema"]["name"]
    user = body["messages"][1]["content"]
    text = user if isinstance(user, str) else user[0]["text"]
    if step == "scene_boundaries":
        first, last = map(int, re.search(r"pages (\d+) to (\d+)", text).groups())
        cuts = [p for p in (4, 8) if first < p <= last]
        starts = [first, *cuts]
        ends = [s - 1 for s in cuts] + [last]
        return {"scenes": [{"first_page": a, "last_page": b, "summary": f"pages {a}-{b}"}
                           for a, b in zip(starts, ends, strict=True)]}
    if step == "scene_directive":
        return {"directive": "A gentle piano piece in C major at 80 BPM with soft strings, warm and hopeful."}
    if step == "page_captions":
        pages = [int(p) for p in re.search(r"covers pages ([\d, ]+) of", text).group(1).split(",")]
        return {"pages": [{"page": p, "caption": f"A gentle piano piece for page {p}.", "tempo": 80 + p, "key": "C",
                           "mode": "major", "instruments": ["Acoustic Grand Piano", "String Ensemble 1"],
                           "energy": 0.3, "mood": "warm"} for p in pages]}
    if step == "scene_transition":
        first = int(re.search(r"first page, page (\d+)", text).group(1))
        kind = ("continue", "crossfade", "silence", "cut", "stinger")[first % 5]
        return {"kind": kind, "seconds": 0.0 if kind == "cut" else 2.5, "why": f"A {kind} into page {first}."}
    if step == "baseline_describe":
        page = int(re.search(r"This is page (\d+)", text).group(1))
        return {"description": f"Page {page}: two friends talk in a calm, bright room."}
    if step == "baseline_caption":
        return {"caption": "A calm lo-fi piano piece in F major at 76 BPM.", "tempo": 76, "key": "F", "mode": "major",
                "instruments": ["electric piano 1"], "energy": 0.25, "mood": "calm"}
    raise AssertionError(f"unexpected step {step}")
