"""A real server (tests/conftest.py starts it): `llmft serve` (gunicorn) in a subprocess on a free port, with its own
$LLMFT_HOME, on SQLite with the SQLite broker — or on PostgreSQL when LLMFT_TEST_DATABASE=postgres,
and with Redis as the Celery broker (and rate-limit store) when LLMFT_TEST_BROKER=redis."""

import os
import subprocess
import sys
import time

import pytest
import redis
import requests


@pytest.fixture(scope="session")
def server_env(server_home, request) -> dict:
    home = server_home("server-home")
    env = {**os.environ, "LLMFT_HOME": str(home), "MAX_UPLOAD_MB": "2", "RATE_LIMIT": "10000/minute",
           "INFERENCE_MAX_INPUT_TOKENS": "512", "INFERENCE_MAX_NEW_TOKENS": "64", "INFERENCE_DEFAULT_MAX_TOKENS": "16"}
    if os.environ.get("LLMFT_TEST_DATABASE") == "postgres":
        url = request.getfixturevalue("postgres_url")
        request.getfixturevalue("reset_postgres")(url)
        env["DATABASE_URL"] = url
    if os.environ.get("LLMFT_TEST_BROKER") == "redis":
        url = request.getfixturevalue("redis_database")(13)
        redis.Redis.from_url(url).flushdb()  # no messages or limits left over from an earlier run
        env["REDIS_URL"] = url
    return env


@pytest.fixture(scope="session")
def server(server_env, start_server) -> str:
    return start_server(server_env, session=True)


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


def follow(server: str, key: str, job: dict) -> dict:
    """Poll a job until it ends (5 minutes at most); it must have succeeded."""
    deadline = time.time() + 300
    while job["status"] not in ("succeeded", "failed", "cancelled"):
        assert time.time() < deadline, job
        time.sleep(0.5)
        job = requests.get(f"{server}/api/v1/jobs/{job['id']}", headers={"Authorization": f"Bearer {key}"},
                           timeout=10).json()
    assert job["status"] == "succeeded", job
    return job
