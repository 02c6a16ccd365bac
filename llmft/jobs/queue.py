"""Celery dispatches, SQL decides (docs/architecture.md, "The flow of a job").

Broker: Redis when REDIS_URL is set, else an embedded SQLite broker under $LLMFT_HOME. Late
acks, reject on worker lost, prefetch 1, JSON only. The task only calls `run_job`, whose
lease makes a redelivered or duplicated message start nothing.

Routing by resources: a job of P training processes goes to the queue `llmft.pP`; a worker
with S slots consumes `llmft.p1` … `llmft.pS` and runs jobs while their processes fit its free
slots. A message it takes but cannot fit right now goes back to its queue for any worker that
can (`Slots`), so no job waits while a slot that fits it is free elsewhere. A worker that is
shutting down takes nothing: a message it still receives goes back to the queue untouched.
"""

import logging
import threading
import time

from celery import Celery
from celery.signals import worker_shutting_down

from llmft.db.session import session_scope
from llmft.db.tables import Job
from llmft.jobs.lease import reap, worker_beat
from llmft.jobs.runner import run_job
from llmft.monitor.watch import check_service
from llmft.settings import Settings

TASK = "llmft.run_job"
RETRY_SECONDS = 0.5  # how soon a job that did not fit is offered again
log = logging.getLogger("llmft.jobs")
_shutting_down = threading.Event()


@worker_shutting_down.connect
def _on_shutdown(**_kwargs) -> None:
    _shutting_down.set()  # the running job checkpoints, goes back to the queue, and the worker exits


def queue_for(processes: int) -> str:
    return f"llmft.p{processes}"


class Slots:
    """The training processes this worker may run at once, and how many are in use."""

    def __init__(self, total: int):
        self.total, self.busy = total, 0
        self._lock = threading.Lock()

    def take(self, count: int) -> bool:
        with self._lock:
            if self.busy + count > self.total:
                return False
            self.busy += count
            return True

    def give(self, count: int) -> None:
        with self._lock:
            self.busy -= count


def make_celery(settings: Settings, *, slots: Slots | None = None, owner: str | None = None) -> Celery:
    app = Celery("llmft", broker=settings.broker_url, set_as_current=False)
    app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
                    task_serializer="json", accept_content=["json"], task_ignore_result=True,
                    broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
                    task_default_queue=queue_for(1))
    slots = slots or Slots(settings.worker_slots)

    @app.task(name=TASK)
    def run_job_task(job_id: str, processes: int = 1) -> str:
        if _shutting_down.is_set():  # taking nothing while it shuts down (it used to take its own requeued job)
            time.sleep(RETRY_SECONDS)
            dispatch(app, job_id, processes=processes)
            return "deferred"
        if not slots.take(processes):
            time.sleep(RETRY_SECONDS)  # busy here: back to the queue, for a worker with room (or us, later)
            dispatch(app, job_id, processes=processes)
            return "deferred"
        try:
            status = run_job(settings, job_id, owner=owner, stopping=_shutting_down.is_set)
        finally:
            slots.give(processes)
        log.info("job %s: this attempt ended %s", job_id, status)
        if status == "queued":  # stopped by this worker's shutdown: hand the job to another worker
            dispatch(app, job_id, processes=processes)
        return status

    return app


def dispatch(app: Celery, job_id: str, *, processes: int = 1) -> None:
    app.send_task(TASK, args=[job_id, processes], queue=queue_for(processes))


def reaper_loop(app: Celery, settings: Settings, stop: threading.Event, *, name: str,
                interval: float | None = None, slots: Slots | None = None) -> None:
    """Every few seconds: say this worker is alive (and its slots in use), requeue jobs whose lease
    expired (their worker died) and dispatch them again, and check the service's alert rules."""
    interval = interval or max(1.0, settings.lease_seconds / 4)
    while True:
        try:
            with session_scope(settings.sqlalchemy_url) as session:
                worker_beat(session, name=name, slots=slots.total if slots else settings.worker_slots,
                            busy=slots.busy if slots else 0)
                requeued = [(job_id, session.get(Job, job_id).processes) for job_id in reap(session)]
            with session_scope(settings.sqlalchemy_url) as session:
                check_service(session, settings)  # stalled and failed jobs, a full disk: alerts
            for job_id, processes in requeued:
                dispatch(app, job_id, processes=processes)
        except Exception:  # the outer edge of a background loop: log, try again next round
            log.exception("reaper round failed; retrying in %.1f s", interval)
        if stop.wait(interval):
            return
