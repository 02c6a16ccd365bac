"""Jobs over HTTP with the embedded worker: create, follow to succeeded, events, cancel, pause and resume,
tenants."""

import json
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


def parse_sse(text: str) -> list[dict]:
    messages = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if fields:
            messages.append({**fields, "data": json.loads(fields["data"])})
    return messages


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
            "hyperparameters": {"n_epochs": "auto", "max_steps": 3, "batch_size": 1}}  # logging_steps auto: 1
    response = requests.post(f"{server}/api/v1/jobs", json=body, headers=auth(keys["alice"], **{"Idempotency-Key": "k1"}),
                             timeout=30)
    assert response.status_code == 201, response.text
    assert response.json()["hyperparameters"] == {"learning_rate": "auto", "n_epochs": "auto", "max_steps": 3,
                                                  "batch_size": 1}  # "auto" until the trainer has chosen
    job_id = response.json()["id"]
    again = requests.post(f"{server}/api/v1/jobs", json=body, headers=auth(keys["alice"], **{"Idempotency-Key": "k1"}),
                          timeout=30)
    assert again.status_code == 200 and again.json()["id"] == job_id
    job = wait_for(server, keys["alice"], job_id, {"succeeded", "failed"})
    assert job["status"] == "succeeded", job
    assert job["progress"]["step"] == 3 and job["attempts"] == 1
    assert job["hyperparameters"]["learning_rate"] == 1e-3 and job["hyperparameters"]["batch_size"] == 1
    assert isinstance(job["hyperparameters"]["n_epochs"], float) and job["hyperparameters"]["max_steps"] == 3
    events = requests.get(f"{server}/api/v1/jobs/{job_id}/events", headers=auth(keys["alice"]), timeout=10).json()
    types = [e["type"] for e in events["data"]]
    assert types[:3] == ["validating", "queued", "running"] and types[-1] == "succeeded"
    assert job["progress"]["percent"] == 100.0 and job["progress"]["max_steps"] == 3

    metrics = requests.get(f"{server}/api/v1/jobs/{job_id}/metrics", headers=auth(keys["alice"]), timeout=10).json()
    assert [point["step"] for point in metrics["train"]] == [1, 2, 3]
    assert all(point["loss"] > 0 and point["tokens_per_second"] > 0 for point in metrics["train"])
    saved = requests.get(f"{server}/api/v1/jobs/{job_id}/checkpoints", headers=auth(keys["alice"]), timeout=10).json()
    assert [c["step"] for c in saved["data"]] == [3]
    assert saved["data"][0]["metrics"]["train_loss"] == metrics["train"][-1]["loss"] and saved["data"][0]["bytes"] > 0
    assert "/" not in saved["data"][0]["id"]  # no server path leaks out

    stream = requests.get(f"{server}/api/v1/jobs/{job_id}/stream", headers=auth(keys["alice"]), timeout=30)
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    messages = parse_sse(stream.text)
    assert [m["data"]["id"] for m in messages if "id" in m] == [e["id"] for e in events["data"]]
    assert messages[-1] == {"event": "end", "data": {"status": "succeeded"}}
    resumed = parse_sse(requests.get(f"{server}/api/v1/jobs/{job_id}/stream", timeout=30, headers=auth(
        keys["alice"], **{"Last-Event-ID": str(events["data"][-2]["id"])})).text)
    assert [m["event"] for m in resumed] == ["succeeded", "progress", "end"]
    for path in ("", "/events", "/metrics", "/checkpoints", "/stream"):
        assert requests.get(f"{server}/api/v1/jobs/{job_id}{path}", headers=auth(keys["bob"]), timeout=10).status_code == 404


@pytest.mark.slow
def test_cancel_a_job(server, keys, dataset_id):
    body = {"dataset_id": dataset_id, "hyperparameters": {"max_steps": 400, "batch_size": 1, "logging_steps": 1}}
    job_id = requests.post(f"{server}/api/v1/jobs", json=body, headers=auth(keys["alice"]), timeout=30).json()["id"]
    assert requests.post(f"{server}/api/v1/jobs/{job_id}/cancel", headers=auth(keys["bob"]), timeout=10).status_code == 404
    assert requests.post(f"{server}/api/v1/jobs/{job_id}/cancel", headers=auth(keys["alice_viewer"]),
                         timeout=10).status_code == 403
    seen = []
    with requests.get(f"{server}/api/v1/jobs/{job_id}/stream", headers=auth(keys["alice"]), stream=True,
                      timeout=120) as stream:
        for block in stream.iter_lines(decode_unicode=True, delimiter="\n\n"):
            message = parse_sse(block)
            seen += message
            if message and message[0]["event"] == "metrics" and not any(m["event"] == "cancelling" for m in seen):
                assert requests.post(f"{server}/api/v1/jobs/{job_id}/cancel", headers=auth(keys["alice"]),
                                     timeout=10).ok
    events = [m["event"] for m in seen]
    assert "progress" in events and "metrics" in events and events.index("metrics") < events.index("cancelling")
    assert seen[-1] == {"event": "end", "data": {"status": "cancelled"}}
    job = wait_for(server, keys["alice"], job_id, {"cancelled", "succeeded", "failed"})
    assert job["status"] == "cancelled" and 0 < job["progress"]["percent"] < 100
    assert requests.get(f"{server}/api/v1/jobs/{job_id}/checkpoints", headers=auth(keys["alice"]),
                        timeout=10).json()["data"][0]["step"] == job["progress"]["step"]
    again = requests.post(f"{server}/api/v1/jobs/{job_id}/cancel", headers=auth(keys["alice"]), timeout=10)
    assert again.status_code == 409


