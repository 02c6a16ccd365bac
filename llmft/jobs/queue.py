"""Celery dispatches, SQL decides (DESIGN decision 4).

Broker: Redis when REDIS_URL is set, else an embedded SQLite broker under $LLMFT_HOME. Late
acks, reject on worker lost, prefetch 1, JSON only. The task only calls `run_job`, whose
lease makes a redelivered or duplicated message start nothing.
"""

import logging
import threading

from celery import Celery
from celery.signals import worker_shutting_down

from llmft.db.session import session_scope
from llmft.jobs.lease import reap, worker_beat
from llmft.jobs.runner import run_job
from llmft.settings import Settings

TASK = "llmft.run_job"
log = logging.getLogger("llmft.jobs")
_shutting_down = threading.Event()


@worker_shutting_down.connect
def _on_shutdown(**_kwargs) -> None:
    _shutting_down.set()  # the running job checkpoints, goes back to the queue, and the worker exits


def make_celery(settings: Settings) -> Celery:
    app = Celery("llmft", broker=settings.broker_url, set_as_current=False)
    app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
                    task_serializer="json", accept_content=["json"], task_ignore_result=True,
                    broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)

    @app.task(name=TASK)
    def run_job_task(job_id: str) -> str:
        status = run_job(settings, job_id, stopping=_shutting_down.is_set)
        log.info("job %s: this attempt ended %s", job_id, status)
        if status == "queued":  # stopped by this worker's shutdown: hand the job to another worker
            dispatch(app, job_id)
        return status

    return app


def dispatch(app: Celery, job_id: str) -> None:
    app.send_task(TASK, args=[job_id])


def reaper_loop(app: Celery, settings: Settings, stop: threading.Event, *, name: str,
                interval: float | None = None) -> None:
    """Every few seconds: say this worker is alive, requeue jobs whose lease expired (their worker
    died) and dispatch them again."""
    interval = interval or max(1.0, settings.lease_seconds / 4)
    while True:
        try:
            with session_scope(settings.sqlalchemy_url) as session:
                worker_beat(session, name=name)
                requeued = reap(session)
            for job_id in requeued:
                dispatch(app, job_id)
        except Exception:  # the outer edge of a background loop: log, try again next round
            log.exception("reaper round failed; retrying in %.1f s", interval)
        if stop.wait(interval):
            return
