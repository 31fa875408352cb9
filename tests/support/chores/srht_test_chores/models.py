"""The chores service's tables: its mirror of meta's users, and chores."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from srht_core import MirroredUserMixin, TimestampMixin

metadata = sa.MetaData()


class Base(DeclarativeBase):
    metadata = metadata


class User(MirroredUserMixin, Base):
    __tablename__ = "user"

    chores: Mapped[list[Chore]] = relationship(back_populates="owner")


class Chore(TimestampMixin, Base):
    __tablename__ = "chore"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    done: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    reminded: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id"), nullable=True)

    owner: Mapped[User | None] = relationship(back_populates="chores")
