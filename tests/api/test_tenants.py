"""The two-tenant matrix over every route of the OpenAPI document: another tenant's ids answer 404
(never the object, never a 403 or 409 that would say it exists), its lists never show them, its
creates cannot reference them, and nothing of the owner's changes. A route added later whose
path parameter this matrix does not know fails here until it is covered."""

import time
from pathlib import Path

import pytest
import requests

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "brokerage_support.jsonl"
PUBLIC = {"/healthz", "/readyz"}


def auth(key):
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def owned(server, keys) -> dict:
    """Alice's objects: a dataset and a finished job (with metrics and a checkpoint)."""
    small = "".join(SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:20]).encode()
    dataset = requests.post(f"{server}/api/v1/datasets", headers=auth(keys["alice"]),
                            files={"file": ("mine.jsonl", small)}, timeout=120).json()["id"]
    job = requests.post(f"{server}/api/v1/jobs", headers=auth(keys["alice"]), timeout=30, json={
        "dataset_id": dataset, "suffix": "matrix", "hyperparameters": {"max_steps": 1, "batch_size": 1}}).json()["id"]
    deadline = time.time() + 240
    while requests.get(f"{server}/api/v1/jobs/{job}", headers=auth(keys["alice"]), timeout=10).json()["status"] \
            not in ("succeeded", "failed", "cancelled"):
        assert time.time() < deadline
        time.sleep(0.5)
    finished = requests.get(f"{server}/api/v1/jobs/{job}", headers=auth(keys["alice"]), timeout=10).json()
    assert finished["fine_tuned_model"] == "matrix:1", finished
    assert requests.put(f"{server}/api/v1/models/matrix/aliases/staging", json={"version": 1},
                        headers=auth(keys["alice"]), timeout=10).ok
    evaluation = requests.post(f"{server}/api/v1/evaluations", headers=auth(keys["alice"]), timeout=30, json={
        "model": "matrix:1", "dataset_id": dataset, "max_samples": 1, "max_new_tokens": 2}).json()["id"]
    return {"dataset_id": dataset, "job_id": job, "task_id": job, "name": "matrix", "version": 1, "alias": "staging",
            "evaluation_id": evaluation, "file_id": dataset,
            "model": "matrix:1"}


def operations(server) -> list[tuple[str, str]]:
    spec = requests.get(f"{server}/openapi.json", timeout=10).json()
    return [(path, method) for path, ops in spec["paths"].items() for method in ops if path not in PUBLIC]


@pytest.mark.slow
def test_no_route_reads_or_writes_another_tenants_objects(server, keys, owned):
    before = snapshot(server, keys["alice"], owned)
    checked = 0
    for path, method in operations(server):
        if "{" not in path:
            continue
        names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
        unknown = [name for name in names if name not in owned]
        assert not unknown, f"{method.upper()} {path}: the tenant matrix has no object for {unknown}; add one"
        url = server + path.format(**owned)
        body = {"version": 1} if method in ("put", "post") else None
        response = requests.request(method, url, json=body, headers=auth(keys["bob"]), timeout=30)
        assert response.status_code == 404, (method, path, response.status_code, response.text)
        assert response.json()["error"]["code"] in ("not_found", "model_not_found")  # /v1/models/{model}: OpenAI's
        if method == "get":  # the id is real: its owner reads it
            assert requests.get(url, headers=auth(keys["alice"]), timeout=30).status_code == 200, path
        checked += 1
    assert checked >= 10
    assert snapshot(server, keys["alice"], owned) == before


@pytest.mark.slow
def test_lists_and_creates_never_reach_another_tenant(server, keys, owned):
    for path, method in operations(server):
        if method == "get" and "{" not in path:
            listed = requests.get(server + path, params={"limit": 100}, headers=auth(keys["bob"]), timeout=30)
            assert listed.status_code == 200 and owned["dataset_id"] not in listed.text \
                and owned["job_id"] not in listed.text and "matrix" not in listed.text \
                and owned["evaluation_id"] not in listed.text, path
    response = requests.post(f"{server}/api/v1/jobs", json={"dataset_id": owned["dataset_id"]},
                             headers=auth(keys["bob"]), timeout=30)
    assert response.status_code == 422 and response.json()["error"]["details"]["param"] == "dataset_id"
    response = requests.post(f"{server}/api/v1/jobs", headers=auth(keys["bob"]), timeout=30,
                             json={"dataset_id": owned["dataset_id"], "validation_dataset_id": owned["dataset_id"]})
    assert response.status_code == 422
    response = requests.post(f"{server}/api/v1/evaluations", json={"model": "matrix:1", "dataset_id": owned[
        "dataset_id"]}, headers=auth(keys["bob"]), timeout=30)
    assert response.status_code == 404  # bob has no model "matrix"
    response = requests.post(f"{server}/api/v1/evaluations", json={"model": "tiny-r1", "dataset_id": owned[
        "dataset_id"]}, headers=auth(keys["bob"]), timeout=30)
    assert response.status_code == 422 and response.json()["error"]["details"]["param"] == "dataset_id"
    response = requests.post(f"{server}/api/v1/train", json={"dataset_path": owned["dataset_id"]},
                             headers=auth(keys["bob"]), timeout=30)
    assert response.status_code == 400
    assert requests.get(f"{server}/api/v1/datasets", params={"after": owned["dataset_id"]}, headers=auth(keys["bob"]),
                        timeout=30).status_code == 404
    assert requests.get(f"{server}/api/v1/jobs", params={"after": owned["job_id"]}, headers=auth(keys["bob"]),
                        timeout=30).status_code == 404


def snapshot(server, key, owned) -> dict:
    job = requests.get(f"{server}/api/v1/jobs/{owned['job_id']}", headers=auth(key), timeout=10).json()
    dataset = requests.get(f"{server}/api/v1/datasets/{owned['dataset_id']}", headers=auth(key), timeout=10).json()
    events = requests.get(f"{server}/api/v1/jobs/{owned['job_id']}/events", headers=auth(key), timeout=10).json()
    model = requests.get(f"{server}/api/v1/models/{owned['name']}", headers=auth(key), timeout=10).json()
    return {"job": job, "dataset": dataset, "events": len(events["data"]), "model": model}
