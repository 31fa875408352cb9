"""Hub's tables: its copy of meta's users, their projects, the resources of
other services attached to them, and the activity heard of those.

Hub stores what it needs to draw its pages without asking anyone (a
resource's name, link and last known visibility, each event's one-line
summary), never another service's data beyond that: the services stay the
owners of their objects, and hub checks with them (``sources``).
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from srht_core import MirroredUserMixin, Model, UpdatedMixin

PUBLIC, UNLISTED, PRIVATE = "public", "unlisted", "private"
VISIBILITIES = (PUBLIC, UNLISTED, PRIVATE)
MAX_NAME, MAX_DESCRIPTION, MAX_README, MAX_TAGS, MAX_TAG = 100, 256, 65_536, 10, 32
NAME_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
TAG_RULE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")


def timestamp(value: Any) -> str | None:
    return None if value is None else value.isoformat() + "Z"


class Base(Model, DeclarativeBase):
    """Hub's tables."""


class User(MirroredUserMixin, Base):
    """Hub's copy of a meta user; deleting it deletes their projects and
    what hub heard of their resources."""

    __tablename__ = "user"


class Project(UpdatedMixin, Base):
    """A named group of resources from any service, with a README."""

    __tablename__ = "project"
    __table_args__ = (sa.UniqueConstraint("owner_id", "name"),)

    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(MAX_NAME))
    description: Mapped[str] = mapped_column(sa.String(MAX_DESCRIPTION), default="")
    readme: Mapped[str] = mapped_column(sa.Text, default="")
    visibility: Mapped[str] = mapped_column(sa.String(16), default=PUBLIC)
    #: Tags, space separated, each matching ``TAG_RULE``.
    tags: Mapped[str] = mapped_column(sa.String(MAX_TAGS * (MAX_TAG + 1)), default="")

    owner: Mapped[User] = relationship(lazy="joined")
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="project", cascade="all, delete-orphan", order_by="Attachment.id"
    )

    @property
    def ref(self) -> str:
        return f"{self.owner.canonical_name}/{self.name}"

    @property
    def tag_list(self) -> list[str]:
        return self.tags.split()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ref": self.ref,
            "owner": {"username": self.owner.username, "canonical_name": self.owner.canonical_name},
            "name": self.name,
            "description": self.description,
            "readme": self.readme,
            "visibility": self.visibility,
            "tags": self.tag_list,
            "created": timestamp(self.created),
            "updated": timestamp(self.updated),
        }


class Source(UpdatedMixin, Base):
    """An object of another service (a repository, a tracker, ...) that one
    of hub's users attached to a project: where it lives, how it is named,
    its visibility when last heard of, and hub's webhook on it.

    One row per object and user, however many projects show it, so its
    events are heard (and stored) once."""

    __tablename__ = "source"
    __table_args__ = (sa.UniqueConstraint("owner_id", "service", "item"),)

    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    service: Mapped[str] = mapped_column(sa.String(64))
    kind: Mapped[str] = mapped_column(sa.String(64))
    #: The object's path on the service's REST API (its ResourceType's ``item``).
    item: Mapped[str] = mapped_column(sa.String(1024))
    title: Mapped[str] = mapped_column(sa.String(512))
    url: Mapped[str] = mapped_column(sa.String(1024))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    visibility: Mapped[str] = mapped_column(sa.String(16), default=PRIVATE)
    #: The secret part of the URL the service posts this object's events to.
    hook_key: Mapped[str] = mapped_column(sa.String(64))
    #: The service's id of hub's webhook on the object, once subscribed.
    webhook_id: Mapped[int | None] = mapped_column(sa.Integer)
    #: Why subscribing failed, shown to the owner until it works.
    hook_problem: Mapped[str] = mapped_column(sa.Text, default="")

    owner: Mapped[User] = relationship(lazy="joined")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service,
            "kind": self.kind,
            "title": self.title,
            "url": self.url,
            "description": self.description,
            "visibility": self.visibility,
        }


class Attachment(Base):
    """A source shown on a project."""

    __tablename__ = "attachment"
    __table_args__ = (sa.UniqueConstraint("project_id", "source_id"),)

    project_id: Mapped[int] = mapped_column(sa.ForeignKey("project.id", ondelete="CASCADE"))
    source_id: Mapped[int] = mapped_column(
        sa.ForeignKey("source.id", ondelete="CASCADE"), index=True
    )

    project: Mapped[Project] = relationship(back_populates="attachments")
    source: Mapped[Source] = relationship(lazy="joined")


class Event(Base):
    """Something that happened to a source, as its service's webhook told it."""

    __tablename__ = "event"
    __table_args__ = (sa.Index("ix_event_source_id_id", "source_id", "id"),)

    source_id: Mapped[int] = mapped_column(sa.ForeignKey("source.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(sa.String(64))
    actor: Mapped[str] = mapped_column(sa.String(128), default="")
    summary: Mapped[str] = mapped_column(sa.String(512))
    url: Mapped[str] = mapped_column(sa.String(1024), default="")

    source: Mapped[Source] = relationship(lazy="joined")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.event,
            "actor": self.actor,
            "summary": self.summary,
            "url": self.url,
            "resource": {"id": self.source_id, "title": self.source.title},
            "created": timestamp(self.created),
        }


class Webhook(UpdatedMixin, Base):
    """A URL a user wants told of their projects' creation, changes and
    deletion."""

    __tablename__ = "webhook"

    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(sa.Text)
    #: Event names, space separated.
    events: Mapped[str] = mapped_column(sa.Text)

    @property
    def event_list(self) -> list[str]:
        return self.events.split()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "events": self.event_list,
            "created": timestamp(self.created),
        }
