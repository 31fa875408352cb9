"""meta's OAuth2 provider, built on authlib: clients registered by users,
authorization code with PKCE (RFC 7636), refresh tokens rotated on use,
revocation (RFC 7009), introspection (RFC 7662) and server metadata
(RFC 8414).

Access tokens are the core's sealed grants (:func:`srht_core.seal_grant`,
kind ``oauth``, the :class:`~.models.OAuthToken` id), so every service
verifies them without asking meta, and a revocation reaches the services
through ``accounts.revoked_since``. The database holds only hashes of
access tokens, refresh tokens, authorization codes and client secrets.

A *grant* is what one consent produced: the tokens issued for one
authorization code and every pair refreshed from them share the code's id
(``OAuthToken.authorization_id``). A refresh token works once; presenting
it again (or reusing an authorization code) revokes the whole grant, since
one of the two parties presenting it must have stolen it (RFC 9700,
section 4.14).

This module knows nothing of pages: ``web/oauth.py`` serves the endpoints
and the consent and client pages through :func:`authorization_server`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from authlib.integrations.flask_oauth2 import AuthorizationServer as FlaskAuthorizationServer
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Payload, FlaskOAuth2Request
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Request,
    TokenMixin,
    UnsupportedResponseTypeError,
    grants,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint as BaseRevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as BaseIntrospectionEndpoint
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from flask import Flask, current_app
from flask import request as flask_request

from srht_core import (
    Problem,
    TokenGrant,
    current_service,
    db_session,
    is_loopback,
    parse_scopes,
    seal_grant,
    utcnow,
)

from .accounts import audit
from .models import (
    ACTIVE,
    ADMIN,
    OAuthAuthorizationCode,
    OAuthClient,
    OAuthToken,
    User,
    new_token,
    token_hash,
)
from .tokens import known_scopes

__all__ = [
    "AUTHORIZATION_CODE_LIFETIME",
    "REFRESH_TOKEN_LIFETIME",
    "authorization_server",
    "client_problems",
    "describe_scopes",
    "live_grants",
    "register_client",
    "revoke_client",
    "revoke_grant",
    "revoke_user_grant",
    "server_metadata",
]

#: Seconds an authorization code may wait to be exchanged (RFC 6749 4.1.2).
AUTHORIZATION_CODE_LIFETIME = 600
#: Seconds a refresh token stays usable; every refresh issues a new one.
REFRESH_TOKEN_LIFETIME = 365 * 24 * 3600
#: How clients authenticate at the token, revocation and introspection
#: endpoints: confidential clients with their secret, public ones (PKCE)
#: with their client id alone.
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
GRANT_TYPES = ("authorization_code", "refresh_token")
MAX_REDIRECT_URIS = 10
#: URL schemes no client may be sent to, even as a private-use scheme.
FORBIDDEN_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "about", "blob"})
EXTENSION = "meta.oauth"


def error_text(text: str) -> str:
    """``text`` with the characters RFC 6749 forbids in ``error_description``
    (``"``, ``\\`` and anything outside printable ASCII) replaced."""
    return "".join(c if 0x20 <= ord(c) <= 0x7E and c not in '"\\' else "?" for c in text)


# -- scopes ----------------------------------------------------------------------


def check_scopes(scope: str | None) -> list[str]:
    """The scopes of a request, each known to this site.

    :raises InvalidScopeError: naming the first malformed or unknown scope.
    """
    if not scope or not scope.strip():
        raise InvalidScopeError(error_text("Ask for at least one scope, like meta/profile:RO."))
    try:
        wanted = parse_scopes(scope)
    except ValueError as error:
        raise InvalidScopeError(error_text(str(error))) from None
    known = known_scopes()
    for item in wanted:
        if item.rsplit(":", 1)[0] not in known:
            raise InvalidScopeError(
                error_text(
                    f"Unknown scope {item}; this site offers "
                    + ", ".join(sorted(known))
                    + " (each :RO or :RW)."
                )
            )
    return list(dict.fromkeys(wanted))


@dataclass(frozen=True)
class ScopeDescription:
    """A scope as the consent page shows it."""

    scope: str
    access: str
    description: str


def describe_scopes(scope: str) -> list[ScopeDescription]:
    """What each scope of ``scope`` lets a client do, for people."""
    known = known_scopes()
    out = []
    for item in scope.split():
        name, _, access = item.rpartition(":")
        out.append(
            ScopeDescription(
                item, "read and write" if access == "RW" else "read", known.get(name, name)
            )
        )
    return out


# -- what authlib sees of our models --------------------------------------------------


class Client(ClientMixin):  # type: ignore[misc]
    """A registered client, as authlib asks about it."""

    def __init__(self, row: OAuthClient):
        self.row = row

    @property
    def is_public(self) -> bool:
        return self.row.client_secret_hash is None

    @property
    def redirect_uris(self) -> list[str]:
        return self.row.redirect_uris.split()

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.redirect_uris
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        if not scope:
            return None
        try:
            return " ".join(dict.fromkeys(parse_scopes(scope)))
        except ValueError:
            return None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        stored = self.row.client_secret_hash
        return stored is not None and secrets.compare_digest(stored, token_hash(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.is_public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in GRANT_TYPES


class AuthorizationCode(AuthorizationCodeMixin):  # type: ignore[misc]
    def __init__(self, row: OAuthAuthorizationCode):
        self.row = row

    @property
    def code_challenge(self) -> str | None:
        return self.row.code_challenge

    @property
    def code_challenge_method(self) -> str | None:
        return self.row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope


class Token(TokenMixin):  # type: ignore[misc]
    """One of the two tokens of an :class:`OAuthToken` row: ``kind`` is
    ``access_token`` or ``refresh_token``."""

    def __init__(self, row: OAuthToken, kind: str):
        self.row = row
        self.kind = kind

    @property
    def expires_at(self) -> int:
        if self.kind == "refresh_token":
            return self.row.issued_at + REFRESH_TOKEN_LIFETIME
        return self.row.issued_at + self.row.expires_in

    def check_client(self, client: Client) -> bool:
        return self.row.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.row.scope

    def get_expires_in(self) -> int:
        return self.row.expires_in

    def is_expired(self) -> bool:
        return self.expires_at <= time.time()

    def is_revoked(self) -> bool:
        if self.row.revoked_at is not None:
            return True
        return self.kind == "refresh_token" and self.row.refreshed_at is not None

    def get_user(self) -> User:
        return self.row.user

    def get_client(self) -> Client | None:
        return query_client(self.row.client_id)


def query_client(client_id: str | None) -> Client | None:
    """The client with ``client_id``, unless unknown or revoked."""
    if not client_id:
        return None
    row = db_session.scalar(
        sa.select(OAuthClient).where(
            OAuthClient.client_id == client_id, OAuthClient.revoked_at.is_(None)
        )
    )
    return Client(row) if row is not None else None


def find_token(value: str, hint: str | None) -> Token | None:
    """The token ``value`` is, trying ``hint``'s kind first."""
    digest = token_hash(value)
    kinds = ["access_token", "refresh_token"]
    if hint == "refresh_token":
        kinds.reverse()
    for kind in kinds:
        column = OAuthToken.access_hash if kind == "access_token" else OAuthToken.refresh_hash
        row = db_session.scalar(sa.select(OAuthToken).where(column == digest))
        if row is not None:
            return Token(row, kind)
    return None


def usable_user(user_id: int) -> User:
    """The user a grant speaks for. :raises InvalidGrantError: when the
    account is gone or cannot use the site."""
    user = db_session.get(User, user_id)
    if user is None:
        raise InvalidGrantError("The account this grant is for no longer exists.")
    if user.user_type not in (ACTIVE, ADMIN):
        raise InvalidGrantError("The account this grant is for is suspended.")
    return user


# -- issuing and revoking ---------------------------------------------------------------


def issue_tokens(
    client: Client, user: User, scope: str | None, authorization_id: int
) -> dict[str, Any]:
    """A new access and refresh token for ``user`` (added to the session,
    not committed): the token response of RFC 6749 section 5.1."""
    scopes = client.get_allowed_scope(scope)
    if not scopes:
        raise InvalidScopeError()
    lifetime = int(current_service().section["access-token-lifetime"])
    issued = int(time.time())
    refresh = new_token()
    row = OAuthToken(
        client_id=client.get_client_id(),
        user_id=user.id,
        scope=scopes,
        access_hash=f"pending-{secrets.token_hex(16)}",
        refresh_hash=token_hash(refresh),
        authorization_id=authorization_id,
        issued_at=issued,
        expires_in=lifetime,
    )
    db_session.add(row)
    db_session.flush()  # the id goes into the sealed grant
    access = seal_grant(
        TokenGrant(
            "oauth",
            row.id,
            user.id,
            frozenset(scopes.split()),
            float(issued + lifetime),
            client.get_client_id(),
        )
    )
    row.access_hash = token_hash(access)
    return {
        "token_type": "Bearer",
        "access_token": access,
        "expires_in": lifetime,
        "refresh_token": refresh,
        "scope": scopes,
    }


def _revoke(condition: Any) -> None:
    now = int(time.time())
    # Rows whose refresh token was used and whose access token has expired
    # cannot be used any more; leaving them out keeps the services'
    # revocation lists short.
    still_usable = sa.or_(
        OAuthToken.refreshed_at.is_(None), OAuthToken.issued_at + OAuthToken.expires_in > now
    )
    db_session.execute(
        sa.update(OAuthToken)
        .where(condition, OAuthToken.revoked_at.is_(None), still_usable)
        .values(revoked_at=utcnow())
    )


def revoke_grant(authorization_id: int) -> None:
    """Revoke every token of one grant (not committed)."""
    _revoke(OAuthToken.authorization_id == authorization_id)


def revoke_token(token: Token) -> None:
    """RFC 7009: an access token ends with its row (and the refresh token
    issued with it); a refresh token takes its whole grant with it."""
    if token.kind == "refresh_token":
        if token.row.refreshed_at is None:
            revoke_grant(token.row.authorization_id)
    elif token.row.revoked_at is None:
        token.row.revoked_at = utcnow()


# -- grants -----------------------------------------------------------------------------


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    @staticmethod
    def validate_authorization_redirect_uri(request: OAuth2Request, client: Client) -> str:
        # authlib quotes the URI in its error unescaped; a URI with a
        # character RFC 6749 forbids in descriptions would make that a 500.
        uri = request.payload.redirect_uri
        if uri and not client.check_redirect_uri(uri):
            raise InvalidRequestError(
                error_text(
                    f"The redirect URI {uri} is not registered for this client; it must match "
                    "a registered one exactly."
                )
            )
        return grants.AuthorizationCodeGrant.validate_authorization_redirect_uri(  # type: ignore[no-any-return]
            request, client
        )

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        db_session.add(
            OAuthAuthorizationCode(
                code_hash=token_hash(code),
                client_id=request.client.get_client_id(),
                user_id=request.user.id,
                redirect_uri=request.payload.redirect_uri or "",
                scope=request.scope,
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                auth_time=int(time.time()),
                expires=utcnow() + timedelta(seconds=AUTHORIZATION_CODE_LIFETIME),
            )
        )

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        # Locked until the exchange commits, so two requests with one code
        # cannot both succeed.
        row = db_session.scalar(
            sa.select(OAuthAuthorizationCode)
            .where(
                OAuthAuthorizationCode.code_hash == token_hash(code),
                OAuthAuthorizationCode.client_id == client.get_client_id(),
            )
            .with_for_update()
        )
        if row is None:
            return None
        if row.used_at is not None:
            revoke_grant(row.id)
            db_session.commit()
            raise InvalidGrantError(
                "This code has been used already; the tokens issued for it are revoked."
            )
        if row.expires <= utcnow():
            raise InvalidGrantError(
                f"This code has expired: codes must be exchanged "
                f"within {AUTHORIZATION_CODE_LIFETIME // 60} minutes."
            )
        return AuthorizationCode(row)

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        # Kept, marked used: a second use must be recognised (and punished).
        authorization_code.row.used_at = utcnow()

    def authenticate_user(self, authorization_code: AuthorizationCode) -> User:
        return usable_user(authorization_code.row.user_id)

    def generate_token(
        self,
        user: User | None = None,
        scope: str | None = None,
        grant_type: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        assert user is not None
        return issue_tokens(
            self.request.client, user, scope, self.request.authorization_code.row.id
        )


class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        row = db_session.scalar(
            sa.select(OAuthToken)
            .where(OAuthToken.refresh_hash == token_hash(refresh_token))
            .with_for_update()
        )
        if row is None or row.client_id != self.request.client.get_client_id():
            return None
        token = Token(row, "refresh_token")
        if row.revoked_at is not None:
            raise InvalidGrantError("This refresh token has been revoked.")
        if row.refreshed_at is not None:
            revoke_grant(row.authorization_id)
            db_session.commit()
            raise InvalidGrantError(
                "This refresh token has been used already; every "
                "token of this grant is now revoked. Ask the user "
                "to authorize again."
            )
        if token.is_expired():
            raise InvalidGrantError("This refresh token has expired.")
        return token

    def authenticate_user(self, refresh_token: Token) -> User:
        return usable_user(refresh_token.row.user_id)

    def revoke_old_credential(self, refresh_token: Token) -> None:
        # The old access token lives out its (short) lifetime; its refresh
        # token is spent.
        refresh_token.row.refreshed_at = utcnow()

    def generate_token(
        self,
        user: User | None = None,
        scope: str | None = None,
        grant_type: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        assert user is not None
        return issue_tokens(
            self.request.client, user, scope, self.request.refresh_token.row.authorization_id
        )


class S256CodeChallenge(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 only: required of public clients, allowed for
    confidential ones (and then checked)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        super().validate_code_challenge(grant, redirect_uri)
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            if grant.request.client.is_public:
                raise InvalidRequestError(
                    "Public clients must use PKCE: send code_challenge "
                    "and code_challenge_method=S256."
                )
            return
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError(
                "Send code_challenge_method=S256; no other method is accepted."
            )


# -- revocation and introspection -------------------------------------------------------


class RevocationEndpoint(BaseRevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        return find_token(token_string, token_type_hint)

    def revoke_token(self, token: Token, request: OAuth2Request) -> None:
        revoke_token(token)
        audit(
            token.row.user,
            "OAuth token revoked",
            f"by client {request.client.row.name} ({token.row.client_id})",
        )


class IntrospectionEndpoint(BaseIntrospectionEndpoint):  # type: ignore[misc]
    """Answers a client about its own tokens only."""

    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        return find_token(token_string, token_type_hint)

    def check_permission(self, token: Token, client: Client, request: OAuth2Request) -> bool:
        return token.check_client(client)

    def introspect_token(self, token: Token) -> dict[str, Any]:
        user = token.row.user
        if user.user_type not in (ACTIVE, ADMIN):
            return {"active": False}
        answer: dict[str, Any] = {
            "active": True,
            "scope": token.row.scope,
            "client_id": token.row.client_id,
            "username": user.username,
            "sub": str(user.id),
            "iss": current_service().origin,
            "iat": token.row.issued_at,
            "exp": token.expires_at,
        }
        if token.kind == "access_token":
            answer["token_type"] = "Bearer"  # noqa: S105 - the RFC 6750 type, not a secret
        return answer


# -- the server -------------------------------------------------------------------------


class AuthorizationServer(FlaskAuthorizationServer):  # type: ignore[misc]
    """authlib's Flask server with our grants, endpoints and storage."""

    def __init__(self, app: Flask):
        super().__init__(app)
        self.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True)])
        self.register_grant(RefreshTokenGrant)
        self.register_endpoint(RevocationEndpoint)
        self.register_endpoint(IntrospectionEndpoint)

    def query_client(self, client_id: str | None) -> Client | None:
        return query_client(client_id)

    def get_authorization_grant(self, request: OAuth2Request) -> Any:
        response_type = request.payload.response_type
        if response_type == "code":
            return super().get_authorization_grant(request)
        # Said here rather than by authlib, which puts the raw parameter in
        # the description (and fails on characters the RFC forbids there).
        client = query_client(request.payload.client_id)
        redirect_uri = None
        if client is not None:
            wanted = request.payload.redirect_uri
            redirect_uri = (
                (wanted if client.check_redirect_uri(wanted) else None)
                if wanted
                else client.get_default_redirect_uri()
            )
        raise UnsupportedResponseTypeError(
            response_type,
            redirect_uri=redirect_uri,
            description=error_text(
                f"Only response_type=code is supported, not {response_type or 'none'}."
            ),
        )

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Nothing left to do: :func:`issue_tokens` stored the row when it
        sealed the access token (the token carries the row's id)."""

    def validate_requested_scope(self, scope: str | None) -> None:
        check_scopes(scope)

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        # Behind a proxy the WSGI URL says http; the configured origin says
        # how clients reach us, and authlib refuses insecure transport by it.
        url = current_service().origin + flask_request.full_path.rstrip("?")
        return _OriginRequest(url)


class _OriginRequest(FlaskOAuth2Request):  # type: ignore[misc]
    def __init__(self, url: str):
        OAuth2Request.__init__(
            self, method=flask_request.method, uri=url, headers=flask_request.headers
        )
        self._request = flask_request
        self.payload = FlaskOAuth2Payload(flask_request)


def init_app(app: Flask) -> AuthorizationServer:
    """Attach an authorization server to meta's ``app``."""
    server = AuthorizationServer(app)
    app.extensions[EXTENSION] = server
    return server


def authorization_server() -> AuthorizationServer:
    """The authorization server of the current app."""
    server: AuthorizationServer = current_app.extensions[EXTENSION]
    return server


def server_metadata() -> AuthorizationServerMetadata:
    """The RFC 8414 document: every endpoint, what each accepts, and the
    scopes of every enabled service."""
    origin = current_service().origin
    return AuthorizationServerMetadata(
        {
            "issuer": origin,
            "authorization_endpoint": origin + "/oauth2/authorize",
            "token_endpoint": origin + "/oauth2/token",
            "revocation_endpoint": origin + "/oauth2/revoke",
            "introspection_endpoint": origin + "/oauth2/introspect",
            "scopes_supported": [
                f"{scope}:{access}" for scope in sorted(known_scopes()) for access in ("RO", "RW")
            ],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": list(GRANT_TYPES),
            "token_endpoint_auth_methods_supported": AUTH_METHODS,
            "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
            "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
            "code_challenge_methods_supported": ["S256"],
            "service_documentation": origin + "/oauth2/clients",
        }
    )


# -- clients, as their owners manage them -------------------------------------------------


def redirect_uri_problem(uri: str) -> str | None:
    """Why ``uri`` cannot be a redirect URI, or ``None``: https anywhere;
    http on loopback (RFC 8252, 7.3) or when this site itself runs on http;
    a private-use scheme in reverse-domain form (RFC 8252, 7.1); never a
    fragment."""
    if len(uri) > 512:
        return "is longer than 512 characters"
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "is not a URL"
    scheme = parts.scheme.lower()
    if not scheme:
        return "must be an absolute URL, like https://app.example.com/callback"
    if parts.fragment or "#" in uri:
        return "must not contain a fragment (#...)"
    if scheme in ("http", "https"):
        if not parts.hostname:
            return "has no host"
        if "@" in parts.netloc:
            return "must not contain a user name or password"
        insecure_site = current_service().origin.startswith("http://")
        if scheme == "http" and not (is_loopback(parts.hostname) or insecure_site):
            return "must use https (http only for 127.0.0.1, [::1] or localhost)"
        return None
    if scheme in FORBIDDEN_SCHEMES or "." not in scheme:
        return (
            "must use https, or a private-use scheme in reverse-domain form like "
            "com.example.app:/callback"
        )
    return None


def _unique(uris: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(u.strip() for u in uris if u.strip()))


def client_problems(name: str, redirect_uris: Iterable[str]) -> list[Problem]:
    """Every reason a client cannot be registered with this name and these
    redirect URIs: no name, no URI, too many, and each bad URI."""
    problems = []
    if not name.strip():
        problems.append(Problem("name", "Give the client a name."))
    uris = _unique(redirect_uris)
    if not uris:
        problems.append(Problem("redirect_uris", "Give at least one redirect URI."))
    if len(uris) > MAX_REDIRECT_URIS:
        problems.append(
            Problem("redirect_uris", f"Give at most {MAX_REDIRECT_URIS} redirect URIs.")
        )
    for uri in uris:
        if problem := redirect_uri_problem(uri):
            problems.append(Problem("redirect_uris", f"{uri} {problem}."))
    return problems


def register_client(
    owner: User,
    name: str,
    redirect_uris: Iterable[str],
    *,
    confidential: bool,
    description: str | None = None,
    url: str | None = None,
) -> tuple[OAuthClient, str | None]:
    """Register a client for ``owner`` (not committed); return it and its
    secret (``None`` for a public client), which is shown once.

    :raises srht_core.Problem: the first of :func:`client_problems`.
    """
    problems = client_problems(name, redirect_uris)
    if problems:
        raise problems[0]
    name = name.strip()
    uris = _unique(redirect_uris)
    secret = new_token() if confidential else None
    client = OAuthClient(
        owner_id=owner.id,
        client_id=secrets.token_urlsafe(18),
        client_secret_hash=token_hash(secret) if secret else None,
        name=name,
        description=description or None,
        url=url or None,
        redirect_uris="\n".join(uris),
    )
    db_session.add(client)
    db_session.flush()
    audit(owner, "OAuth client registered", f"{name} ({client.client_id})")
    return client, secret


def revoke_client(client: OAuthClient) -> None:
    """Revoke a client and every token it holds (not committed)."""
    if client.revoked_at is not None:
        return
    client.revoked_at = utcnow()
    _revoke(OAuthToken.client_id == client.client_id)
    audit(client.owner, "OAuth client revoked", f"{client.name} ({client.client_id})")


@dataclass(frozen=True)
class LiveGrant:
    """A grant a user gave a client that can still be used."""

    authorization_id: int
    client: OAuthClient
    scope: str
    issued_at: int

    @property
    def issued(self) -> datetime:
        return datetime.fromtimestamp(self.issued_at, UTC)


def live_grants(user: User) -> list[LiveGrant]:
    """The grants ``user`` gave that have a usable token, newest first."""
    now = int(time.time())
    rows = db_session.execute(
        sa.select(OAuthToken, OAuthClient)
        .join(OAuthClient, OAuthClient.client_id == OAuthToken.client_id)
        .where(
            OAuthToken.user_id == user.id,
            OAuthToken.revoked_at.is_(None),
            OAuthClient.revoked_at.is_(None),
            sa.or_(
                OAuthToken.refreshed_at.is_(None),
                OAuthToken.issued_at + OAuthToken.expires_in > now,
            ),
        )
        .order_by(OAuthToken.issued_at.desc(), OAuthToken.id.desc())
    ).all()
    grants_by_id: dict[int, LiveGrant] = {}
    for token, client in rows:
        if token.refreshed_at is None and token.issued_at + REFRESH_TOKEN_LIFETIME <= now:
            continue
        grants_by_id.setdefault(
            token.authorization_id,
            LiveGrant(token.authorization_id, client, token.scope, token.issued_at),
        )
    return list(grants_by_id.values())


def revoke_user_grant(user: User, authorization_id: int) -> bool:
    """Revoke a grant ``user`` gave (not committed); ``False`` when it is not theirs."""
    row = db_session.scalar(
        sa.select(OAuthToken)
        .where(OAuthToken.authorization_id == authorization_id, OAuthToken.user_id == user.id)
        .limit(1)
    )
    if row is None:
        return False
    revoke_grant(authorization_id)
    client = db_session.scalar(sa.select(OAuthClient).where(OAuthClient.client_id == row.client_id))
    audit(
        user,
        "OAuth authorization revoked",
        f"{client.name if client else row.client_id} ({row.client_id})",
    )
    return True
