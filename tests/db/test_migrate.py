"""Migrations: `llmft db upgrade` on an empty database and on one made before migrations existed,
on SQLite and PostgreSQL; the migrated schema equals the models exactly."""

import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text

from llmft.auth.keys import authenticate, create_key
from llmft.db.engine import engine_for
from llmft.db.migrate import BASELINE, current, head, upgrade
from llmft.db.session import session_scope
from llmft.db.tables import Base, Dataset, Job, RegisteredModel, Worker


def differences(url: str) -> list:
    with engine_for(url).connect() as connection:
        return compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'llmft.db'}"
    url = request.getfixturevalue("postgres_url")
    request.getfixturevalue("reset_postgres")(url)
    return url


def test_an_empty_database_gets_the_whole_schema(empty_url):
    assert upgrade(empty_url) == head() and current(empty_url) == head()
    assert differences(empty_url) == []
    assert upgrade(empty_url) == head()  # again: nothing to do


def test_a_database_made_before_migrations_is_stamped_then_upgraded_and_keeps_its_rows(empty_url):
    upgrade(empty_url, BASELINE)  # the schema llmft created before it had migrations ...
    with engine_for(empty_url).begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))  # ... which had no version table
    with session_scope(empty_url) as session:
        key, _ = create_key(session, tenant="acme", role="admin")
    assert "alembic_version" not in inspect(engine_for(empty_url)).get_table_names()
    assert upgrade(empty_url) == head()
    with session_scope(empty_url) as session:
        assert authenticate(session, key).tenant_name == "acme"
    assert differences(empty_url) == []


def test_the_previous_schema_upgrades_and_its_jobs_and_workers_get_defaults(empty_url):
    upgrade(empty_url, "0001")
    with engine_for(empty_url).begin() as connection:
        connection.execute(text("INSERT INTO tenants (id, name, created_at) VALUES ('ten_1', 'acme', '2026-11-01')"))
        connection.execute(text(
            "INSERT INTO jobs (id, tenant_id, status, kind, base_model, method, hyperparameters, seed, metadata, "
            "config, attempts, max_attempts, fencing_token, cancel_requested, progress, created_at) VALUES "
            "('job_1', 'ten_1', 'queued', 'fine_tune', 'tiny-r1', 'lora', '{}', 42, '{}', '{}', 0, 3, 0, false, "
            "'{}', '2026-11-01')"))
        connection.execute(text("INSERT INTO workers (name, started_at, seen_at) VALUES ('w@h:1', '2026-11-01', "
                                "'2026-11-01')"))
    assert current(empty_url) == "0001"
    assert upgrade(empty_url) == head()
    with session_scope(empty_url) as session:
        assert session.scalar(select(Job.processes).where(Job.id == "job_1")) == 1
        assert session.execute(select(Worker.slots, Worker.busy)).one() == (1, 0)
    assert differences(empty_url) == []


def test_the_command_line_upgrades_and_reports(tmp_path, monkeypatch):
    env = {"LLMFT_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    run = lambda *args: subprocess.run([sys.executable, "-m", "llmft.cli", "db", *args], env=env,
                                       capture_output=True, text=True, check=True)
    assert run("current").stdout.startswith("empty")
    assert "empty -> " + head() in run("upgrade").stderr
    assert run("current").stdout.split()[0] == head()
    assert BASELINE <= head()


def test_0004_starts_each_models_counter_at_the_highest_number_it_ever_gave(empty_url):
    upgrade(empty_url, "0003")
    insert = [
        "INSERT INTO tenants (id, name, created_at) VALUES ('ten_1', 'acme', '2026-11-01')",
        "INSERT INTO models (id, tenant_id, name, base_model, created_at) VALUES "
        "('mdl_1', 'ten_1', 'bot', 'tiny-r1', '2026-11-01'), ('mdl_2', 'ten_1', 'new', 'tiny-r1', '2026-11-01')",
        "INSERT INTO model_versions (id, model_id, tenant_id, version, kind, files, lineage, metrics, created_at) "
        "VALUES ('mv_1', 'mdl_1', 'ten_1', 1, 'full', '{}', '{}', '{}', '2026-11-01')",
        # :3 was registered, then deleted: only the registry's events remember it
        "INSERT INTO model_events (model_id, tenant_id, created_at, type, message, data) VALUES "
        "('mdl_1', 'ten_1', '2026-11-01', 'version_registered', 'bot:3', '{\"version\": 3}')",
        "INSERT INTO datasets (id, tenant_id, filename, stored_name, bytes, sha256, examples, report, created_at) "
        "VALUES ('ds_1', 'ten_1', 'a.jsonl', 'ds_1.jsonl', 1, 'ab', 1, '{}', '2026-11-01')",
    ]
    with engine_for(empty_url).begin() as connection:
        for statement in insert:
            connection.execute(text(statement))
    assert upgrade(empty_url) == head()
    with session_scope(empty_url) as session:
        counters = dict(session.execute(select(RegisteredModel.name, RegisteredModel.last_version)).all())
        assert counters == {"bot": 3, "new": 0}
        assert session.get(Dataset, "ds_1").deleted_at is None
    assert differences(empty_url) == []
