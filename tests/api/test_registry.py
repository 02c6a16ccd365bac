"""The registry over HTTP: a job's result as a version, aliases, the gate, download with hashes,
deletion guarded, a tampered artifact refused."""

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import requests

from tests.api.conftest import follow

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "brokerage_support.jsonl"


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def fine_tune(server, key, dataset_id, suffix, method="full", **hyperparameters) -> dict:
    job = requests.post(f"{server}/api/v1/jobs", headers=auth(key), timeout=30, json={
        "dataset_id": dataset_id, "suffix": suffix, "method": method,
        "hyperparameters": {"batch_size": 1, **hyperparameters}}).json()
    return follow(server, key, job)


@pytest.fixture(scope="module")
def two_versions(server, keys):
    small = "".join(SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:40]).encode()
    dataset = requests.post(f"{server}/api/v1/datasets", headers=auth(keys["alice"]),
                            files={"file": ("reg.jsonl", small)}, timeout=120).json()["id"]
    first = fine_tune(server, keys["alice"], dataset, "reg-bot", max_steps=1, learning_rate=1e-5)
    second = fine_tune(server, keys["alice"], dataset, "reg-bot", max_steps=8, learning_rate=3e-3)
    return dataset, first, second


@pytest.mark.slow
def test_jobs_register_versions_with_evaluation_and_the_gate_guards_production(server, keys, two_versions):
    _, first, second = two_versions
    assert (first["fine_tuned_model"], second["fine_tuned_model"]) == ("reg-bot:1", "reg-bot:2")
    model = requests.get(f"{server}/api/v1/models/reg-bot", headers=auth(keys["alice"]), timeout=10).json()
    assert [v["version"] for v in model["versions"]] == [1, 2] and model["base_model"] == "tiny-r1"
    v2 = model["versions"][1]
    assert v2["kind"] == "full" and v2["job_id"] == second["id"] and v2["lineage"]["datasets"][0]["filename"] == "reg.jsonl"
    assert v2["evaluation"]["candidate"]["eval_loss"] < v2["evaluation"]["base"]["eval_loss"]
    evaluation = v2["evaluation"]  # a job's own evaluation: every example, the budget JOB_EVAL_MAX_NEW_TOKENS sets
    assert (evaluation["max_new_tokens"], evaluation["max_new_tokens_auto"]) == (24, False)
    assert len(v2["evaluation"]["samples"]) == v2["evaluation"]["generated"] == v2["evaluation"]["examples"]
    assert v2["metrics"]["eval_loss"] < model["versions"][0]["metrics"]["eval_loss"]
    by_id = requests.get(f"{server}/api/v1/models/{model['id']}", headers=auth(keys["alice"]), timeout=10).json()
    assert by_id["name"] == "reg-bot"  # the v0 API addressed models by id

    put = lambda alias, body: requests.put(f"{server}/api/v1/models/reg-bot/aliases/{alias}", json=body,
                                           headers=auth(keys["alice"]), timeout=10)
    assert put("production", {"version": 2}).json()["override"] is False
    blocked = put("production", {"version": 1})
    assert blocked.status_code == 409 and blocked.json()["error"]["code"] == "promotion_blocked"
    assert "eval_loss" in blocked.json()["error"]["message"]
    forced = put("production", {"version": 1, "force": True, "reason": "rollback drill"}).json()
    assert forced["override"] is True and forced["previous"] == 2
    assert put("production", {"version": 2}).json()["previous"] == 1
    assert requests.put(f"{server}/api/v1/models/reg-bot/aliases/production", json={"version": 2},
                        headers=auth(keys["alice_viewer"]), timeout=10).status_code == 403
    assert put("Bad Alias", {"version": 2}).status_code in (404, 422)
    events = requests.get(f"{server}/api/v1/models/reg-bot/events", headers=auth(keys["alice"]), timeout=10).json()
    overrides = [e for e in events["data"] if e["type"] == "alias_moved" and e["data"]["override"]]
    assert len(overrides) == 1 and overrides[0]["data"]["reason"] == "rollback drill" and overrides[0]["actor"]

    deleted = requests.delete(f"{server}/api/v1/models/reg-bot/versions/2", headers=auth(keys["alice"]), timeout=10)
    assert deleted.status_code == 409 and deleted.json()["error"]["details"]["aliases"] == ["production"]


