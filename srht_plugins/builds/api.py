"""builds' REST API under ``/api``, and its OpenAPI document.

Authentication: a bearer token issued by meta with the scopes
``builds/jobs`` (submit, read, cancel and resubmit jobs) and
``builds/secrets`` (your secrets), ``:RO`` to read and ``:RW`` to write.
Public and unlisted jobs can be read without a token; a private job, or
another user's secret, does not exist for anyone but its owner (404).

A manifest with problems is answered 400 with one error per problem, each
naming its line and key (`manifest:7 tasks[1]: ...`); nothing is queued.
A job's log is plain text at its `log_url` (`curl` it while the job runs).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import sqlalchemy as sa

from srht_core import (
    Api,
    ApiError,
    Problem,
    body_schema,
    current_service,
    cursor_paginate,
    db_session,
    viewer,
)

from . import patchsets, secrets, submit
from .access import changeable_job, owned_link, owned_secret, readable_group, readable_job
from .manifest import MAX_LENGTH, ManifestError
from .models import (
    API,
    MAX_NOTE,
    MAX_SECRET_NAME,
    MAX_SECRET_PATH,
    PUBLIC,
    SECRET_KINDS,
    STATUSES,
    SUBMITTERS,
    TASK_STATUSES,
    VISIBILITIES,
    Artifact,
    Job,
    ListLink,
    Secret,
)

api = Api(
    "builds",
    __name__,
    title="builds API",
    description=(__doc__ or "").split("\n\n", 1)[1].strip(),
    reasons={
        404: "No such job, group, secret or list link, or one the caller may not see.",
        503: "A service builds asks (git, lists or meta) cannot be reached now; try again.",
    },
)

ID = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
STAMP = {"type": ["string", "null"], "format": "date-time"}
api.parameter("job_id", "The job's id.", ID, example=1)
api.parameter("group_id", "The job group's id.", ID, example=1)
api.parameter(
    "secret_id",
    "The secret's id (a UUID).",
    {"type": "string", "pattern": "^[0-9a-f-]{36}$"},
)
api.parameter("link_id", "The list link's id.", ID, example=1)
api.parameter("status", "Only jobs in this state.", {"type": "string", "enum": list(STATUSES)})
api.parameter(
    "repository",
    "Only jobs started by pushes to this repository (`~owner/name`).",
    {"type": "string", "maxLength": 200},
)

api.schema(
    "Task",
    {
        "type": "object",
        "required": ["name", "status"],
        "properties": {
            "name": {"type": "string"},
            "status": {"type": "string", "enum": list(TASK_STATUSES)},
            "started": STAMP,
            "finished": STAMP,
        },
    },
)
api.schema(
    "Job",
    {
        "type": "object",
        "required": ["id", "url", "log_url", "owner", "status", "image", "tasks"],
        "properties": {
            "id": {"type": "integer"},
            "url": {"type": "string", "description": "The job's page."},
            "log_url": {"type": "string", "description": "The whole log, as plain text."},
            "owner": {"type": "string"},
            "status": {"type": "string", "enum": list(STATUSES)},
            "reason": {"type": "string", "description": "Why it ended as it did."},
            "image": {"type": "string"},
            "note": {"type": "string"},
            "visibility": {"type": "string", "enum": list(VISIBILITIES)},
            "submitter": {"type": "string", "enum": list(SUBMITTERS)},
            "group": {"type": ["integer", "null"]},
            "repository": {"type": ["string", "null"]},
            "commit": {"type": ["string", "null"]},
            "ref": {"type": ["string", "null"]},
            "runner": {"type": ["string", "null"]},
            "patchset": {
                "type": ["object", "null"],
                "description": "The patchset on a list whose patches the job applies.",
                "properties": {
                    "list": {"type": "string"},
                    "id": {"type": "integer"},
                    "subject": {"type": "string"},
                    "version": {"type": "integer"},
                    "submitter": {"type": "string"},
                },
            },
            "tasks": {"type": "array", "items": {"$ref": "#/components/schemas/Task"}},
            "created": STAMP,
            "started": STAMP,
            "finished": STAMP,
        },
    },
)
api.schema(
    "JobSubmit",
    body_schema(
        {
            "manifest": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_LENGTH,
                "description": "The build manifest (YAML).",
            },
            "note": {"type": "string", "maxLength": MAX_NOTE},
            "visibility": {"type": "string", "enum": list(VISIBILITIES)},
        },
        required=["manifest"],
    ),
)
api.schema(
    "JobResubmit",
    body_schema(
        {
            "manifest": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_LENGTH,
                "description": "An edited manifest; the job's own when absent.",
            },
            "note": {"type": "string", "maxLength": MAX_NOTE},
        }
    ),
)
api.schema(
    "Artifact",
    {
        "type": "object",
        "required": ["name", "path", "size", "url"],
        "properties": {
            "name": {"type": "string"},
            "path": {"type": "string"},
            "size": {"type": "integer"},
            "url": {"type": "string"},
        },
    },
)
api.schema(
    "Group",
    {
        "type": "object",
        "required": ["id", "jobs"],
        "properties": {
            "id": {"type": "integer"},
            "note": {"type": "string"},
            "repository": {"type": ["string", "null"]},
            "commit": {"type": ["string", "null"]},
            "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
        },
    },
)
api.schema(
    "ListLink",
    {
        "type": "object",
        "required": ["id", "list", "repository"],
        "properties": {
            "id": {"type": "integer"},
            "list": {"type": "string", "description": "`~owner/name` on lists."},
            "repository": {"type": "string", "description": "`~owner/name` on git."},
            "created": STAMP,
        },
    },
)
api.schema(
    "ListLinkCreate",
    body_schema(
        {
            "list": {
                "type": "string",
                "minLength": 1,
                "maxLength": 200,
                "description": "One of your lists: `devel` or `~you/devel`.",
            },
            "repository": {
                "type": "string",
                "minLength": 1,
                "maxLength": 200,
                "description": "A repository of this site's git you can read, with a build "
                "manifest: `hello` (yours) or `~owner/hello`.",
            },
        },
        required=["list", "repository"],
    ),
)
api.schema(
    "Secret",
    {
        "type": "object",
        "required": ["id", "name", "kind"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "kind": {"type": "string", "enum": list(SECRET_KINDS)},
            "path": {"type": ["string", "null"]},
            "mode": {"type": ["string", "null"]},
            "created": STAMP,
        },
    },
)
api.schema(
    "SecretCreate",
    body_schema(
        {
            "kind": {"type": "string", "enum": list(SECRET_KINDS)},
            "name": {"type": "string", "maxLength": MAX_SECRET_NAME},
            "content": {
                "type": "string",
                "maxLength": 90_000,
                "description": "The secret, base64-encoded (files may be binary).",
            },
            "path": {
                "type": "string",
                "maxLength": MAX_SECRET_PATH,
                "description": "Where a file goes in the job (~/.netrc).",
            },
            "mode": {"type": "string", "pattern": "^0?[0-7]{3}$", "description": "Like 600."},
        },
        required=["kind", "content"],
    ),
)


def job_json(job: Job) -> dict[str, Any]:
    out = job.to_dict(current_service().origin)
    out["log_url"] = out["url"] + "/log"
    return out


def _manifest_errors(error: ManifestError) -> ApiError:
    return ApiError(400, errors=[("manifest", str(problem)) for problem in error.problems])


@api.operation(
    "get",
    "/jobs",
    "List your jobs",
    scope="jobs",
    response="Job",
    paged=True,
    anonymous=False,
    query=["status", "repository"],
)
def list_jobs(query: dict[str, Any]) -> dict[str, Any]:
    """The token owner's jobs, newest first."""
    stmt = sa.select(Job).where(Job.owner_id == viewer().id)
    if query.get("status"):
        stmt = stmt.where(Job.status == query["status"])
    if query.get("repository"):
        stmt = stmt.where(Job.repository == query["repository"])
    return cursor_paginate(db_session, stmt, Job.id).json(job_json)


