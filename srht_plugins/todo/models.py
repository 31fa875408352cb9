"""todo's tables: trackers, their tickets and everything hanging off them.

Every row below a tracker is deleted with it (``ON DELETE CASCADE``); rows
that merely *name* a user (a ticket's submitter, a comment's author) keep
their content and lose the name when the user goes (``SET NULL``).
"""

from __future__ import annotations

import re
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from srht_core import MirroredUserMixin, Model, UpdatedMixin


class Base(Model, DeclarativeBase):
    """todo's tables: each has an ``id`` (never reused) and ``created``."""


class User(MirroredUserMixin, Base):
    """todo's copy of a meta user."""

    __tablename__ = "user"


#: What a tracker may allow: bits of an access mask.
BROWSE, SUBMIT, COMMENT, TRIAGE, EDIT = 1, 2, 4, 8, 16
ALL_ACCESS = BROWSE | SUBMIT | COMMENT | TRIAGE | EDIT
ACCESS_NAMES = {
    "browse": BROWSE,
    "submit": SUBMIT,
    "comment": COMMENT,
    "triage": TRIAGE,
    "edit": EDIT,
}

PUBLIC, UNLISTED, PRIVATE = "public", "unlisted", "private"
VISIBILITIES = (PUBLIC, UNLISTED, PRIVATE)

OPEN, CLOSED = "open", "closed"
RESOLUTIONS = (
    "fixed",
    "implemented",
    "wont_fix",
    "by_design",
    "invalid",
    "duplicate",
    "not_our_bug",
)


def resolution_label(value: str) -> str:
    """A resolution as people write it (``wont_fix`` → ``won't fix``)."""
    return {"wont_fix": "won't fix"}.get(value, value.replace("_", " "))


#: Tracker names: what fits in a URL path segment without escaping.
TRACKER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


def access_names(mask: int) -> list[str]:
    return [name for name, bit in ACCESS_NAMES.items() if mask & bit]


def access_mask(names: list[str]) -> int:
    """The mask of access names; unknown names raise ``KeyError``."""
    mask = 0
    for name in names:
        mask |= ACCESS_NAMES[name]
    return mask


def timestamp(value: datetime) -> str:
    return value.isoformat() + "Z"


def user_json(user: User | None) -> dict[str, object] | None:
    """How the API shows a user; ``None`` for one whose account is gone."""
    if user is None:
        return None
    return {"id": user.id, "canonical_name": user.canonical_name, "username": user.username}


class Tracker(UpdatedMixin, Base):
    __tablename__ = "tracker"
    __table_args__ = (sa.UniqueConstraint("owner_id", "name"),)

    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(128))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    visibility: Mapped[str] = mapped_column(sa.String(16), default=PUBLIC)
    #: What anyone may do, and what any signed-in user may do (masks).
    anonymous_access: Mapped[int] = mapped_column(sa.Integer, default=BROWSE)
    user_access: Mapped[int] = mapped_column(sa.Integer, default=BROWSE | SUBMIT | COMMENT)
    #: The number of the newest ticket; raised atomically for each new one.
    ticket_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    #: Raised by every change to what the ticket list shows (see listcache).
    revision: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")

    owner: Mapped[User] = relationship(lazy="joined", innerjoin=True)

    @property
    def ref(self) -> str:
        return f"{self.owner.canonical_name}/{self.name}"

    @property
    def path(self) -> str:
        return f"/{self.ref}"

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "ref": self.ref,
            "owner": user_json(self.owner),
            "name": self.name,
            "description": self.description,
            "visibility": self.visibility,
            "anonymous_access": access_names(self.anonymous_access),
            "user_access": access_names(self.user_access),
            "ticket_count": self.ticket_count,
            "created": timestamp(self.created),
            "updated": timestamp(self.updated),
        }


