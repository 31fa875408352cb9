"""Who may do what on a tracker: the one permission model behind every page
and every API call.

A tracker's owner may do everything. A user named in the tracker's access
list gets exactly what that entry says (it replaces the defaults, so a
tracker can also shut one user out). Anyone else gets the tracker's
defaults, ``anonymous_access`` when signed out and ``user_access`` (plus
what anonymous visitors may) when signed in; a *private* tracker has no
defaults, only its owner and named users. Without ``browse`` a tracker and
everything in it does not exist for the viewer: 404, never 403.

Unlisted trackers behave like public ones except that they are only listed
to their owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value
from werkzeug.exceptions import Forbidden, NotFound

from srht_core import db_session, viewer

from .models import (
    ALL_ACCESS,
    BROWSE,
    COMMENT,
    EDIT,
    PRIVATE,
    SUBMIT,
    TRIAGE,
    Ticket,
    Tracker,
    TrackerAccess,
    User,
)

__all__ = [
    "BROWSE",
    "COMMENT",
    "EDIT",
    "SUBMIT",
    "TRIAGE",
    "Access",
    "effective_access",
    "find_ticket",
    "find_tracker",
    "listed_trackers",
    "tracker_for",
]


def effective_access(tracker: Tracker, user: Any, grant: int | None) -> int:
    """The access mask of ``user`` (``None``: signed out) on ``tracker``,
    given the user's named grant on it (``None``: not named)."""
    if user is not None and user.id == tracker.owner_id:
        return ALL_ACCESS
    if user is not None and grant is not None:
        return grant
    if tracker.visibility == PRIVATE:
        return 0
    if user is None:
        return tracker.anonymous_access
    return tracker.user_access | tracker.anonymous_access


@dataclass(frozen=True)
class Access:
    """What the viewer may do on one tracker."""

    tracker: Tracker
    mask: int
    user: Any

    def can(self, bit: int) -> bool:
        return bool(self.mask & bit)

    @property
    def is_owner(self) -> bool:
        return self.user is not None and self.user.id == self.tracker.owner_id

    def require(self, bit: int, what: str) -> None:
        """Raise 403 unless the viewer may ``bit``; ``what`` completes
        "You may not ..."."""
        if not self.can(bit):
            raise Forbidden(f"You may not {what} on {self.tracker.ref}.")

    def require_owner(self, what: str) -> None:
        if not self.is_owner:
            raise Forbidden(f"Only {self.tracker.owner.canonical_name} may {what}.")

    def may_edit(self, ticket: Ticket) -> bool:
        """Edit a ticket's title and description: its submitter may, and
        those with ``edit``."""
        mine = self.user is not None and ticket.submitter_id == self.user.id
        return self.can(EDIT) or (mine and self.can(BROWSE))


def _owner_name(owner: str) -> str:
    return owner[1:] if owner.startswith("~") else owner


def _not_found(owner: str, name: str) -> NotFound:
    return NotFound(f"There is no tracker ~{_owner_name(owner)}/{name} you may see.")


# Built once, with bound parameters: every todo page runs one of these, and
# building the statement cost more than the round trip.
_FIND_FOR_ANONYMOUS = (
    sa.select(Tracker, sa.null())
    .join(Tracker.owner)
    .where(User.username == sa.bindparam("owner"), Tracker.name == sa.bindparam("name"))
)
_FIND_FOR_USER = (
    sa.select(Tracker, TrackerAccess.access)
    .join(Tracker.owner)
    .outerjoin(
        TrackerAccess,
        sa.and_(
            TrackerAccess.tracker_id == Tracker.id, TrackerAccess.user_id == sa.bindparam("user")
        ),
    )
    .where(User.username == sa.bindparam("owner"), Tracker.name == sa.bindparam("name"))
)


def find_tracker(owner: str, name: str, user: Any) -> Access:
    """The tracker ``~owner/name`` and what ``user`` may do there, in one
    query; 404 when it does not exist or the user may not browse it."""
    values = {"owner": _owner_name(owner), "name": name}
    row: Any
    if user is None:
        row = db_session.execute(_FIND_FOR_ANONYMOUS, values).first()
    else:
        row = db_session.execute(_FIND_FOR_USER, {**values, "user": user.id}).first()
    if row is None:
        raise _not_found(owner, name)
    tracker, granted = row
    access = Access(tracker, effective_access(tracker, user, granted), user)
    if not access.can(BROWSE):
        raise _not_found(owner, name)
    return access


def find_ticket(access: Access, number: int) -> Ticket:
    """Ticket ``number`` of the tracker, with what its page shows preloaded."""
    ticket = db_session.scalar(
        sa.select(Ticket)
        .where(Ticket.tracker_id == access.tracker.id, Ticket.number == number)
        .options(
            selectinload(Ticket.labels),
            selectinload(Ticket.assignees),
            selectinload(Ticket.submitter),
        )
    )
    if ticket is None:
        raise NotFound(f"There is no ticket #{number} on {access.tracker.ref}.")
    set_committed_value(ticket, "tracker", access.tracker)
    return ticket


def browsable(user: Any) -> sa.ColumnElement[bool]:
    """SQL: the trackers ``user`` may browse. The statement must outer-join
    ``TrackerAccess`` for the user (see :func:`with_grant`)."""

    def has(column: Any) -> sa.ColumnElement[bool]:
        test: sa.ColumnElement[bool] = column.op("&")(BROWSE) != 0
        return test

    if user is None:
        return sa.and_(Tracker.visibility != PRIVATE, has(Tracker.anonymous_access))
    return sa.or_(
        Tracker.owner_id == user.id,
        sa.and_(TrackerAccess.id.is_not(None), has(TrackerAccess.access)),
        sa.and_(
            TrackerAccess.id.is_(None),
            Tracker.visibility != PRIVATE,
            sa.or_(has(Tracker.user_access), has(Tracker.anonymous_access)),
        ),
    )


def with_grant(stmt: sa.Select[Any], user: Any) -> sa.Select[Any]:
    """``stmt`` (over ``Tracker``) outer-joined with ``user``'s grants."""
    if user is None:
        return stmt
    return stmt.outerjoin(
        TrackerAccess,
        sa.and_(TrackerAccess.tracker_id == Tracker.id, TrackerAccess.user_id == user.id),
    )


def listed_trackers(user: Any, owner: User | None = None) -> sa.Select[Any]:
    """The trackers to list to ``user`` (optionally only ``owner``'s):
    what they may browse, less other people's unlisted ones."""
    stmt = with_grant(sa.select(Tracker), user)
    listed = Tracker.visibility != "unlisted"
    if user is not None:
        listed = sa.or_(listed, Tracker.owner_id == user.id)
    stmt = stmt.where(browsable(user), listed)
    if owner is not None:
        stmt = stmt.where(Tracker.owner_id == owner.id)
    return stmt


def grants_of(user: Any, tracker_ids: set[int]) -> dict[int, int]:
    """``user``'s named grants on the given trackers, in one query."""
    if user is None or not tracker_ids:
        return {}
    rows = db_session.execute(
        sa.select(TrackerAccess.tracker_id, TrackerAccess.access).where(
            TrackerAccess.user_id == user.id, TrackerAccess.tracker_id.in_(tracker_ids)
        )
    )
    return {tracker_id: mask for tracker_id, mask in rows}


def tracker_for(owner: str, tracker: str) -> Access:
    """:func:`find_tracker` for whoever is asking (page or API)."""
    return find_tracker(owner, tracker, viewer())
