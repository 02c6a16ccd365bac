"""`llmft worker`: a Celery worker plus the lease reaper.

    llmft worker                     # one slot: one single-process job at a time
    llmft worker --slots 4           # a 4-GPU host: jobs of up to 4 processes, several at once if they fit

REDIS_URL set: Redis broker; else the SQLite broker under $LLMFT_HOME. Workers on several hosts
share one queue when they share REDIS_URL and DATABASE_URL.
"""

import logging
import os
import socket
import threading

from llmft.db.session import create_schema
from llmft.jobs.queue import Slots, make_celery, queue_for, reaper_loop
from llmft.settings import Settings


def start_worker(settings: Settings, *, name: str = "worker", slots: int | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s: %(levelname)s/%(name)s] %(message)s")
    settings.llmft_home.mkdir(parents=True, exist_ok=True)
    create_schema(settings.sqlalchemy_url)
    slots = Slots(slots or settings.worker_slots)
    beat_name = f"{name}@{socket.gethostname()}:{os.getpid()}"
    app = make_celery(settings, slots=slots, owner=beat_name)
    stop = threading.Event()
    reaper = threading.Thread(target=reaper_loop, args=(app, settings, stop),
                              kwargs={"name": beat_name, "slots": slots}, daemon=True, name="reaper")
    reaper.start()
    # one thread per slot: a job of several processes holds one thread and several slots
    pool = ["--pool=solo"] if slots.total == 1 else ["--pool=threads", f"--concurrency={slots.total}"]
    queues = ",".join(queue_for(size) for size in range(1, slots.total + 1))
    try:
        app.worker_main(["worker", *pool, f"--queues={queues}", "--loglevel=INFO", f"--hostname={name}@%h",
                         "--without-gossip", "--without-mingle", "--without-heartbeat"])
    finally:
        stop.set()
