"""jobs and timers

Revision ID: core0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "core0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "srht_job",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("run_after", sa.DateTime, nullable=False),
        sa.Column("locked_until", sa.DateTime, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("updated", sa.DateTime, nullable=False),
    )
    op.create_index("ix_srht_job_status_run_after", "srht_job", ["status", "run_after"])
    op.create_table(
        "srht_timer",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("last_run", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("srht_timer")
    op.drop_index("ix_srht_job_status_run_after", "srht_job")
    op.drop_table("srht_job")
