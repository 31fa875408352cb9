"""git's REST API under ``/api``, declared with :class:`srht_core.Api`.

Tokens come from meta with the scope ``git/repos:RO`` (read) or
``git/repos:RW`` (also create, change, delete; pushing over HTTP needs it
too). Reading a public or unlisted repository needs no token; a private
one is 404 to everyone without access, as on the pages. Only a
repository's owner changes it, its access grants and its webhooks. An old
name of a renamed repository still finds it. Lists are paged:
`?cursor=&limit=` in, `{"results": [...], "next": ...}` out. Every error is
`{"errors": [{"field": ..., "reason": ...}]}`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import url_for

from srht_core import (
    USER_REF_SCHEMA,
    Api,
    ApiError,
    Delivery,
    body_schema,
    cursor_paginate,
    db_session,
    delivery_page,
    paginate_list,
    user_named,
    viewer,
)

from .access import access_of, find_repository, grants_of, listed_for
from .events import EVENTS, subscription_key
from .models import MODES, PUBLIC, VISIBILITIES, AccessGrant, Repository, User, Webhook
from .plumbing import GitError, Ref
from .repos import (
    MAX_DESCRIPTION,
    MAX_NAME,
    NAME_PATTERN,
    NAME_RULE,
    add_webhook,
    clone_urls,
    create_repository,
    default_branch,
    delete_repository,
    find_user,
    grant_access,
    open_repository,
    update_repository,
)

api = Api(
    "git",
    __name__,
    title="git API",
    description=(__doc__ or "").split("\n\n", 1)[1].strip(),
    reasons={
        404: "No such repository (or one the caller may not see), user or webhook.",
    },
)

ID = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
api.parameter(
    "username", "The owner's username, without the ~.", {"type": "string"}, example="alice"
)
api.parameter("name", "The repository's name (or an old name it had).", {"type": "string"})
api.parameter(
    "grantee",
    "The username to give or take access (a leading ~ is allowed).",
    {"type": "string"},
    example="bob",
)
api.parameter("webhook_id", "The webhook's id.", ID, example=1)


# -- schemas ---------------------------------------------------------------------------

STAMP = {"type": "string", "format": "date-time"}
USER = USER_REF_SCHEMA
NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_NAME,
    "pattern": NAME_PATTERN,
    "description": NAME_RULE + " Not ending in .git.",
}
DESCRIPTION = {"type": ["string", "null"], "maxLength": MAX_DESCRIPTION}
VISIBILITY = {
    "type": "string",
    "enum": list(VISIBILITIES),
    "description": "public: anyone, and listed on the owner's page; unlisted: anyone "
    "with the link; private: the owner and those granted access.",
}
api.schema(
    "Repository",
    {
        "type": "object",
        "required": [
            "id",
            "name",
            "owner",
            "description",
            "visibility",
            "default_branch",
            "url",
            "clone_urls",
            "created",
            "updated",
            "pushed",
        ],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "owner": USER,
            "description": {"type": ["string", "null"]},
            "visibility": VISIBILITY,
            "default_branch": {"type": ["string", "null"]},
            "url": {"type": "string", "format": "uri"},
            "clone_urls": {
                "type": "object",
                "required": ["http", "ssh"],
                "properties": {
                    "http": {"type": "string"},
                    "ssh": {
                        "type": ["string", "null"],
                        "description": "null where the site serves no SSH.",
                    },
                },
            },
            "created": STAMP,
            "updated": STAMP,
            "pushed": {
                **STAMP,
                "type": ["string", "null"],
                "description": "The last push; null before the first.",
            },
        },
    },
)
api.schema(
    "RepositoryCreate",
    body_schema(
        {
            "name": NAME,
            "description": DESCRIPTION,
            "visibility": {**VISIBILITY, "default": PUBLIC},
        },
        required=["name"],
    ),
)
api.schema(
    "RepositoryUpdate",
    body_schema(
        {
            "name": NAME,
            "description": {**DESCRIPTION, "description": "Empty clears it."},
            "visibility": VISIBILITY,
            "default_branch": {
                "type": ["string", "null"],
                "maxLength": 255,
                "description": "An existing branch.",
            },
        },
        description="Rename (the old name keeps working), or change the description, "
        "visibility or default branch; a field left out (or null) is left alone.",
    ),
)
api.schema(
    "Ref",
    {
        "type": "object",
        "required": ["name", "kind", "target", "date"],
        "properties": {
            "name": {"type": "string"},
            "kind": {"type": "string", "enum": ["branch", "tag"]},
            "target": {"type": "string", "description": "A commit id."},
            "date": {**STAMP, "type": ["string", "null"]},
        },
    },
)
MODE = {
    "type": "string",
    "enum": list(MODES),
    "description": "ro: read (browse, clone, fetch); rw: read and write (also push).",
}
api.schema(
    "Grant",
    {
        "type": "object",
        "required": ["user", "mode", "created"],
        "properties": {"user": USER, "mode": MODE, "created": STAMP},
    },
)
api.schema("GrantUpdate", body_schema({"mode": MODE}, required=["mode"]))
EVENT_NAMES = [event.name for event in EVENTS]
api.webhook_schemas(EVENT_NAMES, subscribers_choose=False)


def _time(value: datetime | None) -> str | None:
    return value.replace(tzinfo=UTC).isoformat() if value is not None else None


def _user(user: User) -> dict[str, Any]:
    return {"username": user.username, "canonical_name": user.canonical_name}


def repository_json(repository: Repository, owner: User) -> dict[str, Any]:
    http_url, ssh_url = clone_urls(owner.username, repository.name)
    return {
        "id": repository.id,
        "name": repository.name,
        "owner": _user(owner),
        "description": repository.description,
        "visibility": repository.visibility,
        "default_branch": default_branch(repository),
        "url": http_url,
        "clone_urls": {"http": http_url, "ssh": ssh_url},
        "created": _time(repository.created),
        "updated": _time(repository.updated),
        "pushed": _time(repository.pushed_at),
    }


def _ref_json(ref: Ref) -> dict[str, Any]:
    return {"name": ref.name, "kind": ref.kind, "target": ref.target, "date": _time(ref.date)}


def _grant_json(grant: AccessGrant) -> dict[str, Any]:
    return {"user": _user(grant.user), "mode": grant.mode, "created": _time(grant.created)}


def _webhook_json(hook: Webhook) -> dict[str, Any]:
    return {"id": hook.id, "url": hook.url, "events": EVENT_NAMES, "created": _time(hook.created)}


def readable(username: str, name: str) -> Repository:
    """The repository, if the caller may read it (its owner loaded)."""
    found = find_repository(username, name)
    if found is None or access_of(found.repository, viewer()) is None:
        raise ApiError(404, "no such repository", field="name")
    return found.repository


def owned(username: str, name: str) -> Repository:
    """The repository, if the token's user owns it."""
    repository = readable(username, name)
    if repository.owner_id != viewer().id:
        raise ApiError(403, "only the repository's owner may do this")
    return repository


