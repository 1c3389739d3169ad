"""The rate route's optional listening time: accepted, stored (NULL when absent), refused with a 400 when bad."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from m2m.study import load_study
from m2m.ui.study_api import API_PREFIX

from .test_api import client_for, register


@pytest.fixture
def client(study_dir: Path, store) -> TestClient:
    return client_for(study_dir, store)


def post(client: TestClient, pid: str, label: str, **extra: object):
    body = {"stimulus": "s1", "label": label, "relevancy": 4, "quality": 3, "consistency": 5, **extra}
    return client.post(f"{API_PREFIX}/rate/{pid}", json=body)


def post_raw(client: TestClient, pid: str, listened: str):
    # NaN and Infinity are not JSON, but Python's decoder (and so the server) accepts them.
    body = '{"stimulus": "s1", "label": "A", "relevancy": 4, "quality": 3, "consistency": 5, "listened_s": ' + listened + "}"
    return client.post(f"{API_PREFIX}/rate/{pid}", content=body, headers={"Content-Type": "application/json"})


def test_listening_time_is_stored_and_optional(client: TestClient, store, study_dir: Path) -> None:
    study = load_study(study_dir / "study.json")
    pid = register(client)
    assert post(client, pid, "A", listened_s=23.47).status_code == 200
    assert post(client, pid, "B").status_code == 200  # an old client: no field at all
    assert post(client, pid, "C", listened_s=None).status_code == 200
    stored = {r.label: r.listened_s for r in store.ratings(study.id)}
    assert stored == {"A": 23.47, "B": None, "C": None}
    # Change: a new measurement replaces the stored one.
    assert post(client, pid, "A", listened_s=61).status_code == 200
    assert {r.label: r.listened_s for r in store.ratings(study.id)}["A"] == 61.0


@pytest.mark.parametrize("bad", [-1, 21_601, "12", True, [1], {"s": 1}])
def test_bad_listening_time_is_a_400_that_names_it(client: TestClient, store, bad: object) -> None:
    pid = register(client)
    response = post(client, pid, "A", listened_s=bad)
    assert response.status_code == 400
    assert "listened_s must be" in response.json()["error"] and "21600" in response.json()["error"]
    assert store.ratings() == ()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_listening_time_is_a_400(client: TestClient, store, literal: str) -> None:
    pid = register(client)
    response = post_raw(client, pid, literal)
    assert response.status_code == 400, response.text
    assert "finite" in response.json()["error"]
    assert store.ratings() == ()
