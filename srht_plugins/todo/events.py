"""What happens on a tracker, told to the outside: signed webhooks to the
URLs its owner registered, and mail to its subscribers.

Both are recorded in the transaction of the change itself (a webhook
delivery row, a ``notify`` job), so they go out exactly when the change is
committed, and are retried until they do.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from srht_core import EventType, Problem, db_session, enqueue, send_webhook, url_problem

from .access import Access
from .models import Tracker, Webhook

__all__ = [
    "EVENTS",
    "EVENT_NAMES",
    "check_webhook",
    "create_webhook",
    "emit",
    "find_webhook",
    "notify",
    "subscription_key",
]

EVENTS = [
    EventType("tracker:update", "A tracker's settings changed."),
    EventType("tracker:delete", "A tracker was deleted."),
    EventType("ticket:create", "A ticket was submitted."),
    EventType(
        "ticket:update", "A ticket's title, description, status, labels or assignees changed."
    ),
    EventType("comment:create", "A ticket was commented on."),
    EventType("label:create", "A label was added to a tracker."),
    EventType("label:update", "A label was renamed or recoloured."),
    EventType("label:delete", "A label was deleted."),
]
EVENT_NAMES = [event.name for event in EVENTS]


def subscription_key(tracker: Tracker) -> str:
    """The key a tracker's deliveries are recorded (and listed) under."""
    return f"tracker:{tracker.id}"


def emit(tracker: Tracker, event: str, data: dict[str, Any], actor: Any) -> int:
    """Record a delivery of ``event`` for each of the tracker's webhooks
    that asked for it. Returns how many."""
    assert event in EVENT_NAMES, event
    hooks = db_session.scalars(
        sa.select(Webhook).where(Webhook.tracker_id == tracker.id).order_by(Webhook.id)
    ).all()
    payload = {
        "tracker": tracker.to_dict(),
        "actor": actor.canonical_name if actor is not None else None,
        **data,
    }
    sent = 0
    for hook in hooks:
        if event in hook.event_list:
            send_webhook(
                hook.url, event, payload, subscription=subscription_key(tracker), session=db_session
            )
            sent += 1
    return sent


def notify(what: str, ticket_id: int, actor: Any, comment_id: int | None = None) -> None:
    """Queue the mail to the subscribers of a ticket and its tracker about
    ``what`` (``ticket:create``, ``comment:create``, ``ticket:update``)."""
    enqueue(
        "notify",
        session=db_session,
        what=what,
        ticket=ticket_id,
        comment=comment_id,
        actor=actor.id if actor is not None else None,
    )


# -- the tracker's webhooks ------------------------------------------------------


def check_webhook(url: str, names: Iterable[str]) -> tuple[str, list[str]]:
    url = (url or "").strip()
    if url_problem(url) is not None:
        raise Problem("url", "Use an http:// or https:// URL.")
    wanted = list(dict.fromkeys(names))
    if not wanted:
        raise Problem("events", "Choose at least one event.")
    unknown = [n for n in wanted if n not in EVENT_NAMES]
    if unknown:
        raise Problem("events", f"{unknown[0]!r} is not one of {', '.join(EVENT_NAMES)}.")
    return url, wanted


def create_webhook(access: Access, url: str, names: Iterable[str]) -> Webhook:
    access.require_owner("manage webhooks")
    url, wanted = check_webhook(url, names)
    hook = Webhook(tracker_id=access.tracker.id, url=url, events=" ".join(wanted))
    db_session.add(hook)
    db_session.flush()
    return hook


def find_webhook(access: Access, webhook_id: int) -> Webhook | None:
    access.require_owner("manage webhooks")
    return db_session.scalar(
        sa.select(Webhook).where(Webhook.id == webhook_id, Webhook.tracker_id == access.tracker.id)
    )
