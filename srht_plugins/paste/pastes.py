"""Making pastes: what a new paste must satisfy, making one, and deleting
the pastes of a deleted account.

The pages and the API share these rules, so a paste refused by one is
refused by the other with the same sentence, naming the field the way the
API does (``files[0].content``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from srht_core import Problem, current_service, db_session, human_size, text_problem

from .models import VISIBILITIES, Paste, PasteFile, User

#: Files one paste may hold.
MAX_FILES = 50
#: Characters of a file name.
MAX_FILENAME = 255
#: A file name has no control characters (no line breaks, no NUL).
FILENAME = re.compile(r"^[^\x00-\x1f\x7f]*$")


@dataclass(frozen=True)
class Limits:
    """Sizes from ``[paste] max-file-size`` and ``max-paste-size``, in bytes."""

    max_file_size: int
    max_paste_size: int

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> Limits:
        return cls(int(section["max-file-size"]), int(section["max-paste-size"]))

    @classmethod
    def current(cls) -> Limits:
        """This service's limits, from its config."""
        return cls.from_section(current_service().section)


@dataclass(frozen=True)
class NewFile:
    filename: str
    content: str


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
        name, where = file.filename, f"files[{index}]"
        if len(name) > MAX_FILENAME:
            reason = f"A file name may be at most {MAX_FILENAME} characters long."
            problems.append(Problem(f"{where}.filename", reason))
        elif not FILENAME.fullmatch(name) or text_problem(name) is not None:
            reason = "A file name may not contain control characters or line breaks."
            problems.append(Problem(f"{where}.filename", reason))
        elif name and name in seen:
            reason = f"File {seen[name] + 1} has this name already; give each file its own."
            problems.append(Problem(f"{where}.filename", reason))
        elif name:
            seen[name] = index
        if text_problem(file.content) is not None:
            reason = (
                "This is not text: pastes hold text, and this has NUL characters or broken Unicode."
            )
            problems.append(Problem(f"{where}.content", reason))
            continue
        size = len(file.content.encode("utf-8"))
        if not file.content:
            problems.append(Problem(f"{where}.content", "A file needs contents."))
        elif size > limits.max_file_size:
            reason = (
                f"This file is {human_size(size)}; a file may "
                f"be at most {human_size(limits.max_file_size)}."
            )
            problems.append(Problem(f"{where}.content", reason))
        total += size
    if total > limits.max_paste_size:
        reason = (
            f"This paste is {human_size(total)} in all; a paste "
            f"may be at most {human_size(limits.max_paste_size)}."
        )
        problems.append(Problem("files", reason))
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


def delete_pastes_of(user: User) -> None:
    """Remove every paste of a user whose account is being deleted."""
    db_session.execute(sa.delete(Paste).where(Paste.owner_id == user.id))
