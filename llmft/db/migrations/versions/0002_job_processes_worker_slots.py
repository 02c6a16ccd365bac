"""distributed jobs: the processes a job needs, the slots a worker offers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 02:05:00
"""

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('processes', sa.Integer(), nullable=False, server_default='1'))
    with op.batch_alter_table('workers') as batch:
        batch.add_column(sa.Column('slots', sa.Integer(), nullable=False, server_default='1'))
        batch.add_column(sa.Column('busy', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('workers') as batch:
        batch.drop_column('busy')
        batch.drop_column('slots')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('processes')
