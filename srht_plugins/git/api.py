"""git's REST API under ``/api`` and its OpenAPI 3 document.

Tokens come from meta with the scope ``git/repos:RO`` (read) or
``git/repos:RW`` (also create, change, delete; pushing over HTTP needs it
too). Reading a public or unlisted repository needs no token; a private
one is 404 to everyone without access, as on the pages. Only a
repository's owner changes it, its access grants and its webhooks. An old
name of a renamed repository still finds it. Every error is
``{"errors": [{"field": ..., "reason": ...}]}``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Response, request, url_for
from sqlalchemy.orm import contains_eager

from srht_core import (
    API_ERRORS_SCHEMA,
    ApiError,
    api_blueprint,
    api_user,
    current_service,
    current_token,
    cursor_paginate,
    db_session,
    deliveries,
    error_responses,
    json_object,
    json_response,
    require_scope,
    schema_ref,
    string_field,
)

from .access import access_of, find_repository, listed_for
from .events import subscription_key
from .models import MODES, PUBLIC, VISIBILITIES, AccessGrant, Repository, User, Webhook
from .plumbing import GitError
from .repos import (
    MAX_DESCRIPTION,
    MAX_NAME,
    RepoProblem,
    clone_urls,
    create_repository,
    default_branch,
    delete_repository,
    grant_access,
    open_repository,
    update_repository,
)

api = api_blueprint("git_api", __name__)
SCOPE = "git/repos"
MAX_WEBHOOKS = 20


#: The query parameters each endpoint reads; any other is an error, so that a
#: misspelt one is reported rather than silently ignored.
_QUERY = {
    "git_api.list_repositories": {"cursor", "limit"},
    "git_api.user_repositories": {"cursor", "limit"},
}


@api.before_request
def check_query() -> None:
    allowed = _QUERY.get(request.endpoint or "", set())
    for name in request.args:
        if name not in allowed:
            raise ApiError(400, "unknown query parameter", field=name)


def _time(value: datetime | None) -> str | None:
    return value.replace(tzinfo=UTC).isoformat() if value is not None else None


def repository_json(repository: Repository, owner: User) -> dict[str, Any]:
    http_url, ssh_url = clone_urls(owner.username, repository.name)
    return {
        "id": repository.id,
        "name": repository.name,
        "owner": {"username": owner.username, "canonical_name": owner.canonical_name},
        "description": repository.description,
        "visibility": repository.visibility,
        "default_branch": default_branch(repository),
        "url": http_url,
        "clone_urls": {"http": http_url, "ssh": ssh_url},
        "created": _time(repository.created),
        "updated": _time(repository.updated),
        "pushed": _time(repository.pushed_at),
    }


def _viewer(write: bool = False) -> Any:
    """Who asks: the token's user, or ``None`` without a token."""
    grant = current_token()
    if grant is None:
        return None
    if not grant.allows(SCOPE, write=write):
        raise ApiError(403, f"the token lacks the scope {SCOPE}:{'RW' if write else 'RO'}")
    return api_user()


def _readable(username: str, name: str, viewer: Any) -> Repository:
    found = find_repository(username, name)
    if found is None or access_of(found.repository, viewer) is None:
        raise ApiError(404, "no such repository", field="name")
    return found.repository


def _owned(username: str, name: str) -> Repository:
    """The repository, if the token's user owns it (RW scope)."""
    viewer = api_user()
    repository = _readable(username, name, viewer)
    if repository.owner_id != viewer.id:
        raise ApiError(403, "only the repository's owner may do this")
    return repository


def _problem(problem: RepoProblem) -> ApiError:
    return ApiError(400, problem.reason, field=problem.field)


@api.get("/repos")
@require_scope(SCOPE)
def list_repositories() -> Any:
    """The token owner's repositories, newest first."""
    owner = api_user()
    page = cursor_paginate(db_session, listed_for(owner, owner).order_by(None), Repository.id)
    return {"results": [repository_json(r, owner) for r in page.items], "cursor": page.next}


@api.post("/repos")
@require_scope(SCOPE, write=True)
def create() -> Any:
    owner = api_user()
    data = json_object()
    name = string_field(data, "name", required=True) or ""
    description = string_field(data, "description")
    visibility = string_field(data, "visibility") or PUBLIC
    try:
        repository = create_repository(owner, name, description, visibility)
    except RepoProblem as problem:
        raise _problem(problem) from None
    location = url_for("git_api.get_repository", username=owner.username, name=repository.name)
    return repository_json(repository, owner), 201, {"Location": location}


