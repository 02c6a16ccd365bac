"""Sessions, and bringing a database to the current schema."""

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from llmft.db.engine import engine_for
from llmft.db.migrate import upgrade


def create_schema(url: str) -> None:
    """Bring the database to the current schema: the Alembic migrations in `llmft/db/migrations`
    (an empty database gets every table; one made by an earlier llmft gets what it lacks)."""
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
