"""Identity, the reading side: who is signed in, for every service.

meta (the identity provider) sets the login cookie; this module reads it
for any service. The cookie is sealed with the network key (Fernet:
encrypted and authenticated), set on ``[srht] global-domain`` so every
service sees it. On first sight of a user a service fetches the profile from
meta's internal API and mirrors it into its own ``user`` table (same id as
meta's); later changes arrive as signed identity events at
``/_srht/identity``, which update the mirror and call the service's
``user_updated``/``user_deleted`` hooks.

Service-to-service calls carry an internal credential sealed with the same
key, valid for a minute and accepted only from ``[srht] internal-networks``.

A visitor whose login cookie is valid but whom meta cannot be asked about
(meta down, or its name not resolving on this host) is answered a 503 that
names meta and the URL tried (:class:`MetaUnreachable`), never treated as
signed out: meta's login page would send them straight back, forever.
``/healthz`` reports the same through :class:`MetaProbe`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import wraps
from ipaddress import ip_address
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import sqlalchemy as sa
from flask import Flask, Response, abort, g, redirect, request
from werkzeug.exceptions import ServiceUnavailable
from werkzeug.local import LocalProxy

from .db import db_session
from .errors import ApiError
from .globals import SrhtState, current_service
from .sealing import (
    INTERNAL_HEADER,
    INTERNAL_LIFETIME,
    ServiceUnreachable,
    internal_request,
    seal,
    unseal,
)
from .security import from_internal_network
from .webhooks import WebhookError, verify_request

__all__ = [
    "LOGIN_COOKIE",
    "LOGIN_LIFETIME",
    "MetaProbe",
    "MetaUnreachable",
    "clear_login_cookie",
    "current_user",
    "internal_only_credential",
    "is_safe_return_to",
    "login_cookie",
    "login_required",
    "login_session",
    "login_url",
    "mirror_from_meta",
    "mirror_user",
    "user_named",
    "set_login_cookie",
]

log = logging.getLogger("srht.identity")
F = TypeVar("F", bound=Callable[..., Any])

LOGIN_COOKIE = "srht-login"
#: How long a login lasts without signing in again.
LOGIN_LIFETIME = 30 * 24 * 3600


# -- the login cookie ------------------------------------------------------------


def _cookie_domain(state: SrhtState) -> str | None:
    domain = str(state.config["srht"]["global-domain"]).strip(".")
    try:
        ip_address(domain)
        return None  # browsers refuse Domain= for addresses; host-only still spans ports
    except ValueError:
        pass
    return None if domain == "localhost" else domain


def login_cookie(user_id: int, session_id: int, state: SrhtState | None = None) -> str:
    """The value of the login cookie of ``user_id``'s login ``session_id``."""
    return seal({"u": user_id, "s": session_id, "t": int(time.time())}, state)


def set_login_cookie(response: Response, user_id: int, session_id: int) -> None:
    """Sign ``user_id`` in on every service (meta calls this). ``session_id``
    is meta's record of this login: when meta revokes it (logout, a password
    change) or deletes the account ``user_id``, every service refuses the
    cookie within its revocation poll."""
    state = current_service()
    response.set_cookie(
        LOGIN_COOKIE,
        login_cookie(user_id, session_id, state),
        max_age=LOGIN_LIFETIME,
        domain=_cookie_domain(state),
        secure=state.origin.startswith("https"),
        httponly=True,
        samesite="Lax",
        path="/",
    )


def clear_login_cookie(response: Response) -> None:
    """Sign out of every service."""
    state = current_service()
    response.delete_cookie(
        LOGIN_COOKIE,
        domain=_cookie_domain(state),
        path="/",
        secure=state.origin.startswith("https"),
        httponly=True,
        samesite="Lax",
    )


def login_session() -> dict[str, Any] | None:
    """The unsealed login cookie of this request (``u``: user id, ``s``:
    session id), or ``None``."""
    raw = request.cookies.get(LOGIN_COOKIE)
    if not raw:
        return None
    return unseal(raw, LOGIN_LIFETIME)


