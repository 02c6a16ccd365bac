"""The v0 API's three training endpoints (docs/architecture.md)."""

import shutil
from pathlib import Path

import pytest
import requests

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "brokerage_support.jsonl"


def auth(key):
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def data_root(server_env):
    root = Path(server_env["LLMFT_HOME"]) / "data"
    root.mkdir(exist_ok=True)
    small = "".join(SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:30])
    (root / "small.jsonl").write_text(small, encoding="utf-8")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("path", ["../llmft.db", "/etc/passwd", "file:///etc/passwd", "http://example.com/x.jsonl",
                                  "sub/../../llmft.db", "missing.jsonl", "~/x.jsonl"])
def test_paths_outside_the_data_root_are_400_and_touch_nothing(server, keys, data_root, path):
    before = requests.get(f"{server}/api/v1/datasets", headers=auth(keys["alice"]), timeout=10).json()["data"]
    response = requests.post(f"{server}/api/v1/train", json={"dataset_path": path}, headers=auth(keys["alice"]),
                             timeout=30)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_path"
    after = requests.get(f"{server}/api/v1/datasets", headers=auth(keys["alice"]), timeout=10).json()["data"]
    assert len(after) == len(before)


@pytest.mark.slow
def test_train_status_and_cancel_as_the_original_readme_documents(server, keys, data_root):
    body = {"dataset_path": "small.jsonl", "config": {"learning_rate": 0.001, "batch_size": 1, "num_epochs": 3}}
    response = requests.post(f"{server}/api/v1/train", json=body, headers=auth(keys["alice"]), timeout=60)
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    status = requests.get(f"{server}/api/v1/train/status/{task_id}", headers=auth(keys["alice"]), timeout=10).json()
    assert status["task_id"] == task_id and status["status"] in ("queued", "running")
    assert requests.get(f"{server}/api/v1/train/status/{task_id}", headers=auth(keys["bob"]),
                        timeout=10).status_code == 404
    cancelled = requests.post(f"{server}/api/v1/train/cancel/{task_id}", headers=auth(keys["alice"]), timeout=10)
    assert cancelled.status_code == 200 and cancelled.json()["status"] in ("cancelled", "running")


def test_unknown_config_keys_are_422(server, keys, data_root):
    response = requests.post(f"{server}/api/v1/train", json={"dataset_path": "small.jsonl", "config": {"lr": 1}},
                             headers=auth(keys["alice"]), timeout=30)
    assert response.status_code == 422 and "lr" in str(response.json()["error"]["details"])
