"""References between tickets: ``#12`` (same tracker) and
``~alice/bugs#12`` in ticket descriptions and comments become links when
shown, and are recorded so that the ticket referred to lists who refers
to it.

Only tickets the writer may browse are recorded, and the "referenced by"
list shows each viewer only the referring tickets they may browse.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import sqlalchemy as sa
from markupsafe import Markup

from srht_core import db_session, render_markdown

from .access import BROWSE, effective_access, grants_of
from .models import Ticket, TicketReference, Tracker, User

__all__ = ["Reference", "find_references", "record_references", "referenced_by", "render_text"]

#: At most this many references of one text are recorded.
MAX_REFERENCES = 50
REFERENCE = re.compile(
    r"(?<![\w&/#~.-])(?<!\]\()"
    r"(?:~(?P<owner>[a-z_][a-z0-9_-]*)/(?P<tracker>[A-Za-z0-9][A-Za-z0-9._-]*))?"
    r"#(?P<number>\d{1,9})\b"
)
#: Code spans and fenced blocks, where nothing is a reference.
CODE = re.compile(r"(```.*?(?:```|$)|~~~.*?(?:~~~|$)|`[^`\n]*`)", re.S)


class Reference(NamedTuple):
    owner: str | None
    tracker: str | None
    number: int


def _outside_code(text: str) -> list[tuple[bool, str]]:
    """``text`` in pieces, each marked whether it is prose (not code)."""
    return [(i % 2 == 0, piece) for i, piece in enumerate(CODE.split(text or ""))]


def find_references(text: str) -> list[Reference]:
    found: list[Reference] = []
    for prose, piece in _outside_code(text):
        if not prose:
            continue
        for match in REFERENCE.finditer(piece):
            ref = Reference(match["owner"], match["tracker"], int(match["number"]))
            if ref not in found:
                found.append(ref)
    return found[:MAX_REFERENCES]


def render_text(text: str, tracker: Tracker) -> Markup:
    """``text`` as safe HTML (core Markdown), references as links."""
    base = f"/{tracker.owner.canonical_name}/{tracker.name}"

    def link(match: re.Match[str]) -> str:
        target = f"/~{match['owner']}/{match['tracker']}" if match["owner"] else base
        return f"[{match[0]}]({target}/{match['number']})"

    out = [REFERENCE.sub(link, piece) if prose else piece for prose, piece in _outside_code(text)]
    return render_markdown("".join(out))


def record_references(source: Ticket, tracker: Tracker, text: str, author: Any) -> int:
    """Record what ``text`` (written by ``author`` on ``source``) refers to.
    Returns how many new references were recorded."""
    refs = find_references(text)
    if not refs:
        return 0
    conditions = []
    for ref in refs:
        if ref.owner is None:
            conditions.append(sa.and_(Ticket.tracker_id == tracker.id, Ticket.number == ref.number))
        else:
            conditions.append(
                sa.and_(
                    User.username == ref.owner,
                    Tracker.name == ref.tracker,
                    Ticket.number == ref.number,
                )
            )
    rows = db_session.execute(
        sa.select(Ticket.id, Tracker)
        .join(Tracker, Tracker.id == Ticket.tracker_id)
        .join(User, User.id == Tracker.owner_id)
        .where(sa.or_(*conditions))
    ).all()
    grants = grants_of(author, {t.id for _id, t in rows})
    targets = {
        ticket_id
        for ticket_id, target_tracker in rows
        if ticket_id != source.id
        and effective_access(target_tracker, author, grants.get(target_tracker.id)) & BROWSE
    }
    if not targets:
        return 0
    known = set(
        db_session.scalars(
            sa.select(TicketReference.target_id).where(
                TicketReference.source_id == source.id, TicketReference.target_id.in_(targets)
            )
        )
    )
    new = targets - known
    for target_id in sorted(new):
        db_session.add(TicketReference(source_id=source.id, target_id=target_id))
    return len(new)


def referenced_by(ticket: Ticket, viewer: Any) -> list[tuple[Tracker, Ticket]]:
    """The tickets referring to ``ticket`` that ``viewer`` may browse (two
    queries, however many there are)."""
    rows = db_session.execute(
        sa.select(Ticket, Tracker)
        .join(TicketReference, TicketReference.source_id == Ticket.id)
        .join(Tracker, Tracker.id == Ticket.tracker_id)
        .where(TicketReference.target_id == ticket.id)
        .order_by(TicketReference.id)
    ).all()
    grants = grants_of(viewer, {t.id for _ticket, t in rows})
    return [
        (tracker, source)
        for source, tracker in rows
        if effective_access(tracker, viewer, grants.get(tracker.id)) & BROWSE
    ]
