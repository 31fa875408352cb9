"""builds' tables: jobs, their tasks, logs and artifacts, job groups, secrets,
the repositories whose pushes start jobs, and the lists whose patchsets do.

A job and everything below it goes with its owner (``ON DELETE CASCADE``).
Logs and artifacts are rows of the service's own database, so every host
running the service's web part reads them, wherever the runner was.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from srht_core import MirroredUserMixin, Model, utcnow

#: A job's states. ``queued`` waits for a runner; ``running`` has one.
QUEUED, RUNNING, SUCCESS, FAILED, TIMEOUT, CANCELLED = (
    "queued",
    "running",
    "success",
    "failed",
    "timeout",
    "cancelled",
)
STATUSES = (QUEUED, RUNNING, SUCCESS, FAILED, TIMEOUT, CANCELLED)
FINISHED = (SUCCESS, FAILED, TIMEOUT, CANCELLED)
#: A task's states besides running/success/failed.
PENDING, SKIPPED = "pending", "skipped"
TASK_STATUSES = (PENDING, RUNNING, SUCCESS, FAILED, SKIPPED, TIMEOUT, CANCELLED)

PUBLIC, UNLISTED, PRIVATE = "public", "unlisted", "private"
VISIBILITIES = (PUBLIC, UNLISTED, PRIVATE)

#: How a job came to be: submitted, pushed, or a patchset on a list.
WEB, API, GIT, LISTS = "web", "api", "git", "lists"
SUBMITTERS = (WEB, API, GIT, LISTS)

FILE, SSH_KEY, PGP_KEY = "file", "ssh_key", "pgp_key"
SECRET_KINDS = (FILE, SSH_KEY, PGP_KEY)

MAX_NOTE = 256
MAX_SECRET = 64 * 1024
MAX_SECRET_NAME = 128
MAX_SECRET_PATH = 512


class Base(Model, DeclarativeBase):
    """builds' tables: each has an ``id`` (never reused) and ``created``."""


class User(MirroredUserMixin, Base):
    """builds' copy of a meta user."""

    __tablename__ = "user"


def stamp(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


class JobGroup(Base):
    """Jobs started together: one per manifest of a push with several."""

    __tablename__ = "job_group"

    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    note: Mapped[str] = mapped_column(sa.String(MAX_NOTE), default="")
    repository: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    commit: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)

    owner: Mapped[User] = relationship(lazy="joined", innerjoin=True)
    jobs: Mapped[list[Job]] = relationship(
        back_populates="group", order_by="Job.id", lazy="selectin"
    )


