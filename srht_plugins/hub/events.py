"""The webhook events hub emits (``project:create``, ``project:update``,
``project:delete``) to the URLs a user registered for their projects
(``/api/user/webhooks``). A delivery is recorded in the transaction of the
change itself; the worker (``srht worker hub``) signs, sends and retries it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from srht_core import EventType, Problem, db_session, send_webhook, url_problem

from .models import Project, Webhook

EVENTS = [
    EventType("project:create", "A project of yours was created."),
    EventType("project:update", "A project of yours changed (text, tags or resources)."),
    EventType("project:delete", "A project of yours was deleted."),
]
EVENT_NAMES = [event.name for event in EVENTS]


def subscription_key(owner_id: int) -> str:
    """The key a user's deliveries are recorded (and listed) under."""
    return f"user:{owner_id}"


def emit(project: Project, event: str) -> int:
    """Record a delivery of ``event`` about ``project`` for each of its
    owner's webhooks that asked for it; returns how many."""
    assert event in EVENT_NAMES, event
    db_session.flush()  # gives a new project its id
    hooks = db_session.scalars(
        sa.select(Webhook).where(Webhook.owner_id == project.owner_id).order_by(Webhook.id)
    ).all()
    payload: dict[str, Any] = {"project": project.to_dict()}
    sent = 0
    for hook in hooks:
        if event in hook.event_list:
            key = subscription_key(project.owner_id)
            send_webhook(hook.url, event, payload, subscription=key, session=db_session)
            sent += 1
    return sent


def create_webhook(owner_id: int, url: str, names: Iterable[str]) -> Webhook:
    """A webhook of ``owner_id``'s, told of ``names``.

    :raises Problem: naming ``url`` or ``events``.
    """
    url = (url or "").strip()
    if url_problem(url) is not None:
        raise Problem("url", "Use an http:// or https:// URL.")
    wanted = list(dict.fromkeys(names))
    if not wanted:
        raise Problem("events", "Choose at least one event.")
    unknown = [n for n in wanted if n not in EVENT_NAMES]
    if unknown:
        raise Problem("events", f"{unknown[0]!r} is not one of {', '.join(EVENT_NAMES)}.")
    hook = Webhook(owner_id=owner_id, url=url, events=" ".join(wanted))
    db_session.add(hook)
    db_session.flush()
    return hook
