"""Leases on job rows: one runner at a time, however often a message is delivered.

A runner claims a job with one conditional UPDATE (queued, or running with an expired lease,
attempts left, not cancelled, not pausing). The claim bumps `fencing_token`; every later write
by that runner (heartbeat, finish, pause) is conditioned on the token, so a runner that lost its
lease can never overwrite the work of the one that took over. An attempt counts when its trainer
starts (`start_attempt`, called by the trainer child), not at the claim: a claim whose trainer
never started (its worker shut down or died first) uses none of the job's attempts, nor does
an attempt stopped by a pause (`pause`). `reap` puts jobs whose lease expired back in the queue,
or fails them when no attempts are left.
"""

from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.orm import Session

from llmft.db.events import record_event
from llmft.db.tables import FINAL_STATUSES, Job, Worker, now


def claim(session: Session, *, job_id: str, owner: str, lease_seconds: int, at: datetime | None = None) -> int | None:
    """The new fencing token when this owner now holds the job, else None (someone else does)."""
    at = at or now()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.attempts < Job.max_attempts, Job.cancel_requested.is_(False),
               Job.pause_requested.is_(False),
               or_(Job.status == "queued", and_(Job.status == "running", Job.lease_expires_at < at)))
        .values(status="running", lease_owner=owner, lease_expires_at=at + timedelta(seconds=lease_seconds),
                heartbeat_at=at, fencing_token=Job.fencing_token + 1,
                started_at=func.coalesce(Job.started_at, at))
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    job = session.get(Job, job_id, populate_existing=True)
    record_event(session, job, "running", f"attempt {job.attempts + 1} of {job.max_attempts} claimed by {owner}",
                 {"attempt": job.attempts + 1, "owner": owner})
    return job.fencing_token


def start_attempt(session: Session, *, job_id: str, token: int) -> bool:
    """The trainer of this claim starts: count the attempt. False when the token is stale (do not start)."""
    result = session.execute(update(Job).where(Job.id == job_id, Job.fencing_token == token, Job.status == "running")
                             .values(attempts=Job.attempts + 1).execution_options(synchronize_session=False))
    return result.rowcount == 1


def heartbeat(session: Session, *, job_id: str, token: int, lease_seconds: int, progress: dict | None = None,
              at: datetime | None = None) -> bool:
    """Extend the lease; False when the token is stale (the job was taken over): stop working."""
    at = at or now()
    values = {"lease_expires_at": at + timedelta(seconds=lease_seconds), "heartbeat_at": at}
    if progress is not None:
        values["progress"] = progress
    result = session.execute(update(Job).where(Job.id == job_id, Job.fencing_token == token, Job.status == "running")
                             .values(**values).execution_options(synchronize_session=False))
    return result.rowcount == 1


def finish(session: Session, *, job_id: str, token: int, status: str, error: dict | None = None,
           requeue: bool = False) -> bool:
    """End this runner's hold: a final status, or back to the queue (requeue=True, e.g. worker shutdown)."""
    if status not in (*FINAL_STATUSES, "queued"):
        raise ValueError(f"cannot finish a job as {status!r}")
    values = {"status": status, "lease_owner": None, "lease_expires_at": None, "error": error}
    if requeue:  # a pause asked for since the runner looked: the job waits for its resume, not in the queue
        values["status"] = case((Job.pause_requested, "paused"), else_=status)
    if status in FINAL_STATUSES:
        values["pause_requested"] = False  # it ended before the pause stopped it
    if not requeue:
        values["finished_at"] = now()
    result = session.execute(update(Job).where(Job.id == job_id, Job.fencing_token == token, Job.status == "running")
                             .values(**values).execution_options(synchronize_session=False))
    if result.rowcount == 1:
        job = session.get(Job, job_id, populate_existing=True)
        message = (error or {}).get("message") or {"queued": "requeued"}.get(job.status, job.status)
        record_event(session, job, job.status, message, {"error": error} if error else {})
    return result.rowcount == 1


