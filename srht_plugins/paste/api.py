"""paste's REST API under ``/api``, declared with :class:`srht_core.Api`,
which also writes its OpenAPI document (``/api/openapi.json``).

Send a token from meta as `Authorization: Bearer <token>`, with the scope
`paste/pastes:RO` to read or `paste/pastes:RW` to also create and delete.
Reading one paste needs no token when the paste is public or unlisted, as
on the pages; a private paste is 404 to everyone but its owner. Lists page
with `?cursor=&limit=` and answer `{"results": [...], "next": ...}`. Every
error is `{"errors": [{"field": ..., "reason": ...}]}`.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from flask import url_for

from srht_core import (
    USER_REF_SCHEMA,
    Api,
    ApiError,
    body_schema,
    current_service,
    cursor_paginate,
    db_session,
    schema_ref,
    viewer,
)

from . import pastes
from .access import SLUG, find_paste, is_owner, listed_pastes
from .models import UNLISTED, VISIBILITIES, Paste, User
from .pastes import FILENAME, MAX_FILENAME, MAX_FILES, Limits, NewFile, check_paste

api = Api(
    "paste",
    __name__,
    title="paste API",
    description=(__doc__ or "").split("\n\n", 1)[1].strip(),
    reasons={404: "No such paste, or one the caller may not see."},
)

api.parameter(
    "id",
    "The paste's id, as in its URL.",
    {"type": "string", "pattern": SLUG.pattern},
    example="0123456789abcdef",
)

VISIBILITY = {
    "type": "string",
    "enum": list(VISIBILITIES),
    "description": "public: anyone, and listed on the owner's page; "
    "unlisted: anyone with the link; private: the owner only.",
}
api.schema(
    "NewFile",
    body_schema(
        {
            "filename": {
                "type": "string",
                "maxLength": MAX_FILENAME,
                "pattern": FILENAME.pattern,
                "description": "No control characters or line breaks; unique within the paste.",
            },
            "content": {
                "type": "string",
                "minLength": 1,
                "pattern": "^[^\\u0000]*$",
                "description": "The file's text, without NUL characters: at most "
                "[paste] max-file-size bytes as UTF-8 (1 MiB unless the site says "
                "otherwise), and all the files together at most max-paste-size.",
            },
        },
        required=["content"],
        description="A file of a new paste. Its name is optional; its extension picks "
        "the highlighting.",
    ),
)
api.schema(
    "NewPaste",
    body_schema(
        {
            "visibility": {**VISIBILITY, "default": UNLISTED},
            "files": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_FILES,
                "items": schema_ref("NewFile"),
            },
        },
        required=["files"],
    ),
)
api.schema(
    "File",
    {
        "type": "object",
        "required": ["position", "filename", "size", "raw_url"],
        "properties": {
            "position": {"type": "integer", "minimum": 1},
            "filename": {"type": "string"},
            "size": {"type": "integer", "minimum": 0, "description": "Bytes, as UTF-8."},
            "raw_url": {"type": "string", "format": "uri"},
            "content": {"type": "string", "description": "Only when one paste is read."},
        },
    },
)
api.schema(
    "Paste",
    {
        "type": "object",
        "required": ["id", "url", "owner", "visibility", "created", "files"],
        "properties": {
            "id": {"type": "string"},
            "url": {"type": "string", "format": "uri"},
            "owner": USER_REF_SCHEMA,
            "visibility": VISIBILITY,
            "created": {"type": "string", "format": "date-time"},
            "files": {"type": "array", "items": schema_ref("File")},
        },
    },
)


def paste_json(paste: Paste, owner: User, *, content: bool) -> dict[str, Any]:
    origin = current_service().origin
    page = url_for("pastes.view_paste", username=owner.username, slug=paste.slug)
    files = []
    for file in paste.files:
        raw = url_for(
            "files.raw_file", username=owner.username, slug=paste.slug, position=file.position
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


@api.operation(
    "get",
    "/pastes",
    "List your pastes",
    scope="pastes",
    response="Paste",
    paged=True,
    anonymous=False,
)
def list_pastes() -> dict[str, Any]:
    """The token owner's pastes, newest first, without their files' contents."""
    owner = viewer()
    page = cursor_paginate(db_session, listed_pastes(owner, owner).order_by(None), Paste.id)
    return page.json(lambda paste: paste_json(paste, owner, content=False))


@api.operation(
    "post",
    "/pastes",
    "Create a paste",
    scope="pastes",
    write=True,
    body="NewPaste",
    response="Paste",
    headers={
        "Location": {"description": "The new paste in this API.", "schema": {"type": "string"}}
    },
)
def create_paste(body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Visibility `unlisted` unless given. The file sizes, their total and
    that no two files share a name are checked here, with the pages' words."""
    owner = viewer()
    files = [NewFile(file.get("filename", ""), file["content"]) for file in body["files"]]
    visibility = body.get("visibility", UNLISTED)
    problems = check_paste(files, visibility, Limits.current())
    if problems:
        raise ApiError(400, errors=[(problem.field, problem.reason) for problem in problems])
    paste = pastes.create_paste(owner, files, visibility)
    db_session.commit()
    location = url_for("paste_api.get_paste", id=paste.slug)
    return paste_json(paste, owner, content=True), 201, {"Location": location}


@api.operation("get", "/pastes/{id}", "Get a paste", scope="pastes", response="Paste")
def get_paste(id: str) -> dict[str, Any]:
    """With the contents of its files. Public and unlisted pastes need no
    token."""
    paste = find_paste(id, viewer())
    if paste is None:
        raise ApiError(404, "no such paste", field="id")
    return paste_json(paste, paste.owner, content=True)


@api.operation("delete", "/pastes/{id}", "Delete one of your pastes", scope="pastes", write=True)
def delete_paste(id: str) -> None:
    """Only its owner may delete a paste."""
    user = viewer()
    paste = find_paste(id, user, with_content=False)
    if paste is None:
        raise ApiError(404, "no such paste", field="id")
    if not is_owner(paste, user):
        raise ApiError(403, "only its owner may delete a paste")
    db_session.delete(paste)
    db_session.commit()
