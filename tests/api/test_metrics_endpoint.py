"""/metrics behind a token (which adds the per-job and per-worker series), and on the real server (no token: aggregate
series only): the names and labels Prometheus scrapes, with real traffic, a real generation and a running job behind
them."""

import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from test_registry import auth

from llmft.api.app import create_app
from llmft.auth.keys import authenticate, create_key
from llmft.db.session import session_scope
from llmft.db.tables import JOB_STATUSES, Job
from llmft.jobs.lease import worker_beat
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


def test_per_job_and_per_worker_series_only_behind_the_token(tmp_path):
    """Open, /metrics counts jobs and workers; with METRICS_TOKEN it also names them (tenant, job id, host:pid)."""
    settings = load_settings(llmft_home=tmp_path)
    open_app, token_app = create_app(settings), create_app(settings.model_copy(update={"metrics_token": "s3cret"}))
    with session_scope(settings.sqlalchemy_url) as session:
        tenant_id = authenticate(session, create_key(session, tenant="acme", role="admin")[0]).tenant_id
        job = Job(tenant_id=tenant_id, status="running", base_model="tiny-r1", method="full", hyperparameters={},
                  seed=1, metadata_={}, config={}, progress={"loss": 1.5, "tokens_per_second": 90.0, "percent": 40.0})
        session.add(job)
        session.flush()
        job_id = job.id
        worker_beat(session, name="embedded@host-a:4242", slots=2, busy=1)
    opened = open_app.test_client().get("/metrics").get_data(as_text=True)
    closed = token_app.test_client().get("/metrics", headers={"Authorization": "Bearer s3cret"}).get_data(as_text=True)
    for text in (opened, closed):
        families = {family.name: family for family in text_string_to_metric_families(text)}
        assert [(s.labels, s.value) for s in samples(families["llmft_workers_slots"])] == [({}, 2)]
        assert samples(families["llmft_workers_busy_slots"])[0].value == 1
        assert samples(families["llmft_workers_live"])[0].value == 1
        assert {s.labels["status"]: s.value for s in samples(families["llmft_jobs"])}["running"] == 1
    assert "acme" not in opened and job_id not in opened and "host-a" not in opened
    assert f'llmft_job_loss{{job_id="{job_id}",tenant="acme"}} 1.5' in closed
    assert f'llmft_job_progress_ratio{{job_id="{job_id}",tenant="acme"}} 0.4' in closed
    assert 'llmft_worker_slots{worker="embedded@host-a:4242"} 2.0' in closed


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

    deadline = time.time() + 60  # workers report their busy slots with each heartbeat (every LEASE_SECONDS/4)
    while samples((families := scrape(server))["llmft_workers_busy_slots"])[0].value < 1 and time.time() < deadline:
        time.sleep(1)
    requests.post(f"{server}/api/v1/jobs/{job['id']}/cancel", headers=auth(keys["alice"]), timeout=10)
    # no METRICS_TOKEN: a job is running, yet no series names it, its tenant or a worker's host:pid
    assert not any({"job_id", "tenant", "worker"} & set(s.labels) for f in families.values() for s in f.samples)

    http = samples(families["llmft_http_requests"], "_total")
    assert any(s.labels == {"method": "POST", "route": "/v1/chat/completions", "status": "200"} for s in http)
    assert any(s.labels == {"method": "GET", "route": "/api/v1/jobs/<job_id>", "status": "404"} for s in http)
    assert all(s.labels["route"] != "/metrics" for s in http)
    latency = families["llmft_http_request_duration_seconds"]
    assert latency.type == "histogram"
    assert any(s.labels.get("route") == "/v1/chat/completions" for s in samples(latency, "_count"))

    jobs = {s.labels["status"]: s.value for s in samples(families["llmft_jobs"])}
    assert set(jobs) == set(JOB_STATUSES)  # paused included
    assert jobs["running"] >= 1
    assert samples(families["llmft_queue_depth"])[0].value == jobs["queued"]
    assert samples(families["llmft_workers_live"])[0].value >= 1
    assert samples(families["llmft_workers_busy_slots"])[0].value >= 1  # the running job's
    assert "llmft_job_loss" not in families and "llmft_worker_heartbeat_age_seconds" not in families

    assert samples(families["llmft_inference_requests"], "_total")[0].value >= 1
    assert samples(families["llmft_inference_tokens"], "_total")[0].value >= 1
    assert samples(families["llmft_inference_loaded_models"])[0].value >= 1
    assert "llmft_inference_loaded_adapters" in families and "llmft_inference_tokens_per_second" in families
    assert samples(families["llmft_inference_prefix_cache_hits"], "_total")[0].value >= 0
    assert samples(families["llmft_inference_prefix_cache_bytes"])[0].value >= 0
    ttft = families["llmft_inference_time_to_first_token_seconds"]
    assert ttft.type == "histogram" and samples(ttft, "_count")[0].value >= 1
    batch = families["llmft_inference_batch_size"]
    buckets = {s.labels["le"]: s.value for s in samples(batch, "_bucket")}
    assert buckets["+Inf"] == samples(batch, "_count")[0].value >= 1
