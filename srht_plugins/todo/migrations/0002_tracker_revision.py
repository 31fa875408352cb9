"""tracker revision, for the ticket list cache

Revision ID: todo0002
Revises: todo0001
Create Date: 2026-11-29 22:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = 'todo0002'
down_revision = 'todo0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tracker') as batch:
        batch.add_column(sa.Column('revision', sa.Integer(), server_default='0',
                                   nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('tracker') as batch:
        batch.drop_column('revision')
