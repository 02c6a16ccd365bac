"""Model names through the official `openai` client on the live server: one tiny-r1 job with a checkpoint at each
of its 3 steps (2 kept), then models.list holds its version and checkpoints, a checkpoint answers by name on
/v1/chat/completions, /v1/completions and /api/v1/predict, models.retrieve and models.delete work as OpenAI's, the
alias guard is the client's ConflictError, and another tenant or a viewer gets NotFoundError / PermissionDeniedError."""

from pathlib import Path

import openai
import pytest
import requests

from tests.api.conftest import follow

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "brokerage_support.jsonl"
HI = [{"role": "user", "content": "hi"}]


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def client(server, key) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key=key, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def tuned(server, keys) -> dict:
    """Alice's job `names` (3 steps, save_steps 1, save_total_limit 2): its version and its kept checkpoints."""
    small = "".join(SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:20]).encode()
    dataset = requests.post(f"{server}/api/v1/datasets", headers=auth(keys["alice"]),
                            files={"file": ("names.jsonl", small)}, timeout=120).json()["id"]
    created = requests.post(f"{server}/api/v1/jobs", headers=auth(keys["alice"]), timeout=30, json={
        "dataset_id": dataset, "suffix": "names", "hyperparameters": {
            "max_steps": 3, "batch_size": 1, "save_steps": 1, "save_total_limit": 2}})
    assert created.status_code == 201, created.text
    job = follow(server, keys["alice"], created.json())
    saved = requests.get(f"{server}/api/v1/jobs/{job['id']}/checkpoints", headers=auth(keys["alice"]), timeout=10)
    checkpoints = [c["id"] for c in saved.json()["data"]]
    assert checkpoints == [f"{job['id']}:checkpoint-3", f"{job['id']}:checkpoint-2"], checkpoints
    return {"job": job["id"], "version": job["fine_tuned_model"], "checkpoints": checkpoints}


@pytest.mark.slow
def test_the_list_holds_versions_and_checkpoints_and_a_checkpoint_answers_by_name(server, keys, tuned):
    alice = client(server, keys["alice"])
    assert tuned["version"] == "names:1"
    listed = {model.id: model for model in alice.models.list()}
    assert {"tiny-r1", "names:1", *tuned["checkpoints"]} <= set(listed)
    assert all(listed[name].object == "model" and listed[name].owned_by == "acme"
               for name in ["names:1", *tuned["checkpoints"]])
    assert listed[tuned["checkpoints"][0]].created > 0

    newest, older = tuned["checkpoints"]
    chat = alice.chat.completions.create(model=newest, messages=HI, max_tokens=2, temperature=0)
    assert chat.model == newest and chat.usage.completion_tokens == 2
    text = alice.completions.create(model=older, prompt="Two and", max_tokens=2, temperature=0)
    assert text.model == older and text.usage.completion_tokens == 2
    predicted = requests.post(f"{server}/api/v1/predict", headers=auth(keys["alice"]), timeout=120,
                              json={"model": newest, "text": "hi", "max_length": 2})
    assert predicted.status_code == 200 and predicted.json()["model"] == newest, predicted.text
    assert alice.chat.completions.create(model="names:1", messages=HI, max_tokens=2).model == "names:1"

    dropped = f"{tuned['job']}:checkpoint-1"  # save_total_limit 2 deleted it
    with pytest.raises(openai.NotFoundError) as gone:
        alice.chat.completions.create(model=dropped, messages=HI, max_tokens=2)
    assert gone.value.code == "model_not_found" and "checkpoint-2, checkpoint-3" in gone.value.message

    bob = client(server, keys["bob"])
    assert not [model.id for model in bob.models.list() if tuned["job"] in model.id or model.id.startswith("names")]
    with pytest.raises(openai.NotFoundError) as other:
        bob.chat.completions.create(model=newest, messages=HI, max_tokens=2)
    with pytest.raises(openai.NotFoundError) as unknown:
        bob.chat.completions.create(model=f"job-{'0' * 16}:checkpoint-3", messages=HI, max_tokens=2)
    assert other.value.code == unknown.value.code == "model_not_found"
    assert other.value.message.replace(newest, "X") == unknown.value.message.replace(f"job-{'0' * 16}:checkpoint-3", "X")


@pytest.mark.slow
def test_retrieve_any_name(server, keys, tuned):
    alice = client(server, keys["alice"])
    newest = tuned["checkpoints"][0]
    one = alice.models.retrieve(newest)
    assert (one.id, one.object, one.owned_by) == (newest, "model", "acme")
    assert one.model_extra["fine_tuning_job_id"] == tuned["job"] and one.model_extra["step"] == 3
    version = alice.models.retrieve("names:1")
    assert version.id == "names:1" and version.model_extra["kind"] == "adapter"
    assert alice.models.retrieve("tiny-r1").owned_by == "llmft"
    assert alice.models.retrieve("names").model_extra["points_to"] == "names:1"
    for name in ("names:99", "nobody", f"{tuned['job']}:checkpoint-1", "a/b@c:d", "names:1\n"):
        with pytest.raises(openai.NotFoundError):
            alice.models.retrieve(name)
    with pytest.raises(openai.NotFoundError):
        client(server, keys["bob"]).models.retrieve(newest)
    with pytest.raises(openai.NotFoundError):
        client(server, keys["bob"]).models.retrieve("names:1")


@pytest.mark.slow
def test_delete_a_version_with_the_alias_guard(server, keys, tuned):
    alice, bob, viewer = (client(server, keys[name]) for name in ("alice", "bob", "alice_viewer"))
    for name in ("tiny-r1", "names", tuned["checkpoints"][0]):
        with pytest.raises(openai.BadRequestError) as refused:
            alice.models.delete(name)
        assert refused.value.code == "model_not_deletable" and "NAME:VERSION" in refused.value.message, name
    with pytest.raises(openai.NotFoundError):
        bob.models.delete("names:1")
    with pytest.raises(openai.PermissionDeniedError):
        viewer.models.delete("names:1")

    assert requests.put(f"{server}/api/v1/models/names/aliases/prod", json={"version": 1},
                        headers=auth(keys["alice"]), timeout=10).ok
    with pytest.raises(openai.BadRequestError):
        alice.models.delete("names@prod")
    with pytest.raises(openai.ConflictError) as guarded:
        alice.models.delete("names:1")
    assert "prod" in guarded.value.message
    assert requests.delete(f"{server}/api/v1/models/names/aliases/prod", headers=auth(keys["alice"]),
                           timeout=10).ok

    deleted = alice.models.delete("names:1")
    assert (deleted.id, deleted.object, deleted.deleted) == ("names:1", "model", True)
    with pytest.raises(openai.NotFoundError):
        alice.models.retrieve("names:1")
    with pytest.raises(openai.NotFoundError):
        alice.models.delete("names:1")
    with pytest.raises(openai.NotFoundError):
        alice.chat.completions.create(model="names:1", messages=HI, max_tokens=2)
    assert "names:1" not in {model.id for model in alice.models.list()}
    # the job's checkpoints stay servable: they live with the job, not with the version
    assert alice.chat.completions.create(model=tuned["checkpoints"][0], messages=HI, max_tokens=2).choices
