"""Acting for a user towards the site's other services.

builds reads a user's repositories, registers webhooks on them and clones
them for their jobs with a short-lived token that meta issues for that
user and those scopes alone. Everything builds asks of meta for that goes
through :func:`user_token`, and nothing else does.
"""

from __future__ import annotations

import srht_core

__all__ = ["DelegationUnavailable", "user_token"]

#: How long a token builds asks for lives: a clone of a large repository
#: by a runner must finish within it.
LIFETIME = 15 * 60


class DelegationUnavailable(RuntimeError):
    """The site cannot give builds a token acting for a user."""


def user_token(user_id: int, scopes: list[str]) -> str:
    """A token of user ``user_id`` with ``scopes`` (``git/repos:RO``),
    valid for a few minutes.

    :raises DelegationUnavailable: saying why.
    """
    delegate = getattr(srht_core, "delegated_token", None)
    if delegate is None:
        raise DelegationUnavailable(
            "this site's core cannot issue tokens acting for a user yet (srht_core.delegated_token)"
        )
    try:
        return str(delegate(user_id, scopes, lifetime=LIFETIME))
    except OSError as error:
        raise DelegationUnavailable(f"meta did not issue a token: {error}") from error
