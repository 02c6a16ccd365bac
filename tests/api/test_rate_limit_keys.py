"""Issue 18 rows 4 and 15 on a real server with a small limit (RATE_LIMIT=5/minute): the limit counts the
authenticated key however its Authorization header is spelled, and Retry-After comes only on a 429 or a 503, with a
value of its own."""

import pytest
import requests

from tests.api.conftest import make_key

LIMIT = 5
SPELLINGS = ["Bearer" + " " * spaces + "{key}" for spaces in range(2, 21)] + [
    "bearer {key}", "BEARER {key}", "Bearer\t{key}", "bEaReR \t {key}", "Bearer {key}  "]


@pytest.fixture(scope="module")
def limited(server_env, server_home, start_server) -> tuple[str, dict]:
    env = {**server_env, "LLMFT_HOME": str(server_home("rate-limit-keys")), "RATE_LIMIT": f"{LIMIT}/minute",
           "INFERENCE_MAX_WAITING": "1", "INFERENCE_MAX_NEW_TOKENS": "4000"}
    return start_server(env, worker=False), env


def get(base: str, header: str) -> requests.Response:
    return requests.get(f"{base}/api/v1/datasets", headers={"Authorization": header}, timeout=30)


def test_a_spent_limit_holds_however_the_scheme_is_spelled(limited):
    base, env = limited
    key = make_key(env, "ratelimit", "viewer")
    for _ in range(LIMIT):
        response = get(base, f"Bearer {key}")
        assert response.status_code == 200, response.text
        assert "Retry-After" not in response.headers  # row 15: a 2xx has none
        assert int(response.headers["X-RateLimit-Limit"]) == LIMIT
    refused = [get(base, spelling.format(key=key)) for spelling in SPELLINGS]
    assert [r.status_code for r in refused] == [429] * len(SPELLINGS), [r.text for r in refused if r.status_code != 429]
    for response in refused:
        assert response.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(response.headers["Retry-After"]) <= 60
    other_route = requests.get(f"{base}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert other_route.status_code == 429  # one budget per key across routes, not one per route


def test_every_spelling_authenticates_and_counts_on_the_same_key(limited):
    base, env = limited
    key = make_key(env, "ratelimit", "viewer")
    answers = [get(base, spelling.format(key=key)).status_code for spelling in SPELLINGS[-LIMIT:]]
    assert answers == [200] * LIMIT  # each spelling is the key (not a 401, not another bucket)
    assert get(base, f"Bearer {key}").status_code == 429
    assert get(base, f"Bearer {make_key(env, 'ratelimit', 'viewer')}").status_code == 200  # another key: its own


def test_requests_without_a_valid_key_count_on_their_address(limited):
    base, env = limited
    for header in ["Bearer", "Basic abc", "Bearer llmft_00000000_unknown", "Token x", ""][:LIMIT]:
        response = get(base, header)
        assert response.status_code == 401 and "Retry-After" not in response.headers
    assert get(base, "bearer   not-a-key").status_code == 429  # the address's bucket is spent
    assert get(base, f"Bearer {make_key(env, 'ratelimit', 'viewer')}").status_code == 200  # a key has its own


@pytest.mark.slow
def test_a_busy_engine_answers_503_with_its_own_retry_after(limited):
    base, env = limited
    headers = {"Authorization": f"Bearer {make_key(env, 'ratelimit', 'member')}"}
    chat = {"model": "tiny-r1", "messages": [{"role": "user", "content": "hi"}], "temperature": 1, "seed": 1}
    warm = requests.post(f"{base}/v1/chat/completions", headers=headers, json={**chat, "max_tokens": 2}, timeout=120)
    assert warm.status_code == 200 and "Retry-After" not in warm.headers
    other = {"Authorization": f"Bearer {make_key(env, 'ratelimit', 'member')}"}
    # INFERENCE_MAX_WAITING=1: while a long answer streams, the next generation finds the engine full
    with requests.post(f"{base}/v1/chat/completions", headers=headers, stream=True, timeout=120,
                       json={**chat, "max_tokens": 4000, "stream": True}) as stream:
        assert stream.status_code == 200 and "Retry-After" not in stream.headers
        next(stream.iter_lines(chunk_size=1))  # the first line, not the first 512 bytes (a wait for the whole answer)
        busy = requests.post(f"{base}/v1/chat/completions", headers=other, json={**chat, "max_tokens": 2}, timeout=30)
    assert busy.status_code == 503, busy.text
    assert busy.json()["error"]["code"] == "server_busy"
    # the engine's estimate: the running answer's tokens left at the recent decoding rate, 1 to 60 s
    assert 1 <= int(busy.headers["Retry-After"]) <= 60
