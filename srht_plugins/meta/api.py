"""meta's APIs: the REST API under ``/api`` for people's programs, and the
internal API under ``/internal`` for the other services.

The REST API is declared with :class:`srht_core.Api`, which also writes its
OpenAPI document (``/api/openapi.json``) from :data:`DESCRIPTION` and the
operations below.

The internal API answers only a sealed internal credential from an
internal network (404 to anything else), and its paths and JSON shapes are
a contract every other service relies on:

- ``GET /internal/users/<id>``: a user's profile, to mirror it;
- ``GET /internal/tokens/revoked?since=<unix time>``: what was revoked
  since then, ``{"revoked": [[kind, id, expires], ...], "now": ...}``;
- ``GET /internal/ssh-keys?fingerprint=SHA256:...``: the key and its
  owner's profile, for git's ``AuthorizedKeysCommand``;
- ``POST /internal/tokens/delegate`` with ``{"user": id, "scopes": [...]}``:
  a short-lived token acting for the user, ``{"token", "expires"}``
  (:func:`srht_core.delegated_token` asks it).
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, g, request

from srht_core import (
    Api,
    ApiError,
    body_schema,
    cursor_paginate,
    db_session,
    internal_only_credential,
    viewer,
)

from .access import own_key
from .keys import MAX_PGP_LENGTH, MAX_SSH_LENGTH, add_pgp_key, add_ssh_key, commit_key, remove_key
from .models import PGPKey, SSHKey, User
from .tokens import delegate_token, revoked_since

DESCRIPTION = """\
The token owner's profile and public keys. Authentication: a bearer token
issued by meta, with the scopes `meta/profile` (the profile, email address
included) and `meta/keys` (SSH and PGP public keys), `:RO` to read and `:RW`
to add and remove keys. Every operation is about the token's own user;
another user's key is 404."""

api = Api(
    "meta",
    __name__,
    title="meta API",
    description=DESCRIPTION,
    reasons={
        404: "No such key among the token owner's.",
        409: "The key is on an account already: this one or another.",
    },
)
api.parameter("key_id", "The key's id.", {"type": "integer", "minimum": 1, "maximum": 2**31 - 1})

STAMP = {"type": "string", "format": "date-time"}
TEXT_OR_NULL = {"type": ["string", "null"]}
api.schema(
    "User",
    {
        "type": "object",
        "required": ["id", "canonical_name", "username", "email", "user_type", "created"],
        "properties": {
            "id": {"type": "integer"},
            "canonical_name": {"type": "string"},
            "username": {"type": "string"},
            "email": {"type": "string"},
            "user_type": {
                "type": "string",
                "enum": ["unconfirmed", "active", "admin", "suspended"],
            },
            "suspension_notice": TEXT_OR_NULL,
            "name": TEXT_OR_NULL,
            "url": TEXT_OR_NULL,
            "location": TEXT_OR_NULL,
            "bio": TEXT_OR_NULL,
            "created": STAMP,
        },
    },
)
api.schema(
    "SSHKey",
    {
        "type": "object",
        "required": ["id", "fingerprint", "key", "comment", "created", "last_used"],
        "properties": {
            "id": {"type": "integer"},
            "fingerprint": {"type": "string", "description": "SHA256:..., as ssh-keygen -l"},
            "key": {"type": "string", "description": "type and base64, without the comment"},
            "comment": TEXT_OR_NULL,
            "created": STAMP,
            "last_used": {"type": ["string", "null"], "format": "date-time"},
        },
    },
)
api.schema(
    "SSHKeyCreate",
    body_schema(
        {
            "key": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_SSH_LENGTH,
                "description": "One line of an id_*.pub file: Ed25519, ECDSA, or RSA of at "
                "least 2048 bits, with an optional comment.",
            }
        },
        required=["key"],
    ),
)
api.schema(
    "PGPKey",
    {
        "type": "object",
        "required": ["id", "fingerprint", "key", "created"],
        "properties": {
            "id": {"type": "integer"},
            "fingerprint": {"type": "string", "description": "upper-case hex"},
            "key": {"type": "string", "description": "the ASCII-armored public key"},
            "created": STAMP,
        },
    },
)
api.schema(
    "PGPKeyCreate",
    body_schema(
        {
            "key": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_PGP_LENGTH,
                "description": "An ASCII-armored public key (gpg --export --armor KEY-ID).",
            }
        },
        required=["key"],
    ),
)


def as_dict(item: SSHKey | PGPKey) -> dict[str, object]:
    return item.to_dict()


@api.operation(
    "get",
    "/user",
    "Your profile",
    scope="profile",
    response="User",
    anonymous=False,
)
def get_user() -> Any:
    """The profile of the token's owner (a token granted for tickets alone
    does not reveal its owner's email)."""
    return viewer().profile()


# -- keys ---------------------------------------------------------------------------------


