"""Hostile input against a real `llmft serve` (issue 18 rows 2, 5, 13): bounded dataset validation, JSON body
limits, and 4xx (never 500) for malformed fields. The module's own server takes uploads of up to 128 MiB and
JSON bodies of up to 16 MiB, so the repros of the issue fit through."""

import json
import threading
import time

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from tests.api.conftest import make_key

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def hostile(server_env, server_home, start_server) -> tuple[str, str, dict]:
    env = {**server_env, "LLMFT_HOME": str(server_home("hostile-home")), "MAX_UPLOAD_MB": "128", "MAX_JSON_MB": "16"}
    base = start_server(env, worker=False)
    return base, make_key(env, "hostile", "admin"), env


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}", "Connection": "close"}


def chat_line(answer: str) -> bytes:
    return json.dumps({"messages": [{"role": "user", "content": "hi"},
                                    {"role": "assistant", "content": answer}]}).encode() + b"\n"


def upload(base: str, key: str, name: str, data: bytes) -> requests.Response:
    return requests.post(f"{base}/api/v1/datasets", headers=auth(key), files={"file": (name, data)}, timeout=120)


def server_processes(base: str) -> list[psutil.Process]:
    """The `llmft serve` started for `base` and its children (gunicorn workers, the embedded job worker)."""
    port = base.rsplit(":", 1)[1]
    found = [p for p in psutil.process_iter(["cmdline"])
             if "serve" in (p.info["cmdline"] or []) and port in (p.info["cmdline"] or [])]
    [started] = [p for p in found if p.ppid() not in {q.pid for q in found}]
    return [started, *started.children(recursive=True)]


class PeakRss:
    """The largest total RSS of `processes` seen while the block runs (sampled every 10 ms)."""

    def __init__(self, processes: list[psutil.Process]):
        self.processes, self.peak, self._done = processes, 0, threading.Event()

    def total(self) -> int:
        return sum(p.memory_info().rss for p in self.processes if p.is_running())

    def _sample(self):
        while not self._done.is_set():
            self.peak = max(self.peak, self.total())
            time.sleep(0.01)

    def __enter__(self):
        self.before = self.total()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_):
        self._done.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.before


@pytest.fixture(scope="module")
def dataset_id(hostile) -> str:
    """A valid upload first: the tokenizer is loaded before anything is measured."""
    base, key, _ = hostile
    response = upload(base, key, "ok.jsonl", chat_line("fine") + chat_line("also fine"))
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_a_50_mb_line_is_too_long_in_under_2_s_and_300_mb(hostile, dataset_id):
    base, key, _ = hostile
    data = chat_line("word " * (10 * MIB))  # one 50 MiB line: 6.5M tokens, 65 s and +3.6 GB before the fix
    prepared = requests.Request("POST", f"{base}/api/v1/datasets", headers=auth(key),
                                files={"file": ("huge.jsonl", data)}).prepare()  # the client's encoding not timed
    with PeakRss(server_processes(base)) as rss, requests.Session() as session:
        started = time.perf_counter()
        response = session.send(prepared, timeout=120)
        elapsed = time.perf_counter() - started
    assert response.status_code == 422, response.text
    [issue] = response.json()["error"]["details"]["report"]["issues"]
    assert (issue["code"], issue["line"]) == ("too_long", 1) and "characters" in issue["message"]
    assert elapsed < 2, elapsed
    assert rss.growth < 300 * MIB, rss.growth / MIB


def test_a_parquet_bomb_is_422_before_it_expands(hostile, dataset_id, tmp_path):
    base, key, _ = hostile
    path = tmp_path / "bomb.parquet"  # 100 rows of one 20 MiB string: a few kB on disk, 2 GiB decoded
    bomb = pa.DictionaryArray.from_arrays(pa.array([0] * 100, pa.int32()), pa.array(["x" * (20 * MIB)]))
    pq.write_table(pa.table({"text": bomb}), path, compression="zstd")
    assert path.stat().st_size < 100_000
    with PeakRss(server_processes(base)) as rss:
        response = upload(base, key, "bomb.parquet", path.read_bytes())
    assert response.status_code == 422, response.text
    assert [i["code"] for i in response.json()["error"]["details"]["report"]["issues"]] == ["file_too_large"]
    assert rss.growth < 300 * MIB, rss.growth / MIB


def test_a_10_mb_chat_message_is_context_length_exceeded_at_once(hostile):
    base, key, _ = hostile
    warm = requests.post(f"{base}/v1/chat/completions", headers=auth(key), timeout=120, json={
        "model": "tiny-r1", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]})  # the model loaded
    assert warm.status_code == 200, warm.text
    body = {"model": "tiny-r1", "max_tokens": 1, "messages": [{"role": "user", "content": "word " * (2 * MIB)}]}
    with PeakRss(server_processes(base)) as rss:
        started = time.perf_counter()
        response = requests.post(f"{base}/v1/chat/completions", json=body, headers=auth(key), timeout=60)
        elapsed = time.perf_counter() - started
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "context_length_exceeded" and response.json()["error"]["param"] == "messages"
    assert elapsed < 2, elapsed  # tokenized in full before: 9 s, +1.2 GB
    assert rss.growth < 300 * MIB, rss.growth / MIB


