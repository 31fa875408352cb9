"""paste's tables: the mirrored users, their pastes, and the files of each."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from srht_core import MirroredUserMixin, Model, UpdatedMixin

#: Who may see a paste: anyone, and it is listed on its owner's page;
#: anyone with the link; only its owner.
PUBLIC, UNLISTED, PRIVATE = "public", "unlisted", "private"
VISIBILITIES = (PUBLIC, UNLISTED, PRIVATE)


class Base(Model, DeclarativeBase):
    """paste's tables: each has an ``id`` (never reused) and ``created``."""


class User(MirroredUserMixin, Base):
    """meta's user, as paste knows them."""

    __tablename__ = "user"


class Paste(UpdatedMixin, Base):
    """One or more files shared under one unguessable link."""

    __tablename__ = "paste"
    __table_args__ = (
        sa.CheckConstraint("visibility IN ('public', 'unlisted', 'private')", name="visibility"),
        sa.Index("ix_paste_owner_id_id", "owner_id", "id"),
    )

    #: The paste's name in URLs and the API: random, so an unlisted paste
    #: is found only by those given its link.
    slug: Mapped[str] = mapped_column(sa.String(32), unique=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    visibility: Mapped[str] = mapped_column(sa.String(16))

    # lazy="raise": every page says up front what it loads, so no page can
    # grow a query per item unnoticed.
    owner: Mapped[User] = relationship(lazy="raise")
    files: Mapped[list[PasteFile]] = relationship(
        back_populates="paste",
        order_by="PasteFile.position",
        lazy="raise",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    @property
    def title(self) -> str:
        """What pages call the paste: its first file's name, or "Untitled
        paste" and its id when that file has none (its files loaded)."""
        first = self.files[0].filename if self.files else ""
        return first or f"Untitled paste {self.slug}"


class PasteFile(Base):
    """A file of a paste, numbered from 1 in the order it was given."""

    __tablename__ = "paste_file"
    __table_args__ = (
        sa.UniqueConstraint("paste_id", "position", name="uq_paste_file_paste_id_position"),
    )

    paste_id: Mapped[int] = mapped_column(sa.ForeignKey("paste.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(sa.Integer)
    #: Empty for a file given without a name.
    filename: Mapped[str] = mapped_column(sa.String(255), default="")
    #: Bytes of the content as UTF-8, so lists need not load the content.
    size: Mapped[int] = mapped_column(sa.Integer)
    # Deferred, raising if touched unasked: lists show names and sizes only.
    content: Mapped[str] = mapped_column(sa.Text, deferred=True, deferred_raiseload=True)

    paste: Mapped[Paste] = relationship(back_populates="files", lazy="raise")
