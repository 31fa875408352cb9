"""Storing a message: the row, its place in a thread and a patchset, and
what follows from its arrival (webhooks, the copies to subscribers).

Everything happens in the caller's transaction: the listener commits it
before it answers ``250``, so a message it acknowledged is on disk with
every copy and webhook it owes recorded as a job; a process killed after
that loses nothing, and one killed before has acknowledged nothing (the
mail server tries again, and a message already stored is recognised by its
``Message-ID`` and not stored twice).
"""

from __future__ import annotations

import sqlalchemy as sa

from srht_core import db_session, utcnow

from . import events, patches
from .addresses import list_address
from .messages import Parsed
from .models import ARCHIVED, HELD, Attachment, Email, MailingList, Patchset, Thread
from .outbound import distribute

__all__ = ["publish", "store"]


def existing(mailing_list: MailingList, message_id: str) -> Email | None:
    return db_session.scalar(
        sa.select(Email).where(Email.list_id == mailing_list.id, Email.message_id == message_id)
    )


def store(
    mailing_list: MailingList,
    raw: bytes,
    parsed: Parsed,
    *,
    envelope_from: str = "",
    held: bool = False,
    send_on: bool = True,
    quiet: bool = False,
) -> tuple[Email, bool]:
    """Store ``raw`` on the list (held for moderation, or archived and
    published); returns the message and whether it is new.

    :param send_on: queue the copies to the subscribers.
    :param quiet: tell no webhook (an imported archive is history).
    """
    found = existing(mailing_list, parsed.message_id)
    if found is not None:
        return found, False
    now = utcnow()
    email = Email(
        list_id=mailing_list.id,
        status=HELD if held else ARCHIVED,
        message_id=parsed.message_id,
        in_reply_to=parsed.in_reply_to,
        references="\n".join(parsed.references),
        subject=parsed.subject,
        sender_name=parsed.sender_name,
        sender_address=parsed.sender_address,
        envelope_from=envelope_from[:320],
        date=parsed.date or now,
        body=parsed.body,
        from_html=parsed.from_html,
        headers=parsed.headers,
        raw=raw,
        size=len(raw),
        attachments=[
            Attachment(
                number=a.number, filename=a.filename, content_type=a.content_type, size=a.size
            )
            for a in parsed.attachments
        ],
    )
    db_session.add(email)
    db_session.flush()
    if held:
        mailing_list.updated = now
    else:
        publish(
            mailing_list, email, raw, send_on=send_on, quiet=quiet, update=parsed.patchset_update
        )
    return email, True


def publish(
    mailing_list: MailingList,
    email: Email,
    raw: bytes,
    *,
    send_on: bool = True,
    quiet: bool = False,
    update: str | None = None,
) -> None:
    """Archive ``email``: thread it, put it in its patchset, tell the
    list's webhooks, and queue its copies to the subscribers."""
    email.status = ARCHIVED
    thread(mailing_list, email)
    patches.place(mailing_list, email, quiet=quiet)
    if update:
        patches.update_by_mail(mailing_list, email, update)
    mailing_list.updated = utcnow()
    if not quiet:
        events.emit(
            mailing_list, "email:received", {"email": email.to_dict()}, list_address(mailing_list)
        )
    if send_on:
        distribute(mailing_list, email, raw)


def thread(mailing_list: MailingList, email: Email) -> Thread:
    """Put ``email`` under the nearest message it answers that the list
    has (``In-Reply-To``, then ``References`` from the last), or start a
    thread; then take in the messages that arrived before it and answer it."""
    wanted = [email.in_reply_to, *reversed(email.references.split())]
    candidates = list(dict.fromkeys(c for c in wanted if c and c != email.message_id))
    parent = None
    if candidates:
        rows = db_session.execute(
            sa.select(Email.id, Email.message_id, Email.thread_id).where(
                Email.list_id == mailing_list.id,
                Email.status == ARCHIVED,
                Email.message_id.in_(candidates),
                Email.thread_id.is_not(None),
            )
        ).all()
        known = {row.message_id: row for row in rows}
        parent = next((known[c] for c in candidates if c in known), None)
    now = utcnow()
    if parent is not None:
        found = db_session.get(Thread, parent.thread_id)
        assert found is not None
        email.parent_id, email.thread_id = parent.id, found.id
        found.messages += 1
        found.updated = now
    else:
        found = Thread(
            list_id=mailing_list.id,
            subject=email.subject,
            sender_name=email.sender_name,
            sender_address=email.sender_address,
            messages=1,
            updated=now,
        )
        db_session.add(found)
        db_session.flush()
        email.thread_id = found.id
    db_session.flush()
    _adopt(mailing_list, email, found)
    return found


def _adopt(mailing_list: MailingList, email: Email, into: Thread) -> None:
    """Messages that answer ``email`` but arrived first went under an older
    message of the thread, or started threads of their own: put them under
    it, moving those threads into its own."""
    orphans = db_session.scalars(
        sa.select(Email).where(
            Email.list_id == mailing_list.id,
            Email.status == ARCHIVED,
            Email.in_reply_to == email.message_id,
            Email.id != email.id,
        )
    ).all()
    for orphan in orphans:
        old = orphan.thread_id
        orphan.parent_id = email.id
        if old is None or old == into.id:
            continue
        moved = db_session.get(Thread, old)
        db_session.execute(sa.update(Email).where(Email.thread_id == old).values(thread_id=into.id))
        db_session.execute(
            sa.update(Patchset).where(Patchset.thread_id == old).values(thread_id=into.id)
        )
        if moved is not None:
            into.messages += moved.messages
            db_session.delete(moved)
        _merge_patchsets(into)
    db_session.flush()


def _merge_patchsets(into: Thread) -> None:
    """Patchsets of one series that met in one thread become one."""
    series: dict[tuple[int, int, str], int] = {}
    for patchset in db_session.scalars(
        sa.select(Patchset).where(Patchset.thread_id == into.id).order_by(Patchset.id)
    ):
        if patchset.total <= 1:
            continue
        key = (patchset.version, patchset.total, patchset.prefix)
        first = series.setdefault(key, patchset.id)
        if first != patchset.id:
            db_session.execute(
                sa.update(Email).where(Email.patchset_id == patchset.id).values(patchset_id=first)
            )
            db_session.delete(patchset)
