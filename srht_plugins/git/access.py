"""Who may do what with a repository, and finding one by its URL.

One rule, for the pages, the API, HTTP and SSH alike: the owner reads and
writes; a user granted access reads, or reads and writes; anyone reads a
public or unlisted repository; a suspended account does nothing. A
repository someone may not read does not exist for them: every answer to
them is the answer for a missing repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import contains_eager

from srht_core import db_session

from .models import PRIVATE, PUBLIC, READ, WRITE, AccessGrant, Redirect, Repository, User

__all__ = [
    "Found",
    "access_of",
    "find_repository",
    "grants_of",
    "listed_for",
    "mode_label",
]


@dataclass(frozen=True)
class Found:
    """A repository found by owner and name; ``moved`` when the name was
    an old one (the repository was renamed since)."""

    repository: Repository
    moved: bool = False


#: The lookups of :func:`find_repository`, built once: building a statement
#: costs more than running it, and every page of a repository runs one.
_BY_NAME = (
    sa.select(Repository)
    .join(Repository.owner)
    .options(contains_eager(Repository.owner))
    .where(User.username == sa.bindparam("username"))
)
_CURRENT = _BY_NAME.where(Repository.name == sa.bindparam("name"))
_MOVED = _BY_NAME.where(
    Repository.id
    == (
        sa.select(Redirect.repository_id)
        .join(User, User.id == Redirect.owner_id)
        .where(User.username == sa.bindparam("username"), Redirect.name == sa.bindparam("name"))
        .scalar_subquery()
    )
)


def find_repository(username: str, name: str) -> Found | None:
    """The repository ``~username/name`` (its owner loaded), following the
    old names of renamed repositories."""
    names = {"username": username, "name": name}
    repository = db_session.scalar(_CURRENT, names)
    if repository is not None:
        return Found(repository)
    repository = db_session.scalar(_MOVED, names)
    return Found(repository, moved=True) if repository is not None else None


def access_of(repository: Repository, user: User | None) -> str | None:
    """``WRITE``, ``READ`` or ``None``: what ``user`` (or an anonymous
    visitor, for ``None``) may do with ``repository``."""
    if user is not None and user.is_suspended:
        return None
    if user is not None and user.id == repository.owner_id:
        return WRITE
    granted = None
    if user is not None:
        granted = db_session.scalar(
            sa.select(AccessGrant.mode).where(
                AccessGrant.repository_id == repository.id, AccessGrant.user_id == user.id
            )
        )
    if granted == WRITE:
        return WRITE
    if repository.visibility != PRIVATE:
        return READ
    return granted


def listed_for(owner: User, viewer: User | None) -> sa.Select[Any]:
    """The repositories of ``owner`` that ``viewer`` sees listed on the
    owner's page, most recently updated first: public ones; to the owner
    all; to others also those they were granted access to."""
    stmt = sa.select(Repository).where(Repository.owner_id == owner.id)
    if viewer is None or viewer.is_suspended:
        stmt = stmt.where(Repository.visibility == PUBLIC)
    elif viewer.id != owner.id:
        granted = sa.select(AccessGrant.repository_id).where(AccessGrant.user_id == viewer.id)
        stmt = stmt.where(sa.or_(Repository.visibility == PUBLIC, Repository.id.in_(granted)))
    return stmt.order_by(Repository.updated.desc(), Repository.id.desc())


def grants_of(repository: Repository) -> sa.Select[Any]:
    """The access grants of ``repository``, each with its user loaded
    (unordered: the caller pages or sorts it)."""
    return (
        sa.select(AccessGrant)
        .join(AccessGrant.user)
        .options(contains_eager(AccessGrant.user))
        .where(AccessGrant.repository_id == repository.id)
    )


def mode_label(mode: str | None) -> str:
    """What a grant's mode lets its user do, in words."""
    return {READ: "read", WRITE: "read and write"}.get(mode or "", "none")
