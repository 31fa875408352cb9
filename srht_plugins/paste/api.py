"""paste's REST API under ``/api`` and its OpenAPI 3 document.

Tokens come from meta with the scope ``paste/pastes:RO`` (read) or
``paste/pastes:RW`` (also create and delete). Reading one paste needs no
token when the paste is public or unlisted, as on the pages; a private
paste is 404 to everyone but its owner. Every error is
``{"errors": [{"field": ..., "reason": ...}]}``.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from flask import Response, url_for

from srht_core import (
    API_ERRORS_SCHEMA,
    ApiError,
    api_blueprint,
    api_user,
    current_service,
    current_token,
    cursor_paginate,
    db_session,
    error_responses,
    json_object,
    json_response,
    require_scope,
)

from .models import UNLISTED, VISIBILITIES, Paste, User
from .pastes import (
    MAX_FILENAME,
    MAX_FILES,
    SLUG,
    Limits,
    NewFile,
    check_paste,
    create_paste,
    find_paste,
    listed_for,
)

api = api_blueprint("paste_api", __name__)
SCOPE = "paste/pastes"


def paste_json(paste: Paste, owner: User, *, content: bool) -> dict[str, Any]:
    origin = current_service().origin
    page = url_for("paste.view_paste", username=owner.username, slug=paste.slug)
    files = []
    for file in paste.files:
        raw = url_for(
            "paste.raw_file", username=owner.username, slug=paste.slug, position=file.position
        )
        entry: dict[str, Any] = {
            "position": file.position,
            "filename": file.filename,
            "size": file.size,
            "raw_url": origin + raw,
        }
        if content:
            entry["content"] = file.content
        files.append(entry)
    return {
        "id": paste.slug,
        "url": origin + page,
        "owner": {"username": owner.username, "canonical_name": owner.canonical_name},
        "visibility": paste.visibility,
        "created": paste.created.replace(tzinfo=UTC).isoformat(),
        "files": files,
    }


def _new_files(data: Any) -> tuple[list[NewFile], str]:
    """The files and visibility of a create request, checked for shape."""
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object (Content-Type: application/json)")
    errors: list[tuple[str | None, str]] = []
    visibility = data.get("visibility", UNLISTED)
    if not isinstance(visibility, str):
        errors.append(("visibility", "must be one of " + ", ".join(VISIBILITIES)))
        visibility = ""
    raw_files = data.get("files")
    files: list[NewFile] = []
    if not isinstance(raw_files, list):
        errors.append(("files", 'must be a list of {"filename": ..., "content": ...}'))
        raw_files = []
    for index, raw in enumerate(raw_files):
        if not isinstance(raw, dict):
            errors.append(
                (f"files[{index}]", 'must be an object {"filename": ..., "content": ...}')
            )
            continue
        filename = raw.get("filename") or ""
        content = raw.get("content")
        if not isinstance(filename, str):
            errors.append((f"files[{index}].filename", "must be a string"))
        if not isinstance(content, str):
            errors.append((f"files[{index}].content", "must be a string (the file's text)"))
        if isinstance(filename, str) and isinstance(content, str):
            files.append(NewFile(filename, content))
    if errors:
        raise ApiError(400, errors=errors)
    return files, visibility


@api.get("/pastes")
@require_scope(SCOPE)
def list_pastes() -> Any:
    """The token owner's pastes, newest first."""
    owner = api_user()
    page = cursor_paginate(db_session, listed_for(owner, owner).order_by(None), Paste.id)
    return {
        "results": [paste_json(p, owner, content=False) for p in page.items],
        "cursor": page.next,
    }


@api.post("/pastes")
@require_scope(SCOPE, write=True)
def create() -> Any:
    owner = api_user()
    files, visibility = _new_files(json_object())
    limits = Limits.from_section(current_service().section)
    problems = check_paste(files, visibility, limits)
    if problems:
        raise ApiError(
            400,
            errors=[
                (p.field if p.index is None else f"files[{p.index}].{p.field}", p.reason)
                for p in problems
            ],
        )
    paste = create_paste(owner, files, visibility)
    db_session.commit()
    body = paste_json(paste, owner, content=True)
    return body, 201, {"Location": url_for("paste_api.get_paste", slug=paste.slug)}


def _viewer(write: bool = False) -> Any:
    """Who asks: the token's user, or ``None`` without a token."""
    grant = current_token()
    if grant is None:
        return None
    if not grant.allows(SCOPE, write=write):
        raise ApiError(403, f"the token lacks the scope {SCOPE}:{'RW' if write else 'RO'}")
    return api_user()


@api.get("/pastes/<slug>")
def get_paste(slug: str) -> Any:
    paste = find_paste(slug, _viewer())
    if paste is None:
        raise ApiError(404, "no such paste", field="id")
    return paste_json(paste, paste.owner, content=True)


@api.delete("/pastes/<slug>")
@require_scope(SCOPE, write=True)
def delete(slug: str) -> Any:
    user = api_user()
    paste = find_paste(slug, user, with_content=False)
    if paste is None:
        raise ApiError(404, "no such paste", field="id")
    if paste.owner_id != user.id:
        raise ApiError(403, "only its owner may delete a paste")
    db_session.delete(paste)
    db_session.commit()
    return Response(status=204)


@api.get("/openapi.json")
def openapi() -> Any:
    return openapi_document(current_service().origin)


# -- the OpenAPI document ------------------------------------------------------------


