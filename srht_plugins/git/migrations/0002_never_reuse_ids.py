"""git's tables on the core's model base: ids are never reused

Every table already had an ``id`` and a ``created`` column; what changes is
that SQLite gives a deleted row's id to no other row (AUTOINCREMENT), so a
link, a cache or a delivery that named an old repository, grant or webhook
never reaches a new one. PostgreSQL's sequences never reuse ids: nothing to
do there.

Revision ID: git0002
Revises: git0001
Create Date: 2026-12-06 10:00:00
"""

from alembic import op

from srht_core.models import never_reuse_ids

revision = 'git0002'
down_revision = 'git0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    never_reuse_ids(op, 'repository', 'access_grant', 'redirect', 'webhook')


def downgrade() -> None:
    # Ids handed out while AUTOINCREMENT was on stay unique either way.
    pass
