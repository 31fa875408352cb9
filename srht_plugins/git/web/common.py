"""What the pages share: who is looking, and finding a repository they may
see (following renames, answering 404 as for a missing one otherwise)."""

from __future__ import annotations

from typing import Any

from flask import abort, redirect, request

from srht_core import current_user

from ..access import access_of, find_repository
from ..models import WRITE, Repository, User

__all__ = ["Viewing", "viewer", "viewing"]


def viewer() -> User | None:
    """The signed-in user (``None`` for anonymous visitors and suspended accounts)."""
    user: User | None = current_user._get_current_object()
    return user


class Viewing:
    """A repository as the current visitor may see it."""

    def __init__(self, repository: Repository, access: str):
        self.repository = repository
        self.owner = repository.owner
        self.access = access

    @property
    def can_write(self) -> bool:
        return self.access == WRITE

    @property
    def is_owner(self) -> bool:
        user = viewer()
        return user is not None and user.id == self.repository.owner_id


def viewing(username: str, name: str) -> Viewing:
    """The repository ``~username/name`` if the visitor may read it; a
    renamed one redirects to its new URL (same page); else 404."""
    found = find_repository(username, name.removesuffix(".git"))
    if found is None:
        abort(404)
    access = access_of(found.repository, viewer())
    if access is None:
        abort(404)
    repository = found.repository
    if found.moved or name.endswith(".git"):
        old = f"/~{username}/{name}"
        new = f"/~{repository.owner.username}/{repository.name}"
        target = new + request.path[len(old) :]
        query = request.query_string.decode("latin-1")
        abort(redirect(target + (f"?{query}" if query else ""), code=301))
    return Viewing(repository, access)


def private_headers(response: Any, repository: Repository) -> Any:
    """Keep shared caches from storing what not everyone may see."""
    if repository.visibility == "private":
        response.headers["Cache-Control"] = "private, no-store"
    return response
