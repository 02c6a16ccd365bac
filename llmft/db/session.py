"""Engine and sessions. SQLite gets WAL and a busy timeout so the API and workers share it."""

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

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


def create_schema(url: str) -> None:
    """Bring the database to the current schema: the Alembic migrations in `llmft/db/migrations`
    (an empty database gets every table; one made by an earlier llmft gets what it lacks)."""
    from llmft.db.migrate import upgrade

    upgrade(url)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """One transaction: committed on success, rolled back on any error."""
    session = sessionmaker(engine_for(url), expire_on_commit=False)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
