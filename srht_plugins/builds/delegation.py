"""Acting for a user towards the site's other services.

builds reads a user's repositories, registers webhooks on them and clones
them for their jobs with a short-lived token that meta issues for that
user and those scopes alone (:func:`srht_core.delegated_token`).
Everything builds asks of meta for that goes through :func:`user_token`,
and nothing else does.
"""

from __future__ import annotations

from srht_core import ApiError, delegated_token

__all__ = ["DelegationUnavailable", "user_token"]


class DelegationUnavailable(RuntimeError):
    """The site cannot give builds a token acting for a user; ``str()``
    says why."""


def user_token(user_id: int, scopes: list[str]) -> str:
    """A token of user ``user_id`` with ``scopes`` (``git/repos:RO``),
    valid for a quarter of an hour (a clone by a runner must finish in it).

    :raises DelegationUnavailable: saying why (meta refused or is down).
    """
    try:
        return delegated_token(user_id, scopes)
    except ApiError as error:
        raise DelegationUnavailable(str(error)) from None
