"""API writes: committed together with their answer, and safe to retry
with an ``Idempotency-Key``.

Every write request (POST, PUT, PATCH, DELETE) to a service's API (a
blueprint made with :func:`srht_core.api_blueprint`) is handled this way,
with no code in the service:

- **One commit, after the answer is made.** The view calls
  ``db_session.commit()`` as usual, but the request's commits are held
  (:func:`srht_core.db.hold_commits`): ``commit()`` flushes, so errors such
  as a taken unique name still surface in the view, and the core commits
  once the view has returned its answer. A request that fails on the way
  (an error, the database gone) has committed nothing: no write is ever
  answered as failed after it was committed. The one outcome no server
  can know is a commit cut off by the connection dropping; that is what
  the key is for.
- **Idempotency keys.** With an ``Idempotency-Key`` header (1 to 255
  printable ASCII characters; a UUID is a good key), the answer (status,
  body, ``Content-Type``, ``Location``) is stored in the service's
  database in the same transaction as the write, under the caller's token
  and the key. A retry with the same key and the same request (method,
  path, query string, content type and body) gets the stored answer again,
  with ``Idempotent-Replayed: true``, and changes nothing. The same key
  with a different request is refused with a 422 naming the header. Two
  identical requests racing with one key commit once: the second is
  rolled back and answered with the first one's answer. Keys belong to a
  token (a request with a key needs a bearer token) and are kept for
  :data:`KEEP_KEYS`.

What is stored: an answer below 400, and any answer below 500 of a
request whose view committed. Server errors (a 503 while the database is
away) and refusals that changed nothing are not: a retry with the same key
runs again.

The OpenAPI document of a service declares the header on its write
operations with :func:`idempotency_header_parameter`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, current_app, g, request
from sqlalchemy.orm import Session

from .db import (
    HeldCommit,
    database_unavailable,
    error_summary,
    hold_commits,
    release_commits,
    utcnow,
)
from .errors import ApiError, unavailable
from .globals import SrhtState, current_service
from .jobs import core_metadata
from .tokens import current_token

__all__ = [
    "HEADER",
    "KEEP_KEYS",
    "REPLAYED_HEADER",
    "idempotency_header_parameter",
    "idempotency_table",
    "init_app",
    "purge_expired_keys",
]

log = logging.getLogger("srht.idempotency")

HEADER = "Idempotency-Key"
#: Set on an answer replayed from a stored one.
REPLAYED_HEADER = "Idempotent-Replayed"
#: How long a key and its answer are kept.
KEEP_KEYS = timedelta(hours=24)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_KEY = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?")
_KEY_PATTERN = r"^[\x21-\x7e]([\x20-\x7e]{0,253}[\x21-\x7e])?$"

idempotency_table = sa.Table(
    "srht_idempotency_key",
    core_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    #: whose key: the token (``pat:12``, ``oauth:7``)
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("key", sa.String(255), nullable=False),
    #: SHA-256 of the request: method, path, query string, content type, body
    sa.Column("request", sa.String(64), nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("content_type", sa.String(255), nullable=True),
    sa.Column("location", sa.Text, nullable=True),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("created", sa.DateTime, nullable=False, index=True),
    sa.UniqueConstraint("owner", "key", name="uq_srht_idempotency_key_owner"),
    sqlite_autoincrement=True,  # a deleted row's id never comes back
)


def idempotency_header_parameter() -> dict[str, Any]:
    """The OpenAPI 3 parameter object of the ``Idempotency-Key`` header,
    for every write operation (POST, PUT, PATCH, DELETE) of a service's
    OpenAPI document.

    Every API write accepts the header, with no code in the service: the
    core stores the answer in the service's database in the same
    transaction as the write, under the caller's token and the key, and
    answers a retry with the same key and the same request with the stored
    status and body (``Idempotent-Replayed: true``), changing nothing. The
    same key with a different request is refused (422); a key needs a
    bearer token (400 without). Keys are kept 24 hours.

    Every API write also commits only once its answer is made, so a
    request that fails has committed nothing (see
    :func:`srht_core.db.hold_commits`).

    .. versionadded:: 0.1
    """
    return {
        "name": HEADER,
        "in": "header",
        "required": False,
        "description": (
            "Makes a retry of this request safe: the first answer is stored with the write "
            "and replayed (with `Idempotent-Replayed: true`) to a retry with the same key "
            "and the same request, which changes nothing. Reusing a key for a different "
            "request is refused (422). Keys belong to the token and are kept 24 hours; "
            "use a new UUID for each new request."
        ),
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": _KEY_PATTERN},
        "example": "5f0c3e2a-8d1b-4c52-9a57-0b8f8f6f2b1e",
    }


@dataclass
class _Write:
    """An API write in progress: its held commit and, with a key, whose
    key it is and what the request was."""

    held: HeldCommit
    owner: str | None = None
    key: str | None = None
    fingerprint: str | None = None


def init_app(app: Flask, state: SrhtState) -> None:
    """Handle the write requests of ``app``'s API blueprints (see the module)."""

    @app.before_request
    def begin_api_write() -> Response | None:
        if (
            request.method not in WRITE_METHODS
            or request.routing_exception is not None
            or not _is_api(app)
        ):
            return None
        session = state.db.scoped()
        key = request.headers.get(HEADER)
        if key is None:
            g.srht_api_write = _Write(hold_commits(session))
            return None
        if not _KEY.fullmatch(key):
            raise ApiError(
                400,
                "must be 1 to 255 printable ASCII characters, with no space at either end "
                "(a UUID is a good key)",
                field=HEADER,
            )
        grant = current_token()
        if grant is None:
            raise ApiError(
                400,
                "needs a bearer token (keys are kept per token): send 'Authorization: "
                "Bearer <token>'",
                field=HEADER,
            )
        owner = f"{grant.kind}:{grant.token_id}"
        fingerprint = _fingerprint()
        stored = _stored(session, owner, key)
        if stored is not None:
            return _replay(stored, fingerprint)
        g.srht_api_write = _Write(hold_commits(session), owner, key, fingerprint)
        return None

    @app.after_request
    def end_api_write(response: Response) -> Response:
        write: _Write | None = g.pop("srht_api_write", None)
        if write is None:
            return response
        return _finish(state.db.scoped(), write, response)