def test_pause_and_resume_a_queued_job_with_their_refusals(server, keys, dataset_id):
    # the embedded worker has one slot: a job of two processes stays queued, so no trainer is involved
    job = requests.post(f"{server}/api/v1/jobs", json={"dataset_id": dataset_id, "resources": {"processes": 2}},
                        headers=auth(keys["alice"]), timeout=30).json()
    act = lambda verb, key="alice": requests.post(f"{server}/api/v1/jobs/{job['id']}/{verb}",  # noqa: E731
                                                  headers=auth(keys[key]), timeout=10)
    for verb in ("pause", "resume"):
        assert act(verb, "bob").status_code == 404  # another tenant's job
        assert act(verb, "alice_viewer").status_code == 403
    refused = act("resume")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "invalid_state"
    assert refused.json()["error"]["details"] == {"status": "queued"}
    paused = act("pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert act("pause").status_code == 409
    listed = requests.get(f"{server}/api/v1/jobs", params={"status": "paused", "limit": 100},
                          headers=auth(keys["alice"]), timeout=10).json()["data"]
    assert job["id"] in {j["id"] for j in listed}
    resumed = act("resume")
    assert resumed.status_code == 200 and resumed.json()["status"] == "queued"
    assert act("pause").json()["status"] == "paused"
    assert act("cancel").json()["status"] == "cancelled"  # a paused job cancels at once
    for verb in ("pause", "resume"):
        assert act(verb).status_code == 409
    events = requests.get(f"{server}/api/v1/jobs/{job['id']}/events", headers=auth(keys["alice"]), timeout=10).json()
    assert [e["type"] for e in events["data"] if e["type"] != "warning"] == [
        "validating", "queued", "paused", "resumed", "paused", "cancelled"]


@pytest.mark.slow
def test_pause_a_running_job_then_resume_it_to_succeeded(server, keys, dataset_id):
    body = {"dataset_id": dataset_id, "hyperparameters": {"max_steps": 30, "batch_size": 1, "logging_steps": 1}}
    job_id = requests.post(f"{server}/api/v1/jobs", json=body, headers=auth(keys["alice"]), timeout=30).json()["id"]
    events = lambda: requests.get(f"{server}/api/v1/jobs/{job_id}/events", params={"limit": 1000},  # noqa: E731
                                  headers=auth(keys["alice"]), timeout=10).json()["data"]
    deadline = time.time() + 240
    while not any(e["type"] == "metrics" for e in events()):
        assert time.time() < deadline, events()
        time.sleep(0.5)
    pausing = requests.post(f"{server}/api/v1/jobs/{job_id}/pause", headers=auth(keys["alice"]), timeout=10)
    assert pausing.status_code == 200 and pausing.json()["status"] == "running"  # until the trainer has stopped
    early = requests.post(f"{server}/api/v1/jobs/{job_id}/resume", headers=auth(keys["alice"]), timeout=10)
    assert early.status_code == 409 and "still pausing" in early.json()["error"]["message"]
    job = wait_for(server, keys["alice"], job_id, {"paused", "succeeded", "failed"})
    assert job["status"] == "paused" and job["attempts"] == 0, job
    step = [e for e in events() if e["type"] == "paused"][-1]["data"]["step"]
    saved = requests.get(f"{server}/api/v1/jobs/{job_id}/checkpoints", headers=auth(keys["alice"]), timeout=10).json()
    assert 0 < step < 30 and saved["data"][0]["step"] == step
    assert requests.post(f"{server}/api/v1/jobs/{job_id}/resume", headers=auth(keys["alice"]), timeout=10).ok
    job = wait_for(server, keys["alice"], job_id, {"succeeded", "failed", "cancelled"})
    assert job["status"] == "succeeded" and job["attempts"] == 1 and job["progress"]["step"] == 30, job
    started = [e["data"] for e in events() if e["type"] == "started"]
    assert started[-1]["step"] == step and started[-1]["resumed_from"].endswith(f"checkpoint-{step}")


def test_bad_job_requests_are_422_naming_the_parameter(server, keys, dataset_id):
    response = requests.post(f"{server}/api/v1/jobs", json={"dataset_id": dataset_id,
                                                            "hyperparameters": {"n_epoch": 1}},
                             headers=auth(keys["alice"]), timeout=10)
    assert response.status_code == 422 and "hyperparameters.n_epoch" in response.json()["error"]["message"]
    for path in ("/etc", "../models/tiny-r1", "data/sample", "/tmp"):  # never a path from a request
        response = requests.post(f"{server}/api/v1/jobs", json={"dataset_id": dataset_id, "base_model": path},
                                 headers=auth(keys["alice"]), timeout=10)
        assert response.status_code == 422 and response.json()["error"]["details"]["param"] == "base_model", path
    response = requests.post(f"{server}/api/v1/jobs", json={"dataset_id": dataset_id, "suffix": "Support Bot"},
                             headers=auth(keys["alice"]), timeout=10)
    assert response.status_code == 422 and response.json()["error"]["details"]["param"] == "suffix"
    response = requests.post(f"{server}/api/v1/jobs", json={"dataset_id": dataset_id}, headers=auth(keys["bob"]),
                             timeout=10)
    assert response.status_code == 422 and response.json()["error"]["details"]["param"] == "dataset_id"
    response = requests.post(f"{server}/api/v1/jobs", json={"dataset_id": dataset_id}, headers=auth(keys["alice_viewer"]),
                             timeout=10)
    assert response.status_code == 403


def test_max_grad_norm_null_means_no_clipping_and_is_accepted(server, keys, dataset_id):
    response = requests.post(f"{server}/api/v1/jobs", headers=auth(keys["alice"]), timeout=30, json={
        "dataset_id": dataset_id, "hyperparameters": {"max_grad_norm": None, "max_steps": 2}})
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["hyperparameters"] == {"num_epochs": "auto", "batch_size": "auto", "learning_rate": "auto",
                                      "max_grad_norm": None, "max_steps": 2} and job["status"] == "queued"
    requests.post(f"{server}/api/v1/jobs/{job['id']}/cancel", headers=auth(keys["alice"]), timeout=10)
    assert wait_for(server, keys["alice"], job["id"], {"cancelled", "succeeded", "failed"})["status"] != "failed"


def test_jobs_list_pages_newest_first_and_filters_by_status(server, keys, dataset_id):
    made = [requests.post(f"{server}/api/v1/jobs", json={"dataset_id": dataset_id}, headers=auth(keys["alice"]),
                          timeout=30).json()["id"] for _ in range(3)]
    for job_id in made:  # a job a worker already took ends cancelled after its trainer stops
        requests.post(f"{server}/api/v1/jobs/{job_id}/cancel", headers=auth(keys["alice"]), timeout=10)
        assert wait_for(server, keys["alice"], job_id, {"cancelled", "succeeded", "failed"})["status"] == "cancelled"
    first = requests.get(f"{server}/api/v1/jobs", params={"limit": 2}, headers=auth(keys["alice"]), timeout=10).json()
    assert [j["id"] for j in first["data"]] == made[::-1][:2] and first["has_more"]
    rest = requests.get(f"{server}/api/v1/jobs", params={"limit": 2, "after": first["data"][-1]["id"]},
                        headers=auth(keys["alice"]), timeout=10).json()
    assert rest["data"][0]["id"] == made[0]
    cancelled = requests.get(f"{server}/api/v1/jobs", params={"status": "cancelled", "limit": 100},
                             headers=auth(keys["alice"]), timeout=10).json()["data"]
    assert set(made) <= {j["id"] for j in cancelled} and {j["status"] for j in cancelled} == {"cancelled"}
    assert not set(made) & {j["id"] for j in requests.get(f"{server}/api/v1/jobs", params={"limit": 100},
                                                           headers=auth(keys["bob"]), timeout=10).json()["data"]}
    foreign = requests.get(f"{server}/api/v1/jobs", params={"after": made[0]}, headers=auth(keys["bob"]), timeout=10)
    assert foreign.status_code == 404
    validating = requests.get(f"{server}/api/v1/jobs", params={"status": "validating"}, headers=auth(keys["alice"]),
                              timeout=10)
    assert validating.status_code == 422  # not a status: a new job is queued at once


def test_resources_ask_for_processes_on_one_host(server, keys, dataset_id):
    post = lambda resources: requests.post(f"{server}/api/v1/jobs", headers=auth(keys["alice"]), timeout=30,  # noqa: E731
                                           json={"dataset_id": dataset_id, "resources": resources})
    response = post({"nodes": 2})
    assert response.status_code == 422 and response.json()["error"]["details"]["param"] == "resources.nodes"
    assert "--nnodes M --rdzv-endpoint HOST:PORT" in response.json()["error"]["message"], response.text
    for bad in ({"processes": 0}, {"processes": 65}, {"processes": "two"}, {"gpus": 2}):
        response = post(bad)
        assert response.status_code == 422, (bad, response.text)
    # the embedded worker has one slot: a job of two processes waits for a worker with two, and says so
    response = post({"processes": 2})
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["resources"] == {"processes": 2, "nodes": 1} and job["status"] == "queued"
    events = requests.get(f"{server}/api/v1/jobs/{job['id']}/events", headers=auth(keys["alice"]), timeout=10).json()
    warning = [e for e in events["data"] if e["type"] == "warning"]
    assert warning and "llmft worker --slots 2" in warning[0]["message"]
    assert requests.post(f"{server}/api/v1/jobs/{job['id']}/cancel", headers=auth(keys["alice"]),
                         timeout=10).status_code == 200
    assert wait_for(server, keys["alice"], job["id"], {"cancelled"})["status"] == "cancelled"
