"""API tokens, the verifying side: any service authenticates a bearer token
without asking meta on every request.

meta issues personal access tokens and OAuth2 access tokens as grants sealed
with the network key (kind, token id, user id, scopes, expiry), and keeps
only a hash of each. A service unseals the grant itself; to honour
revocation it asks meta for the tokens revoked since its last look (see
:mod:`.revocation`), so a revoked token stops working everywhere within
seconds (at once on meta itself).

Scopes are ``<service>/<resource>:RO`` or ``:RW``; ``RW`` includes ``RO``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from cryptography.fernet import Fernet, InvalidToken
from flask import g, request

from .cache import BoundedCache
from .errors import ApiError, wants_json
from .globals import SrhtState, current_service
from .identity import current_user, mirror_from_meta, user_by_id
from .sealing import seal

__all__ = [
    "TokenGrant",
    "api_user",
    "current_token",
    "parse_scopes",
    "require_scope",
    "seal_grant",
    "token_user",
    "verify_token",
    "viewer",
]

F = TypeVar("F", bound=Callable[..., Any])

_SCOPE = re.compile(r"^[a-z][a-z0-9-]*/[a-z][a-z0-9-]*:(RO|RW)$")


@dataclass(frozen=True)
class TokenGrant:
    """What a verified token allows."""

    kind: str
    token_id: int
    user_id: int
    scopes: frozenset[str]
    expires: float | None
    client_id: str | None = None

    def allows(self, scope: str, *, write: bool = False) -> bool:
        """Whether the token carries ``scope`` (``todo/tickets``) for
        reading, or for writing when ``write``."""
        if f"{scope}:RW" in self.scopes:
            return True
        return not write and f"{scope}:RO" in self.scopes


def parse_scopes(text: str) -> list[str]:
    """Split and check a scope string (``"todo/tickets:RW paste/pastes:RO"``).

    :raises ValueError: naming the first malformed scope.
    """
    scopes = [s for s in re.split(r"[\s,]+", text.strip()) if s]
    for scope in scopes:
        if not _SCOPE.match(scope):
            raise ValueError(f"{scope!r} is not a scope like service/resource:RO or :RW")
    return scopes


def seal_grant(grant: TokenGrant, state: SrhtState | None = None) -> str:
    """The bearer token for ``grant`` (meta calls this when issuing)."""
    return seal(
        {
            "k": grant.kind,
            "i": grant.token_id,
            "u": grant.user_id,
            "s": sorted(grant.scopes),
            "x": grant.expires,
            "c": grant.client_id,
        },
        state,
    )


#: Grants by ``(token, network key)``: a grant is immutable, so its seal is
#: checked once per token and key, while expiry and revocation are checked
#: on every request (in :func:`_verify`). Bad tokens are not kept.
_grants: BoundedCache[tuple[str, str], TokenGrant] = BoundedCache(4096)


def _open_grant(token: str, network_key: str) -> TokenGrant | None:
    """The grant sealed in ``token``, or ``None``."""
    found = _grants.get((token, network_key))
    if found is not None:
        return found
    try:
        data = json.loads(Fernet(network_key).decrypt(token.encode()))
        grant = TokenGrant(
            str(data["k"]),
            int(data["i"]),
            int(data["u"]),
            frozenset(data["s"]),
            data.get("x"),
            data.get("c"),
        )
    except (InvalidToken, ValueError, KeyError, TypeError):
        return None
    _grants.put((token, network_key), grant)
    return grant


def _verify(token: str, state: SrhtState) -> TokenGrant:
    if len(token) > 4096:
        raise ApiError(401, "the token is not valid (too long)")
    grant = _open_grant(token, state.config["srht"]["network-key"])
    if grant is None:
        raise ApiError(
            401, "the token is not valid (malformed, tampered with, or for another site)"
        )
    if grant.expires is not None and grant.expires < time.time():
        raise ApiError(401, "the token has expired")
    if state.is_revoked(grant.kind, grant.token_id, grant.user_id):
        raise ApiError(401, "the token has been revoked")
    return grant


def current_token() -> TokenGrant | None:
    """The verified bearer token of this request, ``None`` without one.

    :raises ApiError: 401 when a token is sent but not valid.
    """
    if "srht_token" in g:
        return g.srht_token  # type: ignore[no-any-return]
    header = request.headers.get("Authorization", "")
    g.srht_token = None
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "send the token as 'Authorization: Bearer <token>'")
    g.srht_token = _verify(token.strip(), current_service())
    return g.srht_token  # type: ignore[no-any-return]


def verify_token(token: str) -> TokenGrant:
    """Verify a raw token string that did not come as ``Authorization:
    Bearer`` (for git over HTTP it is the password of basic auth): the same
    checks as for a bearer token (seal, expiry, revocation).

    :raises ApiError: 401 saying why the token is not valid.

    .. versionadded:: 0.1
    """
    return _verify(token.strip(), current_service())


def token_user(grant: TokenGrant) -> Any:
    """The user ``grant`` speaks for, mirrored from meta on first sight.

    :raises ApiError: 401 when the user no longer exists, 403 when the
        account is suspended.

    .. versionadded:: 0.1
    .. versionchanged:: 0.1
        Kept in memory until the user's row changes (see :func:`api_user`).
    """
    state = current_service()
    model = state.schema.user_model if state.schema is not None else None
    if model is None:
        raise ApiError(500, "this service keeps no users")
    user = user_by_id(state, grant.user_id)
    if user is None and state.service.name != "meta":
        user = mirror_from_meta(grant.user_id)
    if user is None:
        raise ApiError(401, "the token's user no longer exists")
    if getattr(user, "user_type", "") == "suspended":
        raise ApiError(403, "this account is suspended")
    return user


def api_user() -> Any:
    """The user a valid token speaks for (mirrored on first sight), or
    ``None`` without a token.

    The user (here and behind :data:`current_user`) is a row of the
    request's session, as if just read, but usually read from memory:
    a request's own copy, which a view may change and commit. When the
    service's user model has no relationships and no deferred columns,
    the copy joins the request's session the moment the request first
    uses it, so a call that reads nothing else makes no session at all
    (see :meth:`Database.join_when_used`). Each worker keeps the users it
    has loaded (at most 10,000, least recently used out first) and drops
    one the moment PostgreSQL tells it that its row changed, whichever
    process changed it (an identity event suspending, updating or
    deleting the user, meta changing its type).
    So a suspended, deleted or changed user is seen by every worker once
    the commit's notification reaches it (well under a millisecond on one
    host), the window in which a request that read the row just before
    the commit answers with the old row anyway. Without a live row feed
    (SQLite; PostgreSQL while the feed's connection is down) nothing is
    kept and every request reads its user. Revocation is checked first on
    every request, as before: a revoked token or login session, or a
    deleted account, is refused within
    :data:`srht_core.revocation.REVOCATION_INTERVAL` (30 s) of meta's
    change, and every token once meta has not answered for
    :data:`srht_core.revocation.GRACE` (5 minutes).

    :raises ApiError: 401 for a bad token or a suspended or unknown user.

    .. versionchanged:: 0.1
        The user is kept in memory until its row changes (no query).
    .. versionchanged:: 0.1
        A user model without relationships joins the request's session
        when the request first uses it (no session made before).
    """
    grant = current_token()
    if grant is None:
        return None
    if "srht_api_user" in g:
        return g.srht_api_user
    g.srht_api_user = token_user(grant)
    return g.srht_api_user


def require_scope(scope: str, *, write: bool = False) -> Callable[[F], F]:
    """Require a bearer token carrying ``scope`` (``:RW`` when ``write``)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            grant = current_token()
            if grant is None:
                raise ApiError(401, "authentication required: send 'Authorization: Bearer <token>'")
            if not grant.allows(scope, write=write):
                access = "RW" if write else "RO"
                raise ApiError(403, f"the token lacks the scope {scope}:{access}")
            api_user()
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def viewer() -> Any:
    """Who is asking, as the service's user object, or ``None``: in an API
    request (``/api``), the user the bearer token speaks for (its scope
    already checked by the operation's declaration); on a page, the
    signed-in user. Not a proxy: safe to keep, compare and pass on.

    .. versionadded:: 0.1
    """
    if wants_json():
        return api_user()
    user = current_user._get_current_object()
    return user if user else None
