"""Jobs started by pushes: builds registers a webhook on a repository of the
site's git (the owner asks for it on the repositories page) and, for each
``repo:push`` git signs and POSTs to it, reads the manifests of each pushed
commit (``.build.yml``, or each ``.builds/*.yml``: one job each, grouped)
and queues their jobs, pinned to that commit.

The receiver checks git's signature (the site's webhook key) and the key
in the URL, records nothing but a ``push`` job, and answers at once; the
worker does the rest. A job from a push is its repository owner's; it gets
their secrets only if they pushed it themselves.
"""

from __future__ import annotations

import logging
import re
import secrets as random
from typing import Any

import sqlalchemy as sa
from flask import Blueprint

from srht_core import (
    current_service,
    db_session,
    utcnow,
)

from . import gitapi
from .manifest import ManifestError
from .models import FAILED, GIT, PRIVATE, PUBLIC, Job, JobGroup, RepositoryHook, User
from .receiving import receive_webhook
from .submit import submit

__all__ = ["bp", "disable", "enable", "hook_url", "refused_job", "start_jobs"]

log = logging.getLogger("srht.builds.push")
bp = Blueprint("builds_push", __name__)

COMMIT = re.compile(r"^[0-9a-f]{40}$")


def hook_url(hook: RepositoryHook) -> str:
    return f"{current_service().origin}/webhooks/git/{hook.key}"


def enable(owner: User, repository: str) -> RepositoryHook:
    """Have pushes to ``owner``'s repository start jobs: a webhook on git
    (flushed, not committed; git has it already).

    :raises gitapi.GitUnavailable: (or DelegationUnavailable) saying why not.
    """
    hook = RepositoryHook(owner_id=owner.id, repository=repository, key=random.token_urlsafe(24))
    db_session.add(hook)
    db_session.flush()
    hook.owner = owner
    hook.webhook_id = gitapi.register_webhook(owner, repository, hook_url(hook))
    return hook


def disable(hook: RepositoryHook) -> None:
    """Stop pushes starting jobs; the webhook on git is removed too."""
    if hook.webhook_id is not None:
        gitapi.remove_webhook(hook.owner, hook.repository, hook.webhook_id)
    db_session.delete(hook)


def receive(key: str) -> Any:
    return receive_webhook(RepositoryHook, key, "repo:push", "push", "hook", "no such hook")


receive.srht_csrf_exempt = True  # type: ignore[attr-defined]
bp.add_url_rule("/webhooks/git/<key>", "receive", receive, methods=["POST"])


def start_jobs(hook_id: int, data: dict[str, Any]) -> list[int]:
    """The jobs of a push (the ``push`` job); their ids. Runs again
    harmlessly: a manifest already started for the same commit and ref is
    not started twice."""
    hook = db_session.get(RepositoryHook, hook_id)
    if hook is None:
        return []
    repository = data.get("repository") or {}
    owner = hook.owner
    name = str(repository.get("name") or hook.repository)
    if str(repository.get("owner")) != owner.canonical_name:
        log.warning("push for %s came to the hook of %s; ignored", repository, hook.ref)
        return []
    if name != hook.repository:
        hook.repository = name  # renamed on git since
    pusher = data.get("pusher")
    by_owner = pusher == owner.canonical_name
    visibility = PUBLIC if repository.get("visibility") == "public" else PRIVATE
    ref_of = f"~{owner.username}/{name}"
    started: list[int] = []
    for update in data.get("refs") or ():
        commit, ref = update.get("new"), str(update.get("name") or "")
        if not isinstance(commit, str) or not COMMIT.match(commit):
            continue  # a deleted ref: nothing to build
        manifests = gitapi.fetch_manifests(owner.id, owner.username, name, commit)
        if not manifests:
            continue
        done = set(
            db_session.scalars(
                sa.select(Job.manifest_path).where(
                    Job.repository == ref_of, Job.commit == commit, Job.ref == ref
                )
            )
        )
        short = ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
        note = f"{short} {commit[:7]}" + (f", pushed by {pusher}" if pusher else "")
        group = None
        if len(manifests) > 1:
            group = JobGroup(owner_id=owner.id, note=note, repository=ref_of, commit=commit)
            db_session.add(group)
        for path, text in manifests:
            if path in done:
                continue
            try:
                job = submit(
                    owner,
                    text,
                    note=note,
                    visibility=visibility,
                    submitter=GIT,
                    group=group,
                    repository=ref_of,
                    commit=commit,
                    ref=ref,
                    manifest_path=path,
                    allow_secrets=by_owner,
                )
            except ManifestError as error:
                job = refused_job(owner, text, path, error, group, ref_of, commit, ref, note)
            started.append(job.id)
    db_session.commit()
    return started


def refused_job(
    owner: User,
    text: str,
    path: str,
    error: ManifestError,
    group: JobGroup | None,
    repository: str,
    commit: str,
    ref: str,
    note: str,
) -> Job:
    """A job that never ran because its manifest has problems, so the
    pusher sees them where they look for the job."""
    now = utcnow()
    problems = "\n".join(str(p) for p in error.problems)
    job = Job(
        owner_id=owner.id,
        group=group,
        manifest=text,
        manifest_path=path,
        image="-",
        note=note,
        visibility=PRIVATE,
        status=FAILED,
        reason=f"The manifest was refused before anything ran:\n{problems}",
        submitter=GIT,
        allow_secrets=False,
        repository=repository,
        commit=commit,
        ref=ref,
        finished=now,
    )
    db_session.add(job)
    db_session.flush()
    return job
