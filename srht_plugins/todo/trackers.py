"""Trackers, whether through a page or the API: create, configure and
delete them, name users in their access lists, and forget a deleted
account's trackers.

Each operation checks the actor's access (``access.Access``), changes the
rows in the request's session without committing, and records what the
outside must hear of it (webhook deliveries) in the same transaction.
Invalid input raises :class:`srht_core.Problem`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from srht_core import Problem, db_session, user_named, utcnow

from . import events, listcache
from .access import Access
from .models import (
    TRACKER_NAME,
    VISIBILITIES,
    Comment,
    Subscription,
    Ticket,
    Tracker,
    TrackerAccess,
    User,
    ticket_assignee,
)
from .subscriptions import subscribe


def check_tracker_name(name: str) -> str:
    name = (name or "").strip()
    if not TRACKER_NAME.match(name):
        raise Problem(
            "name",
            "Use 1 to 128 letters, digits, dots, dashes and underscores, "
            "starting with a letter or digit.",
        )
    return name


def check_visibility(visibility: str) -> str:
    if visibility not in VISIBILITIES:
        raise Problem("visibility", f"Must be one of {', '.join(VISIBILITIES)}.")
    return visibility


def create_tracker(
    owner: Any, name: str, description: str = "", visibility: str = "public"
) -> Tracker:
    name = check_tracker_name(name)
    visibility = check_visibility(visibility)
    taken = db_session.scalar(
        sa.select(Tracker.id).where(Tracker.owner_id == owner.id, Tracker.name == name)
    )
    if taken is not None:
        raise Problem("name", f"You have a tracker named {name} already.", 409)
    tracker = Tracker(
        owner_id=owner.id, name=name, description=description or "", visibility=visibility
    )
    db_session.add(tracker)
    db_session.flush()
    set_committed_value(tracker, "owner", owner)
    subscribe(owner, tracker=tracker)
    return tracker


def update_tracker(
    access: Access,
    *,
    description: str | None = None,
    visibility: str | None = None,
    anonymous_access: int | None = None,
    user_access: int | None = None,
) -> Tracker:
    access.require_owner("change this tracker's settings")
    tracker = access.tracker
    if description is not None:
        tracker.description = description
    if visibility is not None:
        tracker.visibility = check_visibility(visibility)
    if anonymous_access is not None:
        tracker.anonymous_access = anonymous_access
    if user_access is not None:
        tracker.user_access = user_access
    tracker.updated = utcnow()
    db_session.flush()
    events.emit(tracker, "tracker:update", {}, access.user)
    return tracker


def delete_tracker(access: Access) -> None:
    access.require_owner("delete this tracker")
    events.emit(access.tracker, "tracker:delete", {}, access.user)
    db_session.delete(access.tracker)
    db_session.flush()


def find_user(username: str, field: str) -> User:
    name = (username or "").strip().lstrip("~")
    user: User | None = user_named(name)
    if user is None:
        raise Problem(field, f"No user ~{name} has used this service yet.", 404)
    return user


def grant_access(access: Access, user: User, mask: int) -> TrackerAccess:
    access.require_owner("change who has access")
    if user.id == access.tracker.owner_id:
        raise Problem("username", "The owner always has full access.", 409)
    entry = db_session.scalar(
        sa.select(TrackerAccess).where(
            TrackerAccess.tracker_id == access.tracker.id, TrackerAccess.user_id == user.id
        )
    )
    if entry is None:
        entry = TrackerAccess(tracker_id=access.tracker.id, user_id=user.id, access=mask)
        db_session.add(entry)
    entry.access = mask
    db_session.flush()
    set_committed_value(entry, "user", user)
    return entry


def revoke_access(access: Access, user_id: int) -> bool:
    access.require_owner("change who has access")
    result = db_session.execute(
        sa.delete(TrackerAccess).where(
            TrackerAccess.tracker_id == access.tracker.id, TrackerAccess.user_id == user_id
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def forget_user(user: Any) -> None:
    """For a deleted account: delete the user's trackers (with everything in
    them), subscriptions, access entries and assignments, and keep their
    tickets and comments on other people's trackers without their name."""
    db_session.execute(sa.delete(Tracker).where(Tracker.owner_id == user.id))
    db_session.execute(sa.delete(Subscription).where(Subscription.user_id == user.id))
    db_session.execute(sa.delete(TrackerAccess).where(TrackerAccess.user_id == user.id))
    db_session.execute(sa.delete(ticket_assignee).where(ticket_assignee.c.user_id == user.id))
    db_session.execute(
        sa.update(Ticket).where(Ticket.submitter_id == user.id).values(submitter_id=None)
    )
    db_session.execute(
        sa.update(Comment).where(Comment.author_id == user.id).values(author_id=None)
    )
    # Bulk statements pass the revision listener by; the name shows on lists.
    listcache.bump_all(db_session)
