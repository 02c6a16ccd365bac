"""Alembic's environment: run by `llmft.db.migrate`, which hands over an open connection."""

from alembic import context

from llmft.db.tables import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
