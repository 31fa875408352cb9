"""Who gets a list's posts: addresses subscribed on the web (a signed-in
user's own address), through the API, or by mail with a confirmation round
trip (``LIST+subscribe@`` → a confirmation → the address's reply to it).

A request by mail could be forged, so it changes nothing until the address
itself answers the confirmation; unsubscribing by mail is confirmed the
same way. A confirmation is used once.
"""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa

from srht_core import Problem, db_session

from .access import may_subscribe
from .addresses import list_address
from .models import Confirmation, MailingList, Subscription
from .outbound import send_notice

__all__ = [
    "ask_confirmation",
    "confirm",
    "subscribe",
    "subscription_of",
    "unsubscribe",
]


def subscription_of(mailing_list: MailingList, address: str) -> Subscription | None:
    return db_session.scalar(
        sa.select(Subscription).where(
            Subscription.list_id == mailing_list.id,
            sa.func.lower(Subscription.address) == address.lower(),
        )
    )


def subscribe(mailing_list: MailingList, address: str, user: Any = None) -> Subscription:
    """Subscribe ``address`` (idempotent)."""
    if not may_subscribe(mailing_list, address):
        raise Problem("address", f"{address} may not subscribe to {mailing_list.ref}.", 403)
    found = subscription_of(mailing_list, address)
    if found is not None:
        return found
    entry = Subscription(
        list_id=mailing_list.id, address=address, user_id=user.id if user is not None else None
    )
    try:
        with db_session.begin_nested():
            db_session.add(entry)
    except sa.exc.IntegrityError:
        found = subscription_of(mailing_list, address)  # subscribed this very moment
        assert found is not None
        return found
    return entry


def unsubscribe(mailing_list: MailingList, address: str) -> bool:
    found = subscription_of(mailing_list, address)
    if found is None:
        return False
    db_session.delete(found)
    db_session.flush()
    return True


def ask_confirmation(
    mailing_list: MailingList, address: str, action: str, message_id: str | None
) -> None:
    """Record a request by mail and send ``address`` the confirmation to
    reply to."""
    assert action in ("subscribe", "unsubscribe"), action
    token = secrets.token_hex(16)
    db_session.add(
        Confirmation(list_id=mailing_list.id, address=address, action=action, token=token)
    )
    if action == "subscribe":
        what = f"subscribe {address} to {mailing_list.ref}: every post will be sent there"
    else:
        what = f"unsubscribe {address} from {mailing_list.ref}"
    send_notice(
        mailing_list,
        address,
        f"Confirm: {action} {mailing_list.ref}",
        f"Someone, hopefully you, asked to {what}.\n\n"
        "To confirm, reply to this message (the reply's text does not matter).\n"
        "If you did not ask, ignore it: nothing changes.\n",
        reply_to=list_address(mailing_list, f"confirm-{token}"),
        in_reply_to=message_id,
    )


def confirm(mailing_list: MailingList, token: str, address: str) -> str | None:
    """Carry out the request ``token`` names, if ``address`` is the one it
    was made for; returns what was done (``subscribe``/``unsubscribe``) or
    ``None`` when there is no such request for that address."""
    found = db_session.scalar(
        sa.select(Confirmation).where(
            Confirmation.list_id == mailing_list.id, Confirmation.token == token
        )
    )
    if found is None or found.address.lower() != address.lower():
        return None
    db_session.delete(found)
    if found.action == "subscribe":
        subscribe(mailing_list, found.address)
        send_notice(
            mailing_list,
            found.address,
            f"Welcome to {mailing_list.ref}",
            f"{found.address} is now subscribed to {mailing_list.ref}.\n\n"
            f"Post by writing to {list_address(mailing_list)}.\n"
            f"Unsubscribe by writing to {list_address(mailing_list, 'unsubscribe')}.\n",
        )
    else:
        unsubscribe(mailing_list, found.address)
        send_notice(
            mailing_list,
            found.address,
            f"Unsubscribed from {mailing_list.ref}",
            f"{found.address} gets no more posts of {mailing_list.ref}.\n",
        )
    return found.action