@api.operation(
    "post",
    "/jobs",
    "Submit a job",
    scope="jobs",
    write=True,
    body="JobSubmit",
    response="Job",
)
def create_job(body: dict[str, Any]) -> dict[str, Any]:
    """Queued at once when the manifest has no problem."""
    try:
        job = submit.submit(
            viewer(),
            body["manifest"],
            note=body.get("note", ""),
            visibility=body.get("visibility", PUBLIC),
            submitter=API,
        )
    except ManifestError as error:
        raise _manifest_errors(error) from None
    db_session.commit()
    return job_json(job)


@api.operation("get", "/jobs/{job_id}", "Get a job", scope="jobs", response="Job")
def get_job(job_id: int) -> dict[str, Any]:
    return job_json(readable_job(job_id, viewer()))


@api.operation(
    "get",
    "/jobs/{job_id}/manifest",
    "Get a job's manifest",
    scope="jobs",
    response={
        "type": "object",
        "required": ["manifest"],
        "properties": {"manifest": {"type": "string"}},
    },
)
def get_manifest(job_id: int) -> dict[str, Any]:
    return {"manifest": readable_job(job_id, viewer()).manifest}


@api.operation(
    "get",
    "/jobs/{job_id}/artifacts",
    "List a job's artifacts",
    scope="jobs",
    response="Artifact",
    paged=True,
)
def list_artifacts(job_id: int) -> dict[str, Any]:
    job = readable_job(job_id, viewer())
    base = job_json(job)["url"]
    stmt = sa.select(Artifact).where(Artifact.job_id == job.id)
    page = cursor_paginate(db_session, stmt, Artifact.id, descending=False)
    return page.json(
        lambda a: {
            "name": a.name,
            "path": a.path,
            "size": a.size,
            "url": f"{base}/artifacts/{a.name}",
        }
    )


