"""Issue 18, rows 8, 9, 11, 12 against a real server: the upload form's `model` takes what a job's base_model
takes (never a server path, and no answer that tells which folders exist); a dataset that jobs used can be
deleted (its file, report and prepared data go; a tombstone keeps the lineage; 409 while a job reads it);
no name passes with a trailing newline; a deleted version's number is never given again."""

import json
from pathlib import Path

import pytest
import requests

from llmft.db.session import session_scope
from llmft.db.tables import Dataset
from tests.api.conftest import follow

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "brokerage_support.jsonl"
LINES = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)
SMALL, OTHER = "".join(LINES[:40]).encode(), "".join(LINES[40:80]).encode()


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def upload(server, key, content: bytes, **form):
    return requests.post(f"{server}/api/v1/datasets", headers=auth(key), files={"file": ("lineage.jsonl", content)},
                         data=form, timeout=120)


def test_the_upload_form_model_takes_what_base_model_takes_and_says_nothing_about_server_folders(server, keys,
                                                                                                server_env):
    home = Path(server_env["LLMFT_HOME"])
    existing = [str(home / "models" / "tiny-r1"), str(home / "models"), "../../" * 8 + "etc", "/etc", "/root",
                "data/sample"]  # the last: a folder of the server's working directory, shaped like a hub id
    missing = [str(home / "models" / "no-such-model"), "../../" * 8 + "no-such-folder", "/no-such-folder",
               "data/no-such-folder", "some-org/not-in-the-offline-cache", "tiny-r1\n", ""]
    answers = {}
    for model in existing + missing:
        response = upload(server, keys["alice"], SMALL, model=model)
        assert response.status_code == 422, (model, response.text)
        error = response.json()["error"]
        answers[model] = (error["code"], json.dumps(error["details"]), error["message"].replace(repr(model), "MODEL"))
    assert "model" in answers.pop("")[1]  # the form's own length check names the field
    assert len(set(answers.values())) == 1, answers  # one answer, whether the folder exists or not
    code, details, message = next(iter(answers.values()))
    assert code == "invalid_model" and json.loads(details) == {"field": "model"} and "local folders" in message
    listed = requests.get(f"{server}/api/v1/datasets", headers=auth(keys["alice"]), timeout=10).json()["data"]
    assert "lineage.jsonl" not in [d["filename"] for d in listed]
    assert upload(server, keys["alice"], SMALL, model="tiny-r1").status_code == 201


def test_names_with_a_trailing_newline_are_refused(server, keys):
    alias = requests.put(f"{server}/api/v1/models/any-model/aliases/production%0A", json={"version": 1},
                         headers=auth(keys["alice"]), timeout=10)
    assert alias.status_code == 422 and alias.json()["error"]["details"] == {"param": "alias"}, alias.text
    job = requests.post(f"{server}/api/v1/jobs", json={"dataset_id": "ds-0123456789abcdef", "suffix": "evil\n"},
                        headers=auth(keys["alice"]), timeout=10)
    assert job.status_code == 422 and job.json()["error"]["details"] == {"param": "suffix"}, job.text
    for ref in ("any-model:1\n", "any-model@production\n", "tiny-r1\n", "some-org/model\n"):
        evaluation = requests.post(f"{server}/api/v1/evaluations", headers=auth(keys["alice"]), timeout=10,
                                   json={"model": ref, "dataset_id": "ds-0123456789abcdef"})
        assert evaluation.status_code == 422, (ref, evaluation.text)


@pytest.mark.slow
def test_a_used_dataset_is_erased_to_a_tombstone_and_version_numbers_are_never_reused(server, keys, server_env):
    home, alice = Path(server_env["LLMFT_HOME"]), keys["alice"]
    dataset = upload(server, alice, OTHER).json()  # bytes no other dataset has: its prepared data can go
    job = requests.post(f"{server}/api/v1/jobs", headers=auth(alice), timeout=30, json={
        "dataset_id": dataset["id"], "suffix": "lineage-bot", "method": "lora",
        "hyperparameters": {"batch_size": 1, "max_steps": 1}}).json()
    busy = requests.delete(f"{server}/api/v1/datasets/{dataset['id']}", headers=auth(alice), timeout=10)
    assert busy.status_code == 409, busy.text  # the job is queued or running: it reads the file
    assert busy.json()["error"]["code"] == "dataset_in_use" and busy.json()["error"]["details"]["jobs"] == [job["id"]]
    job = follow(server, alice, job)
    assert job["fine_tuned_model"] == "lineage-bot:1"

    # row 12: exporting :1 gives :2; deleted, the next export is :3, not another :2
    export = lambda: follow(server, alice, requests.post(f"{server}/api/v1/models/lineage-bot/versions/1/export",
                                                          headers=auth(alice), timeout=10).json())
    assert export()["fine_tuned_model"] == "lineage-bot:2"
    assert requests.delete(f"{server}/api/v1/models/lineage-bot/versions/2", headers=auth(alice),
                           timeout=10).status_code == 204
    assert export()["fine_tuned_model"] == "lineage-bot:3"
    assert requests.get(f"{server}/api/v1/models/lineage-bot/versions/2", headers=auth(alice),
                        timeout=10).status_code == 404

    # row 9: the job has ended, so the dataset can go; its file, report and prepared data go with it
    made_from = lambda: [m for m in (home / "cache" / "prepared").glob("*/manifest.json")
                         if dataset["sha256"] in {s["sha256"] for s in json.loads(m.read_text())["sources"]}]
    assert made_from() and list((home / "uploads").glob(f"*/{dataset['id']}.*"))
    assert requests.delete(f"{server}/api/v1/datasets/{dataset['id']}", headers=auth(keys["bob"]),
                           timeout=10).status_code == 404  # another tenant's
    deleted = requests.delete(f"{server}/api/v1/datasets/{dataset['id']}", headers=auth(alice), timeout=10)
    assert deleted.status_code == 204, deleted.text
    assert made_from() == [] and list((home / "uploads").glob(f"*/{dataset['id']}.*")) == []
    for method in ("get", "delete"):
        gone = requests.request(method, f"{server}/api/v1/datasets/{dataset['id']}", headers=auth(alice), timeout=10)
        assert gone.status_code == 404 and gone.json()["error"]["details"]["deleted_at"], gone.text
    listed = requests.get(f"{server}/api/v1/datasets?limit=100", headers=auth(alice), timeout=10).json()["data"]
    assert dataset["id"] not in [d["id"] for d in listed]
    again = requests.post(f"{server}/api/v1/jobs", headers=auth(alice), timeout=10, json={"dataset_id": dataset["id"]})
    assert again.status_code == 422 and again.json()["error"]["details"] == {"param": "dataset_id"}, again.text

    # the lineage still says what the job and its versions were made from
    shown = requests.get(f"{server}/api/v1/jobs/{job['id']}", headers=auth(alice), timeout=10).json()
    assert shown["dataset_id"] == dataset["id"]
    for version in (1, 3):
        lineage = requests.get(f"{server}/api/v1/models/lineage-bot/versions/{version}", headers=auth(alice),
                               timeout=10).json()["lineage"]
        assert lineage["datasets"] == [{"id": dataset["id"], "filename": "lineage.jsonl", "sha256": dataset["sha256"]}]
    url = server_env.get("DATABASE_URL") or f"sqlite:///{home / 'llmft.db'}"
    with session_scope(url) as session:
        tombstone = session.get(Dataset, dataset["id"])
        assert (tombstone.filename, tombstone.sha256, tombstone.report) == ("lineage.jsonl", dataset["sha256"], {})
        assert tombstone.deleted_at is not None
