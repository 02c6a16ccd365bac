"""gunicorn settings, one source for production and `llmft serve`:

    gunicorn -c python:llmft.api.gunicorn_conf 'llmft.api.app:create_app()'   # deploy/start.sh
    llmft serve [--host H] [--port P] [--workers N] [--threads T]              # llmft/api/server.py, same options

The address is the settings' HOST and PORT (default 127.0.0.1:8000; the Docker image sets HOST=0.0.0.0);
WEB_CONCURRENCY and GUNICORN_THREADS set the processes and threads under gunicorn.
"""

import os

from llmft.files import private_files
from llmft.settings import Settings, load_settings

WORKERS, THREADS = 1, 32


def gunicorn_options(settings: Settings, *, workers: int = WORKERS, threads: int = THREADS) -> dict:
    # One process: the inference engine (the model weights) lives in it; each more process holds another copy.
    # Threads serve concurrent requests; a streaming answer holds one for its whole length.
    return {"bind": f"{settings.host}:{settings.port}", "workers": workers, "threads": threads,
            "worker_class": "gthread", "timeout": 120, "accesslog": "-",
            # the path without its query string, and no headers: an API key (?api_key=, Authorization) never reaches it
            "access_log_format": '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms',
            "post_worker_init": post_worker_init, "worker_exit": worker_exit}


def post_worker_init(worker) -> None:
    """gunicorn's hook, once a worker has loaded the app: the app learns its thread count, so that streams never
    take more than 3/4 of the threads, however STREAMS_TOTAL is set (llmft/api/streams.py)."""
    worker.wsgi.config["SERVER_THREADS"] = worker.cfg.threads


def worker_exit(server, worker) -> None:
    """gunicorn's hook, in a worker that is exiting: its inference backend releases what would outlive it (vLLM's
    engine core processes)."""
    app = getattr(worker, "wsgi", None)  # absent, or gunicorn's error app, when the app failed to load
    engine = getattr(app, "extensions", {}).get("llmft_engine")
    if engine is not None:
        engine.close()


# What gunicorn reads from this module when it starts with `-c python:llmft.api.gunicorn_conf`.
_options = gunicorn_options(load_settings(), workers=int(os.environ.get("WEB_CONCURRENCY", WORKERS)),
                            threads=int(os.environ.get("GUNICORN_THREADS", THREADS)))
bind, workers, threads = _options["bind"], _options["workers"], _options["threads"]
worker_class, timeout = _options["worker_class"], _options["timeout"]
accesslog, access_log_format = _options["accesslog"], _options["access_log_format"]


def on_starting(server) -> None:
    """gunicorn's hook, before its workers start: files under $LLMFT_HOME are 0600, folders 0700."""
    private_files()
