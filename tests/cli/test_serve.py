"""`llmft serve` as a user runs it: the API with a worker beside it."""

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_serve_starts_the_api_with_a_worker_that_goes_when_it_goes(tmp_path):
    import os
    import signal
    import socket
    import time

    import requests

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "LLMFT_HOME": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    server = subprocess.Popen([sys.executable, "-m", "llmft.cli", "serve", "--port", str(port)], env=env,
                              stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.time() + 60
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).ok:
                break
        except requests.RequestException:
            pass
        assert server.poll() is None and time.time() < deadline
        time.sleep(0.3)
    children = [int(pid) for pid in open(f"/proc/{server.pid}/task/{server.pid}/children").read().split()]
    worker = [pid for pid in children if b"worker" in open(f"/proc/{pid}/cmdline", "rb").read()]
    assert len(worker) == 1
    server.send_signal(signal.SIGKILL)
    server.wait()
    deadline = time.time() + 60
    while os.path.exists(f"/proc/{worker[0]}") and "Z" not in open(f"/proc/{worker[0]}/stat").read().split()[2]:
        assert time.time() < deadline, "the embedded worker outlived llmft serve"
        time.sleep(0.2)
    banner = server.stderr.read()
    assert f"http://127.0.0.1:{port}/docs" in banner and "llmft keys create" in banner
