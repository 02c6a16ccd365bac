"""/v1/fine_tuning/jobs through the official `openai` client, unmodified, against the session's real server and
its worker: upload, create, poll, list, events, checkpoints, chat with the result and with a checkpoint, cancel,
pause and resume, and each error as the client's own exception type. One trained job is shared by the module."""

import time
from pathlib import Path

import openai
import pytest
import requests
from openai import OpenAI
from openai.types.fine_tuning import FineTuningJob

from tests.api.conftest import make_key

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "brokerage_support.jsonl"
LINES = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)


def connect(server: str, key: str) -> OpenAI:
    return OpenAI(base_url=f"{server}/v1", api_key=key, max_retries=0, timeout=60)


def wait(client: OpenAI, job_id: str, statuses: set, timeout: float = 300) -> FineTuningJob:
    deadline = time.time() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        assert time.time() < deadline, job
        time.sleep(0.5)


@pytest.fixture(scope="module")
def alice(server, keys) -> OpenAI:
    return connect(server, keys["alice"])


@pytest.fixture(scope="module")
def files(alice) -> dict:
    train = alice.files.create(file=("train.jsonl", "".join(LINES[:12]).encode()), purpose="fine-tune")
    valid = alice.files.create(file=("valid.jsonl", "".join(LINES[12:16]).encode()), purpose="fine-tune")
    return {"train": train.id, "valid": valid.id}


@pytest.fixture(scope="module")
def trained(alice, files) -> tuple[FineTuningJob, FineTuningJob]:
    """(the job as created, the same job once it succeeded)."""
    created = alice.fine_tuning.jobs.create(
        model="tiny-r1", training_file=files["train"], validation_file=files["valid"], suffix="oai-flow", seed=7,
        metadata={"team": "support"},
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 1}}})
    return created, wait(alice, created.id, {"succeeded", "failed", "cancelled"})


@pytest.mark.slow
def test_a_job_is_created_trained_and_shown_as_openai_shows_it(trained, files, keys):
    created, job = trained
    assert isinstance(created, FineTuningJob) and created.object == "fine_tuning.job"
    assert created.status == "queued" and created.model == "tiny-r1" and created.seed == 7
    assert (created.training_file, created.validation_file) == (files["train"], files["valid"])
    assert created.hyperparameters.model_dump() == {"n_epochs": 2, "batch_size": 1, "learning_rate_multiplier": "auto"}
    assert created.method.type == "supervised" and created.method.supervised.hyperparameters.n_epochs == 2
    assert created.metadata == {"team": "support"} and created.model_extra["user_provided_suffix"] == "oai-flow"
    assert created.fine_tuned_model is None and created.finished_at is None and created.error is None
    assert created.result_files == [] and created.integrations == [] and created.organization_id

    assert job.status == "succeeded", job
    assert job.fine_tuned_model == "oai-flow:1"
    assert job.hyperparameters.n_epochs == 2 and job.hyperparameters.batch_size == 1
    assert job.hyperparameters.learning_rate_multiplier == 1.0  # auto for a run of up to 40 steps: 1e-3, the default
    assert job.trained_tokens > 0 and job.finished_at >= job.created_at > time.time() - 3600
    assert job.estimated_finish is None and job.error is None


@pytest.mark.slow
def test_jobs_list_pages_filters_on_metadata_and_shows_only_fine_tunes(server, keys, alice, trained, files):
    job = trained[1]
    first = alice.fine_tuning.jobs.list(limit=1)
    assert len(first.data) == 1 and first.object == "list"
    assert job.id in [listed.id for listed in alice.fine_tuning.jobs.list(limit=1)]  # auto-pagination over pages of 1
    tagged = alice.fine_tuning.jobs.list(metadata={"team": "support"}).data
    assert job.id in [listed.id for listed in tagged] and all(listed.metadata == {"team": "support"} for listed in tagged)
    assert alice.fine_tuning.jobs.list(metadata={"team": "nobody"}).data == []

    evaluation = requests.post(f"{server}/api/v1/evaluations", headers={"Authorization": f"Bearer {keys['alice']}"},
                               json={"model": job.fine_tuned_model, "dataset_id": files["valid"], "max_samples": 1,
                                     "max_new_tokens": 2}, timeout=30)
    assert evaluation.status_code == 202, evaluation.text
    assert evaluation.json()["id"] not in [listed.id for listed in alice.fine_tuning.jobs.list(limit=100).data]
    with pytest.raises(openai.NotFoundError):
        alice.fine_tuning.jobs.retrieve(evaluation.json()["id"])


