"""One job attempt end to end on a real database: claim, child trainer, events, cancel, redelivery."""

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from llmft.auth.keys import authenticate, create_key
from llmft.data.service import upload_dataset
from llmft.db.session import session_scope
from llmft.db.tables import Job, JobEvent
from llmft.errors import Invalid
from llmft.jobs.runner import run_job
from llmft.jobs.service import cancel_job, create_job, list_events
from llmft.registry.service import resolve, verified_folder
from llmft.settings import load_settings

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


def test_unknown_hyperparameters_and_datasets_are_rejected_by_name(setup):
    settings, principal, dataset_id = setup
    with pytest.raises(Invalid, match="hyperparameters.learnin_rate: unknown hyperparameter; did you mean"):
        new_job(settings, principal, dataset_id, learnin_rate=1)
    with pytest.raises(Invalid, match="dataset_id"):
        new_job(settings, principal, "ds-missing")
    with pytest.raises(Invalid, match="batch_size"):
        new_job(settings, principal, dataset_id, batch_size=0)
