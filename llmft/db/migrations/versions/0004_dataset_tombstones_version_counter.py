"""dataset tombstones (deleted_at) and a per-model version counter (numbers never reused)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 14:30:00
"""

import json

import sqlalchemy as sa
from alembic import op



revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('datasets') as batch:
        batch.add_column(sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('models') as batch:
        batch.add_column(sa.Column('last_version', sa.Integer(), nullable=False, server_default='0'))
    # The highest number each model ever had: its versions now, and those deleted (the registry's events).
    connection = op.get_bind()
    highest: dict[str, int] = {}
    for model_id, version in connection.execute(sa.text("SELECT model_id, version FROM model_versions")):
        highest[model_id] = max(highest.get(model_id, 0), version)
    events = connection.execute(sa.text("SELECT model_id, data FROM model_events WHERE type = 'version_registered'"))
    for model_id, data in events:
        version = (json.loads(data) if isinstance(data, str) else data or {}).get("version")
        if isinstance(version, int):
            highest[model_id] = max(highest.get(model_id, 0), version)
    for model_id, version in highest.items():
        connection.execute(sa.text("UPDATE models SET last_version = :v WHERE id = :id"), {"v": version, "id": model_id})


def downgrade() -> None:
    with op.batch_alter_table('models') as batch:
        batch.drop_column('last_version')
    with op.batch_alter_table('datasets') as batch:
        batch.drop_column('deleted_at')
