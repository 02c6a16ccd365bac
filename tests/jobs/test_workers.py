"""Two workers, one queue, on the real Redis and PostgreSQL: jobs routed by the processes they need.

Worker "big" has 2 slots, worker "small" 1. Four jobs: one of 2 processes (torchrun, DDP on
gloo) that only "big" can run, three of 1 process. All succeed, each runs exactly once, and no
job waits while a worker has a free slot that fits it (read off the job events' timeline).
"""

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from llmft.auth.keys import authenticate, create_key
from llmft.data.service import upload_dataset
from llmft.db.session import create_schema, session_scope
from llmft.db.tables import Job, JobEvent, Worker
from llmft.jobs.queue import dispatch, make_celery
from llmft.jobs.service import create_job
from llmft.settings import load_settings

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "brokerage_support.jsonl"
SLOTS = {"big": 2, "small": 1}
GRACE = timedelta(seconds=6)  # broker delivery, a deferred message offered again, the claim


@pytest.fixture
def cluster(tmp_path, tiny_model_dir, redis_database, postgres_url, reset_postgres):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny-r1").symlink_to(tiny_model_dir)
    broker = redis_database(12)  # a database of its own: the queue starts empty
    redis.Redis.from_url(broker).flushdb()
    reset_postgres(postgres_url)
    env = {**os.environ, "LLMFT_HOME": str(tmp_path), "DATABASE_URL": postgres_url, "REDIS_URL": broker,
           "LEASE_SECONDS": "10"}
    settings = load_settings(llmft_home=tmp_path, database_url=postgres_url, redis_url=broker, lease_seconds=10)
    create_schema(settings.sqlalchemy_url)
    workers = []
    for name, slots in SLOTS.items():
        log = open(tmp_path / f"{name}.log", "w")
        workers.append(subprocess.Popen([sys.executable, "-m", "llmft.cli", "worker", "--name", name,
                                         "--slots", str(slots)], env=env, stdout=log, stderr=subprocess.STDOUT))
    yield settings
    for process in workers:
        process.terminate()
    for process in workers:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    redis.Redis.from_url(broker).flushdb()


def wait(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while not (value := predicate()):
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
def test_two_workers_share_one_queue_route_by_processes_and_leave_no_fitting_slot_idle(cluster):
    settings = cluster
    url = settings.sqlalchemy_url
    wait(lambda: _live_slots(url) == sorted(SLOTS.values()), 120, "both workers to beat with their slots")
    with session_scope(url) as session:
        principal = authenticate(session, create_key(session, tenant="acme", role="member")[0])
        small = settings.llmft_home / "small.jsonl"
        small.write_text("".join(SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:12]), encoding="utf-8")
        with open(small, "rb") as stream:
            dataset, _ = upload_dataset(session, principal=principal, uploads_dir=settings.uploads_dir,
                                        filename="small.jsonl", stream=stream)
        jobs = []
        for processes in (2, 1, 1, 1):
            job, _ = create_job(session, principal=principal, uploads_dir=settings.uploads_dir,
                                runs_dir=settings.runs_dir, base_model="tiny-r1", dataset_id=dataset.id, method="full",
                                hyperparameters={"max_steps": 3, "batch_size": 1, "logging_steps": 1,
                                                 "eval_per_epoch": False}, resources={"processes": processes})
            jobs.append((job.id, processes))
    celery = make_celery(settings)
    for job_id, processes in jobs:
        dispatch(celery, job_id, processes=processes)

    finals = wait(lambda: _all_final(url, [job_id for job_id, _ in jobs]), 900, "the four jobs to end")
    assert [job.status for job in finals] == ["succeeded"] * 4, [job.error for job in finals]
    assert [job.attempts for job in finals] == [1] * 4  # none ran twice
    timeline = _timeline(url, jobs)
    assert all(len(entry["runs"]) == 1 for entry in timeline.values())
    assert timeline[jobs[0][0]]["runs"][0]["worker"] == "big"  # only big has 2 slots
    assert _summary_processes(finals[0]) == 2

    for job_id, entry in timeline.items():
        run = entry["runs"][0]
        window_end = run["start"] - GRACE
        moments = [entry["created"] + GRACE] + [other["runs"][0]["end"] + GRACE for other in timeline.values()]
        for moment in (m for m in moments if m < window_end):
            for worker, slots in SLOTS.items():
                free = slots - _busy(timeline, worker, moment)
                assert free < entry["processes"], (
                    f"{job_id} ({entry['processes']} processes) waited at {moment} while {worker} had {free} free")


def _live_slots(url: str) -> list[int]:
    with session_scope(url) as session:
        return sorted(session.scalars(select(Worker.slots)).all())


def _all_final(url: str, ids: list[str]) -> list[Job] | None:
    with session_scope(url) as session:
        rows = [session.get(Job, job_id) for job_id in ids]
        for row in rows:
            session.expunge(row)
    return rows if all(row.status in ("succeeded", "failed", "cancelled") for row in rows) else None


def _timeline(url: str, jobs: list[tuple[str, int]]) -> dict:
    """Per job: created, processes, and its runs (worker, start, end) from the running/final events."""
    timeline = {}
    with session_scope(url) as session:
        for job_id, processes in jobs:
            job = session.get(Job, job_id)
            events = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)).all()
            runs = []
            for event in events:
                if event.type == "running":
                    runs.append({"worker": event.data["owner"].split("@")[0], "start": event.created_at, "end": None})
                elif event.type in ("succeeded", "failed", "cancelled", "queued") and runs and runs[-1]["end"] is None:
                    runs[-1]["end"] = event.created_at
            timeline[job_id] = {"created": job.created_at, "processes": processes, "runs": runs}
    return timeline


def _busy(timeline: dict, worker: str, moment) -> int:
    return sum(entry["processes"] for entry in timeline.values() for run in entry["runs"]
               if run["worker"] == worker and run["start"] <= moment < run["end"])


def _summary_processes(job: Job) -> int:
    import json

    return json.loads((Path(job.config["output"]["output_dir"]) / "summary.json").read_text())["processes"]
