"""tell every worker when a tracker row changes, for its kept pages

Revision ID: todo0003
Revises: todo0002
Create Date: 2026-11-30 05:00:00
"""

from alembic import op

from srht_core.changes import unwatch_rows, watch_rows

revision = 'todo0003'
down_revision = 'todo0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Everything a tracker page shows raises the tracker's revision (see
    # listcache), so a change to the tracker row is a change to its page.
    watch_rows(op, 'tracker')


def downgrade() -> None:
    unwatch_rows(op, 'tracker')