@pytest.mark.slow
def test_events_are_newest_first_and_page_with_after(server, keys, alice, trained):
    job = trained[1]
    page = alice.fine_tuning.jobs.list_events(job.id, limit=3)
    assert len(page.data) == 3 and page.has_more
    events = list(alice.fine_tuning.jobs.list_events(job.id, limit=3))  # every page
    ids = [int(event.id) for event in events]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    ours = requests.get(f"{server}/api/v1/jobs/{job.id}/events", params={"limit": 1000},
                        headers={"Authorization": f"Bearer {keys['alice']}"}, timeout=10).json()["data"]
    assert ids == [event["id"] for event in reversed(ours)]
    assert all(event.object == "fine_tuning.job.event" and isinstance(event.created_at, int) for event in events)
    assert {event.type for event in events} == {"message", "metrics"}
    assert events[0].data["event"] == "succeeded" and events[-1].data["event"] == "validating"
    losses = [event.data["train_loss"] for event in events if event.data["event"] == "metrics"]
    assert losses and all(loss > 0 for loss in losses)


@pytest.mark.slow
def test_checkpoints_carry_metrics_and_page_newest_first(alice, trained):
    job = trained[1]
    saved = alice.fine_tuning.jobs.checkpoints.list(job.id).data
    steps = [checkpoint.step_number for checkpoint in saved]
    assert len(saved) >= 2 and steps == sorted(steps, reverse=True) and len(set(steps)) == len(steps)
    for checkpoint in saved:
        assert checkpoint.object == "fine_tuning.job.checkpoint" and checkpoint.fine_tuning_job_id == job.id
        assert checkpoint.fine_tuned_model_checkpoint == checkpoint.id == f"{job.id}:checkpoint-{checkpoint.step_number}"
        assert checkpoint.metrics.step == checkpoint.step_number and checkpoint.metrics.train_loss > 0
        assert isinstance(checkpoint.created_at, int)
    first = alice.fine_tuning.jobs.checkpoints.list(job.id, limit=1)
    assert [c.id for c in first.data] == [saved[0].id] and first.has_more
    assert [c.id for c in first.get_next_page().data] == [saved[1].id]
    assert [c.id for c in alice.fine_tuning.jobs.checkpoints.list(job.id, limit=1)] == [c.id for c in saved]


@pytest.mark.slow
def test_the_fine_tuned_model_and_a_checkpoint_answer_chat_completions(alice, trained):
    job = trained[1]
    checkpoint = alice.fine_tuning.jobs.checkpoints.list(job.id).data[-1]
    for model in (job.fine_tuned_model, checkpoint.fine_tuned_model_checkpoint):
        reply = alice.chat.completions.create(model=model, messages=[{"role": "user", "content": "How do I log in?"}],
                                              max_tokens=4)
        assert reply.object == "chat.completion" and reply.usage.completion_tokens >= 1, model
        assert reply.choices[0].finish_reason in ("length", "stop")


@pytest.mark.slow
def test_cancel_ends_a_job_and_a_second_cancel_is_a_conflict(alice, files):
    job = alice.fine_tuning.jobs.create(model="tiny-r1", training_file=files["train"],
                                        hyperparameters={"n_epochs": 20, "batch_size": 1})
    alice.fine_tuning.jobs.cancel(job.id)
    cancelled = wait(alice, job.id, {"cancelled", "succeeded", "failed"})
    assert cancelled.status == "cancelled" and cancelled.fine_tuned_model is None and cancelled.finished_at
    with pytest.raises(openai.ConflictError):
        alice.fine_tuning.jobs.cancel(job.id)


@pytest.mark.slow
def test_pause_saves_a_checkpoint_and_resume_continues_to_succeeded(alice, files):
    job = alice.fine_tuning.jobs.create(model="tiny-r1", training_file=files["train"], suffix="oai-paused",
                                        hyperparameters={"n_epochs": 3, "batch_size": 1})
    deadline = time.time() + 300
    while not any(event.type == "metrics" for event in alice.fine_tuning.jobs.list_events(job.id, limit=100).data):
        assert time.time() < deadline
        time.sleep(0.3)
    assert alice.fine_tuning.jobs.pause(job.id).status in ("running", "paused")
    paused = wait(alice, job.id, {"paused", "succeeded", "failed", "cancelled"})
    assert paused.status == "paused", paused
    saved = alice.fine_tuning.jobs.checkpoints.list(job.id).data
    assert saved, "pausing saves a checkpoint"
    with pytest.raises(openai.ConflictError):
        alice.fine_tuning.jobs.pause(job.id)  # already paused

    assert alice.fine_tuning.jobs.resume(job.id).status == "queued"
    with pytest.raises(openai.ConflictError):
        alice.fine_tuning.jobs.resume(job.id)  # not paused any more
    done = wait(alice, job.id, {"succeeded", "failed", "cancelled"})
    assert done.status == "succeeded" and done.fine_tuned_model == "oai-paused:1", done
    events = list(alice.fine_tuning.jobs.list_events(job.id, limit=100))
    kinds = [event.data["event"] for event in reversed(events)]
    assert kinds.index("paused") < kinds.index("resumed") < kinds.index("succeeded")
    started = [event.data for event in reversed(events) if event.data["event"] == "started"]
    assert len(started) == 2 and started[0]["resumed_from"] is None
    assert started[1]["resumed_from"] and started[1]["step"] == saved[0].step_number  # from the pause's checkpoint


