"""What views need from the application: its settings, a database session, the Celery app that dispatches jobs,
the inference engine."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from celery import Celery
from flask import current_app
from sqlalchemy.orm import Session

from llmft.db.session import session_scope
from llmft.serve.backend import InferenceBackend
from llmft.settings import Settings


def settings() -> Settings:
    return current_app.config["SETTINGS"]


@contextmanager
def db() -> Iterator[Session]:
    """A view's database session: `with db() as session:`. One transaction, committed when the block ends, so a
    failed commit is an error response rather than a 2xx already sent; a streaming view opens one per poll instead
    of holding a session for its whole stream."""
    with session_scope(settings().sqlalchemy_url) as session:
        yield session


def celery() -> Celery:
    from llmft.jobs.queue import make_celery

    app = current_app.extensions.get("llmft_celery")
    if app is None:
        app = current_app.extensions["llmft_celery"] = make_celery(settings())
    return app


_engine_lock = threading.Lock()


def engine() -> InferenceBackend:
    """The process's inference backend (INFERENCE_BACKEND), started on the first inference request (never at
    import)."""
    app = current_app._get_current_object()
    with _engine_lock:
        if "llmft_engine" not in app.extensions:
            current = settings()
            if current.inference_backend == "vllm":
                from llmft.serve.vllm_engine import VllmEngine

                app.extensions["llmft_engine"] = VllmEngine(current)
            else:
                from llmft.serve.engine import Engine

                app.extensions["llmft_engine"] = Engine(
                    max_batch=current.inference_max_batch, cache_bytes=current.inference_cache_mb << 20,
                    max_waiting=current.inference_max_waiting,
                    prefix_cache_bytes=current.inference_prefix_cache_mb << 20,
                    one_row_bf16=current.inference_one_row_bf16)
        return app.extensions["llmft_engine"]
