"""Issue 18 row 1 on a real server (4 threads, STREAMS_PER_KEY=2, STREAMS_TOTAL left at 16, which 4 threads
bring down to 3, their 3/4): one viewer key opening 100 job
streams gets 2 and 98 answers of 429 with Retry-After, while /healthz and a chat completion answer in under a
second; the total cap holds across keys and covers streamed completions; revoking the key ends its open streams."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.api.conftest import make_key

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "brokerage_support.jsonl"
PER_KEY, TOTAL, BURST = 2, 3, 100


@pytest.fixture(scope="module")
def capped(server_env, server_home, start_server) -> tuple[str, dict]:
    env = {**server_env, "LLMFT_HOME": str(server_home("stream-caps")), "STREAMS_PER_KEY": str(PER_KEY)}
    env.pop("STREAMS_TOTAL", None)  # the default (16): the server's 4 threads (tests/conftest.py) make it TOTAL
    return start_server(env, worker=False), env


@pytest.fixture(scope="module")
def queued_job(capped) -> tuple[str, str]:
    """(a job that stays queued, so its stream stays open: two processes, and the embedded worker has one slot;
    the admin key of its tenant)."""
    base, env = capped
    admin = make_key(env, "streams", "admin")
    headers = {"Authorization": f"Bearer {admin}"}
    small = "".join(SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:30]).encode()
    dataset = requests.post(f"{base}/api/v1/datasets", headers=headers, files={"file": ("s.jsonl", small)}, timeout=120)
    assert dataset.status_code == 201, dataset.text
    job = requests.post(f"{base}/api/v1/jobs", headers=headers, timeout=60, json={
        "dataset_id": dataset.json()["id"], "resources": {"processes": 2}})
    assert job.status_code == 201 and job.json()["status"] == "queued", job.text
    return job.json()["id"], admin


def open_stream(base: str, key: str, job_id: str) -> requests.Response:
    return requests.get(f"{base}/api/v1/jobs/{job_id}/stream", headers={"Authorization": f"Bearer {key}"},
                        stream=True, timeout=(10, 60))


def timed(call) -> tuple[float, requests.Response]:
    started = time.perf_counter()
    response = call()
    return time.perf_counter() - started, response


@pytest.mark.slow
def test_one_key_opening_100_streams_leaves_the_server_answering(capped, queued_job):
    base, env = capped
    job_id, admin = queued_job
    viewer = make_key(env, "streams", "viewer")
    viewer_prefix = "_".join(viewer.split("_")[:2])  # llmft_xxxxxxxx, what `llmft keys revoke` takes
    healthz = lambda: requests.get(f"{base}/healthz", timeout=30)  # noqa: E731
    chat = lambda: requests.post(f"{base}/v1/chat/completions", headers={"Authorization": f"Bearer {admin}"},  # noqa: E731
                                 json={"model": "tiny-r1", "messages": [{"role": "user", "content": "hi"}],
                                       "max_tokens": 4}, timeout=60)
    assert chat().status_code == 200  # the model loaded before the clock runs

    answers: list[requests.Response] = []
    lock, start = threading.Lock(), threading.Barrier(BURST)

    def one():
        start.wait()
        response = open_stream(base, viewer, job_id)
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=one) for _ in range(BURST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(answers) == BURST
    statuses = sorted(response.status_code for response in answers)
    assert statuses == [200] * PER_KEY + [429] * (BURST - PER_KEY)
    for refused in (r for r in answers if r.status_code == 429):
        assert refused.json()["error"]["code"] == "too_many_streams" and refused.headers["Retry-After"] == "15"
    admitted = [r for r in answers if r.status_code == 200]

    # the two streams are open and hold two of the four threads: probes and a chat completion still answer
    for call in (healthz, chat, healthz, chat):
        seconds, response = timed(call)
        assert response.status_code == 200 and seconds < 1.0, (call, seconds)

    # the total cap: one more stream (another key) fills it; then neither a job stream nor a streamed
    # completion gets a thread, whatever the key
    third = open_stream(base, admin, job_id)
    assert third.status_code == 200
    member = make_key(env, "streams", "member")
    assert open_stream(base, member, job_id).status_code == 429
    streamed = requests.post(f"{base}/v1/chat/completions", headers={"Authorization": f"Bearer {member}"}, timeout=30,
                             json={"model": "tiny-r1", "messages": [{"role": "user", "content": "hi"}], "stream": True})
    assert streamed.status_code == 429 and streamed.headers["Retry-After"] == "15"
    assert streamed.json()["error"]["type"] == "rate_limit_error"
    third.close()

    # revoking the viewer key ends its open streams at their next poll, and gives their slots back
    ended: list[float] = []

    def drain(response):
        for _ in response.iter_content(chunk_size=None):
            pass
        ended.append(time.monotonic())

    readers = [threading.Thread(target=drain, args=(response,)) for response in admitted]
    for reader in readers:
        reader.start()
    subprocess.run([sys.executable, "-m", "llmft.cli", "keys", "revoke", viewer_prefix], env=env, check=True,
                   capture_output=True)
    revoked_at = time.monotonic()
    for reader in readers:
        reader.join(timeout=30)
    assert len(ended) == PER_KEY and max(ended) - revoked_at < 5, [t - revoked_at for t in ended]
    deadline = time.monotonic() + 20  # the admin's closed stream frees its slot at its next write
    while (again := open_stream(base, member, job_id)).status_code == 429 and time.monotonic() < deadline:
        time.sleep(1)
    assert again.status_code == 200
    again.close()
