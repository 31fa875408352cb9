"""Sealed data and internal calls: what services trust each other with.

:func:`seal` encrypts and authenticates data with the site's network key
(Fernet), which every service of the site shares; the login cookie, API
tokens and internal credentials are all sealed this way. A service calls
another's internal API with :func:`internal_request`, which carries a
credential sealed for that service and valid for :data:`INTERNAL_LIFETIME`
seconds; the receiving side checks it with
:func:`srht_core.internal_only_credential`.

Below both :mod:`.identity` and :mod:`.tokens`: it reads only the current
service's state.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from .errors import ServiceUnreachable
from .globals import SrhtState, current_service

__all__ = [
    "INTERNAL_HEADER",
    "INTERNAL_LIFETIME",
    "ServiceUnreachable",
    "internal_request",
    "seal",
    "unseal",
]

#: How long an internal credential is valid (seconds).
INTERNAL_LIFETIME = 60
#: The header that carries it.
INTERNAL_HEADER = "X-Srht-Internal"


def _fernet(state: SrhtState | None) -> Fernet:
    state = state or current_service()
    return Fernet(state.config["srht"]["network-key"])


def seal(data: dict[str, Any], state: SrhtState | None = None) -> str:
    """Encrypt and authenticate ``data`` (JSON values) with the network key."""
    return _fernet(state).encrypt(json.dumps(data, separators=(",", ":")).encode()).decode()


def unseal(token: str, ttl: int | None, state: SrhtState | None = None) -> dict[str, Any] | None:
    """The data sealed in ``token`` if it is authentic and younger than
    ``ttl`` seconds (``None``: any age), else ``None``."""
    try:
        data = json.loads(_fernet(state).decrypt(token.encode(), ttl=ttl))
    except (InvalidToken, ValueError, TypeError):
        return None
    return data if isinstance(data, dict) else None


def internal_request(
    service: str,
    path: str,
    *,
    method: str = "GET",
    body: dict[str, Any] | None = None,
    timeout: float = 10,
) -> Any:
    """Call another service's internal API with a sealed credential and
    return its JSON (``None`` for 404).

    :raises ServiceUnreachable: (an :class:`OSError`) when the service is not
        in the config, cannot be reached, or answers an error.
    """
    state = current_service()
    origin = state.config.get(service, "origin") if state.config.has_section(service) else None
    if not origin:
        raise ServiceUnreachable(service, "(none)", f"no [{service}] section in the config")
    url = origin + path
    credential = seal({"from": state.service.name, "to": service, "t": time.time()}, state)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(  # noqa: S310 - origin is an http(s) URL from the config
        url,
        data=data,
        method=method,
        headers={INTERNAL_HEADER: credential, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        answer = error.read(2048).decode(errors="replace")
        try:
            reason = json.loads(answer)["errors"][0]["reason"]
        except (ValueError, KeyError, IndexError, TypeError):
            reason = f"answered {error.code}"
        raise ServiceUnreachable(service, url, reason, error.code) from error
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise ServiceUnreachable(service, url, str(reason)) from error
