"""/v1/files with the official openai client, unmodified, against a live server (llmft/api/openai_files.py)."""

from pathlib import Path

import openai
import pytest
import requests

from tests.api.conftest import make_key

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "brokerage_support.jsonl"
LINES = SAMPLE.read_bytes().splitlines(keepends=True)


def connect(server: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key=key, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def tenant(server, server_env) -> dict:
    """A tenant of its own (its list holds only this module's files), with a member and a viewer key."""
    return {"member": make_key(server_env, "files-co", "member"), "viewer": make_key(server_env, "files-co", "viewer")}


@pytest.fixture(scope="module")
def client(server, tenant) -> openai.OpenAI:
    return connect(server, tenant["member"])


def upload(client: openai.OpenAI, lines: int = 4, name: str = "train.jsonl", start: int = 0):
    data = b"".join(LINES[start:start + lines])
    return client.files.create(file=(name, data), purpose="fine-tune"), data


def test_create_retrieve_content_delete(server, client):
    created, data = upload(client, name="support.jsonl")
    assert created.object == "file" and created.id.startswith("ds-")
    assert (created.filename, created.bytes, created.purpose, created.status) == ("support.jsonl", len(data),
                                                                                 "fine-tune", "processed")
    assert created.status_details is None and created.expires_at is None and created.created_at > 1_700_000_000
    assert client.files.retrieve(created.id) == created
    assert client.files.content(created.id).read() == data
    # the same object is a dataset of the native API, with its validation report
    native = requests.get(f"{server}/api/v1/datasets/{created.id}", timeout=10,
                          headers={"Authorization": f"Bearer {client.api_key}"}).json()
    assert native["examples"] == 4 and native["sha256"]

    deleted = client.files.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "file", True)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(created.id)
    with pytest.raises(openai.NotFoundError):
        client.files.delete(created.id)


def test_list_pages_with_the_clients_cursor(server, server_env):
    client = connect(server, make_key(server_env, "files-pages", "member"))
    ids = [upload(client, lines=2, start=2 * i)[0].id for i in range(5)]
    assert [file.id for file in client.files.list(limit=2)] == ids[::-1]  # auto-pagination: 3 pages, newest first
    assert [file.id for file in client.files.list(limit=2, order="asc")] == ids
    first = client.files.list(limit=2)
    assert (len(first.data), first.has_more) == (2, True)
    assert first.model_extra["first_id"] == ids[4] and first.model_extra["last_id"] == ids[3]
    assert client.files.list().has_more is False and len(client.files.list().data) == 5  # no limit: all
    assert [file.id for file in client.files.list(after=ids[1], order="asc")] == ids[2:]
    assert client.files.list(purpose="fine-tune").data and client.files.list(purpose="batch").data == []
    with pytest.raises(openai.NotFoundError):
        client.files.list(after="ds-0000000000000000")
    with pytest.raises(openai.BadRequestError) as error:
        client.files.list(limit=0)
    assert error.value.param == "limit"


def test_a_file_with_errors_is_refused_with_the_line_numbered_report(client):
    with pytest.raises(openai.BadRequestError) as error:
        client.files.create(file=("broken.jsonl", LINES[0] + b'{"messages": [\n'), purpose="fine-tune")
    body = error.value.body
    assert body["code"] == "invalid_dataset" and body["type"] == "invalid_request_error"
    assert "invalid_json at line 2" in body["message"] and "nothing was stored" in body["message"]
    [issue] = [issue for issue in body["details"]["report"]["issues"] if issue["severity"] == "error"]
    assert (issue["code"], issue["line"]) == ("invalid_json", 2)
    assert "broken.jsonl" not in [file.filename for file in client.files.list()]


def test_only_fine_tuning_files_are_stored(client):
    for purpose in ("batch", "assistants"):
        with pytest.raises(openai.BadRequestError) as error:
            client.files.create(file=("train.jsonl", b"".join(LINES[:2])), purpose=purpose)
        assert error.value.param == "purpose" and "only fine-tuning files" in error.value.message


def test_keys_roles_and_tenants(server, client, tenant, keys):
    mine, _ = upload(client)
    viewer = connect(server, tenant["viewer"])
    assert viewer.files.retrieve(mine.id).id == mine.id  # a viewer reads
    with pytest.raises(openai.PermissionDeniedError):
        viewer.files.create(file=("train.jsonl", b"".join(LINES[:2])), purpose="fine-tune")
    with pytest.raises(openai.PermissionDeniedError):
        viewer.files.delete(mine.id)
    with pytest.raises(openai.AuthenticationError):
        connect(server, "llmft_wrong").files.list()
    other = connect(server, keys["bob"])
    for call in (other.files.retrieve, other.files.content, other.files.delete):
        with pytest.raises(openai.NotFoundError):
            call(mine.id)
    assert mine.id not in [file.id for file in other.files.list()]
    assert client.files.retrieve(mine.id) == mine  # untouched


def test_a_file_a_job_uses_cannot_be_deleted(server, client):
    mine, _ = upload(client)
    headers = {"Authorization": f"Bearer {client.api_key}"}
    job = requests.post(f"{server}/api/v1/jobs", headers=headers, timeout=30, json={
        "dataset_id": mine.id, "hyperparameters": {"max_steps": 1, "batch_size": 1}}).json()
    try:
        with pytest.raises(openai.ConflictError) as error:  # queued or running: seconds before it could end
            client.files.delete(mine.id)
        assert job["id"] in error.value.message and error.value.code == "dataset_in_use"
    finally:
        assert requests.post(f"{server}/api/v1/jobs/{job['id']}/cancel", headers=headers, timeout=30).ok
    assert client.files.retrieve(mine.id).id == mine.id
