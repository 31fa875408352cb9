"""Jobs started by patchsets: a list's owner links one of their lists on
the site's lists to a repository of the site's git (on the lists settings
page, or ``POST /api/list-links``); builds registers a webhook on the list
for them, and for each ``patchset:received`` lists signs and POSTs to it
(a series arrived whole), starts the repository's manifests at the head of
its default branch, as a job group, each job applying the series with
``git am`` after the runner clones the repository. When the jobs end,
builds says so on the patchset (``builds: success``) through lists'
``PUT .../patchsets/ID/tools/builds``.

The receiver checks lists' signature (the site's webhook key) and the key
in the URL, records a ``patchset`` job and answers at once; the worker
does the rest and tries again later when lists, git or meta cannot be
asked (nothing is lost: the job stays queued, with its error).

A patch is anyone's mail, and a mail's ``From`` proves nothing, so a job
started by a patchset never gets secrets, whoever sent it: its manifest's
``secrets`` are left out and its log says so. The jobs are the list
owner's (they run with the owner's access to the repository; the token
never enters the container).
"""

from __future__ import annotations

import logging
import secrets as random
from typing import Any

import sqlalchemy as sa
from flask import Blueprint

from srht_core import (
    Problem,
    current_service,
    db_session,
    enqueue,
)

from . import gitapi, listsapi
from .delegation import DelegationUnavailable
from .manifest import ManifestError
from .models import (
    CANCELLED,
    FINISHED,
    LISTS,
    PRIVATE,
    PUBLIC,
    SUCCESS,
    UNLISTED,
    Job,
    JobGroup,
    ListLink,
    PatchsetBuild,
    User,
)
from .receiving import receive_webhook
from .submit import submit

__all__ = ["bp", "link", "outcome", "report", "start_jobs", "unlink"]

log = logging.getLogger("srht.builds.patchsets")
bp = Blueprint("builds_patchsets", __name__)


def hook_url(link: ListLink) -> str:
    return f"{current_service().origin}/webhooks/lists/{link.key}"


def _list_name(owner: User, text: str) -> str:
    name = text.strip()
    if name.startswith("~"):
        who, _, name = name[1:].partition("/")
        if who != owner.username:
            raise Problem(
                "list",
                f"~{who}/{name} is not your list: only its owner may have its patchsets "
                "start jobs (ask them to link it).",
                403,
            )
    if not name or "/" in name or len(name) > 128:
        raise Problem("list", "Name one of your lists: devel, or ~you/devel.")
    return name


def _repository(owner: User, text: str) -> str:
    name = text.strip().rstrip("/")
    origin = gitapi.git_origin() or ""
    if origin and name.startswith(origin + "/"):
        name = name[len(origin) + 1 :]
    if not name.startswith("~"):
        name = f"~{owner.username}/{name}"
    found = gitapi.repository_of(f"{origin}/{name}")
    if not origin or found is None:
        raise Problem("repository", "Name a repository of this site's git: hello, or ~you/hello.")
    return f"~{found[0]}/{found[1]}"


def link(owner: User, list_text: str, repository_text: str) -> ListLink:
    """Have patchsets on ``owner``'s list start the jobs of a repository:
    a webhook on lists (flushed, not committed; lists has it already).

    :raises Problem: saying what is wrong (a list that is not theirs, one
        linked already, a repository they cannot read or without a build
        manifest) or that lists, git or meta cannot be asked now (503).
    """
    list_name = _list_name(owner, list_text)
    repository = _repository(owner, repository_text)
    exists = db_session.scalar(
        sa.select(ListLink).where(ListLink.owner_id == owner.id, ListLink.list_name == list_name)
    )
    if exists is not None:
        raise Problem(
            "list",
            f"Patchsets on {exists.list_ref} start the jobs of {exists.repository} already; "
            "unlink it first.",
            409,
        )
    url = f"{gitapi.git_origin()}/{repository}"
    reason = gitapi.unreadable(owner, url)
    if reason is not None:
        raise Problem("repository", reason)
    repo_owner, _, repo_name = repository[1:].partition("/")
    try:
        ref, commit = gitapi.head_of(owner.id, repo_owner, repo_name)
        manifests = gitapi.fetch_manifests(owner.id, repo_owner, repo_name, commit)
    except gitapi.NothingToBuild as error:
        raise Problem("repository", f"{error}: push a build manifest first.") from None
    except (gitapi.GitUnavailable, DelegationUnavailable) as error:
        raise Problem("repository", f"git could not be asked: {error}.", 503) from None
    if not manifests:
        raise Problem(
            "repository",
            f"{repository} has no build manifest ({gitapi.MANIFEST_FILE} or "
            f"{gitapi.MANIFEST_DIR}/*.yml) on {ref.removeprefix('refs/heads/')}: add one first.",
        )
    made = ListLink(
        owner_id=owner.id,
        list_name=list_name,
        repository=repository,
        key=random.token_urlsafe(24),
    )
    db_session.add(made)
    db_session.flush()
    made.owner = owner
    try:
        made.webhook_id = listsapi.register_webhook(owner, list_name, hook_url(made))
    except listsapi.ListsRefused as error:
        raise Problem("list", f"{error}.", 403 if error.status == 403 else 400) from None
    except listsapi.ListsUnavailable as error:
        raise Problem("list", f"{error}; try again in a while.", 503) from None
    return made


