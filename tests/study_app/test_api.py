"""The participant and researcher HTTP API, through FastAPI's TestClient."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
from fastapi import FastAPI
from fastapi.testclient import TestClient

from m2m.study import CONDITIONS, load_study
from m2m.ui.study_api import API_PREFIX, mount_study, study_routes

from .conftest import ADMIN_TOKEN, CONSENT, TONES

SCREENING = {"manga_interest": 4, "music_interest": 5, "japanese": "fluent"}


def client_for(study_dir: Path, store, admin_token: str | None = ADMIN_TOKEN) -> TestClient:
    app = FastAPI()
    app.include_router(study_routes(study_dir, store, admin_token=admin_token, env={}))
    return TestClient(app)


@pytest.fixture
def client(study_dir: Path, store) -> TestClient:
    return client_for(study_dir, store)


def register(client: TestClient, screening: dict | None = None) -> str:
    response = client.post(f"{API_PREFIX}/register", json={"consent": True, "screening": screening or SCREENING})
    assert response.status_code == 200, response.text
    return response.json()["participant"]


def rate(client: TestClient, pid: str, stimulus: str, label: str, scores=(4, 3, 5)):
    body = {"stimulus": stimulus, "label": label, "relevancy": scores[0], "quality": scores[1], "consistency": scores[2]}
    return client.post(f"{API_PREFIX}/rate/{pid}", json=body)


def test_info_has_questions_and_consent_but_no_condition(client: TestClient) -> None:
    info = client.get(f"{API_PREFIX}/info").json()
    assert info["consent_text"] == CONSENT
    assert [c["question"] for c in info["criteria"]] == [
        "How appropriate is the music for the scene?", "How good does the music sound?", "How well does the music flow?"]
    assert info["scale"][0] == "very low" and info["scale"][4] == "very high"
    assert "report_condition_names" not in info and "M2M-Gen" not in json.dumps(info)


def test_register_session_submit_resubmit_resume(client: TestClient, store, study_dir: Path) -> None:
    study = load_study(study_dir / "study.json")
    pid = register(client)
    session = client.get(f"{API_PREFIX}/session/{pid}").json()
    assert session["participant"] == pid
    assert sorted(s["stimulus"] for s in session["stimuli"]) == ["s1", "s2"]
    assert all([v["label"] for v in s["versions"]] == ["A", "B", "C"] for s in session["stimuli"])

    first = session["stimuli"][0]
    response = rate(client, pid, first["stimulus"], "B")
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"stimulus", "label", "relevancy", "quality", "consistency", "updated"}
    state = client.get(f"{API_PREFIX}/state/{pid}").json()
    assert state["rated"] == [{"stimulus": first["stimulus"], "label": "B", "relevancy": 4, "quality": 3, "consistency": 5}]
    assert state["total"] == 6 and state["complete"] is False

    # Resubmitting the same version updates its row; it never adds one.
    assert rate(client, pid, first["stimulus"], "B", (1, 1, 2)).status_code == 200
    rows = store.ratings(study.id)
    assert len(rows) == 1 and (rows[0].relevancy, rows[0].quality, rows[0].consistency) == (1, 1, 2)
    assert rows[0].created < rows[0].updated

    for stim in session["stimuli"]:
        for version in stim["versions"]:
            assert rate(client, pid, stim["stimulus"], version["label"]).status_code == 200
    assert client.get(f"{API_PREFIX}/state/{pid}").json()["complete"] is True
    # A fresh client (a reload) gets the same session back.
    assert client_for(study_dir, store).get(f"{API_PREFIX}/session/{pid}").json() == session


@pytest.mark.parametrize(("body", "message"), [
    ({"stimulus": "s1", "label": "D", "relevancy": 3, "quality": 3, "consistency": 3}, "label must be one of"),
    ({"stimulus": "s1", "label": "A", "relevancy": 6, "quality": 3, "consistency": 3}, "relevancy must be from 1 to 5"),
    ({"stimulus": "s1", "label": "A", "relevancy": True, "quality": 3, "consistency": 3}, "relevancy must be an integer"),
    ({"stimulus": "s9", "label": "A", "relevancy": 3, "quality": 3, "consistency": 3}, "stimulus 's9' is not part"),
    ({"stimulus": "s1", "label": "A", "relevancy": 3, "quality": 3}, "missing"),
    ({"stimulus": "s1", "label": "A", "relevancy": 3, "quality": 3, "consistency": 3, "condition": "m2m"},
     "must not name a condition"),
    ([1, 2, 3], "must be a JSON object"),
])
def test_refused_submissions_are_400_and_change_nothing(client: TestClient, store, body, message) -> None:
    pid = register(client)
    assert rate(client, pid, "s1", "A").status_code == 200
    before = store.ratings()
    response = client.post(f"{API_PREFIX}/rate/{pid}", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert store.ratings() == before


def test_refused_requests(client: TestClient, store) -> None:
    response = client.post(f"{API_PREFIX}/rate/nobody", json={"stimulus": "s1", "label": "A", "relevancy": 3,
                                                               "quality": 3, "consistency": 3})
    assert response.status_code == 400 and "not registered" in response.json()["error"]
    bad_json = client.post(f"{API_PREFIX}/rate/nobody", content=b"{not json", headers={"content-type": "application/json"})
    assert bad_json.status_code == 400 and "must be JSON" in bad_json.json()["error"]
    no_consent = client.post(f"{API_PREFIX}/register", json={"consent": False, "screening": SCREENING})
    assert no_consent.status_code == 400 and "consent must be true" in no_consent.json()["error"]
    bad_screening = client.post(f"{API_PREFIX}/register", json={"consent": True, "screening": {**SCREENING, "japanese": "x"}})
    assert bad_screening.status_code == 400 and "japanese must be one of" in bad_screening.json()["error"]
    assert client.get(f"{API_PREFIX}/session/nobody").status_code == 404
    assert client.get(f"{API_PREFIX}/state/nobody").status_code == 404
    assert store.participants() == () and store.ratings() == ()


def test_store_failure_is_503(client: TestClient, store) -> None:
    pid = register(client)
    store.close()  # every later call raises StoreError
    response = rate(client, pid, "s1", "A")
    assert response.status_code == 503 and "retry" in response.json()["error"]
    assert client.post(f"{API_PREFIX}/register", json={"consent": True, "screening": SCREENING}).status_code == 503


def test_assets_by_token_and_404s(client: TestClient, store, study_dir: Path, tmp_path: Path) -> None:
    study = load_study(study_dir / "study.json")
    pid = register(client)
    session = client.get(f"{API_PREFIX}/session/{pid}").json()
    stim = session["stimuli"][0]
    page = client.get(f"{API_PREFIX}/asset/{pid}/{stim['versions'][0]['pages'][0]}")
    assert page.status_code == 200 and page.headers["content-type"] == "image/png"
    assert "content-disposition" not in page.headers
    for version in stim["versions"]:
        audio = client.get(f"{API_PREFIX}/asset/{pid}/{version['audio'][0]}")
        assert audio.status_code == 200 and audio.headers["content-type"] == "audio/ogg"
        assert "content-disposition" not in audio.headers
        # The tone's pitch tells which condition the server resolved; it must match the store's.
        (tmp_path / "clip.ogg").write_bytes(audio.content)
        data, rate_hz = sf.read(tmp_path / "clip.ogg")
        spectrum = abs(__import__("numpy").fft.rfft(data[:, 0]))
        hz = spectrum.argmax() * rate_hz / len(data)
        condition = min(TONES, key=lambda c: abs(TONES[c] - hz))
        from m2m.study import condition_for
        number = store.participant(pid).number
        assert condition == condition_for(study, number, stim["stimulus"], version["label"])
    other = register(client)
    token = stim["versions"][0]["audio"][0]
    assert client.get(f"{API_PREFIX}/asset/{other}/{token}").status_code == 404  # not that participant's token
    assert client.get(f"{API_PREFIX}/asset/{pid}/forged-token").status_code == 404
    assert client.get(f"{API_PREFIX}/asset/nobody/{token}").status_code == 404


def test_a_clip_comes_as_flac_for_browsers_without_ogg(client: TestClient, study_dir: Path, tmp_path: Path) -> None:
    import numpy as np

    pid = register(client)
    version = client.get(f"{API_PREFIX}/session/{pid}").json()["stimuli"][0]["versions"][0]
    token, image = version["audio"][0], version["pages"][0]
    ogg = client.get(f"{API_PREFIX}/asset/{pid}/{token}")
    flac = client.get(f"{API_PREFIX}/asset/{pid}/{token}?format=flac")
    assert flac.status_code == 200 and flac.headers["content-type"] == "audio/flac"
    assert "content-disposition" not in flac.headers
    (tmp_path / "a.ogg").write_bytes(ogg.content)
    (tmp_path / "a.flac").write_bytes(flac.content)
    a, b = sf.read(tmp_path / "a.ogg", dtype="float32"), sf.read(tmp_path / "a.flac", dtype="float32")
    assert a[0].shape == b[0].shape and np.abs(a[0] - b[0]).max() < 2 / 32768
    assert client.get(f"{API_PREFIX}/asset/{pid}/{token}?format=mp4").status_code == 404
    # an image has no FLAC; a format asked of it is refused, not served as something else
    assert client.get(f"{API_PREFIX}/asset/{pid}/{image}?format=flac").status_code == 404


def test_blinding_no_response_names_a_condition_or_file(client: TestClient, store, study_dir: Path) -> None:
    pid = register(client)
    bodies: list[str] = [client.get(f"{API_PREFIX}/info").text]
    session_response = client.get(f"{API_PREFIX}/session/{pid}")
    bodies.append(session_response.text)
    session = session_response.json()
    opaque = {pid} | {t for s in session["stimuli"] for v in s["versions"] for t in (*v["pages"], *v["audio"])}
    for stim in session["stimuli"]:
        for version in stim["versions"]:
            bodies.append(rate(client, pid, stim["stimulus"], version["label"]).text)
    bodies.append(client.get(f"{API_PREFIX}/state/{pid}").text)
    bodies.append(rate(client, pid, "s1", "Z").text)
    bodies.append(client.get(f"{API_PREFIX}/asset/{pid}/nope").text)
    headers = [json.dumps(dict(client.get(f"{API_PREFIX}/asset/{pid}/{t}").headers)) for t in sorted(opaque - {pid})[:6]]
    forbidden = [*CONDITIONS, "M2M-Gen", "Baseline", "Random", ".ogg", ".png", "page-0", "runs/", "audio/",
                 "pages/", str(study_dir), "TinyBook"]
    header_forbidden = [w for w in forbidden if w != "audio/"]  # "audio/ogg" is the content type
    for text, words in [*((b, forbidden) for b in bodies), *((h, header_forbidden) for h in headers)]:
        # Tokens and the participant id are random base64: mask them before looking for words.
        for token in opaque:
            text = text.replace(token, "<token>")
        for word in words:
            assert word.lower() not in text.lower(), f"{word!r} leaked in {text[:300]}"


def test_admin_routes(study_dir: Path, store) -> None:
    client = client_for(study_dir, store)
    for path in ("admin/results", "admin/export.csv", "admin/export.jsonl", "admin/report.png"):
        assert client.get(f"{API_PREFIX}/{path}").status_code == 403
        assert client.get(f"{API_PREFIX}/{path}", headers={"Authorization": "Bearer wrong"}).status_code == 403
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    early = client.get(f"{API_PREFIX}/admin/results", headers=auth).json()
    assert early["report"] is None and "No report yet" in early["message"]
    for i in range(3):
        pid = register(client)
        session = client.get(f"{API_PREFIX}/session/{pid}").json()
        for stim in session["stimuli"]:
            for j, version in enumerate(stim["versions"]):
                assert rate(client, pid, stim["stimulus"], version["label"], (1 + (i + j) % 5, 3, 2 + j)).status_code == 200
    # One more who rates everything but reads no Japanese: the paper's rule screens them out, ?all=1 not.
    outsider = register(client, SCREENING | {"japanese": "none"})
    for stim in client.get(f"{API_PREFIX}/session/{outsider}").json()["stimuli"]:
        for version in stim["versions"]:
            assert rate(client, outsider, stim["stimulus"], version["label"], (5, 5, 5)).status_code == 200
    results = client.get(f"{API_PREFIX}/admin/results", headers=auth).json()
    assert results["participants"] == 4 and results["ratings"] == 24
    assert "Repeated-measures ANOVA" in results["report"]
    assert "3 complete" in results["message"] and "1 screened out" in results["message"], results["message"]
    everyone = client.get(f"{API_PREFIX}/admin/results?all=1", headers=auth).json()
    assert "4 complete" in everyone["message"], everyone["message"]
    figure = client.get(f"{API_PREFIX}/admin/report.png", headers={"X-Admin-Token": ADMIN_TOKEN})
    assert figure.status_code == 200 and figure.content.startswith(b"\x89PNG")
    csv_text = client.get(f"{API_PREFIX}/admin/export.csv", headers=auth).text
    assert csv_text.splitlines()[0].startswith("participant,study,stimulus,label,condition") and len(csv_text.splitlines()) == 25
    lines = client.get(f"{API_PREFIX}/admin/export.jsonl", headers=auth).text.splitlines()
    assert len(lines) == 24 and {json.loads(line)["condition"] for line in lines} == set(CONDITIONS)
    # No token configured: the researcher routes do not exist.
    closed = client_for(study_dir, store, admin_token=None)
    assert closed.get(f"{API_PREFIX}/admin/results", headers=auth).status_code == 404


def test_mount_study_from_env(study_dir: Path, tmp_path: Path) -> None:
    app = FastAPI()
    assert mount_study(app, env={}) is False
    assert mount_study(app, env={"M2M_STUDY_DIR": str(tmp_path / "nothing")}) is False
    env = {"M2M_STUDY_DIR": str(study_dir), "M2M_DATA_DIR": str(tmp_path / "data"), "M2M_STUDY_ADMIN_TOKEN": ADMIN_TOKEN}
    assert mount_study(app, env=env) is True
    client = TestClient(app)
    assert client.get(f"{API_PREFIX}/info").status_code == 200
    assert (tmp_path / "data" / "study.sqlite3").is_file()
    assert client.get(f"{API_PREFIX}/admin/export.csv", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 200