@api.get("/~<username>/repos")
def user_repositories(username: str) -> Any:
    """A user's repositories that the caller sees listed."""
    viewer = _viewer()
    owner = db_session.scalar(sa.select(User).where(User.username == username))
    if owner is None:
        raise ApiError(404, "no such user", field="username")
    page = cursor_paginate(db_session, listed_for(owner, viewer).order_by(None), Repository.id)
    return {"results": [repository_json(r, owner) for r in page.items], "cursor": page.next}


@api.get("/~<username>/repos/<name>")
def get_repository(username: str, name: str) -> Any:
    repository = _readable(username, name, _viewer())
    return repository_json(repository, repository.owner)


@api.patch("/~<username>/repos/<name>")
@require_scope(SCOPE, write=True)
def patch_repository(username: str, name: str) -> Any:
    repository = _owned(username, name)
    data = json_object()
    try:
        update_repository(
            repository,
            repository.owner,
            name=string_field(data, "name"),
            description=string_field(data, "description"),
            visibility=string_field(data, "visibility"),
            default_branch=string_field(data, "default_branch"),
        )
    except RepoProblem as problem:
        raise _problem(problem) from None
    return repository_json(repository, repository.owner)


@api.delete("/~<username>/repos/<name>")
@require_scope(SCOPE, write=True)
def delete(username: str, name: str) -> Any:
    delete_repository(_owned(username, name))
    return Response(status=204)


@api.get("/~<username>/repos/<name>/refs")
def list_refs(username: str, name: str) -> Any:
    repository = _readable(username, name, _viewer())
    try:
        refs = open_repository(repository).refs()
    except GitError as error:
        raise ApiError(500, f"the repository could not be read: {error}") from None
    return {
        "results": [
            {"name": r.name, "kind": r.kind, "target": r.target, "date": _time(r.date)}
            for r in refs
        ]
    }


# -- access grants ---------------------------------------------------------------------


def _grant_json(grant: AccessGrant) -> dict[str, Any]:
    return {
        "user": {"username": grant.user.username, "canonical_name": grant.user.canonical_name},
        "mode": grant.mode,
        "created": _time(grant.created),
    }


def _grants(repository: Repository) -> list[AccessGrant]:
    return list(
        db_session.scalars(
            sa.select(AccessGrant)
            .join(AccessGrant.user)
            .options(contains_eager(AccessGrant.user))
            .where(AccessGrant.repository_id == repository.id)
            .order_by(User.username)
        ).all()
    )


@api.get("/~<username>/repos/<name>/access")
@require_scope(SCOPE)
def list_access(username: str, name: str) -> Any:
    repository = _owned(username, name)
    return {"results": [_grant_json(g) for g in _grants(repository)]}


def _grantee(username: str) -> User:
    user = db_session.scalar(sa.select(User).where(User.username == username.lstrip("~")))
    if user is None:
        raise ApiError(
            404,
            f"no user ~{username.lstrip('~')} is known here yet: they must "
            "sign in to this git service once",
            field="username",
        )
    return user


@api.put("/~<username>/repos/<name>/access/<grantee>")
@require_scope(SCOPE, write=True)
def put_access(username: str, name: str, grantee: str) -> Any:
    repository = _owned(username, name)
    mode = string_field(json_object(), "mode", required=True)
    if mode not in MODES:
        raise ApiError(400, "must be ro (read) or rw (read and write)", field="mode")
    user = _grantee(grantee)
    try:
        grant_access(repository, user, mode)
    except RepoProblem as problem:
        raise _problem(problem) from None
    grant = next(g for g in _grants(repository) if g.user_id == user.id)
    return _grant_json(grant)


@api.delete("/~<username>/repos/<name>/access/<grantee>")
@require_scope(SCOPE, write=True)
def delete_access(username: str, name: str, grantee: str) -> Any:
    repository = _owned(username, name)
    try:
        grant_access(repository, _grantee(grantee), None)
    except RepoProblem as problem:
        raise _problem(problem) from None
    return Response(status=204)


# -- webhooks ----------------------------------------------------------------------------


def _webhook_json(hook: Webhook) -> dict[str, Any]:
    return {"id": hook.id, "url": hook.url, "events": ["repo:push"], "created": _time(hook.created)}


@api.get("/~<username>/repos/<name>/webhooks")
@require_scope(SCOPE)
def list_webhooks(username: str, name: str) -> Any:
    repository = _owned(username, name)
    hooks = db_session.scalars(
        sa.select(Webhook).where(Webhook.repository_id == repository.id).order_by(Webhook.id)
    ).all()
    return {"results": [_webhook_json(h) for h in hooks]}


