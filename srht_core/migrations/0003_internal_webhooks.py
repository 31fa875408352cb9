"""webhook deliveries between the site's own services

Revision ID: core0003
Revises: core0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "core0003"
down_revision = "core0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("srht_webhook_delivery") as batch:
        batch.add_column(sa.Column("internal", sa.Boolean, nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("srht_webhook_delivery") as batch:
        batch.drop_column("internal")
