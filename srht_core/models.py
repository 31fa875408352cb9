"""The base every service's tables are built on.

A service declares its tables on a base of its own, made from :class:`Model`
and SQLAlchemy's ``DeclarativeBase``::

    class Base(Model, DeclarativeBase):
        \"\"\"todo's tables.\"\"\"

    class Tracker(UpdatedMixin, Base):
        __tablename__ = "tracker"
        name: Mapped[str] = mapped_column(sa.String(128))

Each such base gets its own ``MetaData`` (one database per service) with
the site's naming convention (:data:`NAMING`), so constraint and index names
are the same in every service and Alembic can find them again. Every table
gets an integer ``id`` primary key and a ``created`` timestamp, and on
SQLite its ids are never reused (``AUTOINCREMENT``): a deleted row's id
must not come back as another row's, or a cache, a token or a link that
named the old row would reach the new one. PostgreSQL's sequences never
reuse ids anyway.

Text that no column can store is refused when a session flushes (see
:mod:`srht_core.text`), whatever base the tables use.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .db import utcnow

__all__ = [
    "NAMING",
    "MirroredUserMixin",
    "Model",
    "TimestampMixin",
    "UpdatedMixin",
    "never_reuse_ids",
]

#: How constraints and indexes are named, in every service.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Model:
    """Mixed into a service's declarative base: its own metadata with
    :data:`NAMING`, and for every table an ``id`` that is never reused and
    a ``created`` timestamp (UTC)."""

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    created: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow, nullable=False)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if DeclarativeBase in cls.__bases__ and "metadata" not in cls.__dict__:
            cls.metadata = sa.MetaData(naming_convention=NAMING)  # type: ignore[attr-defined]
        super().__init_subclass__(**kwargs)
        table = cls.__dict__.get("__table__")
        if isinstance(table, sa.Table):
            autoincrement_on_sqlite(table)


def autoincrement_on_sqlite(table: sa.Table) -> None:
    """Give ``table`` SQLite's ``AUTOINCREMENT`` when its primary key is one
    generated integer (a mirrored user's id is meta's, not generated)."""
    key = list(table.primary_key.columns)
    if (
        len(key) == 1
        and isinstance(key[0].type, sa.Integer)
        and key[0].autoincrement in (True, "auto")
    ):
        table.dialect_kwargs["sqlite_autoincrement"] = True


def never_reuse_ids(op: Any, *tables: str) -> None:
    """In a migration: rebuild ``tables`` of an existing SQLite database with
    ``AUTOINCREMENT``, so an id of a row deleted from now on never comes
    back (an id deleted earlier from the end of a table may come back once,
    which nothing can prevent). Rows, indexes and constraints are kept;
    ``srht migrate`` runs SQLite migrations with foreign keys off, so no
    row of another table is touched. On PostgreSQL, whose sequences never
    reuse ids, it does nothing.

    :param op: the migration's ``alembic.op``.
    """
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in tables:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass


class UpdatedMixin:
    """An ``updated`` timestamp (UTC), set on every change of the row."""

    updated: Mapped[datetime] = mapped_column(
        sa.DateTime, default=utcnow, onupdate=utcnow, nullable=False
    )


class TimestampMixin(UpdatedMixin):
    """``created`` and ``updated`` columns, for tables on a base without
    :class:`Model` (which gives every table ``created``)."""

    created: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow, nullable=False)


class MirroredUserMixin(TimestampMixin):
    """A service's copy of a user of the identity provider (meta).

    ``id`` is meta's id for the user, never generated locally, so every
    service agrees on who is who. The core fills and updates these columns
    on sign-on and on ``user_updated`` events; a service adds relations of
    its own in its subclass, which must set ``__tablename__ = "user"``.
    """

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True, nullable=False)
    email: Mapped[str] = mapped_column(sa.String(256), nullable=False)
    user_type: Mapped[str] = mapped_column(sa.String(32), nullable=False, default="active")
    suspension_notice: Mapped[str | None] = mapped_column(sa.Text, nullable=True)

    @property
    def canonical_name(self) -> str:
        return "~" + self.username

    @property
    def is_admin(self) -> bool:
        return self.user_type == "admin"

    @property
    def is_suspended(self) -> bool:
        return self.user_type == "suspended"