def test_a_json_body_over_max_json_mb_is_413(hostile):
    base, key, _ = hostile
    body = {"model": "tiny-r1", "messages": [{"role": "user", "content": "x" * (17 * MIB)}]}
    response = requests.post(f"{base}/v1/chat/completions", json=body, headers=auth(key), timeout=60)
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large" and "MAX_JSON_MB" in response.json()["error"]["message"]
    raw = json.dumps(body).encode()
    chunks = (raw[i:i + MIB] for i in range(0, len(raw), MIB))  # a generator: sent chunked, no Content-Length
    response = requests.post(f"{base}/api/v1/predict", data=chunks, timeout=60,
                             headers={**auth(key), "Content-Type": "application/json"})
    assert response.status_code == 413, response.text  # no Content-Length: cut at the limit all the same


DEEP = b"[" * 100_000 + b"]" * 100_000
JSON_ROUTES = [("put", "/api/v1/alerts/settings"), ("post", "/api/v1/evaluations"), ("post", "/api/v1/generate"),
               ("post", "/api/v1/generate/batch"), ("post", "/api/v1/jobs"), ("post", "/api/v1/predict"),
               ("post", "/api/v1/train"), ("put", "/api/v1/models/m/aliases/a"), ("post", "/v1/chat/completions"),
               ("post", "/v1/completions")]


@pytest.mark.parametrize("method,path", JSON_ROUTES)
def test_json_nested_100k_deep_is_400_on_every_json_route(hostile, method, path):
    base, key, _ = hostile
    response = requests.request(method, base + path, data=DEEP, timeout=30,
                                headers={**auth(key), "Content-Type": "application/json"})
    assert response.status_code == 400, response.text  # a RecursionError, 500, before
    assert response.json()["error"]["code"] == "json_too_deep"


def test_json_nested_within_the_limit_reaches_the_view(hostile):
    base, key, _ = hostile
    nested = {"a": 1}
    for _ in range(30):  # 62 deep with the body itself
        nested = {"n": [nested]}
    response = requests.post(f"{base}/v1/chat/completions", headers=auth(key), timeout=30, json={
        "model": "tiny-r1", "max_tokens": 1, "messages": [{"role": "user", "content": "[[[[" * 100}], "user": "x",
        "metadata": nested})
    assert response.status_code == 200, response.text  # brackets inside strings do not count


@pytest.mark.parametrize("value", [{"text": "x"}, 5])
def test_reasoning_content_not_a_string_is_400_naming_it(hostile, value):
    base, key, _ = hostile
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo", "reasoning_content": value},
                {"role": "user", "content": "and?"}]
    response = requests.post(f"{base}/v1/chat/completions", headers=auth(key), timeout=30,
                             json={"model": "tiny-r1", "max_tokens": 1, "messages": messages})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "messages[1].reasoning_content"


@pytest.mark.parametrize("name", ["learning_rate", "batch_size", "n_epochs", "max_steps"])
def test_yaml_broken_hyperparameter_strings_are_422_naming_the_field(hostile, dataset_id, name):
    base, key, _ = hostile
    response = requests.post(f"{base}/api/v1/jobs", headers=auth(key), timeout=30, json={
        "base_model": "tiny-r1", "dataset_id": dataset_id, "hyperparameters": {name: "[unclosed"}})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["details"]["param"] == f"hyperparameters.{name}" and "valid" in error["message"]


def test_a_last_event_id_of_non_ascii_digits_is_ignored_not_a_500(hostile, dataset_id):
    """'²' passes str.isdigit() but not int(): the header is ignored (the stream starts from the first event)."""
    base, key, _ = hostile
    job = requests.post(f"{base}/api/v1/jobs", headers=auth(key), timeout=30,
                        json={"base_model": "tiny-r1", "dataset_id": dataset_id})
    assert job.status_code == 201, job.text
    with requests.get(f"{base}/api/v1/jobs/{job.json()['id']}/stream", timeout=30, stream=True,
                      headers={**auth(key), "Last-Event-ID": "\u00b2"}) as response:
        assert response.status_code == 200
        first = next(response.iter_lines(decode_unicode=True))
    assert first.startswith("id: "), first  # the job's first event, not an error
    requests.post(f"{base}/api/v1/jobs/{job.json()['id']}/cancel", headers=auth(key), timeout=30)


def test_nesting_is_counted_on_the_bytes_outside_strings():
    from llmft.api.body_limits import nested_deeper

    assert nested_deeper(b"[" * 65 + b"]" * 65, 64) and not nested_deeper(b"[" * 64 + b"]" * 64, 64)
    assert not nested_deeper(b'{"a": "' + b"[" * 1000 + b'\\"{{{{", "b": [[]]}', 4)  # in a string, escaped quote
    assert nested_deeper(b'{"a": "x", "b": ' + b"[" * 10 + b"]" * 10 + b"}", 10)