def unlink(found: ListLink) -> None:
    """Stop patchsets on the list starting jobs; the webhook on lists is
    removed too (jobs so far stay).

    :raises Problem: 503 when lists cannot be asked now.
    """
    if found.webhook_id is not None:
        try:
            listsapi.remove_webhook(found.owner, found.list_name, found.webhook_id)
        except (listsapi.ListsRefused, listsapi.ListsUnavailable) as error:
            raise Problem("list", f"{error}; try again in a while.", 503) from None
    db_session.delete(found)


def receive(key: str) -> Any:
    return receive_webhook(ListLink, key, "patchset:received", "patchset", "link", "no such link")


receive.srht_csrf_exempt = True  # type: ignore[attr-defined]
bp.add_url_rule("/webhooks/lists/<key>", "receive", receive, methods=["POST"])


def _submitter(sender: Any) -> str:
    if not isinstance(sender, dict):
        return ""
    name, address = str(sender.get("name") or ""), str(sender.get("address") or "")
    return f"{name} <{address}>" if name and address else name or address


def _note(build: PatchsetBuild) -> str:
    version = f" v{build.version}" if build.version > 1 else ""
    by = f" from {build.submitter}" if build.submitter else ""
    return f"Patchset #{build.patchset_id}{version} “{build.subject}”{by} on {build.list_ref}"


def _visibility(list_visibility: Any, repo_owner: str, repo_name: str) -> str:
    """The jobs' visibility: no more visible than the list or the
    repository."""
    repository = gitapi.visibility(repo_owner, repo_name)
    order = [PUBLIC, UNLISTED, PRIVATE]
    shown = [v if v in order else PRIVATE for v in (list_visibility, repository)]
    return max(shown, key=order.index)


