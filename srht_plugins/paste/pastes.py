"""Pastes as the service reasons about them: what a new paste must satisfy,
making one, who may see one, and finding them for a viewer.

The pages and the API share these rules, so a paste refused on one is
refused on the other with the same sentence.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import contains_eager, joinedload, load_only, selectinload

from srht_core import db_session, human_size

from .models import PRIVATE, PUBLIC, VISIBILITIES, Paste, PasteFile, User

#: Files one paste may hold.
MAX_FILES = 50
#: Characters of a file name.
MAX_FILENAME = 255
SLUG = re.compile(r"^[0-9a-f]{16}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Limits:
    """Sizes from ``[paste] max-file-size`` and ``max-paste-size``, in bytes."""

    max_file_size: int
    max_paste_size: int

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> Limits:
        return cls(int(section["max-file-size"]), int(section["max-paste-size"]))


@dataclass(frozen=True)
class NewFile:
    filename: str
    content: str


@dataclass(frozen=True)
class Problem:
    """What is wrong with a new paste: ``field`` of file ``index`` (from 0),
    or of the paste when ``index`` is ``None``."""

    field: str
    reason: str
    index: int | None = None


def _utf8_size(text: str) -> int | None:
    """Bytes of ``text`` as UTF-8, or ``None`` when it is not valid Unicode
    (a lone surrogate, which JSON can carry)."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def check_paste(files: list[NewFile], visibility: str, limits: Limits) -> list[Problem]:
    """Every problem of a new paste, in the order of its fields; empty when
    it may be created."""
    problems: list[Problem] = []
    if visibility not in VISIBILITIES:
        problems.append(Problem("visibility", "Choose public, unlisted or private."))
    if not files:
        problems.append(Problem("files", "A paste needs at least one file with contents."))
    elif len(files) > MAX_FILES:
        problems.append(Problem("files", f"A paste may hold at most {MAX_FILES} files."))
    total = 0
    seen: dict[str, int] = {}
    for index, file in enumerate(files[:MAX_FILES]):
        name = file.filename
        if len(name) > MAX_FILENAME:
            problems.append(
                Problem(
                    "filename", f"A file name may be at most {MAX_FILENAME} characters long.", index
                )
            )
        elif _CONTROL.search(name) or _utf8_size(name) is None:
            problems.append(
                Problem(
                    "filename",
                    "A file name may not contain control characters or line breaks.",
                    index,
                )
            )
        elif name and name in seen:
            problems.append(
                Problem(
                    "filename",
                    f"File {seen[name] + 1} has this name already; give each file its own.",
                    index,
                )
            )
        elif name:
            seen[name] = index
        size = _utf8_size(file.content)
        if size is None or "\x00" in file.content:
            problems.append(
                Problem(
                    "content",
                    "This is not text: pastes hold text, and "
                    "this has NUL characters or broken Unicode.",
                    index,
                )
            )
            continue
        if not file.content:
            problems.append(Problem("content", "A file needs contents.", index))
        elif size > limits.max_file_size:
            problems.append(
                Problem(
                    "content",
                    f"This file is {human_size(size)}; a file may "
                    f"be at most {human_size(limits.max_file_size)}.",
                    index,
                )
            )
        total += size
    if total > limits.max_paste_size:
        problems.append(
            Problem(
                "files",
                f"This paste is {human_size(total)} in all; a paste "
                f"may be at most {human_size(limits.max_paste_size)}.",
            )
        )
    return problems


def create_paste(owner: User, files: list[NewFile], visibility: str) -> Paste:
    """A new paste in the session (not committed), already checked with
    :func:`check_paste`."""
    paste = Paste(slug=secrets.token_hex(8), owner_id=owner.id, visibility=visibility)
    paste.owner = owner
    paste.files = [
        PasteFile(
            position=position,
            filename=file.filename,
            content=file.content,
            size=len(file.content.encode("utf-8")),
        )
        for position, file in enumerate(files, start=1)
    ]
    db_session.add(paste)
    return paste


def may_see(paste: Paste, viewer: User | None) -> bool:
    """Private pastes are their owner's alone; the rest are anyone's who
    has the link."""
    return paste.visibility != PRIVATE or (viewer is not None and viewer.id == paste.owner_id)


def find_paste(
    slug: str, viewer: User | None, *, username: str | None = None, with_content: bool = True
) -> Paste | None:
    """The paste ``slug`` with its owner and files, if ``viewer`` may see it
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
    if paste is None or not may_see(paste, viewer):
        return None
    return paste


def listed_for(owner: User, viewer: User | None) -> sa.Select[Any]:
    """The pastes of ``owner`` that ``viewer`` sees listed, newest first,
    with their file names (not their contents): all of them for the owner,
    the public ones for everyone else."""
    stmt = (
        sa.select(Paste)
        .where(Paste.owner_id == owner.id)
        .options(
            selectinload(Paste.files).options(
                load_only(PasteFile.position, PasteFile.filename, PasteFile.size)
            )
        )
    )
    if viewer is None or viewer.id != owner.id:
        stmt = stmt.where(Paste.visibility == PUBLIC)
    return stmt.order_by(Paste.id.desc())


def delete_pastes_of(user: User) -> None:
    """Remove every paste of a user whose account is being deleted."""
    db_session.execute(sa.delete(Paste).where(Paste.owner_id == user.id))
