"""webhook deliveries and received nonces

Revision ID: core0002
Revises: core0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "core0002"
down_revision = "core0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "srht_webhook_delivery",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("subscription", sa.String(128), nullable=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("event", sa.String(128), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("response_status", sa.Integer, nullable=True),
        sa.Column("response_body", sa.Text, nullable=True),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("updated", sa.DateTime, nullable=False),
    )
    op.create_index("ix_srht_webhook_delivery_subscription", "srht_webhook_delivery",
                    ["subscription"])
    op.create_table(
        "srht_webhook_nonce",
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("received", sa.DateTime, nullable=False),
    )
    op.create_index("ix_srht_webhook_nonce_received", "srht_webhook_nonce", ["received"])


def downgrade() -> None:
    op.drop_table("srht_webhook_nonce")
    op.drop_index("ix_srht_webhook_delivery_subscription", "srht_webhook_delivery")
    op.drop_table("srht_webhook_delivery")
