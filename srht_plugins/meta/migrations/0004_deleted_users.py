"""deleted_user: the accounts deleted, for the services' revocation lists

Revision ID: meta0004
Revises: meta0003
Create Date: 2026-12-06 12:00:00

Deleting an account deletes its tokens and login sessions, so until now
meta never reported them revoked. A row here (the deleted user's id and
when) makes meta's internal revocations list name the user, and every
service then refuses whatever was sealed for that id. Accounts deleted
before this migration are not known any more; their ids are never given
to another account (meta0003), and the services deleted their copies on
the ``user:delete`` event.
"""

import sqlalchemy as sa
from alembic import op

revision = "meta0004"
down_revision = "meta0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deleted_user",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deleted_user")),
    )
    op.create_index("ix_deleted_user_created", "deleted_user", ["created"])


def downgrade() -> None:
    op.drop_index("ix_deleted_user_created", "deleted_user")
    op.drop_table("deleted_user")
