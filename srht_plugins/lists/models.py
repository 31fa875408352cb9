"""lists' tables: mailing lists, who is on them, and the archive.

A list belongs to its owner; everything under it (members, subscriptions,
threads, messages, patchsets, webhooks) goes with it (``ON DELETE
CASCADE``). A message keeps its raw bytes exactly as they arrived (what
the mbox downloads and ``git am`` read), beside what the pages show of it,
taken out once when it was stored: sender, subject, text, attachments,
its place in a thread and in a patchset.
"""

from __future__ import annotations

import re
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column, relationship

from srht_core import MirroredUserMixin, Model, UpdatedMixin


class Base(Model, DeclarativeBase):
    """lists' tables: each has an ``id`` (never reused) and ``created``."""


class User(MirroredUserMixin, Base):
    """lists' copy of a meta user."""

    __tablename__ = "user"


PUBLIC, UNLISTED, PRIVATE = "public", "unlisted", "private"
VISIBILITIES = (PUBLIC, UNLISTED, PRIVATE)

#: Who may post: anyone; subscribers; or the owner, the named members and
#: the allowed addresses only. The owner may always post.
ANYONE, SUBSCRIBERS, MEMBERS = "anyone", "subscribers", "members"
POST_POLICIES = (ANYONE, SUBSCRIBERS, MEMBERS)

#: A message of the archive, or one held for the owner's approval.
ARCHIVED, HELD = "archived", "held"

#: A patchset's review status.
PROPOSED, NEEDS_REVISION, SUPERSEDED, APPROVED, REJECTED, APPLIED = (
    "proposed",
    "needs_revision",
    "superseded",
    "approved",
    "rejected",
    "applied",
)
PATCHSET_STATUSES = (PROPOSED, NEEDS_REVISION, SUPERSEDED, APPROVED, REJECTED, APPLIED)

#: What a tool (CI: builds) says of a patchset: started, waiting for
#: something, or ended one way or the other.
TOOL_STATUSES = ("pending", "waiting", "success", "failed", "cancelled")
#: A tool's name: ``builds``, ``lint``... (shown as ``builds: success``).
TOOL_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
MAX_TOOL_DETAILS = 256

#: List names: what fits in a URL path segment and an address's local part.
LIST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

MAX_MESSAGE_ID = 512
MAX_SUBJECT = 1024
MAX_ADDRESS = 320
MAX_NAME = 256
MAX_FILENAME = 256


def timestamp(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def user_json(user: User | None) -> dict[str, object] | None:
    """How the API shows a user; ``None`` for one whose account is gone."""
    if user is None:
        return None
    return {"id": user.id, "canonical_name": user.canonical_name, "username": user.username}


class MailingList(UpdatedMixin, Base):
    """``~owner/name``: an address people post to, and its archive."""

    __tablename__ = "mailing_list"
    __table_args__ = (sa.UniqueConstraint("owner_id", "name"),)

    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(128))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    visibility: Mapped[str] = mapped_column(sa.String(16), default=PUBLIC)
    post_policy: Mapped[str] = mapped_column(sa.String(16), default=ANYONE)
    #: Addresses that may post besides the owner and members, one a line.
    allowed_senders: Mapped[str] = mapped_column(sa.Text, default="")
    #: Hold posts from senders the policy refuses for the owner's approval,
    #: instead of refusing them.
    moderated: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    #: Send posts on From the list (Reply-To the author), for senders whose
    #: domain's DMARC policy would have the copies rejected.
    rewrite_from: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    #: An archived list keeps its archive and accepts no more posts.
    archived: Mapped[bool] = mapped_column(sa.Boolean, default=False)

    owner: Mapped[User] = relationship(lazy="joined", innerjoin=True)

    @property
    def ref(self) -> str:
        return f"{self.owner.canonical_name}/{self.name}"

    @property
    def path(self) -> str:
        return f"/{self.ref}"

    def allowed_addresses(self) -> list[str]:
        return [line.strip().lower() for line in self.allowed_senders.split() if "@" in line]

    def to_dict(self, address: str) -> dict[str, object]:
        return {
            "id": self.id,
            "ref": self.ref,
            "owner": user_json(self.owner),
            "name": self.name,
            "address": address,
            "description": self.description,
            "visibility": self.visibility,
            "post_policy": self.post_policy,
            "allowed_senders": self.allowed_addresses(),
            "moderated": self.moderated,
            "rewrite_from": self.rewrite_from,
            "archived": self.archived,
            "created": timestamp(self.created),
            "updated": timestamp(self.updated),
        }