_REASONS = {
    400: "The request is malformed; each error names the field to blame.",
    401: "No token, or one that is not valid (malformed, expired or revoked).",
    403: "The token lacks the scope, or its user may not do this.",
    404: "No such paste, or one the caller may not see.",
}


def _errors(*statuses: int) -> dict[str, Any]:
    return error_responses(_REASONS, *statuses)


_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "The paste's id, as in its URL.",
    "schema": {"type": "string", "pattern": SLUG.pattern},
}
_TOKEN: list[dict[str, list[str]]] = [{"token": []}]


def openapi_document(origin: str) -> dict[str, Any]:
    """The OpenAPI 3.1 description of this API, served at
    ``/api/openapi.json``; a test checks each path against the app's routes."""
    text_without_nul = "^[^\\u0000]*$"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "paste API",
            "version": "1",
            "description": "Create, list, read and delete pastes. Send a token from meta as "
            "`Authorization: Bearer <token>` with the scope `paste/pastes:RO` "
            "to read or `paste/pastes:RW` to also create and delete.",
        },
        "servers": [{"url": origin}],
        "paths": {
            "/api/pastes": {
                "get": {
                    "operationId": "listPastes",
                    "summary": "The token owner's pastes, newest first (scope paste/pastes:RO).",
                    "security": _TOKEN,
                    "parameters": [
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
                            "description": "Pastes per page.",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 100,
                                "default": 25,
                            },
                        },
                    ],
                    "responses": {
                        "200": json_response(
                            {"$ref": "#/components/schemas/PasteList"},
                            "A page of pastes, without file contents.",
                        ),
                        **_errors(400, 401, 403),
                    },
                },
                "post": {
                    "operationId": "createPaste",
                    "summary": "Create a paste (scope paste/pastes:RW).",
                    "security": _TOKEN,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/NewPaste"}
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            **json_response(
                                {"$ref": "#/components/schemas/Paste"}, "The new paste."
                            ),
                            "headers": {
                                "Location": {
                                    "description": "The new paste in this API.",
                                    "schema": {"type": "string"},
                                }
                            },
                        },
                        **_errors(400, 401, 403),
                    },
                },
            },
            "/api/pastes/{id}": {
                "parameters": [_ID],
                "get": {
                    "operationId": "getPaste",
                    "summary": "A paste with the contents of its files. Public and unlisted "
                    "pastes need no token; with one, it needs paste/pastes:RO.",
                    "security": [*_TOKEN, {}],
                    "responses": {
                        "200": json_response({"$ref": "#/components/schemas/Paste"}, "The paste."),
                        **_errors(401, 403, 404),
                    },
                },
                "delete": {
                    "operationId": "deletePaste",
                    "summary": "Delete one of your pastes (scope paste/pastes:RW).",
                    "security": _TOKEN,
                    "responses": {
                        "204": {"description": "Deleted."},
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
            "schemas": {
                "Visibility": {
                    "type": "string",
                    "enum": list(VISIBILITIES),
                    "description": "public: anyone, and listed on the owner's page; "
                    "unlisted: anyone with the link; private: the owner only.",
                },
                "NewFile": {
                    "type": "object",
                    "required": ["content"],
                    "properties": {
                        "filename": {
                            "type": "string",
                            "maxLength": MAX_FILENAME,
                            "pattern": "^[^\\u0000-\\u001f\\u007f]*$",
                            "description": "Optional; picks the highlighting. "
                            "Unique within the paste.",
                        },
                        "content": {
                            "type": "string",
                            "minLength": 1,
                            "pattern": text_without_nul,
                            "description": "The file's text, at most [paste] "
                            "max-file-size bytes as UTF-8.",
                        },
                    },
                },
                "NewPaste": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "visibility": {
                            "$ref": "#/components/schemas/Visibility",
                            "default": UNLISTED,
                        },
                        "files": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_FILES,
                            "items": {"$ref": "#/components/schemas/NewFile"},
                        },
                    },
                },
                "File": {
                    "type": "object",
                    "required": ["position", "filename", "size", "raw_url"],
                    "properties": {
                        "position": {"type": "integer", "minimum": 1},
                        "filename": {"type": "string"},
                        "size": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Bytes, as UTF-8.",
                        },
                        "raw_url": {"type": "string", "format": "uri"},
                        "content": {
                            "type": "string",
                            "description": "Only when one paste is read.",
                        },
                    },
                },
                "Paste": {
                    "type": "object",
                    "required": ["id", "url", "owner", "visibility", "created", "files"],
                    "properties": {
                        "id": {"type": "string"},
                        "url": {"type": "string", "format": "uri"},
                        "owner": {
                            "type": "object",
                            "required": ["username", "canonical_name"],
                            "properties": {
                                "username": {"type": "string"},
                                "canonical_name": {"type": "string"},
                            },
                        },
                        "visibility": {"$ref": "#/components/schemas/Visibility"},
                        "created": {"type": "string", "format": "date-time"},
                        "files": {"type": "array", "items": {"$ref": "#/components/schemas/File"}},
                    },
                },
                "PasteList": {
                    "type": "object",
                    "required": ["results", "cursor"],
                    "properties": {
                        "results": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Paste"},
                        },
                        "cursor": {
                            "type": ["string", "null"],
                            "description": "Pass as ?cursor= for the next page; null on the last.",
                        },
                    },
                },
                "Errors": API_ERRORS_SCHEMA,
            },
        },
    }
