"""What meta tells the other services: identity events.

When a user's profile or state changes (``user:update``) or the account is
deleted (``user:delete``), every other enabled service is sent a signed
event at its ``/_srht/identity``, recorded in the transaction of the change
itself, so it goes out exactly when the change is committed and is retried
until it arrives. The core's receiving side updates the service's mirrored
user (and signs a suspended user out).
"""

from __future__ import annotations

from srht_core import current_service, send_webhook

from .models import User

__all__ = ["USER_DELETE", "USER_UPDATE", "broadcast"]

USER_UPDATE, USER_DELETE = "user:update", "user:delete"


def broadcast(user: User, event: str) -> None:
    """Queue ``event`` about ``user`` for every other enabled service, in
    the current transaction: the whole profile for an update, the id and
    username for a deletion."""
    assert event in (USER_UPDATE, USER_DELETE), event
    state = current_service()
    payload = user.profile() if event == USER_UPDATE else {"id": user.id, "username": user.username}
    for service, origin in sorted(state.origins.items()):
        if service == state.service.name:
            continue
        send_webhook(
            origin + "/_srht/identity",
            event,
            payload,
            internal=True,
            subscription=f"identity:{service}",
        )