def test_bad_requests_are_bad_request_errors_naming_the_parameter(alice, files):
    good = {"model": "tiny-r1", "training_file": files["train"]}
    cases = [
        ({**good, "extra_body": {"learning_rate": 1e-4}}, "learning_rate", None),
        ({**good, "hyperparameters": {"n_epochs": 0}}, "hyperparameters.n_epochs", None),
        ({**good, "hyperparameters": {"n_epochs": 2, "warmup": 3}}, "hyperparameters.warmup", None),
        ({**good, "hyperparameters": {"n_epochs": 2},
          "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}}}, "hyperparameters", None),
        ({**good, "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}}}, "training_file",
         "wrong_data_kind"),  # an SFT file: dpo trains on preference pairs (tests/api/test_jobs_methods.py)
        ({**good, "method": {"type": "reinforcement"}}, "method.reinforcement", None),
        ({**good, "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0}}}},
         "method.dpo.hyperparameters.beta", None),
        ({**good, "integrations": [{"type": "wandb", "wandb": {"project": "x"}}]}, "integrations", "unsupported"),
        ({**good, "suffix": "My Model!"}, "suffix", None),
        ({**good, "model": "gpt-4o-mini"}, "model", None),
        ({**good, "training_file": "file-nothing"}, "training_file", None),
        ({**good, "validation_file": "file-nothing"}, "validation_file", None),
    ]
    for arguments, param, code in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            alice.fine_tuning.jobs.create(**arguments)
        assert caught.value.param == param, (arguments, caught.value.body)
        if code:
            assert caught.value.code == code
    for call, param in ((lambda: alice.fine_tuning.jobs.list(extra_query={"status": "running"}), "status"),
                        (lambda: alice.fine_tuning.jobs.list(extra_query={"metadata[a": "b"}), "metadata[a"),
                        (lambda: alice.fine_tuning.jobs.list_events("job-0000000000000000", after="\u00b2"), "after")):
        with pytest.raises(openai.BadRequestError) as caught:
            call()
        assert caught.value.param == param


@pytest.mark.slow
def test_unknown_ids_other_tenants_keys_viewers_and_finished_jobs_get_the_clients_errors(server, keys, alice, trained,
                                                                                         files):
    mine = trained[1]
    bob, viewer = connect(server, keys["bob"]), connect(server, keys["alice_viewer"])
    for call in (bob.fine_tuning.jobs.retrieve, bob.fine_tuning.jobs.cancel, bob.fine_tuning.jobs.pause,
                 bob.fine_tuning.jobs.resume, bob.fine_tuning.jobs.list_events, bob.fine_tuning.jobs.checkpoints.list,
                 alice.fine_tuning.jobs.retrieve):
        with pytest.raises(openai.NotFoundError):
            call(mine.id if call != alice.fine_tuning.jobs.retrieve else "job-0000000000000000")
    assert mine.id not in [listed.id for listed in bob.fine_tuning.jobs.list(limit=100).data]
    with pytest.raises(openai.BadRequestError) as caught:
        bob.fine_tuning.jobs.create(model="tiny-r1", training_file=files["train"])  # alice's file is none of bob's
    assert caught.value.param == "training_file"

    assert viewer.fine_tuning.jobs.retrieve(mine.id).status == "succeeded"
    with pytest.raises(openai.PermissionDeniedError):
        viewer.fine_tuning.jobs.create(model="tiny-r1", training_file=files["train"])
    for call in (viewer.fine_tuning.jobs.cancel, viewer.fine_tuning.jobs.pause, viewer.fine_tuning.jobs.resume):
        with pytest.raises(openai.PermissionDeniedError):
            call(mine.id)
    with pytest.raises(openai.AuthenticationError):
        connect(server, "llmft-not-a-key").fine_tuning.jobs.list()
    for call in (alice.fine_tuning.jobs.cancel, alice.fine_tuning.jobs.pause, alice.fine_tuning.jobs.resume):
        with pytest.raises(openai.ConflictError):  # the job has ended
            call(mine.id)


def test_a_spent_rate_limit_is_a_rate_limit_error(server_env, server_home, start_server):
    env = {**server_env, "LLMFT_HOME": str(server_home("fine-tuning-rate-limit")), "RATE_LIMIT": "3/minute"}
    base = start_server(env, worker=False)
    client = connect(base, make_key(env, "limited", "member"))
    for _ in range(3):
        assert client.fine_tuning.jobs.list().data == []
    with pytest.raises(openai.RateLimitError) as caught:
        client.fine_tuning.jobs.list()
    assert caught.value.code == "rate_limited" and int(caught.value.response.headers["Retry-After"]) >= 1
