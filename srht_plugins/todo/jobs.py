"""todo's background jobs: mail to subscribers.

A change enqueues one ``notify`` job in its own transaction; the job works
out who hears of it and queues one ``srht.send-mail`` job per recipient, all
in the job's transaction, so a retry never sends half the mail twice.
"""

from __future__ import annotations

from email.utils import formataddr
from typing import TYPE_CHECKING

from srht_core import Job

if TYPE_CHECKING:
    from .models import Ticket, Tracker, User

# The package imports this module when a plugin host loads todo (for its
# ``jobs`` hook), and every ``srht`` command loads it: the database, models
# and mail are imported when a job runs.

VERBS = {
    "ticket:create": "opened",
    "comment:create": "commented on",
    "ticket:update": "changed",
}


def recipients(ticket: Ticket, tracker: Tracker, actor_id: int | None) -> list[User]:
    """Subscribers of the ticket or its tracker who may still browse it,
    but not whoever made the change."""
    import sqlalchemy as sa

    from srht_core import db_session

    from .access import BROWSE, effective_access
    from .models import Subscription, TrackerAccess, User

    rows = db_session.execute(
        sa.select(User, TrackerAccess.access)
        .join(Subscription, Subscription.user_id == User.id)
        .outerjoin(
            TrackerAccess,
            sa.and_(TrackerAccess.tracker_id == tracker.id, TrackerAccess.user_id == User.id),
        )
        .where(sa.or_(Subscription.ticket_id == ticket.id, Subscription.tracker_id == tracker.id))
        .order_by(User.id)
    ).all()
    out: dict[int, User] = {}
    for user, grant in rows:
        if user.id == actor_id or user.user_type in ("suspended", "deleted"):
            continue
        if effective_access(tracker, user, grant) & BROWSE:
            out[user.id] = user
    return list(out.values())


def notify(what: str, ticket: int, comment: int | None = None, actor: int | None = None) -> None:
    """The ``notify`` job."""
    from srht_core import current_service, db_session, send_mail

    from .models import Comment, Ticket, Tracker, User

    state = current_service()
    found = db_session.get(Ticket, ticket)
    if found is None:
        return  # deleted since: nothing to tell
    tracker = db_session.get(Tracker, found.tracker_id)
    assert tracker is not None
    author = db_session.get(User, actor) if actor is not None else None
    note = db_session.get(Comment, comment) if comment is not None else None
    who = author.canonical_name if author is not None else "Someone"
    ref = f"{tracker.ref}#{found.number}"
    url = f"{state.origin}{tracker.path}/{found.number}"
    lines = [f"{who} {VERBS.get(what, 'changed')} {ref}: {found.title}", ""]
    if what == "ticket:create":
        lines += [found.description or "(no description)", ""]
    if note is not None:
        if note.change:
            lines += [note.change, ""]
        if note.text:
            lines += [note.text, ""]
    headers = {"X-Srht-Ticket": ref}
    sender = state.config.get("todo", "notify-from")
    if sender:
        headers["From"] = formataddr((str(state.config["srht"]["site-name"]), sender))
    for user in recipients(found, tracker, actor):
        body = "\n".join(
            [
                *lines,
                "-- ",
                url,
                f"You get this because you follow {ref} or {tracker.ref}; "
                f"unsubscribe on that page.",
                "",
            ]
        )
        send_mail(user.email, f"{ref}: {found.title}", body, headers=headers, session=db_session)


JOBS = [Job("notify", notify, max_attempts=10, backoff=30)]