class ListMember(Base):
    """A user the owner named on a list: may read it when it is private,
    and post when only members may."""

    __tablename__ = "list_member"
    __table_args__ = (sa.UniqueConstraint("list_id", "user_id"),)

    list_id: Mapped[int] = mapped_column(sa.ForeignKey("mailing_list.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)

    def to_dict(self) -> dict[str, object]:
        return {"user": user_json(self.user), "created": timestamp(self.created)}


class Subscription(Base):
    """An address that gets every post of a list."""

    __tablename__ = "subscription"
    __table_args__ = (sa.UniqueConstraint("list_id", "address"),)

    list_id: Mapped[int] = mapped_column(sa.ForeignKey("mailing_list.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(sa.String(MAX_ADDRESS))
    #: The user who subscribed on the web or through the API, if any.
    user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("user.id", ondelete="CASCADE"), index=True
    )

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "address": self.address, "created": timestamp(self.created)}


class Confirmation(Base):
    """A subscription or unsubscription asked for by mail, waiting for the
    address's reply to the confirmation we sent it."""

    __tablename__ = "confirmation"

    list_id: Mapped[int] = mapped_column(
        sa.ForeignKey("mailing_list.id", ondelete="CASCADE"), index=True
    )
    address: Mapped[str] = mapped_column(sa.String(MAX_ADDRESS))
    #: ``subscribe`` or ``unsubscribe``.
    action: Mapped[str] = mapped_column(sa.String(16))
    token: Mapped[str] = mapped_column(sa.String(64), unique=True)


class Thread(UpdatedMixin, Base):
    """A conversation: a first message and its replies, by their
    ``In-Reply-To`` and ``References``. ``updated`` is its last activity."""

    __tablename__ = "thread"
    __table_args__ = (sa.Index("ix_thread_list_id_updated", "list_id", "updated"),)

    list_id: Mapped[int] = mapped_column(sa.ForeignKey("mailing_list.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(sa.String(MAX_SUBJECT), default="")
    sender_name: Mapped[str] = mapped_column(sa.String(MAX_NAME), default="")
    sender_address: Mapped[str] = mapped_column(sa.String(MAX_ADDRESS), default="")
    #: Messages in the thread (archived ones).
    messages: Mapped[int] = mapped_column(sa.Integer, default=0)

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "subject": self.subject,
            "sender": {"name": self.sender_name, "address": self.sender_address},
            "messages": self.messages,
            "created": timestamp(self.created),
            "updated": timestamp(self.updated),
        }


class Email(Base):
    """One message as the list received it."""

    __tablename__ = "email"
    __table_args__ = (
        sa.UniqueConstraint("list_id", "message_id"),
        sa.Index("ix_email_list_id_in_reply_to", "list_id", "in_reply_to"),
        sa.Index("ix_email_list_id_status_id", "list_id", "status", "id"),
        sa.Index("ix_email_thread_id_id", "thread_id", "id"),
        sa.Index("ix_email_patchset_id_patch_number", "patchset_id", "patch_number"),
    )

    list_id: Mapped[int] = mapped_column(sa.ForeignKey("mailing_list.id", ondelete="CASCADE"))
    #: ``None`` while held for moderation.
    thread_id: Mapped[int | None] = mapped_column(sa.ForeignKey("thread.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("email.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(sa.String(16), default=ARCHIVED)
    #: Without the angle brackets.
    message_id: Mapped[str] = mapped_column(sa.String(MAX_MESSAGE_ID))
    in_reply_to: Mapped[str | None] = mapped_column(sa.String(MAX_MESSAGE_ID))
    #: The ``References`` header's ids, one a line.
    references: Mapped[str] = mapped_column(sa.Text, default="")
    subject: Mapped[str] = mapped_column(sa.String(MAX_SUBJECT), default="")
    sender_name: Mapped[str] = mapped_column(sa.String(MAX_NAME), default="")
    sender_address: Mapped[str] = mapped_column(sa.String(MAX_ADDRESS), default="")
    #: Where the SMTP envelope said it came from (bounces go there).
    envelope_from: Mapped[str] = mapped_column(sa.String(MAX_ADDRESS), default="")
    #: The ``Date`` header (UTC), or when it arrived if it had none we could read.
    date: Mapped[datetime] = mapped_column(sa.DateTime)
    #: The text the pages show: the plain-text part, or the HTML part as text.
    body: Mapped[str] = mapped_column(sa.Text, default="")
    #: Whether ``body`` was made from an HTML part.
    from_html: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    #: The headers as received (for the message page), decoded.
    headers: Mapped[str] = deferred(mapped_column(sa.Text, default=""))
    raw: Mapped[bytes] = deferred(mapped_column(sa.LargeBinary))
    size: Mapped[int] = mapped_column(sa.Integer, default=0)
    #: Its place in a patchset: 0 for the cover letter, 1.. for patches.
    patchset_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("patchset.id", ondelete="SET NULL")
    )
    patch_number: Mapped[int | None] = mapped_column(sa.Integer)
    patch_total: Mapped[int | None] = mapped_column(sa.Integer)

    attachments: Mapped[list[Attachment]] = relationship(
        lazy="selectin", order_by="Attachment.number", cascade="all, delete-orphan"
    )

    @property
    def is_patch(self) -> bool:
        return bool(self.patchset_id is not None and self.patch_number)

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "message_id": self.message_id,
            "in_reply_to": self.in_reply_to,
            "thread": self.thread_id,
            "parent": self.parent_id,
            "subject": self.subject,
            "sender": {"name": self.sender_name, "address": self.sender_address},
            "date": timestamp(self.date),
            "received": timestamp(self.created),
            "body": self.body,
            "from_html": self.from_html,
            "attachments": [a.to_dict() for a in self.attachments],
            "patchset": self.patchset_id,
            "patch_number": self.patch_number,
        }


class Attachment(Base):
    """A part of a message that is not its text (shown as a download)."""

    __tablename__ = "attachment"
    __table_args__ = (sa.UniqueConstraint("email_id", "number"),)

    email_id: Mapped[int] = mapped_column(sa.ForeignKey("email.id", ondelete="CASCADE"))
    #: Its place among the message's attachments, from 1.
    number: Mapped[int] = mapped_column(sa.Integer)
    filename: Mapped[str] = mapped_column(sa.String(MAX_FILENAME), default="")
    content_type: Mapped[str] = mapped_column(sa.String(128), default="application/octet-stream")
    size: Mapped[int] = mapped_column(sa.Integer, default=0)

    def to_dict(self) -> dict[str, object]:
        return {
            "number": self.number,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
        }


class Patchset(UpdatedMixin, Base):
    """A series of patches sent together (``[PATCH v2 1/3]`` ...), with
    its cover letter if it had one, and its review status."""

    __tablename__ = "patchset"
    __table_args__ = (
        sa.Index("ix_patchset_list_id_status", "list_id", "status"),
        sa.Index("ix_patchset_list_id_subject", "list_id", "subject"),
    )

    list_id: Mapped[int] = mapped_column(sa.ForeignKey("mailing_list.id", ondelete="CASCADE"))
    thread_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("thread.id", ondelete="SET NULL"), index=True
    )
    #: The series' title: the cover letter's subject (or its only patch's)
    #: without the ``[PATCH ...]`` prefix.
    subject: Mapped[str] = mapped_column(sa.String(MAX_SUBJECT), default="")
    #: The first patch's title: how a new version without a cover letter
    #: finds the one it supersedes.
    first_title: Mapped[str] = mapped_column(sa.String(MAX_SUBJECT), default="")
    #: What stood before ``PATCH`` in the prefix (``widget`` in ``[widget PATCH]``).
    prefix: Mapped[str] = mapped_column(sa.String(128), default="")
    version: Mapped[int] = mapped_column(sa.Integer, default=1)
    #: How many patches the series says it has.
    total: Mapped[int] = mapped_column(sa.Integer, default=1)
    status: Mapped[str] = mapped_column(sa.String(16), default=PROPOSED)
    sender_name: Mapped[str] = mapped_column(sa.String(MAX_NAME), default="")
    sender_address: Mapped[str] = mapped_column(sa.String(MAX_ADDRESS), default="")
    superseded_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("patchset.id", ondelete="SET NULL")
    )

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "subject": self.subject,
            "prefix": self.prefix,
            "version": self.version,
            "total": self.total,
            "status": self.status,
            "sender": {"name": self.sender_name, "address": self.sender_address},
            "thread": self.thread_id,
            "superseded_by": self.superseded_by_id,
            "created": timestamp(self.created),
            "updated": timestamp(self.updated),
        }


class PatchsetTool(UpdatedMixin, Base):
    """What one tool (``builds``) last said of a patchset: its status, a
    line of details and a link to its results. Set through the API by a
    token acting for the list's owner; shown on the patchset's page."""

    __tablename__ = "patchset_tool"
    __table_args__ = (sa.UniqueConstraint("patchset_id", "name"),)

    patchset_id: Mapped[int] = mapped_column(sa.ForeignKey("patchset.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(32))
    status: Mapped[str] = mapped_column(sa.String(16))
    details: Mapped[str] = mapped_column(sa.String(MAX_TOOL_DETAILS), default="")
    url: Mapped[str | None] = mapped_column(sa.Text, nullable=True)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "status": self.status,
            "details": self.details,
            "url": self.url,
            "updated": timestamp(self.updated),
        }


class Webhook(UpdatedMixin, Base):
    """A URL a user wants told of events: of their lists' creation and
    changes (``list_id`` empty), or of what arrives on one list."""

    __tablename__ = "webhook"
    __table_args__ = (sa.Index("ix_webhook_list_id", "list_id"),)

    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    list_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("mailing_list.id", ondelete="CASCADE")
    )
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