@api.post("/~<username>/repos/<name>/webhooks")
@require_scope(SCOPE, write=True)
def create_webhook(username: str, name: str) -> Any:
    repository = _owned(username, name)
    url = (string_field(json_object(), "url", required=True) or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2048:
        raise ApiError(400, "must be an http:// or https:// URL", field="url")
    count = (
        db_session.scalar(
            sa.select(sa.func.count())
            .select_from(Webhook)
            .where(Webhook.repository_id == repository.id)
        )
        or 0
    )
    if count >= MAX_WEBHOOKS:
        raise ApiError(400, f"a repository may have at most {MAX_WEBHOOKS} webhooks", field="url")
    hook = Webhook(repository_id=repository.id, url=url)
    db_session.add(hook)
    db_session.commit()
    return _webhook_json(hook), 201


@api.delete("/~<username>/repos/<name>/webhooks/<int:webhook_id>")
@require_scope(SCOPE, write=True)
def delete_webhook(username: str, name: str, webhook_id: int) -> Any:
    repository = _owned(username, name)
    hook = db_session.get(Webhook, webhook_id)
    if hook is None or hook.repository_id != repository.id:
        raise ApiError(404, "no such webhook", field="id")
    db_session.delete(hook)
    db_session.commit()
    return Response(status=204)


@api.get("/~<username>/repos/<name>/webhooks/deliveries")
@require_scope(SCOPE)
def list_deliveries(username: str, name: str) -> Any:
    """The latest webhook deliveries of the repository, newest first."""
    repository = _owned(username, name)
    found = deliveries(subscription_key(repository), limit=50, session=db_session)
    return {
        "results": [
            {
                "id": d.id,
                "url": d.url,
                "event": d.event,
                "status": d.status,
                "attempts": d.attempts,
                "response_status": d.response_status,
                "created": _time(d.created),
            }
            for d in found
        ]
    }


@api.get("/openapi.json")
def openapi() -> Any:
    return openapi_document(current_service().origin)


# -- the OpenAPI document ------------------------------------------------------------


_REASONS = {
    400: "The request is malformed; each error names the field to blame.",
    401: "No token, or one that is not valid (malformed, expired or revoked).",
    403: "The token lacks the scope, or its user may not do this.",
    404: "No such repository (or one the caller may not see), user or webhook.",
}


def _errors(*statuses: int) -> dict[str, Any]:
    return error_responses(_REASONS, *statuses)


def _path(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema or {"type": "string"},
    }


_USERNAME = _path("username", "The owner's username, without the ~.")
_NAME = _path("name", "The repository's name (or an old name it had).")
_TOKEN = [{"token": []}]
_OPTIONAL_TOKEN = [*_TOKEN, {}]
_PAGING = [
    {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": "The `cursor` of the previous page.",
        "schema": {"type": "string"},
    },
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "Items per page.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 25},
    },
]
_NAME_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_NAME,
    "pattern": "^[A-Za-z0-9_][A-Za-z0-9._-]*$",
    "description": "Letters, digits, dots, dashes, underscores; not ending in .git.",
}


