"""tell every worker when a project, a resource, an attachment or a user
row changes, for its kept project pages

Revision ID: hub0002
Revises: hub0001

A project's page is kept for visitors without cookies until one of the
rows it shows changes: the project, its owner, its resources (whose row
also changes with each event heard of them) or any attachment; on
PostgreSQL a kept page then answers with no query at all.
"""

from alembic import op

from srht_core import unwatch_rows, watch_rows

revision = "hub0002"
down_revision = "hub0001"
branch_labels = None
depends_on = None

TABLES = ("project", "user", "source", "attachment")


def upgrade() -> None:
    for table in TABLES:
        watch_rows(op, table)


def downgrade() -> None:
    for table in reversed(TABLES):
        unwatch_rows(op, table)
