"""idempotency keys of API writes, with the answers they replay

Revision ID: core0004
Revises: core0003
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "core0004"
down_revision = "core0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "srht_idempotency_key",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request", sa.String(64), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("content_type", sa.String(255), nullable=True),
        sa.Column("location", sa.Text, nullable=True),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.UniqueConstraint("owner", "key", name="uq_srht_idempotency_key_owner"),
    )
    op.create_index("ix_srht_idempotency_key_created", "srht_idempotency_key", ["created"])


def downgrade() -> None:
    op.drop_index("ix_srht_idempotency_key_created", "srht_idempotency_key")
    op.drop_table("srht_idempotency_key")
