"""Who may see a paste: the one rule behind every page and API call.

A public paste is anyone's, and listed on its owner's page; an unlisted one
is anyone's who has its link; a private one is its owner's alone. A paste
someone may not see is, to them, a paste that does not exist (404, never
403), so its id tells nothing. Only its owner may delete a paste.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import contains_eager, joinedload, load_only, selectinload

from srht_core import db_session

from .models import PRIVATE, PUBLIC, Paste, PasteFile, User

__all__ = ["SLUG", "find_paste", "is_owner", "listed_pastes", "may_see"]

#: What a paste's id looks like (in its URL and the API).
SLUG = re.compile(r"^[0-9a-f]{16}$")


def is_owner(paste: Paste, user: User | None) -> bool:
    return user is not None and user.id == paste.owner_id


def may_see(paste: Paste, user: User | None) -> bool:
    """Private pastes are their owner's alone; the rest are anyone's who
    has the link."""
    return paste.visibility != PRIVATE or is_owner(paste, user)


def find_paste(
    slug: str, user: User | None, *, username: str | None = None, with_content: bool = True
) -> Paste | None:
    """The paste ``slug`` with its owner and files, if ``user`` may see it
    (and it is ``username``'s, when given); ``None`` otherwise, so a private
    paste is indistinguishable from a missing one."""
    if not SLUG.match(slug):
        return None
    # One round trip for the paste, its owner and its files: a paste has a
    # handful of files, so joining them costs less than a second query.
    files = joinedload(Paste.files)
    stmt = (
        sa.select(Paste)
        .join(Paste.owner)
        .options(contains_eager(Paste.owner))
        .where(Paste.slug == slug)
        .options(files.undefer(PasteFile.content) if with_content else files)
    )
    if username is not None:
        stmt = stmt.where(User.username == username)
    paste = db_session.scalars(stmt).unique().one_or_none()
    if paste is None or not may_see(paste, user):
        return None
    return paste


def listed_pastes(owner: User, user: User | None) -> sa.Select[Any]:
    """The pastes of ``owner`` that ``user`` sees listed, newest first, with
    their file names (not their contents): all of them for the owner, the
    public ones for everyone else."""
    stmt = (
        sa.select(Paste)
        .where(Paste.owner_id == owner.id)
        .options(
            selectinload(Paste.files).options(
                load_only(PasteFile.position, PasteFile.filename, PasteFile.size)
            )
        )
    )
    if not (user is not None and user.id == owner.id):
        stmt = stmt.where(Paste.visibility == PUBLIC)
    return stmt.order_by(Paste.id.desc())
