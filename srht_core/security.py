"""Security headers and who is asking: the rules every response follows.

Sets a strict Content-Security-Policy (no inline script; forms may post only
to the site's own services), frame, type-sniffing and referrer headers, HSTS
on HTTPS origins, and decides whether a request comes from an internal
network (for metrics and internal APIs).

A page that needs one more source in its policy says so with
:func:`allow_csp` (meta's OAuth consent form posts to the client's redirect
URI); a response that shows untrusted content as a file (a raw blob, a
paste) is locked down with :func:`sandbox`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Response, abort, g, request

from .globals import SrhtState, current_service

__all__ = [
    "allow_csp",
    "client_address",
    "from_internal_network",
    "internal_only",
    "is_loopback",
    "sandbox",
]

F = TypeVar("F", bound=Callable[..., Any])
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

#: The policy of every page, before what the app or the page adds.
BASE_POLICY: dict[str, tuple[str, ...]] = {
    "default-src": ("'self'",),
    "img-src": ("'self'", "data:", "https:"),
    "style-src": ("'self'",),
    "script-src": ("'self'",),
    "object-src": ("'none'",),
    "base-uri": ("'none'",),
    "frame-ancestors": ("'none'",),
    "form-action": ("'self'",),
}
#: What a response showing untrusted content as a file gets: no script, no
#: styles, no forms, its own origin (see :func:`sandbox`).
SANDBOX_POLICY = "sandbox; default-src 'none'"


def _render(policy: dict[str, tuple[str, ...]]) -> str:
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in policy.items())


def _merge(
    policy: dict[str, tuple[str, ...]], extra: dict[str, tuple[str, ...]]
) -> dict[str, tuple[str, ...]]:
    out = dict(policy)
    for name, sources in extra.items():
        known = out.get(name, ())
        out[name] = known + tuple(s for s in sources if s not in known)
    return out


def allow_csp(directive: str, *sources: str) -> None:
    """Add ``sources`` to ``directive`` of this response's
    Content-Security-Policy only (``allow_csp("form-action",
    "https://client.example")``)."""
    extra: dict[str, tuple[str, ...]] = g.setdefault("srht_csp", {})
    extra[directive] = extra.get(directive, ()) + sources


def sandbox(response: Response) -> Response:
    """Lock ``response`` down for content nobody vouches for (a raw file
    of a repository or a paste): a sandboxed origin with nothing allowed,
    and no type sniffing. Returns the response."""
    response.headers["Content-Security-Policy"] = SANDBOX_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _app_policy(state: SrhtState) -> dict[str, tuple[str, ...]]:
    return _merge(BASE_POLICY, {"form-action": tuple(sorted(set(state.origins.values())))})


def keep_page_policy(response: Response) -> None:
    """Write what :func:`allow_csp` added for this page into ``response``'s
    Content-Security-Policy now, so a copy kept by the page cache carries
    it (headers added after the view are not kept)."""
    extra = g.get("srht_csp")
    if extra and "Content-Security-Policy" not in response.headers:
        policy = _merge(_app_policy(current_service()), extra)
        response.headers["Content-Security-Policy"] = _render(policy)


def init_app(app: Flask, state: SrhtState) -> None:
    https = state.origin.startswith("https://")
    policy = _app_policy(state)
    rendered = _render(policy)

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        extra = g.get("srht_csp")
        if extra and "Content-Security-Policy" not in headers:
            headers["Content-Security-Policy"] = _render(_merge(policy, extra))
        headers.setdefault("Content-Security-Policy", rendered)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if https:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without
    brackets) is this machine's loopback: ``localhost``, 127.0.0.0/8, ::1."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _networks() -> tuple[Any, ...]:
    configured = current_service().config.get("srht", "internal-networks")
    return tuple(configured) if configured else LOOPBACK


def client_address() -> str:
    """The address of the client. A request relayed by a proxy on an
    internal network (nginx in front) is attributed to the last address the
    proxy appended to ``X-Forwarded-For``; from anywhere else the header is
    ignored, so it cannot be forged from outside."""
    peer = request.remote_addr or ""
    forwarded = request.headers.get("X-Forwarded-For", "")
    if forwarded and _in(peer, _networks()):
        return forwarded.split(",")[-1].strip()
    return peer


def _in(address: str, networks: tuple[Any, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def from_internal_network() -> bool:
    """Whether the client is on one of ``[srht] internal-networks``."""
    return _in(client_address(), _networks())


def internal_only(view: F) -> F:
    """Answer 404 to clients outside ``[srht] internal-networks``."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not from_internal_network():
            abort(404)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
