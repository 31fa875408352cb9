"""What the pages share: finding a repository the visitor may see
(following renames, answering 404 as for a missing one otherwise), and
rendering a page of it."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, redirect, render_template, request

from srht_core import viewer

from ..access import access_of, find_repository
from ..models import PRIVATE, WRITE, Repository, User
from ..repos import clone_urls

__all__ = ["Viewing", "owned", "private_headers", "repository_page", "viewing"]


class Viewing:
    """A repository as the current visitor may see it."""

    def __init__(self, repository: Repository, access: str):
        self.repository = repository
        self.owner: User = repository.owner
        self.access = access

    @property
    def ref(self) -> str:
        """``~owner/name``."""
        return f"{self.owner.canonical_name}/{self.repository.name}"

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
    access = access_of(found.repository, viewer()) if found is not None else None
    if found is None or access is None:
        abort(404, f"No repository ~{username}/{name} here.")
    repository = found.repository
    if found.moved or name.endswith(".git"):
        old = f"/~{username}/{name}"
        new = f"/~{repository.owner.username}/{repository.name}"
        target = new + request.path[len(old) :]
        query = request.query_string.decode("latin-1")
        abort(redirect(target + (f"?{query}" if query else ""), code=301))
    return Viewing(repository, access)


def owned(username: str, name: str) -> Viewing:
    """The repository, if the visitor owns it; 404 (as for a missing one)
    to everyone else."""
    view = viewing(username, name)
    if not view.is_owner:
        abort(404, f"No repository ~{username}/{name} of yours here.")
    return view


def repository_page(template: str, view: Viewing, *, status: int = 200, **context: Any) -> Response:
    """A page of the repository: its header's data and clone URLs, and
    headers that keep shared caches from storing a private one."""
    http_url, ssh_url = clone_urls(view.owner.username, view.repository.name)
    response = Response(
        render_template(
            template,
            view=view,
            repository=view.repository,
            owner=view.owner,
            http_url=http_url,
            ssh_url=ssh_url,
            **context,
        ),
        status=status,
    )
    return private_headers(response, view.repository)


def private_headers(response: Response, repository: Repository) -> Response:
    """Keep shared caches from storing what not everyone may see."""
    if repository.visibility == PRIVATE:
        response.headers["Cache-Control"] = "private, no-store"
    return response
