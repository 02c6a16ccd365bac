"""Jobs over HTTP with the embedded worker: create, follow to succeeded, events, cancel, tenants."""

import time
from pathlib import Path

import pytest
import requests

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "brokerage_support.jsonl"


def auth(key, **extra):
    return {"Authorization": f"Bearer {key}", **extra}


@pytest.fixture(scope="module")
def dataset_id(server, keys):
    small = "".join(SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:30]).encode()
    response = requests.post(f"{server}/api/v1/datasets", headers=auth(keys["alice"]),
                             files={"file": ("small.jsonl", small)}, timeout=120)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def wait_for(server, key, job_id, statuses, timeout=240):
    deadline = time.time() + timeout
    while True:
        job = requests.get(f"{server}/api/v1/jobs/{job_id}", headers=auth(key), timeout=10).json()
        if job["status"] in statuses:
            return job
        assert time.time() < deadline, job
        time.sleep(0.5)


@pytest.mark.slow
def test_a_job_runs_to_succeeded_with_events(server, keys, dataset_id):
    body = {"base_model": "tiny-r1", "dataset_id": dataset_id,
            "hyperparameters": {"num_epochs": 1, "max_steps": 3, "batch_size": 1, "logging_steps": 1}}
    response = requests.post(f"{server}/api/v1/jobs", json=body, headers=auth(keys["alice"], **{"Idempotency-Key": "k1"}),
                             timeout=30)
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    again = requests.post(f"{server}/api/v1/jobs", json=body, headers=auth(keys["alice"], **{"Idempotency-Key": "k1"}),
                          timeout=30)
    assert again.status_code == 200 and again.json()["id"] == job_id
    job = wait_for(server, keys["alice"], job_id, {"succeeded", "failed"})
    assert job["status"] == "succeeded", job
    assert job["progress"]["step"] == 3 and job["attempts"] == 1
    events = requests.get(f"{server}/api/v1/jobs/{job_id}/events", headers=auth(keys["alice"]), timeout=10).json()
    types = [e["type"] for e in events["data"]]
    assert types[:3] == ["validating", "queued", "running"] and types[-1] == "succeeded"
    assert requests.get(f"{server}/api/v1/jobs/{job_id}", headers=auth(keys["bob"]), timeout=10).status_code == 404
    assert requests.get(f"{server}/api/v1/jobs/{job_id}/events", headers=auth(keys["bob"]), timeout=10).status_code == 404


@pytest.mark.slow
def test_cancel_a_job(server, keys, dataset_id):
    body = {"dataset_id": dataset_id, "hyperparameters": {"max_steps": 400, "batch_size": 1, "logging_steps": 1}}
    job_id = requests.post(f"{server}/api/v1/jobs", json=body, headers=auth(keys["alice"]), timeout=30).json()["id"]
    assert requests.post(f"{server}/api/v1/jobs/{job_id}/cancel", headers=auth(keys["bob"]), timeout=10).status_code == 404
    assert requests.post(f"{server}/api/v1/jobs/{job_id}/cancel", headers=auth(keys["alice_viewer"]),
                         timeout=10).status_code == 403
    assert requests.post(f"{server}/api/v1/jobs/{job_id}/cancel", headers=auth(keys["alice"]), timeout=10).ok
    assert wait_for(server, keys["alice"], job_id, {"cancelled", "succeeded", "failed"})["status"] == "cancelled"
    again = requests.post(f"{server}/api/v1/jobs/{job_id}/cancel", headers=auth(keys["alice"]), timeout=10)
    assert again.status_code == 409


def test_bad_job_requests_are_422_naming_the_parameter(server, keys, dataset_id):
    response = requests.post(f"{server}/api/v1/jobs", json={"dataset_id": dataset_id,
                                                            "hyperparameters": {"n_epoch": 1}},
                             headers=auth(keys["alice"]), timeout=10)
    assert response.status_code == 422 and "hyperparameters.n_epoch" in response.json()["error"]["message"]
    response = requests.post(f"{server}/api/v1/jobs", json={"dataset_id": dataset_id}, headers=auth(keys["bob"]),
                             timeout=10)
    assert response.status_code == 422 and response.json()["error"]["details"]["param"] == "dataset_id"
    response = requests.post(f"{server}/api/v1/jobs", json={"dataset_id": dataset_id}, headers=auth(keys["alice_viewer"]),
                             timeout=10)
    assert response.status_code == 403
