"""the core's own tables never reuse ids on SQLite

Jobs, webhook deliveries and idempotency keys are deleted as they age;
without AUTOINCREMENT SQLite handed a deleted row's id to the next row, so a
job still queued for an old delivery could send a new one. PostgreSQL's
sequences never reuse ids: nothing to do there.

Revision ID: core0005
Revises: core0004
Create Date: 2026-12-06
"""

from alembic import op

from srht_core.models import never_reuse_ids

revision = "core0005"
down_revision = "core0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    never_reuse_ids(op, "srht_job", "srht_webhook_delivery", "srht_idempotency_key")


def downgrade() -> None:
    # Ids handed out while AUTOINCREMENT was on stay unique either way.
    pass
