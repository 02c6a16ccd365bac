"""pause and resume: a running job's pause request (the status "paused" needs no schema change)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 18:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('pause_requested', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('pause_requested')
