"""Who may do what with a job: the one permission model behind every page
and every API call.

A job's owner may do everything with it. Anyone may see a public or
unlisted job (its page, log, manifest and artifacts); only public ones are
listed. A private job does not exist for anyone but its owner: 404, never
403. Cancelling and resubmitting are the owner's; a secret is its owner's
alone, and never shown once made.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from werkzeug.exceptions import Forbidden, NotFound

from srht_core import db_session

from .models import PRIVATE, PUBLIC, Job, JobGroup, ListLink, Secret, User

__all__ = [
    "can_see",
    "changeable_job",
    "find_user",
    "listed_jobs",
    "owned_link",
    "owned_secret",
    "readable_group",
    "readable_job",
]


def can_see(job: Job, user: Any) -> bool:
    return job.visibility != PRIVATE or (user is not None and user.id == job.owner_id)


def find_user(username: str) -> User:
    """The user ``~username`` (the ``~`` optional), or 404."""
    name = username.removeprefix("~")
    user = db_session.scalar(sa.select(User).where(User.username == name))
    if user is None:
        raise NotFound(f"No user ~{name} has jobs here.")
    return user


def readable_job(job_id: int, user: Any, owner: str | None = None) -> Job:
    """Job ``job_id`` if ``user`` may see it (and it is ``owner``'s, when
    given), or 404."""
    job = db_session.get(Job, job_id)
    if (
        job is None
        or not can_see(job, user)
        or (owner is not None and job.owner.username != owner.removeprefix("~"))
    ):
        raise NotFound(f"No job #{job_id} here.")
    return job


def changeable_job(job_id: int, user: Any, owner: str | None = None) -> Job:
    """Job ``job_id`` if ``user`` owns it: 404 if they may not see it, 403
    if they may see but not change it."""
    job = readable_job(job_id, user, owner)
    if user is None or user.id != job.owner_id:
        raise Forbidden(f"Job #{job_id} is {job.owner.canonical_name}'s; only they may change it.")
    return job


def readable_group(group_id: int, user: Any) -> JobGroup:
    group = db_session.get(JobGroup, group_id)
    if group is None or not any(can_see(job, user) for job in group.jobs):
        raise NotFound(f"No job group #{group_id} here.")
    return group


def listed_jobs(viewer: Any, owner: User | None = None) -> sa.Select[Any]:
    """The jobs ``viewer`` sees listed (of ``owner`` only, when given):
    public ones, and all of their own."""
    stmt = sa.select(Job)
    if owner is not None:
        stmt = stmt.where(Job.owner_id == owner.id)
    if viewer is None:
        return stmt.where(Job.visibility == PUBLIC)
    if owner is not None and owner.id == viewer.id:
        return stmt
    return stmt.where(sa.or_(Job.visibility == PUBLIC, Job.owner_id == viewer.id))


def owned_secret(uuid: str, user: Any) -> Secret:
    secret = db_session.scalar(sa.select(Secret).where(Secret.uuid == uuid))
    if secret is None or user is None or secret.owner_id != user.id:
        raise NotFound(f"You have no secret {uuid}.")
    return secret


def owned_link(link_id: int, user: Any) -> ListLink:
    """List link ``link_id`` if ``user`` made it, or 404."""
    found = db_session.get(ListLink, link_id)
    if found is None or user is None or found.owner_id != user.id:
        raise NotFound(f"You have no list link {link_id}.")
    return found