# -- repositories ------------------------------------------------------------------------


@api.operation(
    "get",
    "/repos",
    "List your repositories",
    scope="repos",
    response="Repository",
    paged=True,
    anonymous=False,
)
def list_repositories() -> dict[str, Any]:
    """The token owner's repositories, newest first."""
    owner = viewer()
    stmt = listed_for(owner, owner).order_by(None)
    page = cursor_paginate(db_session, stmt, Repository.id)
    return page.json(lambda r: repository_json(r, owner))


@api.operation(
    "post",
    "/repos",
    "Create a repository",
    scope="repos",
    write=True,
    body="RepositoryCreate",
    response="Repository",
    errors={409: "You have a repository of that name already."},
    headers={
        "Location": {"description": "The repository in this API.", "schema": {"type": "string"}}
    },
)
def create(body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Owned by the token's user."""
    owner = viewer()
    repository = create_repository(
        owner, body["name"], body.get("description"), body.get("visibility") or PUBLIC
    )
    location = url_for("git_api.get_repository", username=owner.username, name=repository.name)
    return repository_json(repository, owner), 201, {"Location": location}


@api.operation(
    "get",
    "/~{username}/repos",
    "List a user's repositories",
    scope="repos",
    response="Repository",
    paged=True,
)
def user_repositories(username: str) -> dict[str, Any]:
    """The repositories of a user that the caller sees listed, newest first
    (unlisted ones only to their owner; private ones to whoever may read them)."""
    owner: User | None = user_named(username)
    if owner is None:
        raise ApiError(404, f"no user ~{username} here", field="username")
    stmt = listed_for(owner, viewer()).order_by(None)
    page = cursor_paginate(db_session, stmt, Repository.id)
    return page.json(lambda r: repository_json(r, owner))


@api.operation(
    "get",
    "/~{username}/repos/{name}",
    "Get a repository",
    scope="repos",
    response="Repository",
)
def get_repository(username: str, name: str) -> dict[str, Any]:
    """Public and unlisted ones need no token."""
    repository = readable(username, name)
    return repository_json(repository, repository.owner)


@api.operation(
    "patch",
    "/~{username}/repos/{name}",
    "Change a repository",
    scope="repos",
    write=True,
    body="RepositoryUpdate",
    response="Repository",
    errors={409: "You have a repository of the new name already."},
)
def patch_repository(username: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """Owner only. A rename keeps the old name leading to the repository
    (web, clone and push) until another repository takes it."""
    repository = owned(username, name)
    update_repository(
        repository,
        repository.owner,
        name=body.get("name"),
        description=body.get("description"),
        visibility=body.get("visibility"),
        default_branch=body.get("default_branch"),
    )
    return repository_json(repository, repository.owner)


@api.operation(
    "delete",
    "/~{username}/repos/{name}",
    "Delete a repository",
    scope="repos",
    write=True,
)
def delete(username: str, name: str) -> None:
    """Owner only: the repository and everything in it, for good."""
    delete_repository(owned(username, name))


@api.operation(
    "get",
    "/~{username}/repos/{name}/refs",
    "List branches and tags",
    scope="repos",
    response="Ref",
    paged=True,
    errors={500: "The repository could not be read."},
)
def list_refs(username: str, name: str) -> dict[str, Any]:
    """Most recent first."""
    repository = readable(username, name)
    try:
        refs = open_repository(repository).refs()
    except GitError as error:
        raise ApiError(500, f"the repository could not be read: {error}") from None
    return paginate_list(refs, lambda ref: ref.full_name).json(_ref_json)


# -- access grants ---------------------------------------------------------------------


@api.operation(
    "get",
    "/~{username}/repos/{name}/access",
    "List who else may read or write",
    scope="repos",
    response="Grant",
    paged=True,
    anonymous=False,
)
def list_access(username: str, name: str) -> dict[str, Any]:
    """Owner only. Oldest grant first."""
    stmt = grants_of(owned(username, name))
    page = cursor_paginate(db_session, stmt, AccessGrant.id, descending=False)
    return page.json(_grant_json)


@api.operation(
    "put",
    "/~{username}/repos/{name}/access/{grantee}",
    "Give a user access",
    scope="repos",
    write=True,
    body="GrantUpdate",
    response="Grant",
)
def put_access(username: str, name: str, grantee: str, body: dict[str, Any]) -> dict[str, Any]:
    """Owner only. Read (ro) or read and write (rw); the user must have
    used this service once."""
    repository = owned(username, name)
    user = find_user(grantee)
    grant_access(repository, user, body["mode"])
    grant = db_session.scalars(grants_of(repository).where(AccessGrant.user_id == user.id)).one()
    return _grant_json(grant)


@api.operation(
    "delete",
    "/~{username}/repos/{name}/access/{grantee}",
    "Take a user's access away",
    scope="repos",
    write=True,
)
def delete_access(username: str, name: str, grantee: str) -> None:
    """Owner only. Done also when there was none."""
    repository = owned(username, name)
    grant_access(repository, find_user(grantee), None)


# -- webhooks ----------------------------------------------------------------------------


@api.operation(
    "get",
    "/~{username}/repos/{name}/webhooks",
    "List the URLs told about pushes",
    scope="repos",
    response="Webhook",
    paged=True,
    anonymous=False,
)
def list_webhooks(username: str, name: str) -> dict[str, Any]:
    """Owner only. Oldest first."""
    repository = owned(username, name)
    stmt = sa.select(Webhook).where(Webhook.repository_id == repository.id)
    page = cursor_paginate(db_session, stmt, Webhook.id, descending=False)
    return page.json(_webhook_json)


@api.operation(
    "post",
    "/~{username}/repos/{name}/webhooks",
    "Tell a URL about every push",
    scope="repos",
    write=True,
    body="WebhookCreate",
    response="Webhook",
)
def create_webhook(username: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """Owner only. Each push is a signed POST of the `repo:push` event with
    each ref's old and new id."""
    return _webhook_json(add_webhook(owned(username, name), body["url"]))


@api.operation(
    "delete",
    "/~{username}/repos/{name}/webhooks/{webhook_id}",
    "Stop telling a URL about pushes",
    scope="repos",
    write=True,
)
def delete_webhook(username: str, name: str, webhook_id: int) -> None:
    """Owner only."""
    repository = owned(username, name)
    hook = db_session.get(Webhook, webhook_id)
    if hook is None or hook.repository_id != repository.id:
        raise ApiError(404, f"no webhook {webhook_id} on this repository", field="webhook_id")
    db_session.delete(hook)
    db_session.commit()


@api.operation(
    "get",
    "/~{username}/repos/{name}/webhooks/deliveries",
    "The webhook delivery log",
    scope="repos",
    response="Delivery",
    paged=True,
    anonymous=False,
)
def list_deliveries(username: str, name: str) -> dict[str, Any]:
    """Owner only. Newest first."""
    repository = owned(username, name)
    page = delivery_page(subscription_key(repository), session=db_session)
    return page.json(Delivery.to_dict)
