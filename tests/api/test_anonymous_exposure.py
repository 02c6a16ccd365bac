"""Issue 18, row 7, on the real server (METRICS_TOKEN unset): anonymous /metrics names no tenant, job or worker
host:pid, and /readyz tells anyone only whether the service is ready; the checks and the workers' names are for an
admin key. The token's per-job series: tests/api/test_metrics_endpoint.py."""

import time

import requests
from prometheus_client.parser import text_string_to_metric_families
from test_registry import auth

NAMING = {"tenant", "job_id", "worker"}


def wait_ready(server, key) -> requests.Response:
    deadline = time.time() + 60
    while (ready := requests.get(f"{server}/readyz", headers=auth(key), timeout=10)).status_code != 200:
        assert time.time() < deadline, ready.json()  # the embedded worker starts beside the server
        time.sleep(0.5)
    return ready


def test_readyz_tells_anyone_ready_and_only_admins_why(server, keys):
    admin = wait_ready(server, keys["alice"]).json()
    assert admin["checks"] == {"database": "ok", "workers": "ok", "broker": "ok"}
    assert admin["workers"][0].startswith("embedded@")
    for headers in ({}, auth(keys["alice_viewer"]), auth(keys["bob"]), auth("llmft_not_a_key")):
        response = requests.get(f"{server}/readyz", headers=headers, timeout=10)
        assert response.status_code == 200 and response.json() == {"status": "ready"}, (headers, response.text)


def test_anonymous_metrics_name_no_tenant_job_or_host(server, keys):
    wait_ready(server, keys["alice"])
    response = requests.get(f"{server}/metrics", timeout=30)
    assert response.status_code == 200
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    assert not any(NAMING & set(s.labels) for family in families.values() for s in family.samples)
    assert "acme" not in response.text and "embedded@" not in response.text
    assert families["llmft_workers_live"].samples[0].value >= 1
    assert families["llmft_workers_slots"].samples[0].value >= 1
    assert "llmft_job_loss" not in families and "llmft_worker_heartbeat_age_seconds" not in families
