"""Submitting, cancelling and resubmitting jobs: the operations behind the
submit page, the API and pushes.

A manifest is checked completely before a job exists: its YAML and keys
(:func:`.manifest.parse`), then what only the site knows (the image, the
secrets the owner has, the sources they may read). Every problem is
reported at once; nothing is stored while one remains. A job is recorded
``queued`` with its tasks and handed to the runners' queue once committed
(:mod:`.dispatch`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from srht_core import current_service, db_session, enqueue, utcnow

from . import dispatch, gitapi
from .images import load_images
from .manifest import Manifest, ManifestError, ManifestProblem, parse
from .models import (
    API,
    CANCELLED,
    FAILED,
    GIT,
    MAX_NOTE,
    PENDING,
    PUBLIC,
    QUEUED,
    RUNNING,
    SKIPPED,
    TIMEOUT,
    VISIBILITIES,
    Job,
    JobGroup,
    PatchsetBuild,
    Secret,
    Task,
)

__all__ = ["cancel", "check", "site_images", "submit"]


def site_images() -> list[str]:
    return sorted(load_images(current_service().section["images"]))


def check(
    owner: Any,
    text: str,
    *,
    file: str = "manifest",
    allow_secrets: bool = True,
    patched: str | None = None,
) -> Manifest:
    """The manifest ``text``, if ``owner`` may run it here (and, with
    ``patched``, a repository ``~owner/name`` patches apply to, if it
    clones that repository).

    :raises ManifestError: with every problem, each with its line and key.
    """
    manifest = parse(text, images=site_images(), file=file)
    problems: list[ManifestProblem] = []
    if manifest.secrets and allow_secrets:
        owned = set(
            db_session.scalars(
                sa.select(Secret.uuid).where(
                    Secret.owner_id == owner.id, Secret.uuid.in_(manifest.secrets)
                )
            )
        )
        for index, uuid in enumerate(manifest.secrets):
            if uuid not in owned:
                key = f"secrets[{index}]"
                problems.append(
                    ManifestProblem(
                        manifest.lines.get(key),
                        key,
                        f"you have no secret {uuid} (see your secrets page)",
                        file,
                    )
                )
    network = current_service().section["network"]
    for index, url in enumerate(manifest.sources):
        key = f"sources[{index}]"
        line = manifest.lines.get(key)
        if gitapi.is_site_repository(url):
            reason = gitapi.unreadable(owner, url)
            if reason is not None:
                problems.append(ManifestProblem(line, key, reason, file))
        elif network != "full":
            problems.append(
                ManifestProblem(
                    line,
                    key,
                    f"is not a repository of this site's git, and jobs here cannot reach "
                    f"other servers (network = {network})",
                    file,
                )
            )
    if patched is not None and not any(
        gitapi.repository_of(url) == tuple(patched[1:].split("/", 1)) for url in manifest.sources
    ):
        problems.append(
            ManifestProblem(
                manifest.lines.get("sources"),
                "sources",
                f"clones no {gitapi.git_origin()}/{patched}, so the patches have nowhere to "
                "be applied: add it to sources",
                file,
            )
        )
    if problems:
        raise ManifestError(problems)
    return manifest


def submit(
    owner: Any,
    text: str,
    *,
    note: str = "",
    visibility: str = PUBLIC,
    submitter: str = API,
    group: JobGroup | None = None,
    repository: str | None = None,
    commit: str | None = None,
    ref: str | None = None,
    manifest_path: str | None = None,
    allow_secrets: bool = True,
    patchset_build: PatchsetBuild | None = None,
) -> Job:
    """Check ``text`` and record a queued job of ``owner``'s (flushed; it
    goes to a runner when the caller commits). With ``patchset_build``,
    the job applies its patches to the repository it names.

    :raises ManifestError: with every problem of the manifest.
    """
    manifest = check(
        owner,
        text,
        file=manifest_path or "manifest",
        allow_secrets=allow_secrets,
        patched=patchset_build.repository if patchset_build is not None else None,
    )
    if visibility not in VISIBILITIES:
        raise ValueError(f"visibility {visibility!r}")
    job = Job(
        owner_id=owner.id,
        group=group,
        manifest=text,
        manifest_path=manifest_path,
        patchset_build_id=patchset_build.id if patchset_build is not None else None,
        image=manifest.image,
        note=note.strip()[:MAX_NOTE],
        visibility=visibility,
        status=QUEUED,
        submitter=submitter,
        allow_secrets=allow_secrets,
        repository=repository,
        commit=commit,
        ref=ref,
        queued=utcnow(),
    )
    job.tasks = [
        Task(position=position, name=name, status=PENDING)
        for position, (name, _script) in enumerate(manifest.tasks, start=1)
    ]
    db_session.add(job)
    db_session.flush()
    dispatch.publish_after_commit(job)
    return job


def resubmit(job: Job, owner: Any, text: str | None = None, note: str | None = None) -> Job:
    """A new job of ``owner``'s from ``job``'s manifest (or an edited one).
    A patchset's job is resubmitted with its patches, and still without
    secrets: the patches are still someone else's."""
    return submit(
        owner,
        job.manifest if text is None else text,
        note=job.note if note is None else note,
        visibility=job.visibility,
        submitter=job.submitter if job.submitter != GIT else API,
        repository=job.repository,
        commit=job.commit,
        ref=job.ref,
        manifest_path=job.manifest_path,
        allow_secrets=job.patchset_build is None,
        patchset_build=job.patchset_build,
    )


def cancel(job: Job, reason: str = "cancelled by its owner") -> None:
    """Stop ``job``: at once if no runner has it yet, otherwise its runner
    stops the container at its next word with the service (in a second or
    two) and reports it cancelled."""
    if job.is_finished:
        return
    if job.status == QUEUED:
        end(job, CANCELLED, reason)
    else:
        job.cancel_requested = True


def end(job: Job, status: str, reason: str) -> None:
    """Mark ``job`` finished: tasks that were running failed, tasks that
    never ran skipped; its triggers queued."""
    from .jobs import queue_triggers

    now = utcnow()
    for task in job.tasks:
        if task.status == RUNNING:
            task.status = status if status in (TIMEOUT, CANCELLED) else FAILED
            task.finished = now
        elif task.status == PENDING:
            task.status = SKIPPED
    job.status = status
    job.reason = reason
    job.finished = now
    job.cancel_requested = False
    queue_triggers(job)
    if job.patchset_build_id is not None:
        enqueue("report", session=db_session, build=job.patchset_build_id)