@api.operation(
    "post",
    "/jobs/{job_id}/cancel",
    "Cancel a job",
    scope="jobs",
    write=True,
    status=200,
    response="Job",
)
def cancel_job(job_id: int) -> dict[str, Any]:
    """A queued job ends at once; a running one when its runner next
    reports (within seconds)."""
    job = changeable_job(job_id, viewer())
    submit.cancel(job)
    db_session.commit()
    return job_json(job)


@api.operation(
    "post",
    "/jobs/{job_id}/resubmit",
    "Resubmit a job",
    scope="jobs",
    write=True,
    body="JobResubmit",
    response="Job",
)
def resubmit_job(job_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """A new job from this one's manifest, or from an edited one."""
    job = readable_job(job_id, viewer())
    try:
        new = submit.resubmit(job, viewer(), body.get("manifest"), body.get("note"))
    except ManifestError as error:
        raise _manifest_errors(error) from None
    db_session.commit()
    return job_json(new)


@api.operation("get", "/groups/{group_id}", "Get a job group", scope="jobs", response="Group")
def get_group(group_id: int) -> dict[str, Any]:
    user = viewer()
    group = readable_group(group_id, user)
    from .access import can_see

    return {
        "id": group.id,
        "note": group.note,
        "repository": group.repository,
        "commit": group.commit,
        "jobs": [job_json(job) for job in group.jobs if can_see(job, user)],
    }


@api.operation(
    "get",
    "/secrets",
    "List your secrets",
    scope="secrets",
    response="Secret",
    paged=True,
    anonymous=False,
)
def list_secrets() -> dict[str, Any]:
    """Their ids and names; never their content."""
    stmt = sa.select(Secret).where(Secret.owner_id == viewer().id)
    return cursor_paginate(db_session, stmt, Secret.id).json(Secret.to_dict)


@api.operation(
    "post",
    "/secrets",
    "Add a secret",
    scope="secrets",
    write=True,
    body="SecretCreate",
    response="Secret",
)
def create_secret(body: dict[str, Any]) -> dict[str, Any]:
    """Sealed at once; its content is never shown again, only its id."""
    try:
        content = base64.b64decode(body["content"], validate=True)
    except (ValueError, binascii.Error):
        raise ApiError(400, "must be base64", field="content") from None
    try:
        secret = secrets.create_secret(
            viewer(),
            body["kind"],
            content,
            name=body.get("name", ""),
            path=body.get("path"),
            mode=body.get("mode"),
        )
    except Problem:
        db_session.rollback()
        raise
    db_session.commit()
    return secret.to_dict()


@api.operation("delete", "/secrets/{secret_id}", "Delete a secret", scope="secrets", write=True)
def delete_secret(secret_id: str) -> None:
    secrets.delete_secret(owned_secret(secret_id, viewer()))
    db_session.commit()


@api.operation(
    "get",
    "/list-links",
    "List your lists whose patchsets start jobs",
    scope="jobs",
    response="ListLink",
    paged=True,
    anonymous=False,
)
def list_links() -> dict[str, Any]:
    stmt = sa.select(ListLink).where(ListLink.owner_id == viewer().id)
    return cursor_paginate(db_session, stmt, ListLink.id).json(ListLink.to_dict)


@api.operation(
    "post",
    "/list-links",
    "Have patchsets on one of your lists start a repository's jobs",
    scope="jobs",
    write=True,
    body="ListLinkCreate",
    response="ListLink",
    errors={
        409: "The list starts jobs already.",
        503: "git, lists or meta cannot be reached now; nothing was linked.",
    },
)
def create_link(body: dict[str, Any]) -> dict[str, Any]:
    """builds registers a webhook on the list (acting for you); each
    patchset that arrives whole then starts the repository's manifests,
    with its patches applied, as a job group (without secrets). Refused
    for a list that is not yours (403) and a repository you cannot read or
    without a build manifest (400)."""
    try:
        made = patchsets.link(viewer(), body["list"], body["repository"])
    except Problem:
        db_session.rollback()
        raise
    db_session.commit()
    return made.to_dict()


@api.operation(
    "delete",
    "/list-links/{link_id}",
    "Stop a list's patchsets starting jobs",
    scope="jobs",
    write=True,
    errors={503: "lists cannot be reached now; the link stays."},
)
def delete_link(link_id: int) -> None:
    try:
        patchsets.unlink(owned_link(link_id, viewer()))
    except Problem:
        db_session.rollback()
        raise
    db_session.commit()
