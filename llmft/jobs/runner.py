"""Run one attempt of a job: claim its lease, start the trainer child, heartbeat, end the attempt.
The attempt counts when the child starts its trainer (llmft/jobs/lease.py, `start_attempt`).

    run_job(settings, job_id)    # what the Celery task calls

The trainer runs in its own process group (llmft.jobs.child), so cancel and pause are a signal
and a crash in training cannot take the worker down. A paused attempt ends "paused" and gives
its attempt back (lease.pause); resume_job queues the job again and its trainer continues from
the checkpoint. The lease decides: if it is held by another runner (or the job is paused) this
returns "skipped" and starts nothing.
"""

import os
import signal
import socket
import subprocess
import sys
import time

from llmft import exit_codes
from llmft.db.session import session_scope
from llmft.db.tables import Job
from llmft.jobs.lease import claim, finish, heartbeat, pause
from llmft.processes import die_with_parent  # kill -9 of a worker leaves no orphan trainer
from llmft.settings import Settings
from llmft.train import checkpoints

HEARTBEAT_SECONDS = 2.0


def run_job(settings: Settings, job_id: str, *, owner: str | None = None, stopping=lambda: False) -> str:
    """The status the attempt ended with: succeeded, failed, cancelled, paused, queued (requeued), lost, skipped."""
    owner = owner or f"{socket.gethostname()}:{os.getpid()}"
    url = settings.sqlalchemy_url
    with session_scope(url) as session:
        token = claim(session, job_id=job_id, owner=owner, lease_seconds=settings.lease_seconds)
        attempts = session.get(Job, job_id).attempts if token is not None else 0  # given back if it is paused
    if token is None:
        return "skipped"  # another runner holds it, or it is paused, cancelled or out of attempts
    if stopping():  # this worker began to shut down since the message came: start no trainer, requeue
        with session_scope(url) as session:
            finish(session, job_id=job_id, token=token, status="queued", requeue=True)  # (paused if pausing)
        return "queued"
    env = {**os.environ, "LLMFT_HOME": str(settings.llmft_home), "DATABASE_URL": url}
    child = subprocess.Popen([sys.executable, "-m", "llmft.jobs.child", job_id, str(token)], env=env,
                             start_new_session=True, preexec_fn=die_with_parent)
    signalled = False
    while child.poll() is None:
        time.sleep(HEARTBEAT_SECONDS / 4)
        with session_scope(url) as session:
            alive = heartbeat(session, job_id=job_id, token=token, lease_seconds=settings.lease_seconds)
            job = session.get(Job, job_id)
            stop = job.cancel_requested or job.pause_requested
        if not alive:  # another runner holds the job now: stop ours at once
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            return "lost"
        if (stop or stopping()) and not signalled:
            os.killpg(child.pid, signal.SIGTERM)  # the trainer saves a checkpoint and exits with 3
            signalled = True
    code = child.returncode
    with session_scope(url) as session:
        job = session.get(Job, job_id)
        cancel, pausing = job.cancel_requested, job.pause_requested
        # a trainer signalled before it set up its SIGTERM handler dies of the signal: stopped all the same
        stopped = code == exit_codes.STOPPED or (signalled and code != 0)
        if code == 0:
            status, error = "succeeded", None
        elif stopped and cancel:
            status, error = "cancelled", None
        elif stopped and pausing:  # before a worker shutdown's requeue: the job waits for its resume
            pause(session, job_id=job_id, token=token, attempts=attempts, step=_checkpoint_step(job.config))
            return "paused"
        elif stopped:
            finish(session, job_id=job_id, token=token, status="queued", requeue=True)
            return "queued"
        elif code == exit_codes.NAN_LOSS:
            status = "failed"
            error = {"code": "nan_loss", "param": None,
                     "message": "the loss or gradient became NaN or infinite; training stopped and the last good "
                                "checkpoint is kept (lower the learning rate or check the data, then run again)"}
        elif code == exit_codes.REWARD_FAILED:
            status = "failed"
            error = {"code": "reward_failed", "param": "method.grpo.graders",
                     "message": "a reward function failed (the job's reward_failed event names the grader and the "
                                "record's line); training stopped and the last checkpoint is kept"}
        else:
            status = "failed"
            error = {"code": "training_failed", "param": None,
                     "message": f"the trainer exited with code {code}; the job's error event says why"}
        finish(session, job_id=job_id, token=token, status=status, error=error)
    return status


def _checkpoint_step(config: dict) -> int | None:
    """The step of the newest committed checkpoint of a fine-tune (the one its resume continues from)."""
    latest = checkpoints.latest(config["output"]["output_dir"])
    return checkpoints.info(latest)["step"] if latest is not None else None