def start_jobs(link_id: int, data: dict[str, Any]) -> list[int]:
    """The jobs of a patchset (the ``patchset`` job); their ids. Runs again
    harmlessly: a patchset already built is not built twice.

    :raises listsapi.ListsUnavailable, gitapi.GitUnavailable: (and
        DelegationUnavailable) when they cannot be asked now: the job is
        tried again later.
    """
    found = db_session.get(ListLink, link_id)
    if found is None:
        return []
    mailing_list = data.get("list") or {}
    patchset = data.get("patchset") or {}
    if mailing_list.get("ref") != found.list_ref or not isinstance(patchset.get("id"), int):
        log.warning("patchset for %s came to the link of %s; ignored", mailing_list, found.list_ref)
        return []
    done = db_session.scalar(
        sa.select(PatchsetBuild).where(
            PatchsetBuild.list_ref == found.list_ref, PatchsetBuild.patchset_id == patchset["id"]
        )
    )
    if done is not None:
        return list(db_session.scalars(sa.select(Job.id).where(Job.patchset_build_id == done.id)))
    owner = found.owner
    try:
        mbox = listsapi.patchset_mbox(owner, found.list_name, patchset["id"])
    except listsapi.ListsRefused as error:
        log.warning("patchset %s of %s: %s; no job", patchset["id"], found.list_ref, error)
        return []
    repo_owner, _, repo_name = found.repository[1:].partition("/")
    try:
        ref, commit = gitapi.head_of(owner.id, repo_owner, repo_name)
    except gitapi.NothingToBuild as error:
        ref, commit, empty = "", None, str(error)
    else:
        empty = ""
    manifests = gitapi.fetch_manifests(owner.id, repo_owner, repo_name, commit) if commit else []
    build = PatchsetBuild(
        owner_id=owner.id,
        link_id=found.id,
        list_ref=found.list_ref,
        patchset_id=patchset["id"],
        subject=str(patchset.get("subject") or "")[:200],
        version=int(patchset.get("version") or 1),
        submitter=_submitter(patchset.get("sender"))[:256],
        repository=found.repository,
        commit=commit,
        ref=ref,
        mbox=mbox,
    )
    db_session.add(build)
    db_session.flush()
    started: list[int] = []
    if not manifests:
        build.problem = empty or (
            f"{found.repository} has no build manifest ({gitapi.MANIFEST_FILE} or "
            f"{gitapi.MANIFEST_DIR}/*.yml) on {ref.removeprefix('refs/heads/')}"
        )
    elif commit is not None:  # manifests were read at that commit
        from .push import refused_job

        note = _note(build)
        visibility = _visibility(mailing_list.get("visibility"), repo_owner, repo_name)
        group = JobGroup(owner_id=owner.id, note=note, repository=found.repository, commit=commit)
        db_session.add(group)
        db_session.flush()
        build.group_id = group.id
        for path, text in manifests:
            try:
                job = submit(
                    owner,
                    text,
                    note=note,
                    visibility=visibility,
                    submitter=LISTS,
                    group=group,
                    repository=found.repository,
                    commit=commit,
                    ref=ref,
                    manifest_path=path,
                    allow_secrets=False,
                    patchset_build=build,
                )
            except ManifestError as error:
                job = refused_job(
                    owner, text, path, error, group, found.repository, commit, ref, note
                )
                job.submitter, job.patchset_build_id = LISTS, build.id
            started.append(job.id)
    enqueue("report", session=db_session, build=build.id)
    db_session.commit()
    return started


def outcome(build: PatchsetBuild) -> tuple[str, str]:
    """``(status, details)`` of a patchset's jobs, as lists shows them:
    ``pending`` while one runs, then ``success`` when all succeeded,
    ``failed`` when one failed or ran out of time, else ``cancelled``."""
    if build.problem:
        return CANCELLED, build.problem
    jobs = list(
        db_session.scalars(sa.select(Job).where(Job.patchset_build_id == build.id).order_by(Job.id))
    )
    if not jobs:
        return CANCELLED, "no job"
    ended = [job for job in jobs if job.status in FINISHED]
    count = f"{len(jobs)} job" + ("" if len(jobs) == 1 else "s")
    if len(ended) < len(jobs):
        return "pending", f"{count}, {len(ended)} ended"
    if all(job.status == SUCCESS for job in jobs):
        return SUCCESS, f"{count} passed"
    bad = next((job for job in jobs if job.status in ("failed", "timeout")), None)
    if bad is not None:
        what = bad.manifest_path or f"#{bad.id}"
        return "failed", f"{what}: {bad.reason or bad.status}"[:256]
    return CANCELLED, f"{count}, cancelled"


def group_url(build: PatchsetBuild) -> str:
    origin = current_service().origin
    if build.group_id is not None:
        return f"{origin}/groups/{build.group_id}"
    return f"{origin}/~{build.owner.username}"


def report(build_id: int) -> str | None:
    """Tell lists what became of patchset build ``build_id`` (the
    ``report`` job) as it is now; the status told.

    :raises listsapi.ListsUnavailable: lists or meta cannot be asked now
        (the job is tried again later).
    """
    build = db_session.get(PatchsetBuild, build_id)
    if build is None:
        return None
    # Twice at most: jobs may end while lists is being told they run.
    for _round in range(2):
        status, details = outcome(build)
        list_name = build.list_ref.partition("/")[2]
        try:
            listsapi.report_tool(
                build.owner, list_name, build.patchset_id, status, details, group_url(build)
            )
        except listsapi.ListsRefused as error:
            build.report_error = str(error)
            db_session.commit()
            return None
        build.reported, build.report_error = status, ""
        db_session.commit()
        db_session.expire_all()
        again = db_session.get(PatchsetBuild, build_id)
        if again is None or outcome(again)[0] == status:
            return status
        build = again
    return status
