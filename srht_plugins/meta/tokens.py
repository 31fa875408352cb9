"""Personal access tokens, and the list of what meta revoked.

A personal access token is one of the core's sealed grants (kind ``pat``,
the :class:`~.models.PersonalAccessToken` id), so every service verifies it
without asking meta; meta keeps only its hash. What meta revoked (personal
access tokens, OAuth2 tokens, login sessions) reaches the other services
through the internal API (:func:`revoked_since`), and meta itself answers
from its database (:func:`token_revoked`, its ``is_revoked`` hook).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from srht_core import (
    DELEGATION_LIFETIME,
    LOGIN_LIFETIME,
    Problem,
    TokenGrant,
    current_service,
    db_session,
    parse_scopes,
    seal_grant,
    utcnow,
)

from .accounts import audit
from .models import (
    ACTIVE,
    ADMIN,
    DeletedUser,
    LoginSession,
    OAuthToken,
    PersonalAccessToken,
    User,
    new_token,
    token_hash,
)

__all__ = [
    "delegate_token",
    "issue_personal_token",
    "known_scopes",
    "revoke_personal_token",
    "revoked_since",
    "token_revoked",
]


def known_scopes() -> dict[str, str]:
    """``{"todo/tickets": "description"}`` for every enabled service."""
    state = current_service()
    return state.plugins.oauth_scopes([r.name for r in state.plugins.enabled(state.config)])


def issue_personal_token(
    user: User, scopes: str, *, expires_days: int | None = None, comment: str | None = None
) -> str:
    """A new personal access token for ``user`` (shown once; stored hashed).

    :raises srht_core.Problem: for malformed or unknown scopes, or none.
    """
    try:
        wanted = parse_scopes(scopes)
    except ValueError as error:
        raise Problem("scopes", str(error)) from None
    known = known_scopes()
    unknown = [s for s in wanted if s.rsplit(":", 1)[0] not in known]
    if unknown:
        raise Problem(
            "scopes", f"unknown scope {unknown[0]}; this site offers: " + ", ".join(sorted(known))
        )
    if not wanted:
        raise Problem("scopes", "choose at least one scope")
    expires: datetime | None = None
    if expires_days is not None:
        expires = utcnow() + timedelta(days=expires_days)
    # The row's id goes into the sealed token, so the hash is set after the flush.
    pat = PersonalAccessToken(
        user_id=user.id,
        comment=comment,
        scopes=" ".join(wanted),
        token_hash=f"pending:{new_token()}",
        expires=expires,
    )
    db_session.add(pat)
    db_session.flush()
    expiry = time.time() + expires_days * 86400 if expires_days is not None else None
    token = seal_grant(TokenGrant("pat", pat.id, user.id, frozenset(wanted), expiry))
    pat.token_hash = token_hash(token)
    audit(user, "personal access token issued", comment)
    return token


def delegate_token(user: User, scopes: list[str], service: str) -> tuple[str, float]:
    """A token acting for ``user`` with ``scopes``, for the site's service
    ``service`` (hub collecting activity, builds cloning a source), and when
    it expires: ``DELEGATION_LIFETIME`` seconds from now.

    It is kept nowhere: it dies with its expiry, or at once with the
    account (meta lists a deleted account as revoked), and a suspended
    account's token is refused where it is used.

    :raises srht_core.Problem: (403) for an account that may not act now;
        (400) for malformed or unknown scopes, or none.
    """
    if user.user_type not in (ACTIVE, ADMIN):
        raise Problem("user", f"~{user.username}'s account is {user.user_type}", 403)
    try:
        wanted = parse_scopes(" ".join(scopes))
    except ValueError as error:
        raise Problem("scopes", str(error)) from None
    known = known_scopes()
    unknown = [s for s in wanted if s.rsplit(":", 1)[0] not in known]
    if unknown or not wanted:
        raise Problem("scopes", f"unknown scope {unknown[0]}" if unknown else "no scopes asked for")
    expires = time.time() + DELEGATION_LIFETIME
    grant = TokenGrant("delegated", 0, user.id, frozenset(wanted), expires, client_id=service)
    return seal_grant(grant), expires


def revoke_personal_token(pat: PersonalAccessToken) -> None:
    """Revoke ``pat`` (not committed); every service refuses it from its
    next revocation poll on."""
    if pat.revoked_at is None:
        pat.revoked_at = utcnow()
        audit(pat.user, "personal access token revoked", pat.comment)


def revoked_since(since: float) -> list[tuple[str, int, float | None]]:
    """Tokens and login sessions revoked after ``since`` (a UNIX time), for
    the services' revocation caches: ``(kind, id, expires)``, where
    ``expires`` is when what was revoked would have stopped working anyway
    (a UNIX time; ``None``: never), after which a cache may forget it.
    A deleted account is ``("user", its id, None)``: every token and login
    session sealed for it is revoked, its rows being gone."""
    after = (
        datetime.fromtimestamp(since, UTC).replace(tzinfo=None)
        if since > 0
        else datetime(1970, 1, 1)
    )

    def unix(moment: datetime) -> float:
        return moment.replace(tzinfo=UTC).timestamp()

    pats = db_session.execute(
        sa.select(PersonalAccessToken.id, PersonalAccessToken.expires).where(
            PersonalAccessToken.revoked_at.is_not(None), PersonalAccessToken.revoked_at >= after
        )
    )
    oauth = db_session.execute(
        sa.select(OAuthToken.id, OAuthToken.issued_at + OAuthToken.expires_in).where(
            OAuthToken.revoked_at.is_not(None), OAuthToken.revoked_at >= after
        )
    )
    sessions = db_session.execute(
        sa.select(LoginSession.id, LoginSession.created).where(
            LoginSession.revoked_at.is_not(None), LoginSession.revoked_at >= after
        )
    )
    deleted = db_session.scalars(sa.select(DeletedUser.id).where(DeletedUser.created >= after))
    return (
        [("user", i, None) for i in deleted]
        + [("pat", i, None if expires is None else unix(expires)) for i, expires in pats]
        + [("oauth", i, float(expires)) for i, expires in oauth]
        + [("session", i, unix(created) + LOGIN_LIFETIME) for i, created in sessions]
    )


def token_revoked(kind: str, token_id: int) -> bool:
    """meta's own check (tokens and login sessions): straight from the
    database. An unknown id counts as revoked."""
    if kind == "delegated":
        return False  # kept nowhere: it expires within minutes, or dies with the account
    model: type[PersonalAccessToken] | type[OAuthToken] | type[LoginSession]
    if kind == "pat":
        model = PersonalAccessToken
    elif kind == "oauth":
        model = OAuthToken
    elif kind == "session":
        model = LoginSession
    else:
        return True
    row = db_session.execute(sa.select(model.revoked_at).where(model.id == token_id)).first()
    return row is None or row[0] is not None