@api.operation(
    "get",
    "/ssh-keys",
    "List your SSH keys",
    scope="keys",
    response="SSHKey",
    paged=True,
    anonymous=False,
)
def list_ssh_keys() -> Any:
    """The SSH keys of the token's owner, oldest first."""
    stmt = sa.select(SSHKey).where(SSHKey.user_id == viewer().id)
    return cursor_paginate(db_session, stmt, SSHKey.id, descending=False).json(as_dict)


@api.operation(
    "post",
    "/ssh-keys",
    "Add an SSH key",
    scope="keys",
    write=True,
    body="SSHKeyCreate",
    response="SSHKey",
    errors={409: "The key is on an account already."},
)
def create_ssh_key(body: dict[str, Any]) -> Any:
    """A key that is refused is a 400 (409 when it is on an account
    already) naming the field ``key``; nothing is stored."""
    key = add_ssh_key(viewer(), body["key"], how="by the API")
    commit_key()
    return key.to_dict()


@api.operation(
    "get", "/ssh-keys/{key_id}", "Get an SSH key", scope="keys", response="SSHKey", anonymous=False
)
def get_ssh_key(key_id: int) -> Any:
    return own_key(SSHKey, key_id, viewer()).to_dict()


@api.operation("delete", "/ssh-keys/{key_id}", "Remove an SSH key", scope="keys", write=True)
def delete_ssh_key(key_id: int) -> None:
    remove_key(own_key(SSHKey, key_id, viewer()))
    db_session.commit()


@api.operation(
    "get",
    "/pgp-keys",
    "List your PGP keys",
    scope="keys",
    response="PGPKey",
    paged=True,
    anonymous=False,
)
def list_pgp_keys() -> Any:
    """The PGP keys of the token's owner, oldest first."""
    stmt = sa.select(PGPKey).where(PGPKey.user_id == viewer().id)
    return cursor_paginate(db_session, stmt, PGPKey.id, descending=False).json(as_dict)


@api.operation(
    "post",
    "/pgp-keys",
    "Add a PGP key",
    scope="keys",
    write=True,
    body="PGPKeyCreate",
    response="PGPKey",
    errors={409: "The key is on an account already."},
)
def create_pgp_key(body: dict[str, Any]) -> Any:
    """A key that is refused is a 400 (409 when it is on an account
    already) naming the field ``key``; nothing is stored."""
    key = add_pgp_key(viewer(), body["key"])
    commit_key()
    return key.to_dict()


@api.operation(
    "get", "/pgp-keys/{key_id}", "Get a PGP key", scope="keys", response="PGPKey", anonymous=False
)
def get_pgp_key(key_id: int) -> Any:
    return own_key(PGPKey, key_id, viewer()).to_dict()


@api.operation("delete", "/pgp-keys/{key_id}", "Remove a PGP key", scope="keys", write=True)
def delete_pgp_key(key_id: int) -> None:
    remove_key(own_key(PGPKey, key_id, viewer()))
    db_session.commit()


# -- the internal API ------------------------------------------------------------------------

internal = Blueprint("meta_internal", __name__, url_prefix="/internal")


@internal.get("/users/<int:user_id>")
@internal_only_credential
def internal_user(user_id: int) -> Any:
    """A user's profile, for a service mirroring the user."""
    user = db_session.get(User, user_id)
    if user is None:
        abort(404)
    return user.profile()


@internal.get("/tokens/revoked")
@internal_only_credential
def internal_revoked() -> Any:
    """What was revoked since ``?since=`` (a UNIX time; absent or not a
    number: since ever), and meta's clock to ask from next time."""
    try:
        since = float(request.args.get("since", "0"))
    except ValueError:
        since = 0.0
    now = time.time()
    # Look back a little further than asked, so a revocation committed while
    # the previous answer was being made is not missed.
    return {"revoked": revoked_since(max(0.0, since - 5)), "now": now}


@internal.get("/ssh-keys")
@internal_only_credential
def internal_ssh_key() -> Any:
    """The SSH key whose fingerprint is ``?fingerprint=SHA256:...`` and its
    owner's profile (suspended or not: the caller decides), for the git
    service's AuthorizedKeysCommand."""
    fingerprint = request.args.get("fingerprint", "")
    key = db_session.scalar(sa.select(SSHKey).where(SSHKey.fingerprint == fingerprint))
    if key is None:
        abort(404)
    return {"fingerprint": key.fingerprint, "key": key.key, "user": key.user.profile()}


@internal.post("/tokens/delegate")
@internal_only_credential
def internal_delegate() -> Any:
    """A token acting for ``{"user": id}`` with ``{"scopes": [...]}``, for
    the calling service of the site; 403 for an account that may not act
    (unconfirmed or suspended), 404 for no such user, 400 for bad scopes."""
    body = request.get_json(silent=True)
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("user"), int)
        or not isinstance(body.get("scopes"), list)
        or not all(isinstance(s, str) for s in body["scopes"])
    ):
        raise ApiError(400, 'send {"user": <id>, "scopes": ["service/resource:RO", ...]}')
    user = db_session.get(User, body["user"])
    if user is None:
        abort(404)
    token, expires = delegate_token(user, body["scopes"], str(g.srht_internal_caller))
    return {"token": token, "expires": expires}
