"""Who hears (by mail) of what happens on a tracker or one ticket."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from srht_core import db_session

from .models import Subscription, Ticket, Tracker


def subscription(
    user: Any, *, tracker: Tracker | None = None, ticket: Ticket | None = None
) -> Subscription | None:
    if user is None:
        return None
    stmt = sa.select(Subscription).where(Subscription.user_id == user.id)
    if tracker is not None:
        stmt = stmt.where(Subscription.tracker_id == tracker.id)
    else:
        assert ticket is not None
        stmt = stmt.where(Subscription.ticket_id == ticket.id)
    return db_session.scalar(stmt)


def subscribe(
    user: Any, *, tracker: Tracker | None = None, ticket: Ticket | None = None
) -> Subscription:
    """Subscribe ``user`` to a tracker or a ticket (idempotent)."""
    found = subscription(user, tracker=tracker, ticket=ticket)
    if found is not None:
        return found
    entry = Subscription(
        user_id=user.id,
        tracker_id=tracker.id if tracker else None,
        ticket_id=ticket.id if ticket else None,
    )
    try:
        with db_session.begin_nested():
            db_session.add(entry)
    except sa.exc.IntegrityError:
        # Subscribed in another request this very moment: that one counts.
        found = subscription(user, tracker=tracker, ticket=ticket)
        assert found is not None
        return found
    return entry


def unsubscribe(user: Any, *, tracker: Tracker | None = None, ticket: Ticket | None = None) -> bool:
    found = subscription(user, tracker=tracker, ticket=ticket)
    if found is None:
        return False
    db_session.delete(found)
    db_session.flush()
    return True
