"""One job attempt end to end on a real database: claim, child trainer, events, cancel, pause and resume,
redelivery."""

import json
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from sqlalchemy import select

from llmft.auth.keys import authenticate, create_key
from llmft.data.service import upload_dataset
from llmft.db.session import session_scope
from llmft.db.tables import Job, JobEvent
from llmft.errors import Invalid
from llmft.jobs.runner import run_job
from llmft.jobs.service import cancel_job, create_job, list_events, pause_job, resume_job
from llmft.registry.service import resolve, verified_folder
from llmft.settings import load_settings
from llmft.train import checkpoints
from llmft.train.config import TrainConfig
from llmft.train.run import train
from tests.jobs.test_chaos import events_of, wait
from tests.train.test_run import read_metrics

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "brokerage_support.jsonl"


@pytest.fixture
def setup(database_url, tmp_path, tiny_model_dir):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny-r1").symlink_to(tiny_model_dir)
    settings = load_settings(llmft_home=tmp_path, database_url=database_url)
    with session_scope(database_url) as session:
        key, _ = create_key(session, tenant="acme", role="member")
        principal = authenticate(session, key)
        lines = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:30]
        (tmp_path / "small.jsonl").write_text("".join(lines), encoding="utf-8")
        with open(tmp_path / "small.jsonl", "rb") as stream:
            dataset, _ = upload_dataset(session, principal=principal, uploads_dir=settings.uploads_dir,
                                        filename="small.jsonl", stream=stream)
    return settings, principal, dataset.id


def new_job(settings, principal, dataset_id, **hyperparameters):
    with session_scope(settings.sqlalchemy_url) as session:
        return create_job(session, principal=principal, uploads_dir=settings.uploads_dir, runs_dir=settings.runs_dir,
                          base_model="tiny-r1", dataset_id=dataset_id,
                          hyperparameters={"num_epochs": 1, "batch_size": 1, "logging_steps": 1, **hyperparameters})[0].id


@pytest.mark.slow
def test_a_job_runs_to_succeeded_with_events(setup):
    settings, principal, dataset_id = setup
    job_id = new_job(settings, principal, dataset_id, max_steps=3)
    assert run_job(settings, job_id) == "succeeded"
    with session_scope(settings.sqlalchemy_url) as session:
        job = session.get(Job, job_id)
        types = [e.type for e in list_events(session, principal=principal, job_id=job_id)]
    assert job.status == "succeeded" and job.attempts == 1 and job.progress["step"] == 3
    assert types[:3] == ["validating", "queued", "running"] and types[-1] == "succeeded"
    assert {"data_ready", "started", "metrics", "checkpoint", "trained", "evaluating", "evaluated", "registered"} \
        <= set(types)
    assert job.fine_tuned_model == "tiny-r1-ft:1"
    with session_scope(settings.sqlalchemy_url) as session:
        model, version = resolve(session, principal=principal, ref="tiny-r1-ft:1")
        assert version.job_id == job_id and version.kind == "adapter"
        evaluation = version.evaluation
        assert evaluation["generated"] > 0 and set(evaluation["base"]) == set(evaluation["candidate"])
        assert {"eval_loss", "perplexity", "bleu", "rouge_l", "exact_match", "ended_with_eos", "closed_think"} \
            <= set(evaluation["candidate"])
        assert version.metrics["eval_loss"] == pytest.approx(evaluation["candidate"]["eval_loss"], rel=1e-3)
        verified_folder(settings.llmft_home, version)


@pytest.mark.slow
def test_cancel_stops_a_running_job_and_a_redelivery_starts_nothing(setup):
    settings, principal, dataset_id = setup
    job_id = new_job(settings, principal, dataset_id, max_steps=500)
    outcome = []
    runner = threading.Thread(target=lambda: outcome.append(run_job(settings, job_id)))
    runner.start()
    deadline = time.time() + 120
    while True:
        with session_scope(settings.sqlalchemy_url) as session:
            if session.scalar(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.type == "metrics")):
                break
        assert time.time() < deadline
        time.sleep(0.2)
    assert run_job(settings, job_id, owner="redelivered") == "skipped"
    with session_scope(settings.sqlalchemy_url) as session:
        cancel_job(session, principal=principal, job_id=job_id)
    runner.join(timeout=120)
    assert outcome == ["cancelled"]
    with session_scope(settings.sqlalchemy_url) as session:
        assert session.get(Job, job_id).status == "cancelled"


