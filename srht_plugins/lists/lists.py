"""Lists, whether through a page or the API: create, configure, archive
and delete them, name their members, and forget a deleted account's.

Each operation checks the actor's access (:class:`~.access.Access`),
changes the rows in the request's session without committing, and records
what the outside must hear of it (webhook deliveries) in the same
transaction. Invalid input raises :class:`srht_core.Problem`.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from srht_core import Problem, db_session, utcnow

from . import events
from .access import Access
from .addresses import list_address
from .messages import ADDRESS
from .models import (
    LIST_NAME,
    POST_POLICIES,
    VISIBILITIES,
    ListMember,
    MailingList,
    Subscription,
    User,
)

#: Allowed addresses one list may name.
MAX_ALLOWED = 1000


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not LIST_NAME.match(name):
        raise Problem(
            "name",
            "Use 1 to 128 letters, digits, dots, dashes and underscores, "
            "starting with a letter or digit.",
        )
    return name


def check_choice(field: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise Problem(field, f"Must be one of {', '.join(choices)}.")
    return value


def check_addresses(field: str, addresses: list[str]) -> str:
    """One address a line, each checked."""
    out = []
    for address in addresses:
        address = address.strip()
        if not address:
            continue
        if not ADDRESS.match(address) or len(address) > 320:
            raise Problem(field, f"{address!r} is not an email address.")
        out.append(address.lower())
    if len(out) > MAX_ALLOWED:
        raise Problem(field, f"Name at most {MAX_ALLOWED} addresses.")
    return "\n".join(dict.fromkeys(out))


def split_addresses(text: str) -> list[str]:
    return [part for part in re.split(r"[\s,;]+", text or "") if part]


def to_dict(mailing_list: MailingList) -> dict[str, object]:
    return mailing_list.to_dict(list_address(mailing_list))


def create_list(
    owner: Any, name: str, description: str = "", visibility: str = "public"
) -> MailingList:
    name = check_name(name)
    visibility = check_choice("visibility", visibility, VISIBILITIES)
    taken = db_session.scalar(
        sa.select(MailingList.id).where(MailingList.owner_id == owner.id, MailingList.name == name)
    )
    if taken is not None:
        raise Problem("name", f"You have a list named {name} already.", 409)
    mailing_list = MailingList(
        owner_id=owner.id, name=name, description=description or "", visibility=visibility
    )
    db_session.add(mailing_list)
    db_session.flush()
    set_committed_value(mailing_list, "owner", owner)
    events.emit_user(owner.id, "list:create", {"list": to_dict(mailing_list)})
    return mailing_list


def update_list(
    access: Access,
    *,
    description: str | None = None,
    visibility: str | None = None,
    post_policy: str | None = None,
    allowed_senders: list[str] | None = None,
    moderated: bool | None = None,
    rewrite_from: bool | None = None,
    archived: bool | None = None,
) -> MailingList:
    access.require_owner("change this list's settings")
    mailing_list = access.list
    if description is not None:
        mailing_list.description = description
    if visibility is not None:
        mailing_list.visibility = check_choice("visibility", visibility, VISIBILITIES)
    if post_policy is not None:
        mailing_list.post_policy = check_choice("post_policy", post_policy, POST_POLICIES)
    if allowed_senders is not None:
        mailing_list.allowed_senders = check_addresses("allowed_senders", allowed_senders)
    if moderated is not None:
        mailing_list.moderated = moderated
    if rewrite_from is not None:
        mailing_list.rewrite_from = rewrite_from
    if archived is not None:
        mailing_list.archived = archived
    mailing_list.updated = utcnow()
    db_session.flush()
    events.emit_user(mailing_list.owner_id, "list:update", {"list": to_dict(mailing_list)})
    return mailing_list


def delete_list(access: Access) -> None:
    access.require_owner("delete this list")
    events.emit_user(access.list.owner_id, "list:delete", {"list": to_dict(access.list)})
    db_session.delete(access.list)
    db_session.flush()


def find_user(username: str, field: str) -> User:
    name = (username or "").strip().lstrip("~")
    user = db_session.scalar(sa.select(User).where(User.username == name))
    if user is None:
        raise Problem(field, f"No user ~{name} has used this service yet.", 404)
    return user


def add_member(access: Access, user: User) -> ListMember:
    access.require_owner("name members")
    if user.id == access.list.owner_id:
        raise Problem("username", "The owner is always a member.", 409)
    member = db_session.scalar(
        sa.select(ListMember).where(
            ListMember.list_id == access.list.id, ListMember.user_id == user.id
        )
    )
    if member is None:
        member = ListMember(list_id=access.list.id, user_id=user.id)
        db_session.add(member)
        db_session.flush()
        set_committed_value(member, "user", user)
    access.list.updated = utcnow()
    return member


def remove_member(access: Access, user_id: int) -> bool:
    access.require_owner("name members")
    result = db_session.execute(
        sa.delete(ListMember).where(
            ListMember.list_id == access.list.id, ListMember.user_id == user_id
        )
    )
    access.list.updated = utcnow()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def forget_user(user: Any) -> None:
    """For a deleted account: delete the user's lists (with their archives)
    and their memberships and web subscriptions. Their messages on other
    people's lists stay: they were sent to everyone on the list."""
    db_session.execute(sa.delete(MailingList).where(MailingList.owner_id == user.id))
    db_session.execute(sa.delete(ListMember).where(ListMember.user_id == user.id))
    db_session.execute(sa.delete(Subscription).where(Subscription.user_id == user.id))
