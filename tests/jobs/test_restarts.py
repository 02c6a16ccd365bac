"""Two restarts of `llmft serve` in a row in the middle of one job, and the job still succeeds.

The first `kill -9` hits the serve process alone: its embedded worker gets SIGTERM, stops the trainer
with a checkpoint and puts the job back in the queue, and must take nothing more while it shuts
down (it used to take its own requeued message, start a trainer and requeue it again: one attempt
gone for nothing). The second `kill -9` hits the whole process group: worker and trainer die at
once, and the next server's reaper requeues the job when its lease expires. An attempt counts
only when a trainer starts, so of the job's 3 attempts the third finishes it.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "brokerage_support.jsonl"


class Servers:
    """`llmft serve` processes on one $LLMFT_HOME, each in a process group of its own (so it can be killed whole)."""

    def __init__(self, env: dict):
        self.env, self.running = env, []

    def start(self) -> tuple[subprocess.Popen, str]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log = open(Path(self.env["LLMFT_HOME"]) / f"server-{len(self.running)}.log", "w")
        process = subprocess.Popen([sys.executable, "-m", "llmft.cli", "serve", "--port", str(port), "--threads", "4"],
                                   env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.running.append(process)
        base = f"http://127.0.0.1:{port}"
        wait(lambda: _answers(base), 60, "the server to answer")
        return process, base

    def stop_all(self) -> None:
        for process in self.running:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()


def _answers(base: str) -> bool:
    try:
        return requests.get(base + "/healthz", timeout=1).ok
    except requests.RequestException:
        return False


def wait(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture
def servers(server_home):
    home = server_home("restarts-home")
    env = {**os.environ, "LLMFT_HOME": str(home), "LEASE_SECONDS": "5", "RATE_LIMIT": "10000/minute"}
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)  # the embedded default: SQLite and its broker under $LLMFT_HOME
    made = Servers(env)
    yield made
    made.stop_all()


def events(base: str, key: str, job_id: str) -> list[dict]:
    reply = requests.get(f"{base}/api/v1/jobs/{job_id}/events", params={"limit": 1000},
                         headers={"Authorization": f"Bearer {key}"}, timeout=10)
    return reply.json()["data"]


def steps(found: list[dict], kind: str) -> list[int]:
    return [event["data"]["step"] for event in found if event["type"] == kind]


@pytest.mark.slow
def test_a_job_survives_two_restarts_in_a_row(servers):
    first, base = servers.start()
    key = subprocess.run([sys.executable, "-m", "llmft.cli", "keys", "create", "--tenant", "acme", "--role", "admin"],
                         env=servers.env, capture_output=True, text=True, check=True).stdout.strip()
    headers = {"Authorization": f"Bearer {key}"}
    small = "".join(SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:40]).encode()
    dataset = requests.post(f"{base}/api/v1/datasets", headers=headers, files={"file": ("small.jsonl", small)},
                            timeout=120)
    assert dataset.status_code == 201, dataset.text
    body = {"base_model": "tiny-r1", "dataset_id": dataset.json()["id"], "method": "full",
            "hyperparameters": {"max_steps": 60, "batch_size": 1, "logging_steps": 1, "save_steps": 5,
                                "eval_per_epoch": False}}
    created = requests.post(f"{base}/api/v1/jobs", json=body, headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]

    # 1: kill -9 of the serve process alone, past a checkpoint; its worker stops the trainer and requeues the job
    wait(lambda: steps(events(base, key, job_id), "checkpoint"), 180, "a first checkpoint")
    first.send_signal(signal.SIGKILL)
    first.wait()
    second, base = servers.start()
    wait(lambda: len(steps(events(base, key, job_id), "started")) == 2, 180, "the second trainer")

    # 2: kill -9 of the whole process group (worker and trainer too), once the second trainer saved a checkpoint
    saved = len(steps(events(base, key, job_id), "checkpoint"))
    wait(lambda: len(steps(events(base, key, job_id), "checkpoint")) > saved, 180, "a checkpoint of the second trainer")
    os.killpg(second.pid, signal.SIGKILL)
    second.wait()
    _, base = servers.start()

    def final():
        job = requests.get(f"{base}/api/v1/jobs/{job_id}", headers=headers, timeout=10).json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    job = wait(final, 300, "the job to end")
    found = events(base, key, job_id)
    assert job["status"] == "succeeded", (job, [(e["type"], e["message"]) for e in found])
    assert job["progress"]["step"] == 60
    assert len(steps(found, "started")) == 3 and job["attempts"] == 3  # one attempt per trainer, none lost
    # created; claimed; stopped by the shutdown and requeued (by its own worker, which then took nothing); claimed;
    # lost with its worker and requeued by the next server's reaper; claimed; done
    assert [e["type"] for e in found if e["type"] in ("queued", "running", "requeued", "succeeded")] == [
        "queued", "running", "queued", "running", "requeued", "running", "succeeded"]
