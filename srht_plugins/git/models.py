"""git's tables: the mirrored users, their repositories, who else may read
or write each, the old names of renamed repositories, and webhooks.

A repository's folder on disk is named by its id (``<id>.git``), so
renaming a repository or its owner never moves anything.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from srht_core import MirroredUserMixin, Model, UpdatedMixin

#: Who may read a repository: anyone, and it is listed on its owner's page;
#: anyone with the link; only its owner and those granted access.
PUBLIC, UNLISTED, PRIVATE = "public", "unlisted", "private"
VISIBILITIES = (PUBLIC, UNLISTED, PRIVATE)

#: Access a grant gives: read (clone, fetch, browse) or also write (push).
READ, WRITE = "ro", "rw"
MODES = (READ, WRITE)


class Base(Model, DeclarativeBase):
    """git's tables (each with ``id`` and ``created``)."""


class User(MirroredUserMixin, Base):
    """meta's user, as git knows them."""

    __tablename__ = "user"


class Repository(UpdatedMixin, Base):
    """A bare git repository owned by a user, at ``/~owner/name``."""

    __tablename__ = "repository"
    __table_args__ = (
        sa.UniqueConstraint("owner_id", "name", name="uq_repository_owner_id_name"),
        sa.CheckConstraint("visibility IN ('public', 'unlisted', 'private')", name="visibility"),
    )

    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(100))
    description: Mapped[str | None] = mapped_column(sa.Text)
    visibility: Mapped[str] = mapped_column(sa.String(16))
    #: When refs last changed by a push; ``None`` until the first push.
    pushed_at: Mapped[datetime | None] = mapped_column(sa.DateTime)

    # lazy="raise": every page says up front what it loads.
    owner: Mapped[User] = relationship(lazy="raise")
    grants: Mapped[list[AccessGrant]] = relationship(
        back_populates="repository",
        lazy="raise",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    @property
    def folder(self) -> str:
        """The repository's folder under ``[git] repos``."""
        return f"{self.id}.git"


class AccessGrant(Base):
    """Access to a repository given by its owner to another user."""

    __tablename__ = "access_grant"
    __table_args__ = (
        sa.UniqueConstraint(
            "repository_id", "user_id", name="uq_access_grant_repository_id_user_id"
        ),
        sa.CheckConstraint("mode IN ('ro', 'rw')", name="mode"),
    )

    repository_id: Mapped[int] = mapped_column(sa.ForeignKey("repository.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    mode: Mapped[str] = mapped_column(sa.String(2))

    repository: Mapped[Repository] = relationship(back_populates="grants", lazy="raise")
    user: Mapped[User] = relationship(lazy="raise")


class Redirect(Base):
    """An old name of a renamed repository: ``/~owner/name`` leads to it."""

    __tablename__ = "redirect"
    __table_args__ = (sa.UniqueConstraint("owner_id", "name", name="uq_redirect_owner_id_name"),)

    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(100))
    repository_id: Mapped[int] = mapped_column(
        sa.ForeignKey("repository.id", ondelete="CASCADE"), index=True
    )


class Webhook(Base):
    """A URL told about every push to a repository (``git:repo:push``)."""

    __tablename__ = "webhook"

    repository_id: Mapped[int] = mapped_column(
        sa.ForeignKey("repository.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(sa.Text)
