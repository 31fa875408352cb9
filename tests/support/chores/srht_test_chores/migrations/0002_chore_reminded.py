"""remember which chores were reminded

Revision ID: chores0002
Revises: chores0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "chores0002"
down_revision = "chores0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chore") as batch:
        batch.add_column(
            sa.Column("reminded", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("chore") as batch:
        batch.drop_column("reminded")
