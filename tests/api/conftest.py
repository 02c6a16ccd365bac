"""A real server: `llmft serve` (gunicorn) in a subprocess on a free port, with its own
$LLMFT_HOME, on SQLite with the SQLite broker — or on PostgreSQL when LLMFT_TEST_DATABASE=postgres,
and with Redis as the Celery broker (and rate-limit store) when LLMFT_TEST_BROKER=redis."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest
import redis
import requests


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server_env(tmp_path_factory, tiny_model_dir, request) -> dict:
    home = tmp_path_factory.mktemp("server-home")
    (home / "models").mkdir()
    (home / "models" / "tiny-r1").symlink_to(tiny_model_dir)
    env = {**os.environ, "LLMFT_HOME": str(home), "MAX_UPLOAD_MB": "2", "RATE_LIMIT": "10000/minute",
           "INFERENCE_MAX_INPUT_TOKENS": "512", "INFERENCE_MAX_NEW_TOKENS": "64", "INFERENCE_DEFAULT_MAX_TOKENS": "16"}
    if os.environ.get("LLMFT_TEST_DATABASE") == "postgres":
        url = request.getfixturevalue("postgres_url")
        request.getfixturevalue("reset_postgres")(url)
        env["DATABASE_URL"] = url
    if os.environ.get("LLMFT_TEST_BROKER") == "redis":
        url = urlunparse(urlparse(request.getfixturevalue("redis_url"))._replace(path="/13"))
        redis.Redis.from_url(url).flushdb()  # no messages or limits left over from an earlier run
        env["REDIS_URL"] = url
    return env


@pytest.fixture(scope="session")
def server(server_env) -> str:
    port = _free_port()
    log = open(Path(server_env["LLMFT_HOME"]) / "server.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "llmft.cli", "serve", "--port", str(port), "--threads", "4"],
                               env=server_env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            if requests.get(base + "/healthz", timeout=1).ok:
                break
        except requests.RequestException:
            pass
        assert process.poll() is None, (Path(server_env["LLMFT_HOME"]) / "server.log").read_text()
        assert time.time() < deadline, "server did not start"
        time.sleep(0.3)
    yield base
    process.terminate()
    process.wait(timeout=30)
    log.close()


def make_key(env: dict, tenant: str, role: str) -> str:
    result = subprocess.run([sys.executable, "-m", "llmft.cli", "keys", "create", "--tenant", tenant, "--role", role],
                            env=env, capture_output=True, text=True, check=True)
    return result.stdout.strip()


@pytest.fixture(scope="session")
def keys(server, server_env) -> dict:
    return {name: make_key(server_env, tenant, role) for name, tenant, role in [
        ("alice", "acme", "admin"), ("alice_viewer", "acme", "viewer"), ("bob", "globex", "member")]}


def client(base: str, key: str | None) -> requests.Session:
    session = requests.Session()
    if key:
        session.headers["Authorization"] = f"Bearer {key}"
    session.base = base
    return session
