"""create_job builds the training config as data and checks it once; queued jobs cancel at once; pause and
resume move a job between queued, running and paused, and refuse (409) in any other state."""

from pathlib import Path

import pytest
from sqlalchemy import func, select

from llmft.auth.keys import authenticate, create_key
from llmft.data.service import dataset_path, upload_dataset
from llmft.db.session import session_scope
from llmft.db.tables import JOB_STATUSES, Dataset, Job
from llmft.errors import Conflict, Invalid
from llmft.jobs.lease import claim
from llmft.jobs.service import (
    cancel_job,
    create_evaluation_job,
    create_job,
    list_events,
    pause_job,
    resolved_hyperparameters,
    resume_job,
)
from llmft.train.config import TrainConfig

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "brokerage_support.jsonl"


@pytest.fixture
def tenant(database_url, tmp_path, tiny_model_dir):
    """A member principal, and two datasets stored under an uploads folder whose name holds ' #'
    (in YAML, ' #' starts a comment)."""
    uploads_dir = tmp_path / "uploads #1"
    (tmp_path / "small.jsonl").write_text(
        "".join(SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:30]), encoding="utf-8")
    with session_scope(database_url) as session:
        key, _ = create_key(session, tenant="acme", role="member")
        principal = authenticate(session, key)
        datasets = []
        for _ in range(2):
            with open(tmp_path / "small.jsonl", "rb") as stream:
                dataset, _ = upload_dataset(session, principal=principal, uploads_dir=uploads_dir,
                                            filename="small.jsonl", stream=stream)
            datasets.append(dataset.id)
    return {"url": database_url, "principal": principal, "uploads_dir": uploads_dir,
            "runs_dir": tmp_path / "runs #2", "datasets": datasets}


def new_job(tenant, **fields) -> Job:
    with session_scope(tenant["url"]) as session:
        job, created = create_job(session, principal=tenant["principal"], uploads_dir=tenant["uploads_dir"],
                                  runs_dir=tenant["runs_dir"], base_model="tiny-r1",
                                  dataset_id=tenant["datasets"][0], **fields)
        assert created
        session.expunge(job)
        return job


def test_paths_with_a_hash_are_kept_whole(tenant):
    job = new_job(tenant, validation_dataset_id=tenant["datasets"][1])
    with session_scope(tenant["url"]) as session:
        train, validation = (str(dataset_path(session.get(Dataset, dataset_id), tenant["uploads_dir"]))
                             for dataset_id in tenant["datasets"])
    assert " #1/" in train and Path(train).is_file()
    assert job.config["data"]["train_file"] == train and job.config["data"]["validation_file"] == validation
    assert job.config["output"]["output_dir"] == str(tenant["runs_dir"] / job.id)


def test_max_grad_norm_null_is_no_clipping(tenant):
    job = new_job(tenant, hyperparameters={"max_grad_norm": None, "max_steps": 2})
    assert job.hyperparameters == {"num_epochs": "auto", "batch_size": "auto", "learning_rate": "auto",
                                   "max_grad_norm": None, "max_steps": 2}
    assert job.config["training"]["max_grad_norm"] is None and job.config["training"]["max_steps"] == 2
    assert TrainConfig.model_validate(job.config).training.max_grad_norm is None  # as the trainer child reads it


def test_auto_hyperparameters_are_accepted_shown_and_then_resolved(tenant):
    job = new_job(tenant, hyperparameters={"n_epochs": "auto", "lr": 5e-4, "logging_steps": "auto"})
    training = TrainConfig.model_validate(job.config).training
    assert (training.num_epochs, training.batch_size, training.learning_rate, training.logging_steps) \
        == ("auto", "auto", 5e-4, "auto")
    # as sent, in the caller's spelling (n_epochs, as OpenAI's clients send it), with "auto" for the unsent
    assert job.hyperparameters == {"batch_size": "auto", "n_epochs": "auto", "lr": 5e-4, "logging_steps": "auto"}
    chosen = {"num_epochs": 4.0, "batch_size": 1, "learning_rate": 5e-4, "logging_steps": 1, "row_length": 256,
              "max_steps": None}
    assert resolved_hyperparameters(job.hyperparameters, chosen) == \
        {"batch_size": 1, "n_epochs": 4.0, "lr": 5e-4, "logging_steps": 1}


def test_hyperparameters_take_aliases_and_keep_their_types(tenant):
    job = new_job(tenant, method="full", seed=7, hyperparameters={"epochs": 2, "lr": 1e-3, "lr_scheduler": "linear"})
    training = TrainConfig.model_validate(job.config).training
    assert (training.num_epochs, training.learning_rate, training.lr_scheduler, training.seed) == (2, 1e-3, "linear", 7)
    assert job.config["method"]["type"] == "full" and job.config["model"]["base_model"] == "tiny-r1"


