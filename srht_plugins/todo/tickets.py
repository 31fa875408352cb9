"""Tickets and comments, whether through a page or the API: submit,
comment on and change tickets (title, description, status, labels,
assignees), each change recorded as a comment.

Each operation checks the actor's access (``access.Access``), changes the
rows in the request's session without committing, and records what the
outside must hear of it (webhook deliveries and the ``notify`` job) in the
same transaction. Invalid input raises :class:`srht_core.Problem`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value
from werkzeug.exceptions import Forbidden

from srht_core import Problem, db_session, utcnow

from . import events
from .access import BROWSE, COMMENT, SUBMIT, TRIAGE, Access, effective_access
from .models import (
    CLOSED,
    OPEN,
    RESOLUTIONS,
    Comment,
    Label,
    Ticket,
    Tracker,
    TrackerAccess,
    User,
    resolution_label,
)
from .references import record_references
from .subscriptions import subscribe

MAX_TITLE = 512
MAX_TEXT = 65536


def check_title(title: str) -> str:
    title = check_text(title, "title").strip()
    if not title:
        raise Problem("title", "A ticket needs a title.")
    if len(title) > MAX_TITLE:
        raise Problem("title", f"At most {MAX_TITLE} characters.")
    return title


def check_text(text: str, field: str) -> str:
    text = text or ""
    if len(text) > MAX_TEXT:
        raise Problem(field, f"At most {MAX_TEXT} characters.")
    return text


def next_number(tracker: Tracker) -> int:
    """The tracker's next ticket number. One atomic UPDATE: it row-locks the
    tracker until the transaction ends, so concurrent submissions queue up
    and never get the same number."""
    table = cast(sa.Table, Tracker.__table__)
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
    return [f"closed as {resolution_label(resolution)}"]


def add_comment(access: Access, ticket: Ticket, actor: Any, text: str) -> Comment:
    if not (text or "").strip():
        raise Problem("text", "A comment needs some text.")
    note = change_ticket(access, ticket, actor, Changes(), text)
    assert note is not None
    return note