class Job(Base):
    __tablename__ = "job"
    __table_args__ = (
        sa.Index("ix_job_owner_id_id", "owner_id", "id"),
        sa.Index("ix_job_repository_id", "repository", "id"),
        sa.Index("ix_job_status_id", "status", "id"),
    )

    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    group_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("job_group.id", ondelete="CASCADE"), nullable=True, index=True
    )
    manifest: Mapped[str] = mapped_column(sa.Text)
    #: The file the manifest came from (``.builds/test.yml``), for pushes.
    manifest_path: Mapped[str | None] = mapped_column(sa.String(256), nullable=True)
    image: Mapped[str] = mapped_column(sa.String(64))
    note: Mapped[str] = mapped_column(sa.String(MAX_NOTE), default="")
    visibility: Mapped[str] = mapped_column(sa.String(16), default=PUBLIC)
    status: Mapped[str] = mapped_column(sa.String(16), default=QUEUED)
    #: Why the job ended as it did, in a sentence (failed at which task, ...).
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    #: WEB, API, GIT or LISTS.
    submitter: Mapped[str] = mapped_column(sa.String(16), default=WEB)
    #: Whether the job may have its owner's secrets (not for someone else's push).
    allow_secrets: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    #: ``~owner/name`` of the repository a push started it from.
    repository: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    commit: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    ref: Mapped[str | None] = mapped_column(sa.String(256), nullable=True)
    runner: Mapped[str | None] = mapped_column(sa.String(128), nullable=True)
    #: The patchset whose patches the job applies on top of its commit.
    patchset_build_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("patchset_build.id", ondelete="CASCADE"), nullable=True, index=True
    )
    #: Times a runner took it (a job lost before it started is retried once).
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    #: Bytes of log kept.
    log_size: Mapped[int] = mapped_column(sa.Integer, default=0)
    #: When a runner last said something about it.
    heartbeat: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    #: When the job was (last) put in a queue: re-published if no runner took it.
    queued: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    started: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    finished: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)

    owner: Mapped[User] = relationship(lazy="joined", innerjoin=True)
    group: Mapped[JobGroup | None] = relationship(back_populates="jobs")
    patchset_build: Mapped[PatchsetBuild | None] = relationship(lazy="select")
    tasks: Mapped[list[Task]] = relationship(
        order_by="Task.position", lazy="selectin", cascade="all, delete-orphan"
    )
    artifacts: Mapped[list[Artifact]] = relationship(
        order_by="Artifact.id", lazy="select", cascade="all, delete-orphan"
    )

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (to now while running)."""
        if self.started is None:
            return None
        end = self.finished or utcnow()
        return max(0.0, (end - self.started).total_seconds())

    def to_dict(self, origin: str = "") -> dict[str, Any]:
        return {
            "id": self.id,
            "url": f"{origin}/~{self.owner.username}/job/{self.id}",
            "owner": self.owner.canonical_name,
            "status": self.status,
            "reason": self.reason,
            "image": self.image,
            "note": self.note,
            "visibility": self.visibility,
            "submitter": self.submitter,
            "group": self.group_id,
            "repository": self.repository,
            "commit": self.commit,
            "ref": self.ref,
            "runner": self.runner,
            "patchset": self.patchset_build.to_dict() if self.patchset_build else None,
            "tasks": [task.to_dict() for task in self.tasks],
            "created": stamp(self.created),
            "started": stamp(self.started),
            "finished": stamp(self.finished),
        }


class Task(Base):
    """One of a job's tasks, in the manifest's order (``position`` from 1)."""

    __tablename__ = "task"
    __table_args__ = (sa.UniqueConstraint("job_id", "position"),)

    job_id: Mapped[int] = mapped_column(sa.ForeignKey("job.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(sa.Integer)
    name: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(16), default=PENDING)
    started: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    finished: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "started": stamp(self.started),
            "finished": stamp(self.finished),
        }


class LogChunk(Base):
    """A piece of a job's log, as the runner sent it. ``position`` 0 is the
    job's setup (packages, sources, secrets), 1... its tasks."""

    __tablename__ = "log_chunk"
    __table_args__ = (sa.Index("ix_log_chunk_job_id_id", "job_id", "id"),)

    job_id: Mapped[int] = mapped_column(sa.ForeignKey("job.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(sa.Integer)
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)


class Artifact(Base):
    """A file a job kept (its manifest's ``artifacts``)."""

    __tablename__ = "artifact"
    __table_args__ = (sa.UniqueConstraint("job_id", "name"),)

    job_id: Mapped[int] = mapped_column(sa.ForeignKey("job.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(256))
    path: Mapped[str] = mapped_column(sa.String(512))
    size: Mapped[int] = mapped_column(sa.Integer)
    data: Mapped[bytes] = mapped_column(sa.LargeBinary, deferred=True)


class Secret(Base):
    """A file, SSH key or PGP key a user's jobs may ask for by ``uuid``,
    sealed with a key derived from the site's service key."""

    __tablename__ = "secret"

    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    uuid: Mapped[str] = mapped_column(sa.String(36), unique=True)
    name: Mapped[str] = mapped_column(sa.String(MAX_SECRET_NAME), default="")
    kind: Mapped[str] = mapped_column(sa.String(16))
    #: Where a file secret goes in the job (``~/.netrc``).
    path: Mapped[str | None] = mapped_column(sa.String(MAX_SECRET_PATH), nullable=True)
    mode: Mapped[int] = mapped_column(sa.Integer, default=0o600)
    sealed: Mapped[bytes] = mapped_column(sa.LargeBinary, deferred=True)

    owner: Mapped[User] = relationship(lazy="joined", innerjoin=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.uuid,
            "name": self.name,
            "kind": self.kind,
            "path": self.path,
            "mode": f"{self.mode:o}" if self.kind == FILE else None,
            "created": stamp(self.created),
        }


class RepositoryHook(Base):
    """A repository of git whose pushes start jobs: the webhook builds
    registered there, and the key in its URL."""

    __tablename__ = "repository_hook"
    __table_args__ = (sa.UniqueConstraint("owner_id", "repository"),)

    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    #: The repository's name (its owner is ``owner``).
    repository: Mapped[str] = mapped_column(sa.String(128))
    #: git's id of the webhook, to remove it again.
    webhook_id: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    key: Mapped[str] = mapped_column(sa.String(64), unique=True)

    owner: Mapped[User] = relationship(lazy="joined", innerjoin=True)

    @property
    def ref(self) -> str:
        return f"{self.owner.canonical_name}/{self.repository}"


class ListLink(Base):
    """A list of its owner's on the site's lists whose patchsets start the
    jobs of a repository: the webhook builds registered on the list, and
    the key in its URL."""

    __tablename__ = "list_link"
    __table_args__ = (sa.UniqueConstraint("owner_id", "list_name"),)

    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    #: The list's name (its owner is ``owner``).
    list_name: Mapped[str] = mapped_column(sa.String(128))
    #: ``~owner/name`` of the repository of the site's git the patches apply to.
    repository: Mapped[str] = mapped_column(sa.String(200))
    #: lists' id of the webhook, to remove it again.
    webhook_id: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    key: Mapped[str] = mapped_column(sa.String(64), unique=True)

    owner: Mapped[User] = relationship(lazy="joined", innerjoin=True)

    @property
    def list_ref(self) -> str:
        return f"{self.owner.canonical_name}/{self.list_name}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "list": self.list_ref,
            "repository": self.repository,
            "created": stamp(self.created),
        }


class PatchsetBuild(Base):
    """A patchset that arrived on a linked list: its patches (the mbox, as
    lists served it) and where they apply, the jobs it started, and what
    builds last told lists of them."""

    __tablename__ = "patchset_build"
    __table_args__ = (sa.UniqueConstraint("list_ref", "patchset_id"),)

    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    link_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("list_link.id", ondelete="SET NULL"), nullable=True
    )
    #: ``~owner/list`` and lists' id of the patchset.
    list_ref: Mapped[str] = mapped_column(sa.String(200))
    patchset_id: Mapped[int] = mapped_column(sa.Integer)
    subject: Mapped[str] = mapped_column(sa.String(MAX_NOTE), default="")
    version: Mapped[int] = mapped_column(sa.Integer, default=1)
    #: Who sent it, as the mail said (``Bob <bob@example.org>``).
    submitter: Mapped[str] = mapped_column(sa.String(MAX_NOTE), default="")
    repository: Mapped[str] = mapped_column(sa.String(200))
    #: The commit the patches apply on, and the branch it was the head of.
    commit: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    ref: Mapped[str | None] = mapped_column(sa.String(256), nullable=True)
    mbox: Mapped[bytes] = mapped_column(sa.LargeBinary, deferred=True)
    group_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("job_group.id", ondelete="SET NULL"), nullable=True
    )
    #: Why it started no job (no manifest...), else empty.
    problem: Mapped[str] = mapped_column(sa.Text, default="")
    #: The status builds last told lists (``pending``, ``success``...).
    reported: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    #: Why lists could not be told, if it could not.
    report_error: Mapped[str] = mapped_column(sa.Text, default="")

    owner: Mapped[User] = relationship(lazy="joined", innerjoin=True)

    @property
    def url(self) -> str:
        """The patchset's page on lists (under lists' origin)."""
        return f"/{self.list_ref}/patches/{self.patchset_id}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "list": self.list_ref,
            "id": self.patchset_id,
            "subject": self.subject,
            "version": self.version,
            "submitter": self.submitter,
        }
