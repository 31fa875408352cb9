"""Acting for a user: how a service of the site calls another service's
REST API on a user's behalf.

A service that works for its users across the site (hub collecting their
activity, builds reading the manifest in their repository) asks meta, over
meta's internal API, for a short-lived token that speaks for the user with
the scopes it names: :func:`delegated_token`. It then calls the other
service's public REST API with that token, exactly as a client the user
authorized would, and the other service checks it the usual way (seal,
expiry, scope, revocation, the user's own access to each object).

Only services of the site can ask (the request carries an internal
credential sealed with the network key, from an internal network). meta
refuses accounts that are unconfirmed, suspended or gone, names the asking
service in the token (``TokenGrant.client_id``, kind ``delegated``), and
every token it gives lasts :data:`DELEGATION_LIFETIME` seconds; it dies
sooner with the account (a deleted account is revoked everywhere, a
suspended one refused where the token is used). Tokens are kept here until
a minute before they expire, so a busy service asks meta about once per
user and set of scopes every quarter of an hour.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

from .cache import BoundedCache
from .errors import ApiError, ServiceUnreachable
from .globals import current_service
from .sealing import internal_request

__all__ = ["DELEGATION_LIFETIME", "call_service_api", "delegated_token"]

#: Seconds a delegated token lasts (meta decides; this is what it gives).
DELEGATION_LIFETIME = 900
#: A kept token is not used in its last seconds: a call may take that long.
MARGIN = 60

_tokens: BoundedCache[tuple[str, str, int, frozenset[str]], tuple[str, float]] = BoundedCache(4096)


def delegated_token(user_id: int, scopes: Iterable[str]) -> str:
    """A bearer token speaking for user ``user_id`` with ``scopes``
    (``["git/repos:RW"]``), from meta, kept until shortly before it expires.

    :raises ApiError: 503 when meta cannot be reached; 403 when meta refuses
        (the user is suspended or gone, or a scope is not one of the site's).

    .. versionadded:: 0.1
    """
    state = current_service()
    wanted = frozenset(scopes)
    key = (state.config["srht"]["network-key"], state.service.name, user_id, wanted)
    kept = _tokens.get(key)
    if kept is not None and kept[1] - MARGIN > time.time():
        return kept[0]
    try:
        answer = internal_request(
            "meta",
            "/internal/tokens/delegate",
            method="POST",
            body={"user": user_id, "scopes": sorted(wanted)},
            timeout=10,
        )
    except ServiceUnreachable as error:
        if error.status in (400, 403):
            raise ApiError(403, f"meta gives no token for user {user_id}: {error.reason}") from None
        raise ApiError(503, f"meta could not be asked for a token: {error}") from error
    if not isinstance(answer, dict) or "token" not in answer:
        raise ApiError(403, f"meta gives no token for user {user_id}: no such user")
    token, expires = str(answer["token"]), float(answer["expires"])
    _tokens.put(key, (token, expires))
    return token


def call_service_api(
    service: str,
    path: str,
    *,
    token: str | None = None,
    method: str = "GET",
    body: Any = None,
    timeout: float = 15.0,
) -> tuple[int, Any]:
    """Call ``service``'s public REST API at ``path`` (``/api/...``) as any
    client would, with ``token`` (from :func:`delegated_token`) as its
    bearer token and ``body`` sent as JSON. Returns ``(status, answer)``:
    the answer decoded when it is JSON, its bytes otherwise (an mbox).
    4xx answers are returned for the caller to explain.

    :raises ServiceUnreachable: the service is not in the config, cannot
        be reached, or answers 5xx (try again later).

    .. versionadded:: 0.1
    """
    origin = current_service().origins.get(service)
    if not origin:
        raise ServiceUnreachable(service, path, "this site has no such service")
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    # The origin is an http(s) URL of the config (checked by its schema).
    request = urllib.request.Request(  # noqa: S310
        origin + path, data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            status, kind, raw = answer.status, answer.headers.get_content_type(), answer.read()
    except urllib.error.HTTPError as error:
        status, kind, raw = error.code, error.headers.get_content_type(), error.read()
        if status >= 500:
            raise ServiceUnreachable(service, origin + path, f"answered {status}", status) from None
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise ServiceUnreachable(service, origin + path, f"cannot be reached ({reason})") from None
    if kind != "application/json":
        return status, raw
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        raise ServiceUnreachable(service, origin + path, "answered JSON that is not") from None