@pytest.mark.parametrize(("fields", "param", "message"), [
    ({"hyperparameters": {"learnin_rate": 1}}, "hyperparameters.learnin_rate",
     "hyperparameters.learnin_rate: unknown hyperparameter; did you mean 'learning_rate'?"),
    ({"hyperparameters": {"seed": 1}}, "hyperparameters.seed", "hyperparameters.seed: unknown hyperparameter"),
    ({"hyperparameters": {"batch_size": 0, "lr_scheduler": "cosine-ish"}}, "hyperparameters",
     "the job has 2 problems:\n  training.batch_size: Input should be greater than or equal to 1"),
    ({"hyperparameters": {"torch_compile": "fast"}}, "hyperparameters.torch_compile",
     "Input should be a valid boolean"),
    ({"suffix": "Support Bot"}, "suffix", "suffix 'Support Bot': lowercase letters"),
    ({"resources": {"processes": 2, "nodes": 2}}, "resources.nodes", "--nnodes M --rdzv-endpoint HOST:PORT"),
])
def test_bad_fields_are_refused_naming_the_parameter_and_nothing_is_stored(tenant, fields, param, message):
    with pytest.raises(Invalid) as caught:
        new_job(tenant, **fields)
    assert caught.value.details["param"] == param and message in caught.value.message, caught.value.message
    with session_scope(tenant["url"]) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_a_new_job_is_queued_and_cancels_at_once(tenant):
    job = new_job(tenant)
    assert job.status == "queued" and job.status in JOB_STATUSES
    with session_scope(tenant["url"]) as session:
        assert cancel_job(session, principal=tenant["principal"], job_id=job.id).status == "cancelled"
        types = [event.type for event in list_events(session, principal=tenant["principal"], job_id=job.id)]
    assert types == ["validating", "queued", "cancelled"]
    with session_scope(tenant["url"]) as session, pytest.raises(Conflict, match="already cancelled"):
        cancel_job(session, principal=tenant["principal"], job_id=job.id)


def test_an_evaluation_job_defaults_to_200_samples_and_the_auto_budget(tenant):
    with session_scope(tenant["url"]) as session:
        job = create_evaluation_job(session, principal=tenant["principal"], model="tiny-r1",
                                    dataset_id=tenant["datasets"][0], runs_dir=tenant["runs_dir"],
                                    uploads_dir=tenant["uploads_dir"])
        assert job.kind == "evaluation" and job.config["model"] == "tiny-r1"
        assert (job.config["max_samples"], job.config["max_new_tokens"]) == (200, "auto")


def call(tenant, action, job_id) -> Job:
    with session_scope(tenant["url"]) as session:
        job = action(session, principal=tenant["principal"], job_id=job_id)
        session.flush()
        session.expunge(job)
        return job


def event_types(tenant, job_id) -> list[str]:
    with session_scope(tenant["url"]) as session:
        return [event.type for event in list_events(session, principal=tenant["principal"], job_id=job_id)]


def test_a_queued_job_pauses_at_once_and_resumes_to_the_queue(tenant):
    job = new_job(tenant)
    paused = call(tenant, pause_job, job.id)
    assert (paused.status, paused.pause_requested) == ("paused", True)
    with session_scope(tenant["url"]) as session:  # its message, still queued, finds nothing to claim
        assert claim(session, job_id=job.id, owner="w", lease_seconds=60) is None
    with pytest.raises(Conflict, match="is paused; only a queued or running job can be paused") as caught:
        call(tenant, pause_job, job.id)
    assert caught.value.code == "invalid_state" and caught.value.details == {"status": "paused"}
    resumed = call(tenant, resume_job, job.id)
    assert (resumed.status, resumed.pause_requested, resumed.attempts) == ("queued", False, 0)
    with pytest.raises(Conflict, match="is queued; only a paused job can be resumed"):
        call(tenant, resume_job, job.id)
    assert event_types(tenant, job.id) == ["validating", "queued", "paused", "resumed"]
    with session_scope(tenant["url"]) as session:
        assert claim(session, job_id=job.id, owner="w", lease_seconds=60) == 1


def test_a_running_job_is_pausing_until_its_runner_stops_it(tenant):
    job = new_job(tenant)
    with session_scope(tenant["url"]) as session:
        claim(session, job_id=job.id, owner="w", lease_seconds=60)
    pausing = call(tenant, pause_job, job.id)
    assert (pausing.status, pausing.pause_requested) == ("running", True)
    call(tenant, pause_job, job.id)  # asked again while it pauses: nothing new
    with pytest.raises(Conflict, match="still pausing"):
        call(tenant, resume_job, job.id)
    assert event_types(tenant, job.id) == ["validating", "queued", "running", "pausing"]
    cancelled = call(tenant, cancel_job, job.id)  # a cancel while it pauses wins: the runner ends it cancelled
    assert (cancelled.status, cancelled.cancel_requested) == ("running", True)
    with pytest.raises(Conflict, match="is being cancelled") as caught:
        call(tenant, pause_job, job.id)
    assert caught.value.code == "invalid_state"


def test_a_paused_job_cancels_at_once_and_a_final_one_neither_pauses_nor_resumes(tenant):
    job = new_job(tenant)
    call(tenant, pause_job, job.id)
    cancelled = call(tenant, cancel_job, job.id)
    assert (cancelled.status, cancelled.pause_requested) == ("cancelled", False) and cancelled.finished_at
    assert event_types(tenant, job.id)[-2:] == ["paused", "cancelled"]
    for action in (pause_job, resume_job):
        with pytest.raises(Conflict, match="is cancelled") as caught:
            call(tenant, action, job.id)
        assert caught.value.code == "invalid_state" and caught.value.details == {"status": "cancelled"}


def test_only_fine_tunes_pause(tenant):
    with session_scope(tenant["url"]) as session:
        job_id = create_evaluation_job(session, principal=tenant["principal"], model="tiny-r1",
                                       dataset_id=tenant["datasets"][0], runs_dir=tenant["runs_dir"],
                                       uploads_dir=tenant["uploads_dir"]).id
    with pytest.raises(Conflict, match="is an evaluation job; only fine-tuning jobs can be paused") as caught:
        call(tenant, pause_job, job_id)
    assert caught.value.details == {"kind": "evaluation"}
