"""What a list sends: each post on to its subscribers, and the mail of its
subscription round trips.

A post goes on as it arrived, byte for byte below the headers, with its
``From``, ``Message-ID``, ``In-Reply-To`` and ``References`` untouched, so
threading works in every mail client and a DKIM signature over them stays
valid. The list adds the headers of RFC 2369 and RFC 2919 (``List-Id``,
``List-Post``, ``List-Subscribe``, ``List-Unsubscribe``, ``List-Archive``)
and ``Archived-At`` (RFC 5064), replacing any such headers the message
came with. Only a list set to ``rewrite_from`` changes ``From`` (to the
list, the author in ``Reply-To``), for authors whose domain publishes a
DMARC policy that would have the copies rejected.

Everything leaves through the core's mail: queued in the transaction that
archived the post, sent by the worker, retried until it goes.
"""

from __future__ import annotations

import re
from email.utils import formataddr

import sqlalchemy as sa

from srht_core import current_service, db_session, send_mail, send_message

from .addresses import list_address, posting_domain
from .models import Email, MailingList, Subscription

__all__ = ["distribute", "list_headers", "list_id", "send_notice"]

#: Headers the list sets itself; copies the message came with are dropped.
_OWN = re.compile(rb"^(list-[a-z]+|archived-at):", re.I)


def list_id(mailing_list: MailingList) -> str:
    """RFC 2919: ``~alice/widget-devel <widget-devel.alice.lists.example.org>``."""
    return (
        f"{mailing_list.ref} <{mailing_list.name}.{mailing_list.owner.username}.{posting_domain()}>"
    )


def archive_url(mailing_list: MailingList, email: Email | None = None) -> str:
    base = current_service().origin + mailing_list.path
    return base + (f"/messages/{email.id}" if email is not None else "")


def list_headers(mailing_list: MailingList, email: Email | None = None) -> list[tuple[str, str]]:
    headers = [
        ("List-Id", list_id(mailing_list)),
        ("List-Post", f"<mailto:{list_address(mailing_list)}>"),
        ("List-Subscribe", f"<mailto:{list_address(mailing_list, 'subscribe')}>"),
        ("List-Unsubscribe", f"<mailto:{list_address(mailing_list, 'unsubscribe')}>"),
        ("List-Archive", f"<{archive_url(mailing_list)}>"),
    ]
    if email is not None:
        headers.append(("Archived-At", f"<{archive_url(mailing_list, email)}>"))
    return headers


def _split(raw: bytes) -> tuple[list[bytes], bytes]:
    """The header fields (each with its folded lines) and the rest."""
    head, sep, body = raw.partition(b"\n\n")
    fields: list[bytes] = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\n" + line
        else:
            fields.append(line)
    return fields, sep + body


def outgoing(mailing_list: MailingList, email: Email, raw: bytes) -> bytes:
    """The copy of ``raw`` subscribers get."""
    fields, rest = _split(raw)
    fields = [f for f in fields if not _OWN.match(f)]
    if mailing_list.rewrite_from:
        author = formataddr((email.sender_name, email.sender_address))
        via = f"{email.sender_name or email.sender_address} via {mailing_list.ref}"
        fields = [f for f in fields if not re.match(rb"^(from|reply-to):", f, re.I)]
        fields.append(f"From: {_header(formataddr((via, list_address(mailing_list))))}".encode())
        fields.append(f"Reply-To: {_header(author)}".encode())
    added = [f"{name}: {value}".encode() for name, value in list_headers(mailing_list, email)]
    return b"\n".join(added + fields) + rest


def _header(value: str) -> str:
    """``value`` as a header may hold it (encoded words for non-ASCII)."""
    from email.header import Header

    return value if value.isascii() else Header(value, "utf-8").encode()


def subscribers(mailing_list: MailingList, *, but: str = "") -> list[str]:
    rows = db_session.scalars(
        sa.select(Subscription.address)
        .where(Subscription.list_id == mailing_list.id)
        .order_by(Subscription.id)
    )
    return [address for address in rows if address.lower() != but.lower()]


def distribute(mailing_list: MailingList, email: Email, raw: bytes) -> int:
    """Queue the copies of an archived post to every subscriber but its
    author; returns how many addresses."""
    recipients = subscribers(mailing_list, but=email.sender_address)
    if recipients:
        send_message(
            outgoing(mailing_list, email, raw),
            recipients,
            sender=list_address(mailing_list, "bounces"),
            session=db_session,
        )
    return len(recipients)


def send_notice(
    mailing_list: MailingList,
    to: str,
    subject: str,
    body: str,
    *,
    reply_to: str | None = None,
    in_reply_to: str | None = None,
) -> None:
    """A message from the list itself (a confirmation, a moderation notice)."""
    headers = {
        "From": formataddr((mailing_list.ref, list_address(mailing_list))),
        **dict(list_headers(mailing_list)),
    }
    if in_reply_to:
        headers["In-Reply-To"] = f"<{in_reply_to}>"
        headers["References"] = f"<{in_reply_to}>"
    send_mail(to, subject, body, reply_to=reply_to, headers=headers, session=db_session)
