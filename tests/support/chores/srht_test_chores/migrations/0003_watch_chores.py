"""tell every worker when a chore changes (its kept page)

Revision ID: chores0003
Revises: chores0002
Create Date: 2026-11-30
"""

from alembic import op

from srht_core import unwatch_rows, watch_rows

revision = "chores0003"
down_revision = "chores0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    watch_rows(op, "chore")


def downgrade() -> None:
    unwatch_rows(op, "chore")