@pytest.mark.slow
def test_download_matches_the_hashes_and_a_tampered_file_is_refused(server, keys, server_env, two_versions):
    version = requests.get(f"{server}/api/v1/models/reg-bot/versions/1", headers=auth(keys["alice"]), timeout=10).json()
    archive = requests.get(f"{server}/api/v1/models/reg-bot/versions/1/download", headers=auth(keys["alice"]),
                           timeout=60)
    assert archive.status_code == 200 and archive.headers["Content-Type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
        got = {m.name.split("/", 1)[1]: hashlib.sha256(tar.extractfile(m).read()).hexdigest()
               for m in tar.getmembers()}
    assert got == {f["path"]: f["sha256"] for f in version["files"]}
    assert "model.safetensors" in got and "README.md" in got and not any(p.endswith(".bin") for p in got)

    weights = next(Path(server_env["LLMFT_HOME"], "artifacts").glob(f"*/{version['id']}/model.safetensors"))
    original = weights.read_bytes()
    weights.write_bytes(original[:-8] + b"tampered")
    try:
        refused = requests.get(f"{server}/api/v1/models/reg-bot/versions/1/download", headers=auth(keys["alice"]),
                               timeout=60)
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "integrity_error"
        assert "model.safetensors" in refused.json()["error"]["message"]
    finally:
        weights.write_bytes(original)
    assert requests.delete(f"{server}/api/v1/models/reg-bot/versions/1", headers=auth(keys["alice"]),
                           timeout=10).status_code == 204
    assert requests.get(f"{server}/api/v1/models/reg-bot/versions/1", headers=auth(keys["alice"]),
                        timeout=10).status_code == 404
    assert not weights.parent.exists()


@pytest.mark.slow
def test_export_merges_a_lora_version_into_a_full_version(server, keys, two_versions):
    dataset, _, _ = two_versions
    lora = fine_tune(server, keys["alice"], dataset, "reg-lora", method="lora", max_steps=1)
    assert lora["fine_tuned_model"] == "reg-lora:1"
    url = f"{server}/api/v1/models/reg-lora/versions/1/export"
    assert requests.post(url, headers=auth(keys["alice_viewer"]), timeout=10).status_code == 403
    assert requests.post(url, headers=auth(keys["bob"]), timeout=10).status_code == 404
    response = requests.post(url, headers=auth(keys["alice"]), timeout=10)
    assert response.status_code == 202 and response.json()["kind"] == "export"
    job = follow(server, keys["alice"], response.json())
    assert job["fine_tuned_model"] == "reg-lora:2"
    merged = requests.get(f"{server}/api/v1/models/reg-lora/versions/2", headers=auth(keys["alice"]), timeout=10).json()
    assert merged["kind"] == "full" and merged["lineage"]["exported_from"] == "reg-lora:1"
    assert "model.safetensors" in {f["path"] for f in merged["files"]}
    again = requests.post(f"{server}/api/v1/models/reg-lora/versions/2/export", headers=auth(keys["alice"]), timeout=10)
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_an_adapter"


@pytest.mark.slow
def test_an_evaluation_job_reports_a_version_next_to_its_base(server, keys, two_versions):
    dataset, _, _ = two_versions
    url = f"{server}/api/v1/evaluations"
    body = {"model": "reg-bot@production", "dataset_id": dataset, "max_samples": 2, "max_new_tokens": 16}
    assert requests.post(url, json=body, headers=auth(keys["alice_viewer"]), timeout=10).status_code == 403
    assert requests.post(url, json={**body, "model": "/etc"}, headers=auth(keys["alice"]),
                         timeout=10).status_code == 422
    created = requests.post(url, json=body, headers=auth(keys["alice"]), timeout=10)
    assert created.status_code == 202 and created.json()["kind"] == "evaluation"
    job = follow(server, keys["alice"], created.json())
    shown = requests.get(f"{url}/{job['id']}", headers=auth(keys["alice"]), timeout=10).json()
    report = shown["result"]
    assert report["model"] == "reg-bot:2" and report["generated"] == 2 and report["dataset"]
    assert report["max_new_tokens"] == 16 and report["max_new_tokens_auto"] is False
    assert report["candidate"]["eval_loss"] < report["base"]["eval_loss"]
    assert [set(sample) for sample in report["samples"]] == [{"prompt", "reference", "base", "candidate"}] * 2
    events = requests.get(f"{server}/api/v1/jobs/{job['id']}/events", headers=auth(keys["alice"]), timeout=10).json()
    assert "fact_hit" in next(e["message"] for e in events["data"] if e["type"] == "evaluated")
    # the session's server: other modules' evaluation jobs (test_evaluations) are listed too; this one is the newest
    listed = [e["id"] for e in requests.get(url, headers=auth(keys["alice"]), timeout=10).json()["data"]]
    assert listed[0] == job["id"] and len(listed) == len(set(listed))
    assert requests.get(f"{url}/{job['id']}", headers=auth(keys["bob"]), timeout=10).status_code == 404
