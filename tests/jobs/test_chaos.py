"""Chaos: `kill -9` a worker in the middle of a job, on the SQLite broker and on Redis.

A new worker's reaper finds the expired lease, requeues the job, and the job resumes from its
last committed checkpoint and succeeds. A process monitor scans /proc the whole time: at no
moment do two trainer processes run the job. A duplicate message delivered while the job
runs, to a third worker, starts nothing.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from llmft.auth.keys import authenticate, create_key
from llmft.data.service import upload_dataset
from llmft.db.session import create_schema, session_scope
from llmft.db.tables import Job, JobEvent
from llmft.jobs.queue import dispatch, make_celery
from llmft.jobs.service import create_job
from llmft.settings import load_settings

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "brokerage_support.jsonl"
LEASE_SECONDS = 5


class TrainerMonitor(threading.Thread):
    """Every 10 ms: which processes are trainers of this job (`python -m llmft.jobs.child JOB ...`)."""

    def __init__(self, job_id: str):
        super().__init__(daemon=True)
        self.job_id, self.most, self.pids, self.done = job_id, 0, set(), threading.Event()

    def trainers(self) -> set[int]:
        found = set()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as handle:
                        argv = handle.read().split(b"\0")
                    with open(f"/proc/{entry}/stat") as handle:
                        state = handle.read().rsplit(")", 1)[1].split()[0]
                except OSError:
                    continue
                if b"llmft.jobs.child" in argv and self.job_id.encode() in argv and state != "Z":
                    found.add(int(entry))
        return found

    def run(self):
        while not self.done.is_set():
            now = self.trainers()
            self.pids |= now
            self.most = max(self.most, len(now))
            time.sleep(0.01)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def cluster(request, tmp_path, tiny_model_dir):
    """Settings, an environment for worker processes, and a way to start workers, on one broker."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny-r1").symlink_to(tiny_model_dir)
    env = {**os.environ, "LLMFT_HOME": str(tmp_path), "LEASE_SECONDS": str(LEASE_SECONDS)}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    if request.param == "redis":
        url = request.getfixturevalue("redis_database")(14)  # a database of its own: the queue starts empty
        redis.Redis.from_url(url).flushdb()
        env["REDIS_URL"] = url
    settings = load_settings(llmft_home=tmp_path, lease_seconds=LEASE_SECONDS, redis_url=env.get("REDIS_URL"))
    create_schema(settings.sqlalchemy_url)
    workers = []

    def start(name: str) -> subprocess.Popen:
        log = open(tmp_path / f"{name}.log", "w")
        process = subprocess.Popen([sys.executable, "-m", "llmft.cli", "worker", "--name", name], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        workers.append(process)
        return process

    yield settings, start
    for process in workers:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def events_of(settings, job_id: str, kind: str) -> list[JobEvent]:
    with session_scope(settings.sqlalchemy_url) as session:
        rows = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.type == kind)
                               .order_by(JobEvent.id)).all()
        return [(row.id, row.data) for row in rows]


@pytest.mark.slow
def test_kill_9_mid_job_resumes_from_the_checkpoint_with_one_trainer_at_a_time(cluster):
    settings, start = cluster
    with session_scope(settings.sqlalchemy_url) as session:
        key, _ = create_key(session, tenant="acme", role="member")
        principal = authenticate(session, key)
        lines = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:40]
        with open(settings.llmft_home / "small.jsonl", "w", encoding="utf-8") as handle:
            handle.write("".join(lines))
        with open(settings.llmft_home / "small.jsonl", "rb") as stream:
            dataset, _ = upload_dataset(session, principal=principal, uploads_dir=settings.uploads_dir,
                                        filename="small.jsonl", stream=stream)
        job, _ = create_job(session, principal=principal, uploads_dir=settings.uploads_dir, runs_dir=settings.runs_dir,
                            base_model="tiny-r1", dataset_id=dataset.id, method="full",
                            hyperparameters={"max_steps": 40, "batch_size": 1, "logging_steps": 1, "eval_per_epoch": False})
        job_id = job.id
    monitor = TrainerMonitor(job_id)
    monitor.start()
    celery = make_celery(settings)

    first = start("first")
    dispatch(celery, job_id)
    wait(lambda: events_of(settings, job_id, "checkpoint"), 180, "the first checkpoint")  # one each epoch
    wait(lambda: _step(settings, job_id, "metrics") > _step(settings, job_id, "checkpoint"), 60, "a step past it")
    first.send_signal(signal.SIGKILL)
    first.wait()
    wait(lambda: not monitor.trainers(), 10, "the orphaned trainer to die with its worker")
    saved, logged = _step(settings, job_id, "checkpoint"), _step(settings, job_id, "metrics")
    assert logged > saved  # work after the checkpoint was lost with the worker: it must be redone

    start("second")
    wait(lambda: len(events_of(settings, job_id, "started")) == 2, 120, "the second attempt")
    third = start("third")  # a duplicate delivery reaches a third worker while the job runs
    time.sleep(5)
    dispatch(celery, job_id)
    final = wait(lambda: _final(settings, job_id), 300, "the job to end")
    monitor.done.set()
    monitor.join()

    assert final.status == "succeeded", final.error
    assert final.attempts == 2 and final.progress["step"] == 40
    assert monitor.most == 1 and len(monitor.pids) == 2  # one trainer per attempt, never two at once
    resumed = events_of(settings, job_id, "started")[1][1]
    assert resumed["step"] == saved and resumed["resumed_from"].endswith(f"checkpoint-{saved}")
    assert len(events_of(settings, job_id, "requeued")) == 1 and len(events_of(settings, job_id, "running")) == 2
    wait(lambda: "skipped" in (settings.llmft_home / "third.log").read_text(), 60, "the duplicate to be skipped")
    assert third.poll() is None


def _step(settings, job_id: str, kind: str) -> int:
    return max((data["step"] for _, data in events_of(settings, job_id, kind)), default=0)


def _final(settings, job_id: str) -> Job | None:
    with session_scope(settings.sqlalchemy_url) as session:
        job = session.get(Job, job_id)
        session.expunge(job)
    return job if job.status in ("succeeded", "failed", "cancelled") else None
