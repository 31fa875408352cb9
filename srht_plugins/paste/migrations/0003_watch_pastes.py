"""tell every worker when a paste or a user row changes, for its kept pages

Revision ID: paste0003
Revises: paste0002
Create Date: 2026-12-06 14:00:00

A paste's page is kept for visitors without cookies until its row (its
visibility, its deletion) or its owner's row (the name in its links)
changes; on PostgreSQL a kept page then answers with no query at all.
"""

from alembic import op

from srht_core.changes import unwatch_rows, watch_rows

revision = "paste0003"
down_revision = "paste0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    watch_rows(op, "paste")
    watch_rows(op, "user")


def downgrade() -> None:
    unwatch_rows(op, "user")
    unwatch_rows(op, "paste")
