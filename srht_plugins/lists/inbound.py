"""What becomes of a message arriving for a list address: the decision
behind every SMTP/LMTP reply, and the storing when it is accepted.

Each recipient gets its own answer, in its own transaction, committed
before the answer is given (LMTP replies per recipient after the data):

=====  ==============================================================
250    archived (and sent on), held for moderation, a confirmation
       sent or carried out, or already archived (a retried delivery)
550    5.1.1 no such list (a private list is "no such list" to a sender
       who may not post to it), 5.1.1 an unknown or used confirmation,
       5.7.1 not allowed to post (with what to do), 5.7.1 an archived list
550    5.6.0 / 5.1.7 a malformed message (no headers, no sender address)
552    too large (the listener answers it while the data comes in)
451    4.3.0 a failure of ours: the mail server keeps the message and
       tries again
=====  ==============================================================

A 5xx makes the mail server bounce the message to its sender with our
text, which is the bounce the sender sees.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa

from srht_core import current_service, db_session

from . import archive, subscriptions
from .access import may_post, may_subscribe
from .addresses import Recipient, list_address, parse_recipient, posting_domain
from .messages import Malformed, Parsed, parse
from .models import PRIVATE, MailingList, User
from .outbound import send_notice

__all__ = ["Reply", "check_recipient", "receive"]

log = logging.getLogger("srht.lists.inbound")


@dataclass(frozen=True)
class Reply:
    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}"

    @property
    def ok(self) -> bool:
        return self.code < 400


def find(recipient: Recipient) -> MailingList | None:
    return db_session.scalar(
        sa.select(MailingList)
        .join(MailingList.owner)
        .where(User.username == recipient.owner, MailingList.name == recipient.name)
    )


def _no_list(address: str) -> Reply:
    return Reply(550, f"5.1.1 <{address}>: no such list here")


def check_recipient(address: str) -> Reply:
    """The answer to ``RCPT TO:<address>``, before any data."""
    recipient = parse_recipient(address, posting_domain())
    if recipient is None or find(recipient) is None:
        return _no_list(address)
    return Reply(250, "2.1.5 OK")


def receive(address: str, envelope_from: str, raw: bytes) -> Reply:
    """Take ``raw`` for ``address``: decide, store, commit, answer."""
    try:
        reply = _receive(address, envelope_from, raw)
    except Exception:
        db_session.rollback()
        log.exception("could not take a message for %s", address)
        return Reply(451, "4.3.0 the list could not store the message; try again later")
    if reply.ok:
        db_session.commit()
    else:
        db_session.rollback()
    return reply


def _receive(address: str, envelope_from: str, raw: bytes) -> Reply:
    recipient = parse_recipient(address, posting_domain())
    mailing_list = find(recipient) if recipient is not None else None
    if recipient is None or mailing_list is None:
        return _no_list(address)
    raw = raw.replace(b"\r\n", b"\n")
    try:
        parsed = parse(raw, domain=posting_domain())
    except Malformed as problem:
        return Reply(550, str(problem))
    sender = parsed.sender_address
    if recipient.command == "bounces":
        log.info("%s: a copy could not be delivered (from %s)", mailing_list.ref, envelope_from)
        return Reply(250, "2.0.0 noted")
    if recipient.command == "confirm":
        assert recipient.token is not None
        done = subscriptions.confirm(mailing_list, recipient.token, sender)
        if done is None:
            return Reply(550, "5.1.1 no such confirmation for this address (used already?)")
        return Reply(250, f"2.0.0 {done} confirmed")
    if recipient.command in ("subscribe", "unsubscribe"):
        if mailing_list.visibility == PRIVATE and not may_subscribe(mailing_list, sender):
            return _no_list(address)
        subscriptions.ask_confirmation(mailing_list, sender, recipient.command, parsed.message_id)
        return Reply(250, f"2.0.0 a confirmation was sent to {sender}")
    return _post(mailing_list, address, envelope_from, raw, parsed)


def _post(
    mailing_list: MailingList, address: str, envelope_from: str, raw: bytes, parsed: Parsed
) -> Reply:
    if archive.existing(mailing_list, parsed.message_id) is not None:
        return Reply(250, "2.0.0 already archived")
    sender = parsed.sender_address
    allowed = may_post(mailing_list, sender)
    if not allowed and mailing_list.visibility == PRIVATE and not mailing_list.moderated:
        return _no_list(address)
    if mailing_list.archived:
        return Reply(550, f"5.7.1 {mailing_list.ref} is archived and takes no more posts")
    if not allowed and not mailing_list.moderated:
        how = {
            "subscribers": f"only subscribers may post; subscribe by writing to "
            f"{list_address(mailing_list, 'subscribe')}",
            "members": "only its members may post",
        }.get(mailing_list.post_policy, "you may not post")
        return Reply(550, f"5.7.1 {sender} may not post to {mailing_list.ref}: {how}")
    email, _new = archive.store(
        mailing_list, raw, parsed, envelope_from=envelope_from, held=not allowed
    )
    if not allowed:
        url = f"{current_service().origin}{mailing_list.path}/moderation"
        send_notice(
            mailing_list,
            mailing_list.owner.email,
            f"Held for moderation: {parsed.subject or '(no subject)'}",
            f"{sender} wrote to {mailing_list.ref}, which they may not post to; the message "
            f"waits for your approval:\n\n{url}\n",
        )
        return Reply(250, "2.0.0 held for the list owner's approval")
    url = f"{current_service().origin}{mailing_list.path}/messages/{email.id}"
    return Reply(250, f"2.0.0 archived at {url}")
