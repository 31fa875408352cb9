"""What people do on trackers, whether through a page or the API: create
and configure trackers, submit, comment on and change tickets, manage
labels, webhooks and subscriptions.

Each operation checks the actor's access (``access.Access``), changes the
rows in the request's session without committing, and records what the
outside must hear of it (webhook deliveries and the ``notify`` job) in the
same transaction. Invalid input raises :class:`Problem`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value
from werkzeug.exceptions import Forbidden

from srht_core import db_session, utcnow

from . import events, listcache
from .access import BROWSE, COMMENT, SUBMIT, TRIAGE, Access, effective_access
from .models import (
    CLOSED,
    COLOR,
    OPEN,
    RESOLUTIONS,
    TRACKER_NAME,
    VISIBILITIES,
    Comment,
    Label,
    Subscription,
    Ticket,
    Tracker,
    TrackerAccess,
    User,
    Webhook,
    ticket_assignee,
)
from .references import record_references

LABEL_NAME = re.compile(r'^[^"\s\x00][^"\x00]{0,63}$')
MAX_TITLE = 512
MAX_TEXT = 65536


class Problem(ValueError):
    """Input that cannot be accepted: which field, why, and the HTTP status
    an API answers (400, or 409 for a name taken)."""

    def __init__(self, field: str | None, reason: str, status: int = 400):
        super().__init__(reason)
        self.field = field
        self.reason = reason
        self.status = status


# -- trackers ------------------------------------------------------------------------


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
    user = db_session.scalar(sa.select(User).where(User.username == name))
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


# -- tickets -----------------------------------------------------------------------


def check_title(title: str) -> str:
    title = check_text(title, "title").strip()
    if not title:
        raise Problem("title", "A ticket needs a title.")
    if len(title) > MAX_TITLE:
        raise Problem("title", f"At most {MAX_TITLE} characters.")
    return title


def check_text(text: str, field: str) -> str:
    text = text or ""
    if "\x00" in text:
        raise Problem(field, "NUL characters are not allowed.")
    if len(text) > MAX_TEXT:
        raise Problem(field, f"At most {MAX_TEXT} characters.")
    return text


def next_number(tracker: Tracker) -> int:
    """The tracker's next ticket number. One atomic UPDATE: it row-locks the
    tracker until the transaction ends, so concurrent submissions queue up
    and never get the same number."""
    table = Tracker.__table__
    number = int(
        db_session.execute(
            sa.update(table)
            .where(table.c.id == tracker.id)
            .values(ticket_count=table.c.ticket_count + 1)
            .returning(table.c.ticket_count)
        ).scalar_one()
    )
    set_committed_value(tracker, "ticket_count", number)
    return number


def attach_tracker(tickets: list[Ticket], tracker: Tracker) -> None:
    """Give tickets loaded without their tracker the one they are on."""
    for ticket in tickets:
        set_committed_value(ticket, "tracker", tracker)


def ticket_options() -> list[Any]:
    """Loader options for tickets the API or a list shows: a fixed number
    of queries however many tickets."""
    return [
        selectinload(Ticket.labels),
        selectinload(Ticket.assignees),
        selectinload(Ticket.submitter),
    ]


def submit_ticket(access: Access, actor: Any, title: str, description: str = "") -> Ticket:
    access.require(SUBMIT, "submit tickets")
    title = check_title(title)
    description = check_text(description, "description")
    tracker = access.tracker
    ticket = Ticket(
        tracker_id=tracker.id,
        number=next_number(tracker),
        submitter_id=actor.id if actor is not None else None,
        title=title,
        description=description,
        status=OPEN,
    )
    db_session.add(ticket)
    db_session.flush()
    set_committed_value(ticket, "tracker", tracker)
    set_committed_value(ticket, "submitter", actor)
    set_committed_value(ticket, "labels", [])
    set_committed_value(ticket, "assignees", [])
    record_references(ticket, tracker, description, actor)
    if actor is not None:
        subscribe(actor, ticket=ticket)
    events.emit(tracker, "ticket:create", {"ticket": ticket.to_dict()}, actor)
    events.notify("ticket:create", ticket.id, actor)
    return ticket


@dataclass
class Changes:
    """What to change on a ticket; ``None`` leaves a part as it is."""

    title: str | None = None
    description: str | None = None
    status: str | None = None
    resolution: str | None = None
    labels: list[str] | None = None
    assignees: list[str] | None = None


def _labels_named(tracker: Tracker, names: Iterable[str]) -> list[Label]:
    wanted = list(dict.fromkeys(n.strip() for n in names))
    labels = db_session.scalars(
        sa.select(Label).where(Label.tracker_id == tracker.id, Label.name.in_(wanted))
    ).all()
    missing = set(wanted) - {label.name for label in labels}
    if missing:
        raise Problem("labels", f"{tracker.ref} has no label {sorted(missing)[0]!r}.")
    return sorted(labels, key=lambda label: label.name)


def _assignable(access: Access, usernames: Iterable[str]) -> list[User]:
    wanted = list(dict.fromkeys(u.strip().lstrip("~") for u in usernames))
    rows = db_session.execute(
        sa.select(User, TrackerAccess.access)
        .outerjoin(
            TrackerAccess,
            sa.and_(
                TrackerAccess.tracker_id == access.tracker.id, TrackerAccess.user_id == User.id
            ),
        )
        .where(User.username.in_(wanted))
    ).all()
    found = {user.username: (user, grant) for user, grant in rows}
    users = []
    for name in wanted:
        if name not in found:
            raise Problem("assignees", f"No user ~{name} has used this service yet.")
        user, grant = found[name]
        if not effective_access(access.tracker, user, grant) & BROWSE:
            raise Problem("assignees", f"~{name} may not see {access.tracker.ref}.")
        users.append(user)
    return sorted(users, key=lambda user: user.username)


def change_ticket(
    access: Access, ticket: Ticket, actor: Any, changes: Changes, comment: str = ""
) -> Comment | None:
    """Apply ``changes`` and an optional comment as one event on the
    ticket; returns the comment recording it (``None`` if nothing changed).
    ``ticket`` must have its labels, assignees and submitter loaded."""
    said: list[str] = []
    comment = check_text(comment, "comment")
    if comment.strip():
        access.require(COMMENT, "comment")
    if changes.title is not None or changes.description is not None:
        if not access.may_edit(ticket):
            raise Forbidden(f"You may not edit {ticket.ref}.")
        title = check_title(changes.title) if changes.title is not None else ticket.title
        if title != ticket.title:
            ticket.title = title
            said.append(f"retitled to {title!r}")
        if changes.description is not None and changes.description != ticket.description:
            ticket.description = check_text(changes.description, "description")
            said.append("edited the description")
            record_references(ticket, access.tracker, ticket.description, actor)
    if changes.status is not None or changes.resolution is not None:
        access.require(TRIAGE, "change a ticket's status")
        said += _change_status(ticket, changes.status, changes.resolution)
    if changes.labels is not None:
        access.require(TRIAGE, "label tickets")
        labels = _labels_named(access.tracker, changes.labels)
        before = {label.name for label in ticket.labels}
        after = {label.name for label in labels}
        said += [f"added label {n}" for n in sorted(after - before)]
        said += [f"removed label {n}" for n in sorted(before - after)]
        if before != after:
            ticket.labels = labels
    if changes.assignees is not None:
        access.require(TRIAGE, "assign tickets")
        users = _assignable(access, changes.assignees)
        before = {user.username for user in ticket.assignees}
        after = {user.username for user in users}
        said += [f"assigned ~{n}" for n in sorted(after - before)]
        said += [f"unassigned ~{n}" for n in sorted(before - after)]
        if before != after:
            ticket.assignees = users
    if not said and not comment.strip():
        return None
    ticket.updated = utcnow()
    note = Comment(
        ticket_id=ticket.id,
        author_id=actor.id if actor is not None else None,
        text=comment,
        change="; ".join(said) or None,
    )
    db_session.add(note)
    db_session.flush()
    set_committed_value(note, "author", actor)
    if comment.strip():
        record_references(ticket, access.tracker, comment, actor)
        if actor is not None:
            subscribe(actor, ticket=ticket)
    data = {"ticket": ticket.to_dict(), "comment": note.to_dict()}
    if comment.strip():
        events.emit(access.tracker, "comment:create", data, actor)
    if said:
        events.emit(access.tracker, "ticket:update", data, actor)
    events.notify(
        "comment:create" if comment.strip() and not said else "ticket:update",
        ticket.id,
        actor,
        note.id,
    )
    return note


def _change_status(ticket: Ticket, status: str | None, resolution: str | None) -> list[str]:
    status = status or ticket.status
    if status not in (OPEN, CLOSED):
        raise Problem("status", "Must be open or closed.")
    if status == OPEN:
        if resolution:
            raise Problem("resolution", "An open ticket has no resolution.")
        if ticket.status == OPEN:
            return []
        ticket.status, ticket.resolution = OPEN, None
        return ["reopened"]
    resolution = resolution or ticket.resolution or "fixed"
    if resolution not in RESOLUTIONS:
        raise Problem("resolution", f"Must be one of {', '.join(RESOLUTIONS)}.")
    if ticket.status == CLOSED and ticket.resolution == resolution:
        return []
    ticket.status, ticket.resolution = CLOSED, resolution
    return [f"closed as {resolution.replace('_', ' ')}"]


def add_comment(access: Access, ticket: Ticket, actor: Any, text: str) -> Comment:
    if not (text or "").strip():
        raise Problem("text", "A comment needs some text.")
    note = change_ticket(access, ticket, actor, Changes(), text)
    assert note is not None
    return note


# -- labels --------------------------------------------------------------------------


def check_label(name: str, color: str) -> tuple[str, str]:
    name = (name or "").strip()
    if not LABEL_NAME.match(name):
        raise Problem(
            "name", 'Use 1 to 64 characters, no double quotes ("), not starting with a space.'
        )
    if not COLOR.match(color or ""):
        raise Problem("color", "Use a colour like #1f7a3a (# and six hex digits).")
    return name, color.lower()


def _label_taken(tracker: Tracker, name: str, but: int | None = None) -> None:
    stmt = sa.select(Label.id).where(Label.tracker_id == tracker.id, Label.name == name)
    if but is not None:
        stmt = stmt.where(Label.id != but)
    if db_session.scalar(stmt) is not None:
        raise Problem("name", f"{tracker.ref} has a label {name!r} already.", 409)


def create_label(access: Access, name: str, color: str) -> Label:
    access.require(TRIAGE, "manage labels")
    name, color = check_label(name, color)
    _label_taken(access.tracker, name)
    label = Label(tracker_id=access.tracker.id, name=name, color=color)
    db_session.add(label)
    access.tracker.updated = utcnow()
    db_session.flush()
    events.emit(access.tracker, "label:create", {"label": label.to_dict()}, access.user)
    return label


def update_label(access: Access, label: Label, name: str | None, color: str | None) -> Label:
    access.require(TRIAGE, "manage labels")
    name, color = check_label(
        name if name is not None else label.name, color if color is not None else label.color
    )
    _label_taken(access.tracker, name, but=label.id)
    label.name, label.color = name, color
    access.tracker.updated = utcnow()
    db_session.flush()
    events.emit(access.tracker, "label:update", {"label": label.to_dict()}, access.user)
    return label


def delete_label(access: Access, label: Label) -> None:
    access.require(TRIAGE, "manage labels")
    events.emit(access.tracker, "label:delete", {"label": label.to_dict()}, access.user)
    db_session.delete(label)
    access.tracker.updated = utcnow()
    db_session.flush()


def find_label(access: Access, name: str) -> Label | None:
    return db_session.scalar(
        sa.select(Label).where(Label.tracker_id == access.tracker.id, Label.name == name)
    )


# -- webhooks ------------------------------------------------------------------------


def check_webhook(url: str, names: Iterable[str]) -> tuple[str, list[str]]:
    url = (url or "").strip()
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or len(url) > 2048
        or "\x00" in url
    ):
        raise Problem("url", "Use an http:// or https:// URL.")
    wanted = list(dict.fromkeys(names))
    if not wanted:
        raise Problem("events", "Choose at least one event.")
    unknown = [n for n in wanted if n not in events.EVENT_NAMES]
    if unknown:
        raise Problem("events", f"{unknown[0]!r} is not one of {', '.join(events.EVENT_NAMES)}.")
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


# -- subscriptions ---------------------------------------------------------------------


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


# -- accounts ------------------------------------------------------------------------------


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
