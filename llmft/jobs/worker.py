"""`llmft worker`: a Celery worker (one job at a time) plus the lease reaper.

    llmft worker            # REDIS_URL set: Redis broker; else the SQLite broker under $LLMFT_HOME
"""

import logging
import os
import socket
import threading

from llmft.db.session import create_schema
from llmft.jobs.queue import make_celery, reaper_loop
from llmft.settings import Settings


def start_worker(settings: Settings, *, name: str = "worker") -> None:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s: %(levelname)s/%(name)s] %(message)s")
    settings.llmft_home.mkdir(parents=True, exist_ok=True)
    create_schema(settings.sqlalchemy_url)
    app = make_celery(settings)
    stop = threading.Event()
    beat_name = f"{name}@{socket.gethostname()}:{os.getpid()}"
    reaper = threading.Thread(target=reaper_loop, args=(app, settings, stop), kwargs={"name": beat_name},
                              daemon=True, name="reaper")
    reaper.start()
    try:
        app.worker_main(["worker", "--pool=solo", "--concurrency=1", "--loglevel=INFO", f"--hostname={name}@%h",
                         "--without-gossip", "--without-mingle", "--without-heartbeat"])
    finally:
        stop.set()
