"""Schema migrations (Alembic): `llmft db upgrade` brings any llmft database to the current schema.

    llmft db upgrade      # an empty database, one made by an earlier llmft, or one already current
    llmft db current      # the revision a database is at

The API and the workers run the same upgrade when they start, so a fresh `$LLMFT_HOME` and
`make run` need nothing else; with several processes starting at once, a lock (PostgreSQL's
advisory lock, a file lock for SQLite) lets one of them migrate while the others wait. A
database made before migrations existed (tables, no `alembic_version`) holds exactly the first
revision's schema: it is stamped as such, then upgraded.
"""

import fcntl
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from llmft.db.engine import engine_for

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001"          # the schema llmft created before it had migrations
_LOCK_KEY = 0x6C6C6D6674    # "llmft": PostgreSQL advisory lock id


def upgrade(url: str, revision: str = "head") -> str:
    """Migrate the database at `url` to `revision`; returns the revision it is at afterwards."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    with _migration_lock(url) as connection:
        tables = set(inspect(connection).get_table_names())
        config = _config(connection)
        if tables and "alembic_version" not in tables:
            command.stamp(config, BASELINE)
        command.upgrade(config, revision)
        return MigrationContext.configure(connection).get_current_revision()


def current(url: str) -> str | None:
    with engine_for(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head() -> str:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def _config(connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@contextmanager
def _migration_lock(url: str):
    engine = engine_for(url)
    if url.startswith("sqlite"):
        lock_path = Path(url.removeprefix("sqlite:///") + ".migrate.lock") if url.startswith("sqlite:///") else None
        with open(lock_path, "w") if lock_path else open("/dev/null") as lock:
            if lock_path:
                fcntl.flock(lock, fcntl.LOCK_EX)
            with engine.begin() as connection:
                yield connection
        return
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        yield connection