def job_summary(output: Path) -> dict:
    return json.loads((output / "summary.json").read_text())


def act(settings, principal, action, job_id) -> None:
    with session_scope(settings.sqlalchemy_url) as session:
        action(session, principal=principal, job_id=job_id)


@pytest.mark.slow
def test_a_paused_job_resumes_from_its_checkpoint_and_ends_like_an_uninterrupted_run(setup, tmp_path):
    settings, principal, dataset_id = setup
    job_id = new_job(settings, principal, dataset_id, max_steps=40, eval_per_epoch=False)
    act(settings, principal, pause_job, job_id)  # queued: paused at once
    assert run_job(settings, job_id) == "skipped"  # its message, delivered now, starts nothing
    act(settings, principal, resume_job, job_id)

    outcome = []
    runner = threading.Thread(target=lambda: outcome.append(run_job(settings, job_id)))
    runner.start()
    wait(lambda: any(data["step"] >= 2 for _, data in events_of(settings, job_id, "metrics")), 180, "two steps")
    act(settings, principal, pause_job, job_id)
    runner.join(timeout=120)
    assert outcome == ["paused"]
    with session_scope(settings.sqlalchemy_url) as session:
        job = session.get(Job, job_id)
        paused = (job.status, job.attempts, job.lease_owner, job.pause_requested)
        config = TrainConfig.model_validate(job.config)
    assert paused == ("paused", 0, None, True)  # pausing used none of the job's attempts
    step = events_of(settings, job_id, "paused")[-1][1]["step"]
    assert 2 <= step < 40 and checkpoints.latest(config.output.output_dir).name == f"checkpoint-{step}"

    act(settings, principal, resume_job, job_id)
    assert run_job(settings, job_id) == "succeeded"
    with session_scope(settings.sqlalchemy_url) as session:
        job = session.get(Job, job_id)
        assert (job.attempts, job.progress["step"], job.pause_requested) == (1, 40, False)
        types = [e.type for e in list_events(session, principal=principal, job_id=job_id, limit=1000)]
    assert [t for t in types if t in ("queued", "paused", "resumed", "running", "pausing", "succeeded")] == [
        "queued", "paused", "resumed", "running", "pausing", "paused", "resumed", "running", "succeeded"]
    resumed = events_of(settings, job_id, "started")[-1][1]
    assert resumed["step"] == step and resumed["resumed_from"].endswith(f"checkpoint-{step}")

    # the same job's config trained without a pause: the same losses and the same final adapter
    elsewhere = config.output.model_copy(update={"output_dir": str(tmp_path / "straight")})
    reference = train(config.model_copy(update={"output": elsewhere}), progress=False)
    output = Path(config.output.output_dir)
    logged = lambda folder: {(r["step"], key): r[key] for r in read_metrics(folder)  # noqa: E731
                             for key in ("loss", "eval_loss") if key in r}
    assert logged(output) == pytest.approx(logged(tmp_path / "straight"), rel=1e-4)
    assert reference.summary.final_train_loss == pytest.approx(job_summary(output)["final_train_loss"], rel=1e-4)
    weights, expected = load_file(output / "final" / "adapter_model.safetensors"), \
        load_file(reference.final_dir / "adapter_model.safetensors")
    assert weights.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(weights[name], tensor, rtol=1e-4, atol=1e-6)


def test_unknown_hyperparameters_and_datasets_are_rejected_by_name(setup):
    settings, principal, dataset_id = setup
    with pytest.raises(Invalid, match="hyperparameters.learnin_rate: unknown hyperparameter; did you mean"):
        new_job(settings, principal, dataset_id, learnin_rate=1)
    with pytest.raises(Invalid, match="dataset_id"):
        new_job(settings, principal, "ds-missing")
    with pytest.raises(Invalid, match="batch_size"):
        new_job(settings, principal, dataset_id, batch_size=0)
