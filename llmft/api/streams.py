"""Admission for streaming responses: the job stream (SSE) and streamed /v1 completions.

    with admit(principal()) as slot:           # 429 past STREAMS_PER_KEY or STREAMS_TOTAL
        ...                                    # an error here gives the slot back
        return slot.response(chunks)           # held until the stream ends or its client goes

A stream holds a server thread for its whole length (a job stream up to 10 minutes), so streams get at most
STREAMS_TOTAL of the process's threads and one key at most STREAMS_PER_KEY: the other threads stay free for probes
and ordinary requests. The counts are per process (each gunicorn worker keeps its own). A stream re-checks its key
at most once a second and ends when the key is revoked.
"""

import threading
import time
from collections import Counter
from collections.abc import Generator

from flask import Response, current_app

from llmft.api.context import settings
from llmft.auth.keys import Principal
from llmft.db.session import session_scope
from llmft.db.tables import ApiKey
from llmft.errors import ServiceError

# Retry-After of a refused stream: a job stream whose client has gone notices at its next write, the keepalive
# sent after at most 15 s idle (jobs/observe.py), and frees its slot then; streamed completions end sooner.
RETRY_AFTER_SECONDS = 15
KEY_CHECK_SECONDS = 1.0


class TooManyStreams(ServiceError):
    status, code, retry_after = 429, "too_many_streams", RETRY_AFTER_SECONDS


class _Counts:
    """The process's open streams, in total and per key."""

    def __init__(self, per_key: int, total: int):
        self.per_key, self.total = per_key, total
        self.lock = threading.Lock()
        self.open: Counter[str] = Counter()

    def take(self, key_id: str) -> None:
        with self.lock:
            if self.open[key_id] >= self.per_key:
                raise TooManyStreams(f"this key has {self.open[key_id]} streams open (STREAMS_PER_KEY="
                                     f"{self.per_key}); close one or retry in {RETRY_AFTER_SECONDS} s",
                                     details={"limit": self.per_key, "retry_after": RETRY_AFTER_SECONDS})
            if sum(self.open.values()) >= self.total:
                raise TooManyStreams(f"the server has {self.total} streams open (STREAMS_TOTAL={self.total}); "
                                     f"retry in {RETRY_AFTER_SECONDS} s",
                                     details={"limit": self.total, "retry_after": RETRY_AFTER_SECONDS})
            self.open[key_id] += 1

    def give(self, key_id: str) -> None:
        with self.lock:
            self.open[key_id] -= 1
            if self.open[key_id] <= 0:
                del self.open[key_id]


_counts_lock = threading.Lock()


def _counts() -> _Counts:
    app = current_app._get_current_object()
    with _counts_lock:
        if "llmft_streams" not in app.extensions:
            current = settings()
            total = current.streams_total
            if "SERVER_THREADS" in app.config:  # under gunicorn: a quarter of the threads stays for other requests
                total = min(total, max(1, app.config["SERVER_THREADS"] * 3 // 4))
            app.extensions["llmft_streams"] = _Counts(current.streams_per_key, total)
        return app.extensions["llmft_streams"]


def admit(caller: Principal) -> "Slot":
    """A slot for one stream of `caller`'s key, or TooManyStreams (429 with Retry-After)."""
    counts = _counts()
    counts.take(caller.key_id)
    return Slot(counts, caller.key_id, settings().sqlalchemy_url)


class Slot:
    def __init__(self, counts: _Counts, key_id: str, database_url: str):
        self.counts, self.key_id, self.database_url = counts, key_id, database_url
        self.held, self.handed_over = True, False
        self.lock = threading.Lock()
        self.checked_at, self.active = time.monotonic(), True

    def __enter__(self) -> "Slot":
        return self

    def __exit__(self, *exc) -> None:
        if not self.handed_over:  # an error (or no stream) before the response: the slot goes back now
            self.release()

    def release(self) -> None:
        with self.lock:
            if self.held:
                self.held = False
                self.counts.give(self.key_id)

    def key_active(self) -> bool:
        """False once the key is revoked (looked up at most once a KEY_CHECK_SECONDS)."""
        if self.active and time.monotonic() - self.checked_at >= KEY_CHECK_SECONDS:
            self.checked_at = time.monotonic()
            with session_scope(self.database_url) as session:
                key = session.get(ApiKey, self.key_id)
                self.active = key is not None and key.revoked_at is None
        return self.active

    def response(self, chunks: Generator[str, None, None]) -> Response:
        """The stream as text/event-stream; it ends when `chunks` does, its client goes, or the key is revoked,
        and the slot goes back then."""
        def body():
            try:
                for chunk in chunks:
                    yield chunk
                    if not self.key_active():
                        return
            finally:
                chunks.close()  # a generator's own cleanup (a generation cancelled) runs now
                self.release()

        self.handed_over = True
        response = Response(body(), mimetype="text/event-stream",
                            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        response.call_on_close(self.release)  # the client went away before the first chunk
        return response