def _load_user() -> Any:
    """The signed-in user of this request (see :data:`current_user`).

    :raises MetaUnreachable: for a valid login cookie that meta cannot be
        asked about (its session's revocation, or the user's profile on
        first sight). Once per request: the error page, which shows the
        header too, then sees an anonymous visitor.
    """
    if "srht_user" in g:
        return g.srht_user
    g.srht_user = None
    state = current_service()
    model = state.schema.user_model if state.schema is not None else None
    data = login_session()
    if (
        model is None
        or data is None
        or not isinstance(data.get("u"), int)
        or not isinstance(data.get("s"), int)
        or _session_revoked(data["s"], data["u"])
    ):
        return None
    user = user_by_id(state, data["u"])
    if user is None and state.service.name != "meta":
        user = mirror_from_meta(data["u"])
    if user is None or getattr(user, "user_type", "") in ("suspended", "deleted"):
        g.srht_suspended = user
        return None
    g.srht_user = user
    return user


def user_by_id(state: SrhtState, user_id: int) -> Any:
    """The service's user ``user_id`` in the request's session (kept in
    memory while the row feed is live: see :mod:`.usercache`), or ``None``
    when this service has no such row (or keeps no users)."""
    model = state.schema.user_model if state.schema is not None else None
    if model is None:
        return None
    return state.users.load(state.db, model, user_id, state.db.row_feed())


def _session_revoked(session_id: int, user_id: int) -> bool:
    """Whether meta revoked login session ``session_id``, or deleted the
    account ``user_id`` it was opened for.

    :raises MetaUnreachable: when meta has been unreachable past the grace
        period (see :class:`~srht_core.revocation.RevocationCache`): nothing
        is shown as the visitor (fail closed), and they are not sent to sign
        in again either, which meta would answer by sending them back.
    """
    state = current_service()
    try:
        return state.is_revoked("session", session_id, user_id)
    except ApiError:
        failure = state.revocations.failure
        if not isinstance(failure, ServiceUnreachable):
            reason = str(failure or "no answer")
            failure = ServiceUnreachable("meta", meta_url(REVOKED_PATH), reason)
        raise meta_unreachable(failure) from None


#: The signed-in user of this request (the service's mirrored user), or ``None``.
current_user: Any = LocalProxy(_load_user)


def login_url(return_to: str | None = None) -> str:
    """meta's login page, coming back to ``return_to`` (default: here; on
    the login page itself, where that page returns to, so the link never
    nests a ``return_to`` in its own).

    .. versionchanged:: 0.1
       On the login page, the link keeps that page's ``return_to``.
    """
    state = current_service()
    meta = state.config.get("meta", "origin") if state.config.has_section("meta") else None
    base = (meta or state.origin) + "/login"
    on_login_page = request.path == "/login" and (meta is None or state.service.name == "meta")
    if return_to is None and on_login_page:
        # On the login page itself: keep where it returns to, rather than
        # nest it inside a return_to of its own (one more level per click).
        return_to = request.args.get("return_to") or (meta or state.origin) + "/"
    return base + "?" + urlencode({"return_to": return_to or request.url})


