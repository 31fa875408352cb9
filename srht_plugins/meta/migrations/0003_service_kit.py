"""every table on the service kit's base: a created column, ids never reused

Revision ID: meta0003
Revises: meta0002
Create Date: 2026-12-06 10:00:00

The tables that lacked ``created`` get one, filled from what the row knows
(an OAuth token's ``issued_at``, a code's ``auth_time``; the time of the
migration for recovery codes); a failed login's ``at`` is its ``created``.
On SQLite every table is rebuilt with ``AUTOINCREMENT``, so the id of a
deleted row, a user's above all, is never given to another.
"""

import sqlalchemy as sa
from alembic import op

from srht_core import never_reuse_ids

revision = "meta0003"
down_revision = "meta0002"
branch_labels = None
depends_on = None

#: Every table of meta: each has an id meta generates.
TABLES = (
    "user",
    "audit_log",
    "email_token",
    "login_attempt",
    "login_session",
    "oauth_authorization_code",
    "oauth_client",
    "oauth_token",
    "personal_access_token",
    "pgp_key",
    "recovery_code",
    "ssh_key",
)

#: Tables that get ``created``, and the UNIX time column to fill it from.
NEW_CREATED = {
    "oauth_token": "issued_at",
    "oauth_authorization_code": "auth_time",
    "recovery_code": None,
}


def _utc(unix_column: str | None) -> str:
    """SQL for a UTC timestamp without time zone, as the models store them."""
    if op.get_bind().dialect.name == "sqlite":
        return f"datetime({unix_column}, 'unixepoch')" if unix_column else "datetime('now')"
    if unix_column:
        return f"to_timestamp({unix_column}) AT TIME ZONE 'UTC'"
    return "now() AT TIME ZONE 'UTC'"


def upgrade() -> None:
    op.drop_index("ix_login_attempt_key_at", "login_attempt")
    with op.batch_alter_table("login_attempt") as batch:
        batch.alter_column("at", new_column_name="created", existing_type=sa.DateTime())
    op.create_index("ix_login_attempt_key_created", "login_attempt", ["key", "created"])
    for table, source in NEW_CREATED.items():
        op.add_column(table, sa.Column("created", sa.DateTime(), nullable=True))
        op.execute(f"UPDATE {table} SET created = {_utc(source)}")
        with op.batch_alter_table(table) as batch:
            batch.alter_column("created", existing_type=sa.DateTime(), nullable=False)
    never_reuse_ids(op, *TABLES)


def downgrade() -> None:
    for table in NEW_CREATED:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("created")
    op.drop_index("ix_login_attempt_key_created", "login_attempt")
    with op.batch_alter_table("login_attempt") as batch:
        batch.alter_column("created", new_column_name="at", existing_type=sa.DateTime())
    op.create_index("ix_login_attempt_key_at", "login_attempt", ["key", "at"])
