"""Who may see and change what, for pages and API alike.

A project's owner may do everything with it. Anyone else may read a public
or unlisted project, and finds the public ones listed; a private project
does not exist for them (404, never 403). On a project others can read,
they see only the attached resources that are public on their own service,
and only those resources' activity: a private repository attached to a
public project stays invisible to everyone but its owner.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import abort

from srht_core import ApiError, db_session, user_named

from .models import PRIVATE, PUBLIC, Project, Source, User


def can_read(project: Project, user: User | None) -> bool:
    return project.visibility != PRIVATE or can_change(project, user)


def can_change(project: Project, user: User | None) -> bool:
    return user is not None and user.id == project.owner_id


def can_see_source(source: Source, user: User | None) -> bool:
    """Whether ``user`` may see ``source`` (by its last known visibility)."""
    return source.visibility == PUBLIC or (user is not None and user.id == source.owner_id)


def find_project(owner: str, name: str, user: User | None, *, api: bool = False) -> Project:
    """Project ``~owner/name`` if ``user`` may read it; a 404 otherwise."""
    found = user_named(owner)
    project = None
    if found is not None:
        project = db_session.scalar(
            sa.select(Project).where(Project.owner_id == found.id, Project.name == name)
        )
    if project is None or not can_read(project, user):
        message = f"No project {owner}/{name} here."
        if api:
            raise ApiError(404, message)
        abort(404, message)
    return project


def changeable_project(owner: str, name: str, user: User | None, *, api: bool = False) -> Project:
    """As :func:`find_project`, and a 403 unless ``user`` owns it."""
    project = find_project(owner, name, user, api=api)
    if not can_change(project, user):
        message = "Only its owner may change this project."
        if api:
            raise ApiError(403, message)
        abort(403, message)
    return project


def listed_projects(user: User | None, owner: User | None = None) -> sa.Select[Any]:
    """The projects listed to ``user`` (optionally only ``owner``'s),
    recently changed first: the public ones and their own."""
    listed = Project.visibility == PUBLIC
    if user is not None:
        listed = listed | (Project.owner_id == user.id)
    stmt = sa.select(Project).where(listed)
    if owner is not None:
        stmt = stmt.where(Project.owner_id == owner.id)
    return stmt.order_by(Project.updated.desc(), Project.id.desc())