def openapi_document(origin: str) -> dict[str, Any]:
    """The OpenAPI 3.1 description of this API, served at
    ``/api/openapi.json``; a test checks each path against the app's routes."""
    repo = "/api/~{username}/repos/{name}"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "git API",
            "version": "1",
            "description": "Create, list, read, change and delete git repositories, their "
            "access grants and webhooks. Send a token from meta as "
            "`Authorization: Bearer <token>` with the scope `git/repos:RO` to "
            "read or `git/repos:RW` to also change.",
        },
        "servers": [{"url": origin}],
        "paths": {
            "/api/repos": {
                "get": {
                    "operationId": "listRepositories",
                    "summary": "The token owner's repositories, newest first (scope git/repos:RO).",
                    "security": _TOKEN,
                    "parameters": _PAGING,
                    "responses": {
                        "200": json_response(schema_ref("RepositoryList"), "A page."),
                        **_errors(400, 401, 403),
                    },
                },
                "post": {
                    "operationId": "createRepository",
                    "summary": "Create a repository (scope git/repos:RW).",
                    "security": _TOKEN,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": schema_ref("NewRepository")}},
                    },
                    "responses": {
                        "201": {
                            **json_response(schema_ref("Repository"), "The new repository."),
                            "headers": {
                                "Location": {
                                    "description": "The repository in this API.",
                                    "schema": {"type": "string"},
                                }
                            },
                        },
                        **_errors(400, 401, 403),
                    },
                },
            },
            "/api/~{username}/repos": {
                "parameters": [_USERNAME],
                "get": {
                    "operationId": "listUserRepositories",
                    "summary": "A user's repositories the caller sees listed (a token is "
                    "optional; with one, it needs git/repos:RO).",
                    "security": _OPTIONAL_TOKEN,
                    "parameters": _PAGING,
                    "responses": {
                        "200": json_response(schema_ref("RepositoryList"), "A page."),
                        **_errors(400, 401, 403, 404),
                    },
                },
            },
            repo: {
                "parameters": [_USERNAME, _NAME],
                "get": {
                    "operationId": "getRepository",
                    "summary": "A repository. Public and unlisted ones need no token.",
                    "security": _OPTIONAL_TOKEN,
                    "responses": {
                        "200": json_response(schema_ref("Repository"), "The repository."),
                        **_errors(401, 403, 404),
                    },
                },
                "patch": {
                    "operationId": "updateRepository",
                    "summary": "Rename a repository (its old name keeps working), or change "
                    "its description, visibility or default branch (owner, "
                    "git/repos:RW).",
                    "security": _TOKEN,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": schema_ref("RepositoryChange")}},
                    },
                    "responses": {
                        "200": json_response(schema_ref("Repository"), "The changed repository."),
                        **_errors(400, 401, 403, 404),
                    },
                },
                "delete": {
                    "operationId": "deleteRepository",
                    "summary": "Delete a repository and everything in it (owner, git/repos:RW).",
                    "security": _TOKEN,
                    "responses": {"204": {"description": "Deleted."}, **_errors(401, 403, 404)},
                },
            },
            repo + "/refs": {
                "parameters": [_USERNAME, _NAME],
                "get": {
                    "operationId": "listRefs",
                    "summary": "Branches and tags, most recent first.",
                    "security": _OPTIONAL_TOKEN,
                    "responses": {
                        "200": json_response(schema_ref("RefList"), "The refs."),
                        **_errors(401, 403, 404),
                    },
                },
            },
            repo + "/access": {
                "parameters": [_USERNAME, _NAME],
                "get": {
                    "operationId": "listAccess",
                    "summary": "Who else may read or write the repository (owner, git/repos:RO).",
                    "security": _TOKEN,
                    "responses": {
                        "200": json_response(schema_ref("GrantList"), "The grants."),
                        **_errors(401, 403, 404),
                    },
                },
            },
            repo + "/access/{grantee}": {
                "parameters": [
                    _USERNAME,
                    _NAME,
                    _path("grantee", "The username to give or take access."),
                ],
                "put": {
                    "operationId": "grantAccess",
                    "summary": "Give a user read (ro) or read and write (rw) access (owner, "
                    "git/repos:RW). The user must have used this service once.",
                    "security": _TOKEN,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["mode"],
                                    "properties": {"mode": {"type": "string", "enum": list(MODES)}},
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": json_response(schema_ref("Grant"), "The grant."),
                        **_errors(400, 401, 403, 404),
                    },
                },
                "delete": {
                    "operationId": "revokeAccess",
                    "summary": "Take a user's access away (owner, git/repos:RW).",
                    "security": _TOKEN,
                    "responses": {
                        "204": {"description": "Done (also when there was none)."},
                        **_errors(400, 401, 403, 404),
                    },
                },
            },
            repo + "/webhooks": {
                "parameters": [_USERNAME, _NAME],
                "get": {
                    "operationId": "listWebhooks",
                    "summary": "The URLs told about pushes (owner, git/repos:RO).",
                    "security": _TOKEN,
                    "responses": {
                        "200": json_response(schema_ref("WebhookList"), "The webhooks."),
                        **_errors(401, 403, 404),
                    },
                },
                "post": {
                    "operationId": "createWebhook",
                    "summary": "Tell a URL about every push: a signed POST of the "
                    "`repo:push` event with each ref's old and new id (owner, "
                    "git/repos:RW).",
                    "security": _TOKEN,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["url"],
                                    "properties": {
                                        "url": {
                                            "type": "string",
                                            "format": "uri",
                                            "maxLength": 2048,
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": json_response(schema_ref("Webhook"), "The webhook."),
                        **_errors(400, 401, 403, 404),
                    },
                },
            },
            repo + "/webhooks/{webhook_id}": {
                "parameters": [
                    _USERNAME,
                    _NAME,
                    _path("webhook_id", "The webhook's id.", {"type": "integer", "minimum": 0}),
                ],
                "delete": {
                    "operationId": "deleteWebhook",
                    "summary": "Stop telling a URL about pushes (owner, git/repos:RW).",
                    "security": _TOKEN,
                    "responses": {"204": {"description": "Deleted."}, **_errors(401, 403, 404)},
                },
            },
            repo + "/webhooks/deliveries": {
                "parameters": [_USERNAME, _NAME],
                "get": {
                    "operationId": "listDeliveries",
                    "summary": "The latest webhook deliveries, newest first (owner, git/repos:RO).",
                    "security": _TOKEN,
                    "responses": {
                        "200": json_response(schema_ref("DeliveryList"), "The deliveries."),
                        **_errors(401, 403, 404),
                    },
                },
            },
        },
        "components": {
            "securitySchemes": {
                "token": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A personal access token or OAuth2 access token issued by meta.",
                },
            },
            "schemas": _schemas(),
        },
    }


