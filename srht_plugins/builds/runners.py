"""The service's side of the runners: an internal API under
``/internal/builds`` that only the site's own hosts reach (a credential
sealed with the network key, from ``[srht] internal-networks``).

A runner *claims* a job (it gets everything the job needs: the manifest's
parts, the limits, its owner's secrets when the job may have them, a
token to clone the owner's repositories with), then reports *progress*
every second or two (log pieces, task states; the answer says whether to
stop, because the owner cancelled or the job was given up on), uploads its
*artifacts* and *finishes* it. Each call is short: the log streams to the
service a piece at a time, and no web worker is held for a job's length.
A runner that restarts reports the jobs it *lost*. A runner may only speak
of a job it holds: anything else is answered ``stop``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, request
from werkzeug.exceptions import BadRequest

from srht_core import current_service, db_session, internal_only_credential, utcnow

from . import dispatch, gitapi
from .images import load_images, queue_name
from .manifest import Manifest, parse, source_name
from .models import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCESS,
    TASK_STATUSES,
    TIMEOUT,
    Artifact,
    Job,
    LogChunk,
    Secret,
)
from .secrets import unseal
from .submit import end

__all__ = ["bp", "job_spec"]

bp = Blueprint("builds_runners", __name__, url_prefix="/internal/builds")

MiB = 1024 * 1024
#: A runner sends artifacts in pieces of at most this many bytes.
ARTIFACT_PIECE = 4 * MiB


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or not isinstance(data.get("runner"), str):
        raise BadRequest("expected a JSON object with the runner's name")
    return data


def _held(job_id: int, runner: str) -> Job | None:
    """The job, locked, if ``runner`` holds it and it is running."""
    job = db_session.scalar(sa.select(Job).where(Job.id == job_id).with_for_update())
    if job is None or job.status != RUNNING or job.runner != runner:
        return None
    return job


def _stop(job_id: int) -> dict[str, Any]:
    job = db_session.get(Job, job_id)
    why = "no such job" if job is None else f"the job is {job.status}"
    if job is not None and job.status == QUEUED:
        why = "the job was given to another runner"
    db_session.rollback()
    return {"stop": why}


def job_spec(job: Job, manifest: Manifest) -> dict[str, Any]:
    """Everything a runner needs to run ``job``."""
    state = current_service()
    section = state.section
    notes: list[str] = []
    secrets: list[dict[str, Any]] = []
    patches = job.patchset_build
    if manifest.secrets and patches is not None:
        notes.append(
            f"Secrets were not given to this job: it was started by a patchset sent to "
            f"{patches.list_ref}, and anyone may send one."
        )
    elif manifest.secrets and not job.allow_secrets:
        notes.append(
            "Secrets were not given to this job: it was started by someone other than "
            f"{job.owner.canonical_name}."
        )
    elif manifest.secrets and job.allow_secrets:
        found = {
            s.uuid: s
            for s in db_session.scalars(
                sa.select(Secret)
                .where(Secret.owner_id == job.owner_id, Secret.uuid.in_(manifest.secrets))
                .options(sa.orm.undefer(Secret.sealed))
            )
        }
        for uuid in manifest.secrets:
            secret = found.get(uuid)
            if secret is None:
                notes.append(f"Secret {uuid} no longer exists; the job goes on without it.")
                continue
            secrets.append(
                {
                    "id": uuid,
                    "kind": secret.kind,
                    "path": secret.path,
                    "mode": secret.mode,
                    "data": base64.b64encode(unseal(secret)).decode(),
                }
            )
    token = None
    sources = []
    pinned = None
    if job.repository and job.commit:
        pinned = job.repository.removeprefix("~")
    for url in manifest.sources:
        bare, _, ref = url.partition("#")
        found_repo = gitapi.repository_of(url)
        if found_repo is not None and not ref and pinned == "/".join(found_repo):
            ref = job.commit or ""
        site = found_repo is not None
        if site and token is None:
            token = gitapi.clone_token(job.owner_id)
        source = {
            "url": bare,
            "ref": ref or None,
            "name": source_name(url),
            "token": token if site else None,
            "inside": not site,
        }
        if patches is not None and site and pinned == "/".join(found_repo or ()):
            # Applied with git am by the runner, after it clones the source.
            source["patches"] = base64.b64encode(patches.mbox).decode()
            source["patchset"] = f"{patches.list_ref} #{patches.patchset_id}"
        sources.append(source)
    origin = state.origin
    variables = {
        "JOB_ID": str(job.id),
        "JOB_URL": f"{origin}/~{job.owner.username}/job/{job.id}",
        "BUILD_SUBMITTER": job.submitter,
    }
    if job.ref:
        variables["GIT_REF"] = job.ref
    if patches is not None:
        variables["PATCHSET_ID"] = str(patches.patchset_id)
        variables["PATCHSET_LIST"] = patches.list_ref
        lists = state.origins.get("lists")
        if lists:
            variables["PATCHSET_URL"] = lists + patches.url
        notes.append(
            f"Patchset #{patches.patchset_id} of {patches.list_ref} "
            f"(“{patches.subject}”, from {patches.submitter or 'someone'}) is applied to "
            f"{patches.repository} at {(job.commit or '')[:12]}."
        )
    return {
        "id": job.id,
        "image": job.image,
        "owner": job.owner.canonical_name,
        "attempt": job.attempts,
        "packages": list(manifest.packages),
        "sources": sources,
        "environment": {**manifest.environment, **variables},
        "secrets": secrets,
        "tasks": [list(task) for task in manifest.tasks],
        "artifacts": list(manifest.artifacts),
        "notes": notes,
        "network": section["network"],
        "package_proxy": section["package-proxy"],
        "limits": {
            "time": section["time-limit"],
            "memory": section["memory"],
            "disk": section["disk"],
            "cpus": section["cpus"],
            "processes": section["processes"],
            "log": section["log-limit"] * MiB,
            "artifacts": section["artifact-limit"] * MiB,
        },
    }


def _claim(job: Job, runner: str) -> dict[str, Any]:
    now = utcnow()
    job.status = RUNNING
    job.runner = runner
    job.attempts += 1
    job.started = now
    job.heartbeat = now
    manifest = parse(job.manifest)
    spec = job_spec(job, manifest)
    db_session.commit()
    return {"job": spec}


@bp.post("/claim")
@internal_only_credential
def claim() -> Any:
    """Take job ``job`` (a broker gave its id), or the oldest queued job of
    ``images`` (a runner without a broker asking for work)."""
    data = _body()
    runner = data["runner"][:128]
    wanted = data.get("job")
    # Only the job's row is locked (``of``): the owner's row, which the
    # eager join would lock too, is held by any job being submitted for
    # the same user, and the job would be skipped.
    stmt = sa.select(Job).where(Job.status == QUEUED).with_for_update(skip_locked=True, of=Job)
    if isinstance(wanted, int):
        stmt = stmt.where(Job.id == wanted)
    else:
        images = [i for i in data.get("images") or () if isinstance(i, str)]
        stmt = stmt.where(Job.image.in_(images)).order_by(Job.id).limit(1)
    job = db_session.scalar(stmt)
    if job is None or job.cancel_requested:
        db_session.rollback()
        return {"job": None}
    return _claim(job, runner)


@bp.post("/jobs/<int:job_id>/progress")
@internal_only_credential
def progress(job_id: int) -> Any:
    """Log pieces (``logs``: ``[[position, base64], ...]``) and task states
    (``tasks``: ``[[position, status], ...]``); answers whether to stop."""
    data = _body()
    job = _held(job_id, data["runner"])
    if job is None:
        return _stop(job_id)
    now = utcnow()
    job.heartbeat = now
    limit = current_service().section["log-limit"] * MiB
    for entry in data.get("logs") or ():
        position, piece = _log_piece(entry)
        if job.log_size >= limit:
            break
        kept = piece[: limit - job.log_size]
        if len(kept) < len(piece):
            kept += (
                f"\n[The log reached its limit of {limit // MiB} MiB: what the job wrote "
                "after this is not kept.]\n"
            ).encode()
        db_session.add(LogChunk(job_id=job.id, position=position, data=kept))
        job.log_size += len(kept)
    tasks = {task.position: task for task in job.tasks}
    for entry in data.get("tasks") or ():
        if not (isinstance(entry, list) and len(entry) == 2 and entry[1] in TASK_STATUSES):
            raise BadRequest("tasks: [[position, status], ...]")
        task = tasks.get(entry[0])
        if task is None:
            continue
        if entry[1] == RUNNING and task.started is None:
            task.started = now
        if entry[1] not in (RUNNING, "pending") and task.finished is None:
            task.finished = now
        task.status = entry[1]
    answer: dict[str, Any] = {"stop": None}
    if job.cancel_requested:
        answer["stop"] = "cancelled by its owner"
    db_session.commit()
    return answer


def _log_piece(entry: Any) -> tuple[int, bytes]:
    try:
        position, encoded = entry
        return int(position), base64.b64decode(encoded, validate=True)
    except (TypeError, ValueError, binascii.Error):
        raise BadRequest("logs: [[position, base64], ...]") from None


@bp.post("/jobs/<int:job_id>/artifact")
@internal_only_credential
def artifact(job_id: int) -> Any:
    """A piece of an artifact: ``name``, ``path``, ``offset`` and ``data``
    (base64); the first piece (offset 0) makes it."""
    data = _body()
    job = _held(job_id, data["runner"])
    if job is None:
        return _stop(job_id)
    try:
        name, path = str(data["name"])[:256], str(data["path"])[:512]
        offset = int(data["offset"])
        piece = base64.b64decode(data["data"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise BadRequest("artifact: name, path, offset and data (base64)") from None
    if len(piece) > ARTIFACT_PIECE:
        raise BadRequest(f"a piece is at most {ARTIFACT_PIECE} bytes")
    total = db_session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(Artifact.size), 0)).where(Artifact.job_id == job.id)
    )
    limit = current_service().section["artifact-limit"] * MiB
    if int(total or 0) + len(piece) > limit:
        # Never a part of a file kept as if it were the whole.
        db_session.execute(
            sa.delete(Artifact).where(Artifact.job_id == job.id, Artifact.name == name)
        )
        db_session.commit()
        return {"stop": None, "refused": f"the job's artifacts are limited to {limit // MiB} MiB"}
    found = db_session.scalar(
        sa.select(Artifact).where(Artifact.job_id == job.id, Artifact.name == name)
    )
    if offset == 0:
        if found is not None:
            db_session.delete(found)
            db_session.flush()
        db_session.add(Artifact(job_id=job.id, name=name, path=path, size=len(piece), data=piece))
    elif found is None or found.size != offset:
        raise BadRequest("a piece must follow the one before it")
    else:
        db_session.execute(
            sa.update(Artifact)
            .where(Artifact.id == found.id)
            .values(data=Artifact.data + piece, size=Artifact.size + len(piece))
        )
    job.heartbeat = utcnow()
    db_session.commit()
    return {"stop": None}


@bp.post("/jobs/<int:job_id>/finish")
@internal_only_credential
def finish(job_id: int) -> Any:
    """The job ended: ``status`` (success, failed, timeout, cancelled) and
    ``reason``."""
    data = _body()
    job = _held(job_id, data["runner"])
    if job is None:
        return _stop(job_id)
    status = data.get("status")
    if status not in (SUCCESS, FAILED, TIMEOUT, CANCELLED):
        raise BadRequest("status: success, failed, timeout or cancelled")
    end(job, status, str(data.get("reason") or "")[:2000])
    db_session.commit()
    return {"stop": None}


@bp.post("/lost")
@internal_only_credential
def lost() -> Any:
    """A runner started again and found the jobs it held gone with its
    last life (``jobs``: their ids), or, with ``stopped``, it is being
    stopped and stopped them."""
    data = _body()
    runner = data["runner"]
    how = "was stopped" if data.get("stopped") is True else "stopped and started again"
    ids = [i for i in data.get("jobs") or () if isinstance(i, int)]
    jobs = db_session.scalars(
        sa.select(Job)
        .where(Job.id.in_(ids), Job.runner == runner, Job.status == RUNNING)
        .with_for_update()
    ).all()
    for job in jobs:
        dispatch.lose(job, f"the runner {runner} {how}")
    db_session.commit()
    return {"jobs": [job.id for job in jobs]}


@bp.get("/images")
@internal_only_credential
def images() -> Any:
    """The site's images, each with its queue (for runners to build them
    and listen on their queues)."""
    found = load_images(current_service().section["images"])
    return {
        "images": [
            {
                "name": image.name,
                "queue": queue_name(image.name),
                "suite": image.suite,
                "packages": list(image.packages),
                "tarball": image.tarball,
            }
            for image in found.values()
        ]
    }
