"""/metrics behind a token, and on the real server: the names and labels Prometheus scrapes, with real traffic,
a real generation and a running job behind them."""

import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from test_registry import auth

from llmft.api.app import create_app
from llmft.settings import load_settings

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "brokerage_support.jsonl"


def scrape(server) -> dict:
    response = requests.get(f"{server}/metrics", timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def samples(family, suffix: str = "") -> list:
    return [s for s in family.samples if s.name == family.name + suffix]


def test_a_metrics_token_closes_the_endpoint(tmp_path):
    app = create_app(load_settings(llmft_home=tmp_path, metrics_token="s3cret"))
    client = app.test_client()
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused.json["error"]["code"] == "unauthorized"
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    opened = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert opened.status_code == 200 and b"llmft_jobs{" in opened.data
    assert "/metrics" not in client.get("/openapi.json").json["paths"]


def test_open_by_default(tmp_path):
    client = create_app(load_settings(llmft_home=tmp_path)).test_client()
    assert client.get("/metrics").status_code == 200


@pytest.mark.slow
def test_metrics_names_and_labels(server, keys):
    chat = requests.post(f"{server}/v1/chat/completions", headers=auth(keys["alice"]), timeout=120,
                         json={"model": "tiny-r1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8})
    assert chat.status_code == 200, chat.text
    assert requests.get(f"{server}/api/v1/jobs/job_none", headers=auth(keys["alice"]), timeout=10).status_code == 404
    dataset = requests.post(f"{server}/api/v1/datasets", headers=auth(keys["alice"]), timeout=60, files={
        "file": ("m.jsonl", SAMPLE.read_bytes())}).json()["id"]
    job = requests.post(f"{server}/api/v1/jobs", headers=auth(keys["alice"]), timeout=30, json={
        "dataset_id": dataset, "method": "full",
        "hyperparameters": {"max_steps": 400, "batch_size": 1, "logging_steps": 1, "eval_per_epoch": False}}).json()
    deadline = time.time() + 240
    while "loss" not in requests.get(f"{server}/api/v1/jobs/{job['id']}", headers=auth(keys["alice"]),
                                     timeout=10).json()["progress"]:
        assert time.time() < deadline, "the job logged no loss in time"
        time.sleep(0.5)

    families = scrape(server)
    requests.post(f"{server}/api/v1/jobs/{job['id']}/cancel", headers=auth(keys["alice"]), timeout=10)

    http = samples(families["llmft_http_requests"], "_total")
    assert any(s.labels == {"method": "POST", "route": "/v1/chat/completions", "status": "200"} for s in http)
    assert any(s.labels == {"method": "GET", "route": "/api/v1/jobs/<job_id>", "status": "404"} for s in http)
    assert all(s.labels["route"] != "/metrics" for s in http)
    latency = families["llmft_http_request_duration_seconds"]
    assert latency.type == "histogram"
    assert any(s.labels.get("route") == "/v1/chat/completions" for s in samples(latency, "_count"))

    jobs = {s.labels["status"]: s.value for s in samples(families["llmft_jobs"])}
    assert set(jobs) == {"queued", "running", "succeeded", "failed", "cancelled"}
    assert jobs["running"] >= 1
    assert samples(families["llmft_queue_depth"])[0].value == jobs["queued"]
    workers = samples(families["llmft_worker_heartbeat_age_seconds"])
    assert any(s.labels["worker"].startswith("embedded@") and s.value < 60 for s in workers)
    assert any(s.value == 1 for s in samples(families["llmft_worker_slots"]))

    losses = {s.labels["job_id"]: s for s in samples(families["llmft_job_loss"])}
    assert job["id"] in losses and losses[job["id"]].labels["tenant"] == "acme" and losses[job["id"]].value > 0
    assert job["id"] in {s.labels["job_id"] for s in samples(families["llmft_job_tokens_per_second"])}
    assert 0 < {s.labels["job_id"]: s.value for s in samples(families["llmft_job_progress_ratio"])}[job["id"]] < 1

    assert samples(families["llmft_inference_requests"], "_total")[0].value >= 1
    assert samples(families["llmft_inference_tokens"], "_total")[0].value >= 1
    assert samples(families["llmft_inference_loaded_models"])[0].value >= 1
    assert "llmft_inference_loaded_adapters" in families and "llmft_inference_tokens_per_second" in families
    ttft = families["llmft_inference_time_to_first_token_seconds"]
    assert ttft.type == "histogram" and samples(ttft, "_count")[0].value >= 1
    batch = families["llmft_inference_batch_size"]
    buckets = {s.labels["le"]: s.value for s in samples(batch, "_bucket")}
    assert buckets["+Inf"] == samples(batch, "_count")[0].value >= 1