def login_required(view: F) -> F:
    """Send anonymous visitors to meta's login page and back."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _load_user() is None:
            if request.method != "GET":
                abort(401)
            return redirect(login_url())
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def is_safe_return_to(url: str | None, state: SrhtState | None = None) -> bool:
    """Whether ``url`` may be redirected to after login: a relative path on
    this host, or an http(s) URL on ``[srht] global-domain`` or below."""
    if not url or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return False  # browsers drop tabs and newlines: "/\t/evil" would become "//evil"
    if url.startswith("/") and not url.startswith("//") and "\\" not in url:
        return True
    state = state or current_service()
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:  # urlsplit refuses some hosts (a fullwidth "＃" in it)
        return False
    if parts.scheme not in ("http", "https") or not hostname:
        return False
    if "\\" in url or "@" in parts.netloc:
        return False
    domain = str(state.config["srht"]["global-domain"]).lower().strip(".")
    host = hostname.lower()
    return host == domain or host.endswith("." + domain)


# -- mirroring -----------------------------------------------------------------------


PROFILE_FIELDS = ("username", "email", "user_type", "suspension_notice")


def apply_profile(user: Any, profile: dict[str, Any]) -> None:
    for field in PROFILE_FIELDS:
        if field in profile:
            setattr(user, field, profile[field])


def mirror_user(profile: dict[str, Any], session: Any = None) -> Any:
    """Create or update the service's copy of a user from meta's profile
    (``id``, ``username``, ``email``, ``user_type``, ...) in ``session`` (the
    request's, by default), without committing."""
    session = db_session if session is None else session
    state = current_service()
    assert state.schema is not None and state.schema.user_model is not None
    model = state.schema.user_model
    user = session.get(model, int(profile["id"]))
    if user is None:
        user = model(id=int(profile["id"]))
        session.add(user)
    apply_profile(user, profile)
    return user


#: meta's internal API listing revoked tokens and sessions.
REVOKED_PATH = "/internal/tokens/revoked"


def meta_url(path: str) -> str:
    """``path`` at meta's origin, for messages."""
    state = current_service()
    origin = state.config.get("meta", "origin") if state.config.has_section("meta") else None
    return f"{origin or '(no [meta] origin)'}{path}"


class MetaUnreachable(ServiceUnavailable):
    """meta, the identity service, could not be asked about a signed-in
    visitor: a 503 naming meta and the URL tried (a page, or JSON under
    ``/api``), with ``Retry-After``.

    .. versionadded:: 0.1
    """

    def __init__(self, service: str, url: str, reason: str):
        self.url, self.reason = url, reason
        super().__init__(
            f"You are signed in, but {service} cannot reach meta, the site's identity "
            f"service, at {url} ({reason}), so it cannot tell who you are. Try again in "
            "a minute. If this lasts, the site's administrator should make this host "
            "reach meta at its origin (`srht-install status` names what is wrong).",
            retry_after=30,
        )


def meta_unreachable(error: OSError) -> MetaUnreachable:
    """The error to raise when meta did not answer (``error``: the
    :class:`~srht_core.sealing.ServiceUnreachable` of the call), logged."""
    service = current_service().service.name
    if isinstance(error, ServiceUnreachable):
        url, reason = error.url.partition("?")[0], error.reason
    else:
        url, reason = meta_url(""), str(error)
    log.error("%s cannot reach meta at %s: %s", service, url, reason)
    return MetaUnreachable(service, url, reason)


def mirror_from_meta(user_id: int) -> Any:
    """Fetch a user's profile from meta and mirror it; ``None`` when meta
    does not know the user.

    :raises MetaUnreachable: when meta cannot be reached or answers an
        error: the visitor is neither signed out nor let in.

    .. versionchanged:: 0.1
        Raises :class:`MetaUnreachable` where it returned ``None`` (a
        signed-in visitor was treated as signed out, and sent to meta's
        login page, which sent them back, forever).
    """
    try:
        profile = internal_request("meta", f"/internal/users/{user_id}")
    except OSError as error:
        raise meta_unreachable(error) from None
    if not profile:
        return None
    # Its own transaction: this runs on any request, GETs included, whose
    # session only reads (see srht_core.db.writes).
    state = current_service()
    assert state.schema is not None and state.schema.user_model is not None
    with state.db.session() as session:
        mirror_user(profile, session)
    return db_session.get(state.schema.user_model, user_id)


def user_named(username: str) -> Any:
    """The service's mirrored user called ``username`` (``~alice`` or
    ``alice``), or ``None`` when this service has not met one: a user page
    or an API path naming its owner looks its owner up with this.

    .. versionadded:: 0.1
    """
    state = current_service()
    assert state.schema is not None and state.schema.user_model is not None
    model: Any = state.schema.user_model
    return db_session.scalar(sa.select(model).where(model.username == username.removeprefix("~")))


#: Seconds ``/healthz`` reuses its answer about meta (per process): probes
#: come every few seconds and must not each cost a call to meta.
META_PROBE_TTL = 10
#: Seconds it reuses a failed answer: once an administrator mends the
#: path to meta, the check says so within seconds.
META_PROBE_FAILED_TTL = 2


class MetaProbe:
    """Whether this service can use meta's internal API, for ``/healthz``:
    meta is asked (with an internal credential, as when mirroring a user)
    at most every ``ttl`` seconds (``failed_ttl`` after a failure), and the
    answer reused in between.

    .. versionadded:: 0.1
    """

    def __init__(self, ttl: float = META_PROBE_TTL, failed_ttl: float = META_PROBE_FAILED_TTL):
        self.ttl, self.failed_ttl = ttl, failed_ttl
        self.answer = "ok"
        self.asked = -1e9
        self.lock = threading.Lock()

    def status(self) -> str:
        """``ok``, or ``error: ...`` naming meta's URL and what went wrong."""
        with self.lock:
            ttl = self.ttl if self.answer == "ok" else self.failed_ttl
            if time.monotonic() - self.asked >= ttl:
                self.answer = self._ask()
                self.asked = time.monotonic()
            return self.answer

    @staticmethod
    def _ask() -> str:
        try:
            found = internal_request("meta", f"{REVOKED_PATH}?since={int(time.time())}", timeout=5)
        except ServiceUnreachable as error:
            url = error.url.partition("?")[0]
            log.error("cannot reach meta at %s: %s", url, error.reason)
            return f"error: cannot reach meta at {url}: {error.reason}"
        if not isinstance(found, dict) or "now" not in found:
            return (
                f"error: meta at {meta_url(REVOKED_PATH)} refused this service's internal "
                "credential: this host must be in meta's [srht] internal-networks, with the "
                "same network-key"
            )
        return "ok"


def internal_only_credential(view: F) -> F:
    """Require a valid internal credential from an internal network."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        data = unseal(request.headers.get(INTERNAL_HEADER, ""), INTERNAL_LIFETIME)
        if data is None or not from_internal_network():
            abort(404)
        if data.get("to") != current_service().service.name:
            abort(404)
        g.srht_internal_caller = data.get("from")
        return view(*args, **kwargs)

    wrapper.srht_csrf_exempt = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


# -- identity events -------------------------------------------------------------------


def init_app(app: Flask, state: SrhtState) -> None:
    """Template access to the user, and the identity event receiver."""

    @app.context_processor
    def user_context() -> dict[str, Any]:
        return {"current_user": _load_user(), "login_url": login_url}

    if state.schema is None or state.schema.user_model is None:
        return

    def identity_event() -> Any:
        try:
            payload = verify_request(db_session)
        except WebhookError as error:
            db_session.rollback()
            return {"errors": [{"reason": str(error)}]}, 403
        event, data = payload.get("event"), payload.get("data") or {}
        model: Any = state.schema.user_model  # type: ignore[union-attr]
        if event == "user:update":
            user = mirror_user(data)
            state.plugins.call_one("user_updated", state.service.name, user=user)
        elif event == "user:delete":
            user = db_session.get(model, int(data["id"]))
            if user is not None:
                state.plugins.call_one("user_deleted", state.service.name, user=user)
                db_session.delete(user)
        else:
            db_session.rollback()
            return {"errors": [{"reason": f"unknown event {event!r}"}]}, 400
        db_session.commit()
        return {"ok": True}

    identity_event.srht_csrf_exempt = True  # type: ignore[attr-defined]
    app.add_url_rule("/_srht/identity", "srht_identity_event", identity_event, methods=["POST"])