def _list(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["results"],
        "properties": {"results": {"type": "array", "items": schema_ref(item)}},
    }


def _schemas() -> dict[str, Any]:
    stamp = {"type": "string", "format": "date-time"}
    user = {
        "type": "object",
        "required": ["username", "canonical_name"],
        "properties": {"username": {"type": "string"}, "canonical_name": {"type": "string"}},
    }
    return {
        "Visibility": {
            "type": "string",
            "enum": list(VISIBILITIES),
            "description": "public: anyone, and listed on the owner's page; unlisted: anyone "
            "with the link; private: the owner and those granted access.",
        },
        "NewRepository": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": _NAME_SCHEMA,
                "description": {"type": ["string", "null"], "maxLength": MAX_DESCRIPTION},
                "visibility": {**schema_ref("Visibility"), "default": PUBLIC},
            },
        },
        "RepositoryChange": {
            "type": "object",
            "properties": {
                "name": _NAME_SCHEMA,
                "description": {
                    "type": ["string", "null"],
                    "maxLength": MAX_DESCRIPTION,
                    "description": "Empty clears it.",
                },
                "visibility": schema_ref("Visibility"),
                "default_branch": {
                    "type": ["string", "null"],
                    "description": "An existing branch.",
                },
            },
        },
        "Repository": {
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
                "owner": user,
                "description": {"type": ["string", "null"]},
                "visibility": schema_ref("Visibility"),
                "default_branch": {"type": ["string", "null"]},
                "url": {"type": "string", "format": "uri"},
                "clone_urls": {
                    "type": "object",
                    "required": ["http", "ssh"],
                    "properties": {"http": {"type": "string"}, "ssh": {"type": "string"}},
                },
                "created": stamp,
                "updated": stamp,
                "pushed": {
                    **stamp,
                    "type": ["string", "null"],
                    "description": "The last push; null before the first.",
                },
            },
        },
        "RepositoryList": {
            "type": "object",
            "required": ["results", "cursor"],
            "properties": {
                "results": {"type": "array", "items": schema_ref("Repository")},
                "cursor": {
                    "type": ["string", "null"],
                    "description": "Pass as ?cursor= for the next page; null on the last.",
                },
            },
        },
        "Ref": {
            "type": "object",
            "required": ["name", "kind", "target", "date"],
            "properties": {
                "name": {"type": "string"},
                "kind": {"type": "string", "enum": ["branch", "tag"]},
                "target": {"type": "string", "description": "A commit id."},
                "date": {**stamp, "type": ["string", "null"]},
            },
        },
        "RefList": _list("Ref"),
        "Grant": {
            "type": "object",
            "required": ["user", "mode", "created"],
            "properties": {
                "user": user,
                "mode": {"type": "string", "enum": list(MODES)},
                "created": stamp,
            },
        },
        "GrantList": _list("Grant"),
        "Webhook": {
            "type": "object",
            "required": ["id", "url", "events", "created"],
            "properties": {
                "id": {"type": "integer"},
                "url": {"type": "string"},
                "events": {"type": "array", "items": {"type": "string"}},
                "created": stamp,
            },
        },
        "WebhookList": _list("Webhook"),
        "Delivery": {
            "type": "object",
            "required": ["id", "url", "event", "status", "attempts", "response_status", "created"],
            "properties": {
                "id": {"type": "integer"},
                "url": {"type": "string"},
                "event": {"type": "string"},
                "status": {"type": "string"},
                "attempts": {"type": "integer"},
                "response_status": {"type": ["integer", "null"]},
                "created": {**stamp, "type": ["string", "null"]},
            },
        },
        "DeliveryList": _list("Delivery"),
        "Errors": API_ERRORS_SCHEMA,
    }
