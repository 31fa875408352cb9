"""users, projects, their resources and activity, webhooks

Revision ID: hub0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "hub0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Constraints and indexes are named by the models' naming convention,
    # which srht's migration environment applies here too. Every table but
    # the mirrored users never reuses an id, on SQLite too.
    op.create_table(
        "user",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("email", sa.String(256), nullable=False),
        sa.Column("user_type", sa.String(32), nullable=False),
        sa.Column("suspension_notice", sa.Text, nullable=True),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("updated", sa.DateTime, nullable=False),
    )
    op.create_table(
        "project",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "owner_id", sa.Integer, sa.ForeignKey("user.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.String(256), nullable=False),
        sa.Column("readme", sa.Text, nullable=False),
        sa.Column("visibility", sa.String(16), nullable=False),
        sa.Column("tags", sa.String(330), nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("updated", sa.DateTime, nullable=False),
        sa.UniqueConstraint("owner_id", "name"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "source",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "owner_id", sa.Integer, sa.ForeignKey("user.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("item", sa.String(1024), nullable=False),
        sa.Column("title", sa.String(512), nullable=False),
        sa.Column("url", sa.String(1024), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("visibility", sa.String(16), nullable=False),
        sa.Column("hook_key", sa.String(64), nullable=False),
        sa.Column("webhook_id", sa.Integer, nullable=True),
        sa.Column("hook_problem", sa.Text, nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("updated", sa.DateTime, nullable=False),
        sa.UniqueConstraint("owner_id", "service", "item"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "attachment",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "project_id",
            sa.Integer,
            sa.ForeignKey("project.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "source_id",
            sa.Integer,
            sa.ForeignKey("source.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.UniqueConstraint("project_id", "source_id"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "event",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "source_id", sa.Integer, sa.ForeignKey("source.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("summary", sa.String(512), nullable=False),
        sa.Column("url", sa.String(1024), nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Index("ix_event_source_id_id", "source_id", "id"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "webhook",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "owner_id",
            sa.Integer,
            sa.ForeignKey("user.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("events", sa.Text, nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("updated", sa.DateTime, nullable=False),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    for table in ("webhook", "event", "attachment", "source", "project", "user"):
        op.drop_table(table)
