"""API tokens, the verifying side: any service authenticates a bearer token
without asking meta on every request.

meta issues personal access tokens and OAuth2 access tokens as grants sealed
with the network key (kind, token id, user id, scopes, expiry), and keeps
only a hash of each. A service unseals the grant itself; to honour
revocation it asks meta for the tokens revoked since its last look, at most
every :data:`REVOCATION_INTERVAL` seconds, so a revoked token stops working
everywhere within that time (at once on meta itself). While meta cannot be
reached, tokens are accepted for :data:`GRACE` seconds after its last
answer and refused (503) after that.

Scopes are ``<service>/<resource>:RO`` or ``:RW``; ``RW`` includes ``RO``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import TYPE_CHECKING, Any, TypeVar

from flask import g, request

from .errors import ApiError
from .identity import seal

if TYPE_CHECKING:
    from .app import SrhtState

__all__ = [
    "REVOCATION_INTERVAL",
    "TokenGrant",
    "api_user",
    "current_token",
    "parse_scopes",
    "require_scope",
    "seal_grant",
    "token_user",
    "verify_token",
]

log = logging.getLogger("srht.tokens")
F = TypeVar("F", bound=Callable[..., Any])

#: Seconds a service may go without asking meta for revocations.
REVOCATION_INTERVAL = 30
#: Seconds between two attempts to reach meta when it does not answer.
RETRY_INTERVAL = 5
#: Seconds tokens are still accepted after the last good answer from meta.
GRACE = 300
#: Seconds a revocation is kept past the expiry meta gave for it (a login
#: session's is reckoned from its record, made just before its cookie).
CLOCK_SKEW = 600
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


class RevocationCache:
    """Token ids meta has revoked, refreshed at most every interval.

    When meta cannot be reached, the cache retries every
    :data:`RETRY_INTERVAL` seconds (not on every request, which would stall
    them all) and keeps accepting tokens for :data:`GRACE` seconds after
    its last good answer; past that it refuses every token (503) rather
    than let a revoked one through indefinitely.
    """

    def __init__(self, interval: float = REVOCATION_INTERVAL):
        self.interval = interval
        #: ``{(kind, id): expires}``: when the revoked token or session would
        #: have stopped working anyway (UNIX time; ``None``: never). Past that
        #: (and :data:`CLOCK_SKEW`), the id is forgotten: nothing can present it.
        self.revoked: dict[tuple[str, int], float | None] = {}
        self.checked = -1e9  # last good answer (monotonic)
        self.tried = -1e9  # last attempt, good or not
        self.since = 0.0
        self.lock = threading.Lock()

    def is_revoked(self, kind: str, token_id: int) -> bool:
        now = time.monotonic()
        if now - self.checked > self.interval and now - self.tried > RETRY_INTERVAL:
            self.refresh()
        if time.monotonic() - self.checked > GRACE:
            raise ApiError(
                503,
                "token revocations cannot be checked right now (the "
                "identity service is unreachable); try again shortly",
            )
        return (kind, token_id) in self.revoked

    def refresh(self) -> None:
        from .identity import internal_request

        with self.lock:
            now = time.monotonic()
            if now - self.checked <= self.interval or now - self.tried <= RETRY_INTERVAL:
                return
            self.tried = now
            try:
                answer = internal_request(
                    "meta", f"/internal/tokens/revoked?since={self.since}", timeout=5
                )
            except OSError as error:
                log.warning("could not fetch token revocations from meta: %s", error)
                return
            for kind, token_id, *rest in (answer or {}).get("revoked", []):
                expires = rest[0] if rest else None  # meta before 0.1 sent no expiry
                self.revoked[(str(kind), int(token_id))] = (
                    None if expires is None else float(expires)
                )
            self.since = float((answer or {}).get("now", self.since))
            self.checked = time.monotonic()
            self.forget_expired(time.time())

    def forget_expired(self, now: float) -> None:
        """Drop revocations of what has expired by ``now`` (a UNIX time)."""
        horizon = now - CLOCK_SKEW
        for key in [
            key
            for key, expires in self.revoked.items()
            if expires is not None and expires < horizon
        ]:
            del self.revoked[key]


def is_revoked(kind: str, ident: int) -> bool:
    """Whether meta revoked token (``pat``, ``oauth``) or login session
    (``session``) number ``ident``: from the revocation cache, or, in meta
    itself, from its database (``app.extensions["srht.token_revoked"]``).

    :raises ApiError: 503 when meta has been unreachable past the grace
        period (see :class:`RevocationCache`).
    """
    from flask import current_app

    local: Callable[[str, int], bool] | None = current_app.extensions.get("srht.token_revoked")
    if local is not None:
        return local(kind, ident)
    cache: RevocationCache = current_app.extensions.setdefault(
        "srht.revocations", RevocationCache()
    )
    return cache.is_revoked(kind, ident)


def _revoked(state: SrhtState, grant: TokenGrant) -> bool:
    return is_revoked(grant.kind, grant.token_id)


@lru_cache(maxsize=4096)
def _open_grant(token: str, network_key: str) -> TokenGrant | None:
    """The grant sealed in ``token``, or ``None``. Cached: a grant is
    immutable and its seal is checked once per token and key, while expiry
    and revocation are checked on every request (in :func:`_verify`)."""
    from cryptography.fernet import Fernet, InvalidToken

    try:
        data = json.loads(Fernet(network_key).decrypt(token.encode()))
        return TokenGrant(
            str(data["k"]),
            int(data["i"]),
            int(data["u"]),
            frozenset(data["s"]),
            data.get("x"),
            data.get("c"),
        )
    except (InvalidToken, ValueError, KeyError, TypeError):
        return None


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
    if _revoked(state, grant):
        raise ApiError(401, "the token has been revoked")
    return grant


def current_token() -> TokenGrant | None:
    """The verified bearer token of this request, ``None`` without one.

    :raises ApiError: 401 when a token is sent but not valid.
    """
    from .app import current_service

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
    from .app import current_service

    return _verify(token.strip(), current_service())


def token_user(grant: TokenGrant) -> Any:
    """The user ``grant`` speaks for, mirrored from meta on first sight.

    :raises ApiError: 401 when the user no longer exists, 403 when the
        account is suspended.

    .. versionadded:: 0.1
    """
    from .app import current_service
    from .db import db_session
    from .identity import mirror_from_meta

    state = current_service()
    model = state.schema.user_model if state.schema is not None else None
    if model is None:
        raise ApiError(500, "this service keeps no users")
    user = db_session.get(model, grant.user_id)
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

    :raises ApiError: 401 for a bad token or a suspended or unknown user.
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
