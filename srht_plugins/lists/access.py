"""Who may do what with a list: the one permission model behind every
page, API call and arriving message.

A list's owner may do everything. Its named members may read it even when
it is private. Anyone may read a public or an unlisted list (unlisted ones
are not listed, except to their owner); a private list does not exist for
anyone else: 404, never 403. Settings, moderation, webhooks and patchset
statuses are the owner's.

Posting is by address, since mail carries no session: the owner's,
the members' and the allowed addresses may always post; others when the
policy is ``subscribers`` and they are subscribed, or when it is
``anyone``. A private list takes mail
only from its owner, its members and its allowed addresses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import undefer
from werkzeug.exceptions import Forbidden, NotFound

from srht_core import db_session, viewer

from .models import (
    ANYONE,
    ARCHIVED,
    MEMBERS,
    PRIVATE,
    SUBSCRIBERS,
    UNLISTED,
    Email,
    ListMember,
    MailingList,
    Patchset,
    Subscription,
    Thread,
    User,
)

__all__ = [
    "Access",
    "find_email",
    "find_list",
    "find_patchset",
    "find_thread",
    "list_for",
    "listed_lists",
    "may_post",
    "may_read",
]


def may_read(mailing_list: MailingList, user: Any, member: bool) -> bool:
    if user is not None and user.id == mailing_list.owner_id:
        return True
    return mailing_list.visibility != PRIVATE or member


@dataclass(frozen=True)
class Access:
    """What the viewer may do with one list."""

    list: MailingList
    user: Any
    member: bool

    @property
    def is_owner(self) -> bool:
        return self.user is not None and self.user.id == self.list.owner_id

    def require_owner(self, what: str) -> None:
        if not self.is_owner:
            raise Forbidden(f"Only {self.list.owner.canonical_name} may {what}.")


def _owner_name(owner: str) -> str:
    return owner[1:] if owner.startswith("~") else owner


def not_found(owner: str, name: str) -> NotFound:
    return NotFound(f"There is no list ~{_owner_name(owner)}/{name} you may see.")


_FIND = (
    sa.select(MailingList)
    .join(MailingList.owner)
    .where(User.username == sa.bindparam("owner"), MailingList.name == sa.bindparam("name"))
)
_FIND_WITH_MEMBER = (
    sa.select(MailingList, ListMember.id)
    .join(MailingList.owner)
    .outerjoin(
        ListMember,
        sa.and_(ListMember.list_id == MailingList.id, ListMember.user_id == sa.bindparam("user")),
    )
    .where(User.username == sa.bindparam("owner"), MailingList.name == sa.bindparam("name"))
)


def find_list(owner: str, name: str, user: Any) -> Access:
    """The list ``~owner/name`` and what ``user`` may do there, in one
    query; 404 when there is none or the user may not read it."""
    values = {"owner": _owner_name(owner), "name": name}
    if user is None:
        found = db_session.scalar(_FIND, values)
        member = False
    else:
        row = db_session.execute(_FIND_WITH_MEMBER, {**values, "user": user.id}).first()
        found, member = (row[0], row[1] is not None) if row is not None else (None, False)
    if found is None or not may_read(found, user, member):
        raise not_found(owner, name)
    return Access(found, user, member)


def list_for(owner: str, name: str) -> Access:
    """:func:`find_list` for whoever is asking (page or API)."""
    return find_list(owner, name, viewer())


def listed_lists(user: Any, owner: User | None = None) -> sa.Select[Any]:
    """The lists to show ``user`` in a listing (optionally only ``owner``'s):
    the public ones, the private ones they are a member of, and their own."""
    stmt = sa.select(MailingList)
    if user is None:
        stmt = stmt.where(MailingList.visibility != PRIVATE, MailingList.visibility != UNLISTED)
    else:
        member = sa.exists().where(
            ListMember.list_id == MailingList.id, ListMember.user_id == user.id
        )
        stmt = stmt.where(
            sa.or_(
                MailingList.owner_id == user.id,
                MailingList.visibility == "public",
                sa.and_(MailingList.visibility == PRIVATE, member),
            )
        )
    if owner is not None:
        stmt = stmt.where(MailingList.owner_id == owner.id)
    return stmt


def member_addresses(mailing_list: MailingList) -> set[str]:
    """The owner's and the named members' addresses (lower case)."""
    rows = db_session.scalars(
        sa.select(User.email)
        .join(ListMember, ListMember.user_id == User.id)
        .where(ListMember.list_id == mailing_list.id)
    )
    return {mailing_list.owner.email.lower(), *(address.lower() for address in rows)}


def may_post(mailing_list: MailingList, address: str) -> bool:
    """Whether mail from ``address`` goes on the list (see the module)."""
    address = address.lower()
    insiders = member_addresses(mailing_list)
    if address in insiders or address in mailing_list.allowed_addresses():
        return True
    if mailing_list.visibility == PRIVATE:
        return False
    if mailing_list.post_policy == ANYONE:
        return True
    if mailing_list.post_policy == SUBSCRIBERS:
        return bool(
            db_session.scalar(
                sa.select(Subscription.id).where(
                    Subscription.list_id == mailing_list.id,
                    sa.func.lower(Subscription.address) == address,
                )
            )
        )
    assert mailing_list.post_policy == MEMBERS
    return False


def may_subscribe(mailing_list: MailingList, address: str) -> bool:
    """Whether ``address`` may get a list's posts: anyone's address for a
    list anyone may read, the owner's and members' for a private one."""
    return mailing_list.visibility != PRIVATE or address.lower() in member_addresses(mailing_list)


# -- what is in a list ------------------------------------------------------------


def find_thread(access: Access, thread_id: int) -> Thread:
    found = db_session.get(Thread, thread_id)
    if found is None or found.list_id != access.list.id:
        raise NotFound(f"There is no thread {thread_id} on {access.list.ref}.")
    return found


def find_email(access: Access, email_id: int, *, raw: bool = False) -> Email:
    stmt = sa.select(Email).where(
        Email.id == email_id, Email.list_id == access.list.id, Email.status == ARCHIVED
    )
    if raw:
        stmt = stmt.options(undefer(Email.raw))
    found = db_session.scalar(stmt)
    if found is None:
        raise NotFound(f"There is no message {email_id} on {access.list.ref}.")
    return found


def find_patchset(access: Access, patchset_id: int) -> Patchset:
    found = db_session.get(Patchset, patchset_id)
    if found is None or found.list_id != access.list.id:
        raise NotFound(f"There is no patchset {patchset_id} on {access.list.ref}.")
    return found
