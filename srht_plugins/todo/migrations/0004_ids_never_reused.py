"""ids are never reused, on SQLite too (the service kit's model base)

Revision ID: todo0004
Revises: todo0003
Create Date: 2026-12-05 23:00:00
"""

from alembic import op

from srht_core import never_reuse_ids

revision = 'todo0004'
down_revision = 'todo0003'
branch_labels = None
depends_on = None

TABLES = (
    'tracker',
    'tracker_access',
    'label',
    'ticket',
    'comment',
    'ticket_reference',
    'subscription',
    'webhook',
)


def upgrade() -> None:
    # A deleted tracker's id given to a new one would let what was kept for
    # the old one (a cached ticket list, a link) reach the new one.
    never_reuse_ids(op, *TABLES)


def downgrade() -> None:
    pass  # AUTOINCREMENT costs nothing to keep
