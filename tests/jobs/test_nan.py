"""A NaN in a real tiny run, through the worker's runner: the job stops without saving what followed
the NaN, fails with code nan_loss, and its alert reaches the tenant's local webhook receiver.

The NaN is real: a learning rate of 1e30 makes the second step's gradients overflow."""

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from test_runner import new_job, setup  # noqa: F401  (the runner tests' fixture and helper)

from llmft.db.session import session_scope
from llmft.db.tables import Alert, Job, JobEvent
from llmft.jobs.runner import run_job
from llmft.monitor.alerts import update_alert_settings
from llmft.train import checkpoints


@pytest.mark.slow
def test_a_nan_stops_the_job_keeps_the_last_good_checkpoint_and_notifies(setup, receiver, monkeypatch):  # noqa: F811
    settings, principal, dataset_id = setup
    monkeypatch.setenv("WEBHOOK_ALLOW_PRIVATE", "1")  # the job process delivers to the local receiver
    with session_scope(settings.sqlalchemy_url) as session:
        update_alert_settings(session, tenant_id=principal.tenant_id, webhooks=[receiver.url], rules=None,
                              allow_private=True)
    job_id = new_job(settings, principal, dataset_id, max_steps=8, save_steps=1, learning_rate=1e30,
                     lr_scheduler="constant", warmup_steps=0, eval_per_epoch=False)
    assert run_job(settings, job_id) == "failed"

    with session_scope(settings.sqlalchemy_url) as session:
        job = session.get(Job, job_id)
        assert job.error["code"] == "nan_loss" and job.fine_tuned_model is None
        events = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)).all()
        nan = next(e for e in events if e.type == "nan_loss")
        alert = session.scalar(select(Alert).where(Alert.job_id == job_id))
        assert alert.rule == "nan_loss" and alert.severity == "critical" and alert.notified_at is not None
        output = Path(job.config["output"]["output_dir"])
    step, last_good = nan.data["step"], nan.data["last_good_checkpoint"]
    saved = [int(p.name.split("-")[1]) for p in checkpoints.committed(output)]
    assert saved and max(saved) < step and last_good == f"checkpoint-{max(saved)}"  # nothing after the NaN saved
    assert not (output / "final").exists()
    summary = json.loads((output / "summary.json").read_text())
    assert summary["status"] == "nan_loss" and summary["nan_step"] == step
    assert [p["alert"]["rule"] for p in receiver.received] == ["nan_loss"]
    assert "NaN" in receiver.received[0]["text"] and receiver.received[0]["alert"]["job_id"] == job_id
