"""What happens on lists, told to the outside as signed webhooks.

A user's own webhooks (no list) hear of their lists being created,
changed and deleted; a list's webhooks hear of what arrives on it. A
delivery is recorded in the transaction of the change itself, so it goes
out exactly when the change is committed, and is retried until it does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from srht_core import EventType, Problem, db_session, send_webhook, url_problem

from .models import MailingList, Webhook

__all__ = [
    "EVENTS",
    "LIST_EVENTS",
    "USER_EVENTS",
    "check_webhook",
    "create_webhook",
    "emit",
    "emit_user",
    "list_key",
    "user_key",
]

USER_EVENTS = [
    EventType("list:create", "A list of yours was created."),
    EventType("list:update", "A list of yours changed its settings."),
    EventType("list:delete", "A list of yours was deleted."),
]
LIST_EVENTS = [
    EventType("email:received", "A message was archived on the list."),
    EventType("patchset:received", "A patchset arrived whole (every patch of the series)."),
    EventType("patchset:update", "A patchset's status changed (or a new version superseded it)."),
]
EVENTS = USER_EVENTS + LIST_EVENTS


def list_key(mailing_list: MailingList) -> str:
    """The key a list's deliveries are recorded (and listed) under."""
    return f"list:{mailing_list.id}"


def user_key(user_id: int) -> str:
    return f"user:{user_id}"


def _send(hooks: Iterable[Webhook], event: str, payload: dict[str, Any], key: str) -> int:
    sent = 0
    for hook in hooks:
        if event in hook.event_list:
            send_webhook(hook.url, event, payload, subscription=key, session=db_session)
            sent += 1
    return sent


def emit(mailing_list: MailingList, event: str, data: dict[str, Any], address: str) -> int:
    """Record a delivery of ``event`` for each of the list's webhooks that
    asked for it; returns how many."""
    assert event in {e.name for e in LIST_EVENTS}, event
    hooks = db_session.scalars(
        sa.select(Webhook).where(Webhook.list_id == mailing_list.id).order_by(Webhook.id)
    )
    payload = {"list": mailing_list.to_dict(address), **data}
    return _send(hooks, event, payload, list_key(mailing_list))


def emit_user(owner_id: int, event: str, data: dict[str, Any]) -> int:
    """Record a delivery of ``event`` for each of the user's own webhooks."""
    assert event in {e.name for e in USER_EVENTS}, event
    hooks = db_session.scalars(
        sa.select(Webhook)
        .where(Webhook.owner_id == owner_id, Webhook.list_id.is_(None))
        .order_by(Webhook.id)
    )
    return _send(hooks, event, data, user_key(owner_id))


def check_webhook(
    url: str, names: Iterable[str], allowed: list[EventType]
) -> tuple[str, list[str]]:
    url = (url or "").strip()
    if url_problem(url) is not None:
        raise Problem("url", "Use an http:// or https:// URL.")
    known = [event.name for event in allowed]
    wanted = list(dict.fromkeys(names))
    if not wanted:
        raise Problem("events", "Choose at least one event.")
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise Problem("events", f"{unknown[0]!r} is not one of {', '.join(known)}.")
    return url, wanted


def create_webhook(
    owner_id: int, url: str, names: Iterable[str], mailing_list: MailingList | None = None
) -> Webhook:
    allowed = LIST_EVENTS if mailing_list is not None else USER_EVENTS
    url, wanted = check_webhook(url, names, allowed)
    hook = Webhook(
        owner_id=owner_id,
        list_id=mailing_list.id if mailing_list is not None else None,
        url=url,
        events=" ".join(wanted),
    )
    db_session.add(hook)
    db_session.flush()
    return hook