def _is_api(app: Flask) -> bool:
    return any(getattr(app.blueprints.get(name), "srht_api", False) for name in request.blueprints)


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for part in (request.method, request.path, request.query_string, request.mimetype):
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    digest.update(request.get_data(cache=True))
    return digest.hexdigest()


def _stored(session: Session, owner: str, key: str) -> Any:
    return session.execute(
        sa.select(idempotency_table).where(
            idempotency_table.c.owner == owner, idempotency_table.c.key == key
        )
    ).first()


def _replay(stored: Any, fingerprint: str) -> Response:
    if stored.request != fingerprint:
        error = ApiError(
            422,
            f"this key was already used for another request ({stored.method} {stored.path}); "
            "a new request needs a new key",
            field=HEADER,
        )
        return current_app.response_class(
            current_app.json.dumps(error.body()), status=422, content_type="application/json"
        )
    response = current_app.response_class(
        stored.body, status=stored.status, content_type=stored.content_type
    )
    if stored.location:
        response.headers["Location"] = stored.location
    response.headers[REPLAYED_HEADER] = "true"
    return response


def _finish(session: Session, write: _Write, response: Response) -> Response:
    """Commit the write with its answer (and its key), or roll it back."""
    status = response.status_code
    committed = write.held.requested and status < 500
    store = write.key is not None and (status < 400 or committed) and not response.is_streamed
    try:
        if not committed:
            release_commits(session, commit=False)
            if not store:
                return response
        if store:
            session.execute(
                idempotency_table.insert().values(
                    owner=write.owner,
                    key=write.key,
                    request=write.fingerprint,
                    method=request.method,
                    path=request.full_path.rstrip("?")[:2000],
                    status=status,
                    content_type=response.content_type,
                    location=response.headers.get("Location"),
                    body=response.get_data(),
                    created=utcnow(),
                )
            )
        release_commits(session, commit=True)
    except sa.exc.IntegrityError:
        session.rollback()
        if write.owner is None or write.key is None or write.fingerprint is None:
            raise
        stored = _stored(session, write.owner, write.key)
        session.rollback()
        if stored is None:
            raise
        # An identical request with the same key committed first: this one's
        # work is undone, and its answer is the first one's.
        return _replay(stored, write.fingerprint)
    except Exception as error:
        session.rollback()
        if not database_unavailable(error):
            raise
        log.warning(
            "could not commit %s %s: the database is unavailable (%s)",
            request.method,
            request.path,
            error_summary(error),
        )
        return unavailable()
    return response


def purge_expired_keys() -> None:
    """The ``srht.purge-idempotency-keys`` job: forget keys past :data:`KEEP_KEYS`."""
    with current_service().db.engine.begin() as connection:
        connection.execute(
            idempotency_table.delete().where(idempotency_table.c.created < utcnow() - KEEP_KEYS)
        )
