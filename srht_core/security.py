"""Security headers and who is asking: the rules every response follows.

Sets a strict Content-Security-Policy (no inline script; forms may post only
to the site's own services), frame, type-sniffing and referrer headers, HSTS
on HTTPS origins, and decides whether a request comes from an internal
network (for metrics and internal APIs).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Flask, Response, abort, current_app, request

if TYPE_CHECKING:
    from .app import SrhtState

__all__ = ["client_address", "from_internal_network", "internal_only"]

F = TypeVar("F", bound=Callable[..., Any])
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def init_app(app: Flask, state: SrhtState) -> None:
    origins = sorted(set(state.origins.values()))
    https = state.origin.startswith("https://")
    policy = "; ".join(
        [
            "default-src 'self'",
            "img-src 'self' data: https:",
            "style-src 'self'",
            "script-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "form-action 'self' " + " ".join(origins),
        ]
    )

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", policy)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if https:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response


def _networks() -> tuple[Any, ...]:
    state: SrhtState = current_app.extensions["srht"]
    configured = state.config.get("srht", "internal-networks")
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
