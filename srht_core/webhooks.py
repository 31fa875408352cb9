"""Webhooks: signed, recorded before they are sent, retried until delivered.

Every service sends webhooks the same way: :func:`send_webhook` records a
delivery row and a ``srht.deliver-webhook`` job in the caller's transaction;
the worker POSTs the payload with an Ed25519 signature over the body and a
fresh nonce (``X-Srht-Signature``, ``X-Srht-Nonce``, ``X-Srht-Timestamp``)
and keeps the response on the row. Failures retry with backoff. A service
shows its users a delivery log with :func:`deliveries` (by the subscription
key it gave :func:`send_webhook`) and a button calling :func:`redeliver`.

What is signed is ``<timestamp>.<nonce>.<body>`` (the two headers and the
raw body, joined by full stops); the signature is sent in base64.
Receivers verify it with the site's public key (:func:`webhook_signature_key`,
which a service shows where its users set up webhooks; ``srht keygen``
prints it too), refuse a timestamp more than :data:`MAX_SKEW` seconds from
their clock and a nonce they have seen: ``docs/webhooks.md`` explains it
to them, with an example. Within the site, :func:`verify_request` does
exactly that, recording each nonce it accepts.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy.orm import Session

from .db import utcnow
from .globals import current_service
from .jobs import core_metadata, enqueue
from .keys import webhook_public_key
from .pagination import CursorPage, cursor_paginate

__all__ = [
    "DELIVERY_SCHEMA",
    "Delivery",
    "WebhookError",
    "deliveries",
    "delivery_page",
    "delivery_table",
    "send_webhook",
    "sign",
    "verify",
    "verify_request",
    "webhook_signature_key",
]

#: A signed request older (or newer) than this is refused.
MAX_SKEW = 300
USER_AGENT = "srht-webhooks/1"

delivery_table = sa.Table(
    "srht_webhook_delivery",
    core_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("subscription", sa.String(128), nullable=True, index=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("event", sa.String(128), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("response_status", sa.Integer, nullable=True),
    sa.Column("response_body", sa.Text, nullable=True),
    sa.Column("internal", sa.Boolean, nullable=False, default=False),
    sa.Column("created", sa.DateTime, nullable=False),
    sa.Column("updated", sa.DateTime, nullable=False),
    sqlite_autoincrement=True,  # a deleted row's id never comes back
)

nonce_table = sa.Table(
    "srht_webhook_nonce",
    core_metadata,
    sa.Column("nonce", sa.String(64), primary_key=True),
    sa.Column("received", sa.DateTime, nullable=False, index=True),
)


class WebhookError(Exception):
    """A webhook request that must be refused; ``str()`` says why."""


def _private_key() -> Ed25519PrivateKey:
    raw = current_service().config["webhooks"]["private-key"]
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(raw))


def webhook_signature_key() -> str:
    """The public key (32 bytes, base64) that checks this site's webhook
    signatures: what the receiver of a webhook needs, so show it where
    users set webhooks up. How a receiver checks a delivery is in
    ``docs/webhooks.md``.

    .. versionadded:: 0.1
    """
    return webhook_public_key(str(current_service().config["webhooks"]["private-key"]))


def sign(body: bytes, nonce: str, timestamp: int, key: Ed25519PrivateKey | None = None) -> str:
    """The base64 signature of ``timestamp.nonce.body``."""
    key = key or _private_key()
    return base64.b64encode(key.sign(_signed(body, nonce, timestamp))).decode()


def _signed(body: bytes, nonce: str, timestamp: int) -> bytes:
    return f"{timestamp}.{nonce}.".encode() + body


def verify(
    body: bytes,
    nonce: str,
    timestamp: int,
    signature: str,
    public_key: Ed25519PublicKey | None = None,
) -> None:
    """Check a signature and the timestamp's freshness.

    :raises WebhookError: saying what is wrong.
    """
    if public_key is None:
        public_key = _private_key().public_key()
    if abs(time.time() - timestamp) > MAX_SKEW:
        raise WebhookError("timestamp too far from now (clocks out of sync, or a replay)")
    try:
        public_key.verify(base64.b64decode(signature), _signed(body, nonce, timestamp))
    except (InvalidSignature, ValueError) as error:
        raise WebhookError("signature does not match") from error


def signed_headers(body: bytes) -> dict[str, str]:
    nonce = secrets.token_hex(16)
    timestamp = int(time.time())
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Srht-Nonce": nonce,
        "X-Srht-Timestamp": str(timestamp),
        "X-Srht-Signature": sign(body, nonce, timestamp),
    }


def verify_request(session: Session) -> dict[str, Any]:
    """Verify the current Flask request as a webhook from this site and
    record its nonce; return the JSON payload (``{"event", "data"}``). A
    service receiving another's webhooks (hub's activity, builds' pushes)
    calls it in its receiving view, with the request's session.

    :raises WebhookError: bad or missing signature, stale timestamp, or a
        nonce seen before.

    .. versionadded:: 0.1
       In the facade, for services that receive webhooks.
    """
    from flask import request

    body = request.get_data()
    nonce = request.headers.get("X-Srht-Nonce", "")
    signature = request.headers.get("X-Srht-Signature", "")
    stamp = request.headers.get("X-Srht-Timestamp", "")
    if not nonce or not signature or not stamp.isdigit() or len(nonce) > 64:
        raise WebhookError("missing or malformed X-Srht-Nonce, -Timestamp or -Signature")
    verify(body, nonce, int(stamp), signature)
    now = utcnow()
    session.execute(nonce_table.delete().where(nonce_table.c.received < now - _skew_delta()))
    try:
        with session.begin_nested():
            session.execute(nonce_table.insert().values(nonce=nonce, received=now))
    except sa.exc.IntegrityError:
        raise WebhookError("nonce already used: replay refused") from None
    try:
        payload = json.loads(body)
    except ValueError:
        raise WebhookError("body is not JSON") from None
    if not isinstance(payload, dict):
        raise WebhookError("body is not a JSON object")
    return payload


def _skew_delta() -> Any:
    from datetime import timedelta

    return timedelta(seconds=2 * MAX_SKEW)


@dataclass(frozen=True)
class Delivery:
    """One recorded webhook delivery, as a delivery log shows it."""

    id: int
    url: str
    event: str
    status: str
    subscription: str | None = None
    payload: str = ""
    attempts: int = 0
    response_status: int | None = None
    response_body: str | None = None
    created: datetime | None = None
    updated: datetime | None = None

    @classmethod
    def from_row(cls, row: Any) -> Delivery:
        return cls(
            row.id,
            row.url,
            row.event,
            row.status,
            row.subscription,
            row.payload,
            row.attempts,
            row.response_status,
            row.response_body,
            row.created,
            row.updated,
        )

    def to_dict(self) -> dict[str, Any]:
        """What an API shows of it (:data:`DELIVERY_SCHEMA`)."""
        return {
            "id": self.id,
            "event": self.event,
            "url": self.url,
            "status": self.status,
            "attempts": self.attempts,
            "response_status": self.response_status,
            "created": _stamp(self.created),
            "updated": _stamp(self.updated),
        }


def _stamp(value: datetime | None) -> str | None:
    return value.replace(tzinfo=UTC).isoformat() if value is not None else None


#: The JSON schema of :meth:`Delivery.to_dict`, for a service's OpenAPI document.
DELIVERY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "event", "url", "status", "attempts", "response_status", "created"],
    "properties": {
        "id": {"type": "integer"},
        "event": {"type": "string"},
        "url": {"type": "string"},
        "status": {
            "type": "string",
            "description": "pending, delivered, failing (being retried) or refused (the "
            "URL points inside the site's networks).",
        },
        "attempts": {"type": "integer"},
        "response_status": {"type": ["integer", "null"]},
        "created": {"type": ["string", "null"], "format": "date-time"},
        "updated": {"type": ["string", "null"], "format": "date-time"},
    },
}


def delivery_page(subscription: str, *, session: Session | None = None) -> CursorPage[Delivery]:
    """The deliveries recorded with ``subscription``, newest first, paged
    by ``?cursor=`` and ``?limit=`` like every API list.

    .. versionadded:: 0.1
    """
    session = session if session is not None else current_service().db.scoped()
    stmt = sa.select(delivery_table).where(delivery_table.c.subscription == subscription)
    page = cursor_paginate(session, stmt, delivery_table.c.id, scalars=False)
    return CursorPage([Delivery.from_row(row) for row in page.items], page.next)


def deliveries(
    subscription: str,
    *,
    ids: Iterable[int] | None = None,
    limit: int = 50,
    session: Session | None = None,
) -> list[Delivery]:
    """The deliveries recorded with ``subscription`` (the key given to
    :func:`send_webhook`), newest first: what a service's delivery log shows.

    :param ids: only these delivery ids, to check that a delivery a user
        names belongs to the subscription before acting on it.
    :param limit: at most this many.

    .. versionadded:: 0.1
    """
    session = session if session is not None else current_service().db.scoped()
    stmt = (
        sa.select(delivery_table)
        .where(delivery_table.c.subscription == subscription)
        .order_by(delivery_table.c.id.desc())
        .limit(limit)
    )
    if ids is not None:
        stmt = stmt.where(delivery_table.c.id.in_(list(ids)))
    return [Delivery.from_row(row) for row in session.execute(stmt)]


def send_webhook(
    url: str,
    event: str,
    payload: dict[str, Any],
    *,
    subscription: str | None = None,
    session: Session | None = None,
    internal: bool = False,
) -> int:
    """Record a webhook to ``url`` and the job that delivers it, in the
    caller's transaction. Returns the delivery id.

    :param subscription: an opaque key of the sender's (``tracker:12``) to
        list deliveries by.
    :param internal: a delivery between this site's own services (identity
        events). Others, whose URL a user chose, are refused when it
        resolves to a loopback, private or link-local address, unless
        ``[webhooks] allow-private-targets`` is on or the site runs in the
        development environment.
    """
    session = session if session is not None else current_service().db.scoped()
    now = utcnow()
    body = json.dumps({"event": event, "data": payload}, sort_keys=True)
    delivery_id = int(
        session.execute(
            delivery_table.insert()
            .values(
                subscription=subscription,
                url=url,
                event=event,
                payload=body,
                status="pending",
                attempts=0,
                internal=internal,
                created=now,
                updated=now,
            )
            .returning(delivery_table.c.id)
        ).scalar_one()
    )
    enqueue("srht.deliver-webhook", session=session, delivery=delivery_id)
    return delivery_id


def redeliver(
    delivery_id: int, session: Session | None = None, *, subscription: str | None = None
) -> int:
    """Queue a recorded delivery again (for a delivery log's button).

    :param subscription: only a delivery recorded with this key (the one
        given to :func:`send_webhook`): what a page or an API checks before
        acting on a delivery id a user sent.
    :raises LookupError: with ``subscription``, when the delivery is not
        one of its own (nothing is queued).

    .. versionchanged:: 0.1
        ``subscription``.
    """
    session = session if session is not None else current_service().db.scoped()
    if subscription is not None and not deliveries(
        subscription, ids=[delivery_id], session=session
    ):
        raise LookupError(f"no delivery {delivery_id} of {subscription}")
    session.execute(
        delivery_table.update()
        .where(delivery_table.c.id == delivery_id)
        .values(status="pending", updated=utcnow())
    )
    return enqueue("srht.deliver-webhook", session=session, delivery=delivery_id)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A webhook is answered where it was sent: a redirect could lead a
    delivery to an address the target check refused."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _target_refusal(url: str) -> str | None:
    """Why a user-chosen webhook URL may not be delivered to, or ``None``."""
    import ipaddress
    import socket
    from urllib.parse import urlsplit

    config = current_service().config
    if (
        config.get("webhooks", "allow-private-targets")
        or config.get("srht", "environment") == "development"
    ):
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"refused: {url} is not an http(s) URL"
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError:
        return None  # unresolvable now: the delivery itself fails, and is retried
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            return (
                f"refused: {parts.hostname} resolves to {address}, which is not a public "
                "address (see [webhooks] allow-private-targets)"
            )
    return None


def deliver(delivery: int) -> None:
    """The ``srht.deliver-webhook`` job: POST one recorded delivery."""
    import urllib.error
    import urllib.request

    engine = current_service().db.engine
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(delivery_table).where(delivery_table.c.id == delivery)
        ).first()
    if row is None or row.status == "delivered":
        return
    refusal = None if row.internal else _target_refusal(row.url)
    if refusal is not None:
        # Final: retrying cannot change where the URL points to.
        with engine.begin() as connection:
            connection.execute(
                delivery_table.update()
                .where(delivery_table.c.id == delivery)
                .values(status="refused", response_body=refusal, updated=utcnow())
            )
        return
    body = row.payload.encode()
    request = urllib.request.Request(  # noqa: S310 - webhook URLs are checked to be http(s)
        row.url,
        data=body,
        method="POST",
        headers=signed_headers(body),
    )
    status: int | None = None
    text = ""
    error: str | None = None
    try:
        with _OPENER.open(request, timeout=15) as response:
            status = response.status
            text = response.read(2048).decode(errors="replace")
    except urllib.error.HTTPError as http_error:
        status = http_error.code
        text = http_error.read(2048).decode(errors="replace")
        error = f"{row.url} answered {status}"
    except (OSError, ValueError) as os_error:
        error = f"{row.url} unreachable: {os_error}"
        text = str(os_error)
    delivered = error is None and status is not None and 200 <= status < 300
    with engine.begin() as connection:
        connection.execute(
            delivery_table.update()
            .where(delivery_table.c.id == delivery)
            .values(
                status="delivered" if delivered else "failing",
                attempts=delivery_table.c.attempts + 1,
                response_status=status,
                response_body=text[:2048],
                updated=utcnow(),
            )
        )
    if not delivered:
        raise WebhookError(error or f"{row.url} answered {status}")
