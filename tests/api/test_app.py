"""The application factory in-process: rate limits, settings errors, the error shape."""

import pytest

from llmft.api.app import create_app
from llmft.auth.keys import create_key
from llmft.config import ConfigError
from llmft.db.session import session_scope
from llmft.settings import load_settings


@pytest.fixture
def app(tmp_path):
    return create_app(load_settings(llmft_home=tmp_path, rate_limit="3/minute"))


def test_rate_limit_is_per_key_with_retry_after(app):
    settings = app.config["SETTINGS"]
    with session_scope(settings.sqlalchemy_url) as session:
        first, _ = create_key(session, tenant="acme", role="viewer")
        second, _ = create_key(session, tenant="acme", role="viewer")
    client = app.test_client()
    for _ in range(3):
        assert client.get("/api/v1/datasets", headers={"Authorization": f"Bearer {first}"}).status_code == 200
    limited = client.get("/api/v1/datasets", headers={"Authorization": f"Bearer {first}"})
    assert limited.status_code == 429
    assert limited.json["error"]["code"] == "rate_limited" and int(limited.headers["Retry-After"]) >= 1
    assert client.get("/api/v1/datasets", headers={"Authorization": f"Bearer {second}"}).status_code == 200


def test_bad_settings_name_every_problem(tmp_path, monkeypatch):
    monkeypatch.setenv("PORT", "99999")
    monkeypatch.setenv("MAX_UPLOAD_MB", "zero")
    with pytest.raises(ConfigError) as caught:
        load_settings(llmft_home=tmp_path)
    assert "PORT" in str(caught.value) and "MAX_UPLOAD_MB" in str(caught.value)


def test_validation_errors_use_the_error_shape(app):
    settings = app.config["SETTINGS"]
    with session_scope(settings.sqlalchemy_url) as session:
        key, _ = create_key(session, tenant="acme", role="admin")
    response = app.test_client().get("/api/v1/datasets?limit=0", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 422
    error = response.json["error"]
    assert error["code"] == "invalid" and "limit" in str(error["details"])


@pytest.mark.redis
def test_rate_limits_are_shared_through_redis_when_configured(tmp_path, redis_url):
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    settings = load_settings(llmft_home=tmp_path, rate_limit="2/minute", redis_url=redis_url)
    first_app, second_app = create_app(settings), create_app(settings)  # two API processes, one limit
    with session_scope(settings.sqlalchemy_url) as session:
        key, _ = create_key(session, tenant="acme", role="viewer")
    headers = {"Authorization": f"Bearer {key}"}
    assert first_app.test_client().get("/api/v1/datasets", headers=headers).status_code == 200
    assert second_app.test_client().get("/api/v1/datasets", headers=headers).status_code == 200
    assert first_app.test_client().get("/api/v1/datasets", headers=headers).status_code == 429
    stored = b" ".join(redis.Redis.from_url(redis_url).keys("*"))
    assert key.encode() not in stored


def test_readiness_needs_a_live_worker_and_a_reachable_broker(tmp_path):
    from llmft.db.session import session_scope
    from llmft.jobs.lease import worker_beat

    settings = load_settings(llmft_home=tmp_path)
    client = create_app(settings).test_client()
    with session_scope(settings.sqlalchemy_url) as session:
        admin = {"Authorization": f"Bearer {create_key(session, tenant='acme', role='admin')[0]}"}
    response = client.get("/readyz", headers=admin)
    assert response.status_code == 503 and response.json["checks"]["workers"].startswith("error: no worker")
    assert response.json["checks"]["broker"] == "ok" and response.json["checks"]["database"] == "ok"
    with session_scope(settings.sqlalchemy_url) as session:
        worker_beat(session, name="w@host:1")
    response = client.get("/readyz", headers=admin)
    assert response.status_code == 200 and response.json["workers"] == ["w@host:1"]
    down = load_settings(llmft_home=tmp_path, redis_url="redis://127.0.0.1:1/0")  # nothing listens there
    response = create_app(down).test_client().get("/readyz", headers=admin)
    assert response.status_code == 503 and response.json["checks"]["broker"].startswith("error")


def test_the_vllm_backend_without_vllm_is_a_config_error_at_start(tmp_path):
    with pytest.raises(ConfigError, match="pip install 'llmft\\[vllm\\]'"):
        create_app(load_settings(llmft_home=tmp_path, inference_backend="vllm"))
    with pytest.raises(ConfigError, match="INFERENCE_BACKEND"):
        load_settings(llmft_home=tmp_path, inference_backend="tgi")
