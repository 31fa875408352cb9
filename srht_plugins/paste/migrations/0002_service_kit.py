"""the service kit's base: a paste's files get created, ids are never reused

Revision ID: paste0002
Revises: paste0001
Create Date: 2026-12-06 12:00:00

Every table on srht_core.Model has ``created``: the files of a paste made
before take their paste's. On SQLite both tables are rebuilt with
``AUTOINCREMENT``, so the id of a deleted row is never given to another,
as in every service.
"""

import sqlalchemy as sa
from alembic import op

from srht_core import never_reuse_ids

revision = "paste0002"
down_revision = "paste0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("paste_file", sa.Column("created", sa.DateTime(), nullable=True))
    op.execute(
        "UPDATE paste_file SET created = "
        "(SELECT paste.created FROM paste WHERE paste.id = paste_file.paste_id)"
    )
    with op.batch_alter_table("paste_file") as batch:
        batch.alter_column("created", existing_type=sa.DateTime(), nullable=False)
    never_reuse_ids(op, "paste", "paste_file")


def downgrade() -> None:
    with op.batch_alter_table("paste_file") as batch:
        batch.drop_column("created")
