"""One engine (connection pool) per database URL and process. SQLite gets WAL and a busy timeout so the API and
workers share it."""

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

_ENGINES: dict[str, Engine] = {}


def engine_for(url: str) -> Engine:
    """One engine (one connection pool) per URL and process."""
    if url not in _ENGINES:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            driver = url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url
            engine = create_engine(driver, pool_pre_ping=True)
        _ENGINES[url] = engine  # keyed by the URL as given: a rewritten key made a new pool on every call
    return _ENGINES[url]


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