def pause(session: Session, *, job_id: str, token: int, attempts: int, step: int | None) -> bool:
    """End this runner's hold as "paused" (its pause was requested and its trainer stopped at checkpoint
    `step`). `attempts`: the job's count at the claim; the paused attempt gives its count back, so that
    pausing never uses one of max_attempts. False when the token is stale."""
    result = session.execute(update(Job).where(Job.id == job_id, Job.fencing_token == token, Job.status == "running")
                             .values(status="paused", lease_owner=None, lease_expires_at=None, attempts=attempts)
                             .execution_options(synchronize_session=False))
    if result.rowcount == 1:
        job = session.get(Job, job_id, populate_existing=True)
        where = f"at step {step}" if step is not None else "before its first checkpoint"
        record_event(session, job, "paused", f"paused {where}; resume continues from there", {"step": step})
    return result.rowcount == 1


def reap(session: Session, *, at: datetime | None = None) -> list[str]:
    """Requeue running jobs whose lease expired (attempts left) or fail them; the ids to dispatch again.
    A job lost while it was being cancelled ends cancelled; one lost while pausing is paused, and its
    lost attempt is given back (the pause had asked it to stop).

    Each change is one UPDATE conditioned on the fencing token seen, so reapers of several workers
    running at once requeue a job once."""
    at = at or now()
    expired = session.execute(select(Job.id, Job.fencing_token, Job.attempts, Job.max_attempts, Job.cancel_requested,
                                     Job.pause_requested, Job.lease_owner)
                              .where(Job.status == "running", Job.lease_expires_at < at)).all()
    requeued = []
    for job_id, token, attempts, max_attempts, cancel, pause, owner in expired:
        if pause and not cancel:
            values = {"status": "paused", "attempts": max(attempts - 1, 0)}
            event = ("paused", f"paused: the lease of {owner} expired while it paused; resume continues from the "
                     "newest checkpoint", "warning")
        elif attempts < max_attempts and not cancel:
            values = {"status": "queued"}
            event = ("requeued", f"the lease of {owner} expired; requeued", "warning")
        elif cancel:
            values = {"status": "cancelled", "finished_at": at}
            event = ("cancelled", "cancelled while its worker was gone", "info")
        else:
            reason = f"the worker was lost {attempts} times (max_attempts {max_attempts})"
            values = {"status": "failed", "finished_at": at,
                      "error": {"code": "worker_lost", "message": reason, "param": None}}
            event = ("failed", reason, "error")
        changed = session.execute(update(Job)
                                  .where(Job.id == job_id, Job.fencing_token == token, Job.status == "running",
                                         Job.lease_expires_at < at)
                                  .values(lease_owner=None, lease_expires_at=None, **values)
                                  .execution_options(synchronize_session=False))
        if changed.rowcount != 1:
            continue  # another reaper, or the runner itself, got there first
        job = session.get(Job, job_id, populate_existing=True)
        record_event(session, job, event[0], event[1], {"attempts": attempts, "lost_owner": owner}, level=event[2])
        if values["status"] == "queued":
            requeued.append(job_id)
    return requeued


def worker_beat(session: Session, *, name: str, slots: int = 1, busy: int = 0, at: datetime | None = None) -> None:
    """This worker is alive, with `busy` of its `slots` in use (its reaper loop calls this every few seconds)."""
    at = at or now()
    row = session.get(Worker, name)
    if row is None:
        session.add(Worker(name=name, started_at=at, seen_at=at, slots=slots, busy=busy))
    else:
        row.seen_at, row.slots, row.busy = at, slots, busy


def live_workers(session: Session, *, within_seconds: float, at: datetime | None = None) -> list[str]:
    since = (at or now()) - timedelta(seconds=within_seconds)
    return list(session.scalars(select(Worker.name).where(Worker.seen_at >= since).order_by(Worker.name)))
