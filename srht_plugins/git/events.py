"""The webhook events git emits: ``repo:push``, sent to every webhook URL
of a repository after each push, with the old and new id of every ref the
push changed. Deliveries are recorded under the repository's
:func:`subscription_key`, signed and retried by the core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from srht_core import EventType, db_session, send_webhook

from .models import Repository, User, Webhook
from .repos import clone_urls

__all__ = ["EVENTS", "RefUpdate", "push_payload", "send_push", "subscription_key"]

EVENTS = [
    EventType(
        "repo:push",
        "Refs of a repository were updated by a push (each ref with its old and new commit id).",
    ),
]


@dataclass(frozen=True)
class RefUpdate:
    """One ref changed by a push; ``None`` for a ref created or deleted."""

    name: str
    old: str | None
    new: str | None


def subscription_key(repository: Repository) -> str:
    """The key a repository's deliveries are recorded (and listed) under."""
    return f"repository:{repository.id}"


def push_payload(
    repository: Repository, pusher: User | None, updates: list[RefUpdate]
) -> dict[str, Any]:
    """What a ``repo:push`` delivery says (its owner loaded)."""
    http_url, ssh_url = clone_urls(repository.owner.username, repository.name)
    return {
        "repository": {
            "id": repository.id,
            "name": repository.name,
            "owner": repository.owner.canonical_name,
            "url": http_url,
            "ssh_url": ssh_url,
            "visibility": repository.visibility,
        },
        "pusher": pusher.canonical_name if pusher is not None else None,
        "refs": [{"name": u.name, "old": u.old, "new": u.new} for u in updates],
    }


def send_push(repository: Repository, payload: dict[str, Any]) -> None:
    """Record a ``repo:push`` delivery of ``payload`` to each webhook of
    ``repository``, in the caller's transaction."""
    hooks = db_session.scalars(
        sa.select(Webhook).where(Webhook.repository_id == repository.id).order_by(Webhook.id)
    ).all()
    for hook in hooks:
        send_webhook(
            hook.url,
            "repo:push",
            payload,
            subscription=subscription_key(repository),
            session=db_session,
        )