class TrackerAccess(Base):
    """What one named user may do on a tracker; replaces the defaults for them."""

    __tablename__ = "tracker_access"
    __table_args__ = (sa.UniqueConstraint("tracker_id", "user_id"),)

    tracker_id: Mapped[int] = mapped_column(sa.ForeignKey("tracker.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    access: Mapped[int] = mapped_column(sa.Integer)

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)

    def to_dict(self) -> dict[str, object]:
        return {"user": user_json(self.user), "access": access_names(self.access)}


ticket_label = sa.Table(
    "ticket_label",
    Base.metadata,
    sa.Column("ticket_id", sa.ForeignKey("ticket.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("label_id", sa.ForeignKey("label.id", ondelete="CASCADE"), primary_key=True),
    # label:NAME searches start from the label and need its tickets.
    sa.Index("ix_ticket_label_label_id_ticket_id", "label_id", "ticket_id"),
)

ticket_assignee = sa.Table(
    "ticket_assignee",
    Base.metadata,
    sa.Column("ticket_id", sa.ForeignKey("ticket.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", sa.ForeignKey("user.id", ondelete="CASCADE"), primary_key=True),
    sa.Index("ix_ticket_assignee_user_id_ticket_id", "user_id", "ticket_id"),
)


class Label(UpdatedMixin, Base):
    __tablename__ = "label"
    __table_args__ = (sa.UniqueConstraint("tracker_id", "name"),)

    tracker_id: Mapped[int] = mapped_column(sa.ForeignKey("tracker.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(64))
    #: Background colour, ``#rrggbb``.
    color: Mapped[str] = mapped_column(sa.String(7))

    @property
    def text_color(self) -> str:
        return text_color(self.color)

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "color": self.color,
            "text_color": self.text_color,
            "created": timestamp(self.created),
        }


def _linear(channel: int) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(color: str) -> float:
    """The WCAG relative luminance of ``#rrggbb``."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * _linear(r) + 0.7152 * _linear(g) + 0.0722 * _linear(b)


def contrast(a: str, b: str) -> float:
    """The WCAG contrast ratio of two colours (1 to 21)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_color(background: str) -> str:
    """Black or white, whichever reads better on ``background``."""
    if contrast(background, "#000000") >= contrast(background, "#ffffff"):
        return "#000000"
    return "#ffffff"


SEARCH_INDEX = "ix_ticket_search"


class Ticket(UpdatedMixin, Base):
    __tablename__ = "ticket"
    __table_args__ = (
        sa.UniqueConstraint("tracker_id", "number"),
        # A tracker's list filtered by status, newest first.
        sa.Index("ix_ticket_tracker_id_status_number", "tracker_id", "status", "number"),
        sa.Index("ix_ticket_submitter_id", "submitter_id"),
        # Full-text search of title and description. PostgreSQL only:
        # SQLite (the embedded default) has no to_tsvector and uses LIKE.
        sa.Index(
            SEARCH_INDEX,
            sa.text("to_tsvector('simple', title || ' ' || description)"),
            postgresql_using="gin",
        ).ddl_if(dialect="postgresql"),
    )

    tracker_id: Mapped[int] = mapped_column(sa.ForeignKey("tracker.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(sa.Integer)
    submitter_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(sa.String(512))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    status: Mapped[str] = mapped_column(sa.String(16), default=OPEN)
    resolution: Mapped[str | None] = mapped_column(sa.String(32))

    tracker: Mapped[Tracker] = relationship(lazy="raise")
    submitter: Mapped[User | None] = relationship(lazy="raise")
    labels: Mapped[list[Label]] = relationship(
        secondary=ticket_label, lazy="raise", order_by=Label.name
    )
    assignees: Mapped[list[User]] = relationship(
        secondary=ticket_assignee, lazy="raise", order_by=User.username
    )

    @property
    def ref(self) -> str:
        return f"{self.tracker.ref}#{self.number}"

    @property
    def path(self) -> str:
        return f"{self.tracker.path}/{self.number}"

    def to_dict(self) -> dict[str, object]:
        """The API's view; needs ``tracker``, ``submitter``, ``labels`` and
        ``assignees`` loaded."""
        return {
            "id": self.id,
            "ref": self.ref,
            "tracker": self.tracker.ref,
            "number": self.number,
            "title": self.title,
            "description": self.description,
            "status": self.status,
            "resolution": self.resolution,
            "submitter": user_json(self.submitter),
            "labels": [label.name for label in self.labels],
            "assignees": [user_json(user) for user in self.assignees],
            "created": timestamp(self.created),
            "updated": timestamp(self.updated),
        }


def search_document() -> sa.ColumnElement[object]:
    """What ``text`` searches match on PostgreSQL: the expression of
    :data:`SEARCH_INDEX`, written the same way so the index serves them."""
    table = Ticket.__table__
    return sa.func.to_tsvector(
        sa.literal_column("'simple'"),
        table.c.title + sa.literal_column("' '") + table.c.description,
    )


class Comment(UpdatedMixin, Base):
    """A comment on a ticket, or the record of a change to it (``change``)."""

    __tablename__ = "comment"
    __table_args__ = (
        sa.Index("ix_comment_ticket_id_id", "ticket_id", "id"),
        sa.Index("ix_comment_author_id", "author_id"),
    )

    ticket_id: Mapped[int] = mapped_column(sa.ForeignKey("ticket.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(sa.Text, default="")
    #: What the author changed with this comment ("closed as fixed").
    change: Mapped[str | None] = mapped_column(sa.String(256))

    author: Mapped[User | None] = relationship(lazy="raise")

    def to_dict(self) -> dict[str, object]:
        """The API's view; needs ``author`` loaded."""
        return {
            "id": self.id,
            "author": user_json(self.author),
            "text": self.text,
            "change": self.change,
            "created": timestamp(self.created),
        }


class TicketReference(Base):
    """``source`` mentions ``target`` (``#12`` or ``~alice/bugs#12`` in its text)."""

    __tablename__ = "ticket_reference"
    __table_args__ = (
        sa.UniqueConstraint("source_id", "target_id"),
        sa.Index("ix_ticket_reference_target_id", "target_id"),
    )

    source_id: Mapped[int] = mapped_column(sa.ForeignKey("ticket.id", ondelete="CASCADE"))
    target_id: Mapped[int] = mapped_column(sa.ForeignKey("ticket.id", ondelete="CASCADE"))


class Subscription(Base):
    """A user hears (by mail) of what happens on a tracker or on one ticket."""

    __tablename__ = "subscription"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "tracker_id"),
        sa.UniqueConstraint("user_id", "ticket_id"),
        sa.CheckConstraint("(tracker_id IS NULL) <> (ticket_id IS NULL)", name="one_target"),
        sa.Index("ix_subscription_tracker_id", "tracker_id"),
        sa.Index("ix_subscription_ticket_id", "ticket_id"),
    )

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    tracker_id: Mapped[int | None] = mapped_column(sa.ForeignKey("tracker.id", ondelete="CASCADE"))
    ticket_id: Mapped[int | None] = mapped_column(sa.ForeignKey("ticket.id", ondelete="CASCADE"))


class Webhook(UpdatedMixin, Base):
    """A URL the tracker's owner wants told of some of its events."""

    __tablename__ = "webhook"
    __table_args__ = (sa.Index("ix_webhook_tracker_id", "tracker_id"),)

    tracker_id: Mapped[int] = mapped_column(sa.ForeignKey("tracker.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(sa.Text)
    #: Event names, space separated.
    events: Mapped[str] = mapped_column(sa.Text)

    @property
    def event_list(self) -> list[str]:
        return self.events.split()

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "url": self.url,
            "events": self.event_list,
            "created": timestamp(self.created),
        }
