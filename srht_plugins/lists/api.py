"""lists' REST API under ``/api``, and its OpenAPI 3 document.

Authentication: a bearer token issued by meta, with the scopes
``lists/lists`` (lists, their settings, members, subscriptions and
webhooks), ``lists/emails`` (threads, messages and patchsets) and
``lists/tools`` (what tools such as builds report on a patchset), ``:RO``
to read and ``:RW`` to write. Reading what anonymous visitors may see
needs no token; writing always does (401 without). What the token's user
may not see is 404, what they may see but not change is 403: the same
rules as the pages (``access``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Response

from srht_core import (
    DELIVERY_SCHEMA,
    ID_SCHEMA,
    Api,
    ApiError,
    Delivery,
    body_schema,
    cursor_paginate,
    db_session,
    deliveries,
    delivery_page,
    redeliver,
    viewer,
)

from . import events, lists, patches, subscriptions
from .access import Access, find_email, find_patchset, find_thread, list_for, listed_lists
from .events import LIST_EVENTS, USER_EVENTS, list_key, user_key
from .forms import MAX_DESCRIPTION
from .models import (
    ARCHIVED,
    MAX_TOOL_DETAILS,
    PATCHSET_STATUSES,
    POST_POLICIES,
    TOOL_STATUSES,
    VISIBILITIES,
    Email,
    ListMember,
    MailingList,
    Patchset,
    PatchsetTool,
    Subscription,
    Thread,
    User,
    Webhook,
)

api = Api(
    "lists",
    __name__,
    title="lists API",
    description=(__doc__ or "").split("\n\n", 1)[1].strip(),
    reasons={
        404: "No such list, thread, message, patchset, user or webhook, or one the caller "
        "may not see.",
        409: "The name is taken, or the change conflicts with the object as it is.",
    },
)

LIST = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
api.user_parameters("list")
api.parameter("list", "The list's name.", {"type": "string", "pattern": LIST}, example="devel")
api.parameter("thread_id", "The thread's id.", ID_SCHEMA, example=1)
api.parameter("email_id", "The message's id.", ID_SCHEMA, example=1)
api.parameter("patchset_id", "The patchset's id.", ID_SCHEMA, example=1)
api.parameter(
    "tool",
    "The tool's name (`builds`): 1 to 32 lowercase letters, digits and dashes.",
    {"type": "string", "pattern": "^[a-z][a-z0-9-]{0,31}$"},
    example="builds",
)
api.parameter("subscription_id", "The subscription's id.", ID_SCHEMA, example=1)
api.webhook_parameters()
api.parameter(
    "status",
    "Only patchsets of this status.",
    {"type": "string", "enum": list(PATCHSET_STATUSES)},
)

# -- schemas ---------------------------------------------------------------------------

STAMP = {"type": "string", "format": "date-time"}
NULLABLE_STAMP = {"type": ["string", "null"], "format": "date-time"}
SENDER = {
    "type": "object",
    "required": ["name", "address"],
    "properties": {"name": {"type": "string"}, "address": {"type": "string"}},
}
ADDRESS = {"type": "string", "maxLength": 320, "pattern": "^[^@\\s<>]+@[^@\\s<>]+$"}
api.schema(
    "User",
    {
        "type": ["object", "null"],
        "required": ["id", "canonical_name", "username"],
        "properties": {
            "id": {"type": "integer"},
            "canonical_name": {"type": "string"},
            "username": {"type": "string"},
        },
    },
)
api.schema(
    "List",
    {
        "type": "object",
        "required": ["id", "ref", "owner", "name", "address", "visibility", "post_policy"],
        "properties": {
            "id": {"type": "integer"},
            "ref": {"type": "string"},
            "owner": {"$ref": "#/components/schemas/User"},
            "name": {"type": "string"},
            "address": {"type": "string", "description": "Where to post."},
            "description": {"type": "string"},
            "visibility": {"type": "string", "enum": list(VISIBILITIES)},
            "post_policy": {"type": "string", "enum": list(POST_POLICIES)},
            "allowed_senders": {"type": "array", "items": {"type": "string"}},
            "moderated": {"type": "boolean"},
            "rewrite_from": {"type": "boolean"},
            "archived": {"type": "boolean"},
            "created": STAMP,
            "updated": STAMP,
        },
    },
)
DESCRIPTION = {"type": "string", "maxLength": MAX_DESCRIPTION}
api.schema(
    "ListCreate",
    body_schema(
        {
            "name": {
                "type": "string",
                "pattern": LIST,
                "description": "1 to 128 letters, digits, dots, dashes and underscores, "
                "starting with a letter or digit.",
            },
            "description": DESCRIPTION,
            "visibility": {"type": "string", "enum": list(VISIBILITIES)},
        },
        required=["name"],
    ),
)
api.schema(
    "ListUpdate",
    body_schema(
        {
            "description": DESCRIPTION,
            "visibility": {"type": "string", "enum": list(VISIBILITIES)},
            "post_policy": {"type": "string", "enum": list(POST_POLICIES)},
            "allowed_senders": {"type": "array", "maxItems": 1000, "items": ADDRESS},
            "moderated": {"type": "boolean"},
            "rewrite_from": {"type": "boolean"},
            "archived": {"type": "boolean"},
        }
    ),
)
api.schema(
    "Member",
    {
        "type": "object",
        "required": ["user"],
        "properties": {"user": {"$ref": "#/components/schemas/User"}, "created": STAMP},
    },
)
api.schema(
    "Subscription",
    {
        "type": "object",
        "required": ["id", "address"],
        "properties": {"id": {"type": "integer"}, "address": {"type": "string"}, "created": STAMP},
    },
)
api.schema(
    "Thread",
    {
        "type": "object",
        "required": ["id", "subject", "sender", "messages"],
        "properties": {
            "id": {"type": "integer"},
            "subject": {"type": "string"},
            "sender": SENDER,
            "messages": {"type": "integer"},
            "created": STAMP,
            "updated": STAMP,
        },
    },
)
api.schema(
    "Message",
    {
        "type": "object",
        "required": ["id", "message_id", "subject", "sender", "body"],
        "properties": {
            "id": {"type": "integer"},
            "message_id": {"type": "string"},
            "in_reply_to": {"type": ["string", "null"]},
            "thread": {"type": ["integer", "null"]},
            "parent": {"type": ["integer", "null"]},
            "subject": {"type": "string"},
            "sender": SENDER,
            "date": NULLABLE_STAMP,
            "received": NULLABLE_STAMP,
            "body": {"type": "string"},
            "from_html": {"type": "boolean"},
            "attachments": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "number": {"type": "integer"},
                        "filename": {"type": "string"},
                        "content_type": {"type": "string"},
                        "size": {"type": "integer"},
                    },
                },
            },
            "patchset": {"type": ["integer", "null"]},
            "patch_number": {"type": ["integer", "null"]},
        },
    },
)
api.schema(
    "Patchset",
    {
        "type": "object",
        "required": ["id", "subject", "version", "total", "status"],
        "properties": {
            "id": {"type": "integer"},
            "subject": {"type": "string"},
            "prefix": {"type": "string"},
            "version": {"type": "integer"},
            "total": {"type": "integer"},
            "status": {"type": "string", "enum": list(PATCHSET_STATUSES)},
            "sender": SENDER,
            "thread": {"type": ["integer", "null"]},
            "superseded_by": {"type": ["integer", "null"]},
            "created": STAMP,
            "updated": STAMP,
        },
    },
)
api.schema(
    "PatchsetUpdate",
    body_schema(
        {"status": {"type": "string", "enum": list(PATCHSET_STATUSES)}}, required=["status"]
    ),
)

api.schema(
    "Tool",
    {
        "type": "object",
        "required": ["name", "status", "details"],
        "properties": {
            "name": {"type": "string"},
            "status": {"type": "string", "enum": list(TOOL_STATUSES)},
            "details": {"type": "string"},
            "url": {"type": ["string", "null"], "description": "Where its results are."},
            "updated": STAMP,
        },
    },
)
api.schema(
    "ToolUpdate",
    body_schema(
        {
            "status": {"type": "string", "enum": list(TOOL_STATUSES)},
            "details": {
                "type": "string",
                "maxLength": MAX_TOOL_DETAILS,
                "description": "A line shown beside the status.",
            },
            "url": {
                "type": "string",
                "format": "uri",
                "pattern": "^https?://[^/\\s]+",
                "maxLength": 2048,
                "description": "Where the results are (the job group's page).",
            },
        },
        required=["status"],
    ),
)


def _webhook_schemas(name: str, names: list[str]) -> None:
    api.schema(
        name,
        body_schema(
            {
                "url": {
                    "type": "string",
                    "format": "uri",
                    "pattern": "^https?://[^/\\s]+",
                    "maxLength": 2048,
                    "description": "An http:// or https:// URL.",
                },
                "events": {
                    "type": "array",
                    "minItems": 1,
                    "uniqueItems": True,
                    "items": {"type": "string", "enum": names},
                },
            },
            required=["url", "events"],
        ),
    )


_webhook_schemas("ListWebhookCreate", [e.name for e in LIST_EVENTS])
_webhook_schemas("UserWebhookCreate", [e.name for e in USER_EVENTS])
api.schema(
    "Webhook",
    {
        "type": "object",
        "required": ["id", "url", "events"],
        "properties": {
            "id": {"type": "integer"},
            "url": {"type": "string"},
            "events": {"type": "array", "items": {"type": "string"}},
            "created": STAMP,
        },
    },
)
api.schema("Delivery", DELIVERY_SCHEMA)


def as_dict(item: Any) -> dict[str, Any]:
    return item.to_dict()  # type: ignore[no-any-return]


def commit(field: str, reason: str) -> None:
    """Commit; a unique constraint hit by a concurrent request is a 409."""
    try:
        db_session.commit()
    except sa.exc.IntegrityError:
        db_session.rollback()
        raise ApiError(409, reason, field=field) from None


# -- lists -----------------------------------------------------------------------------


@api.operation(
    "get", "/lists", "List your lists", scope="lists", response="List", paged=True, anonymous=False
)
def list_own_lists() -> Any:
    """The lists of the token's user, newest first."""
    stmt = sa.select(MailingList).where(MailingList.owner_id == viewer().id)
    return cursor_paginate(db_session, stmt, MailingList.id).json(lists.to_dict)


@api.operation(
    "post",
    "/lists",
    "Create a list",
    scope="lists",
    write=True,
    body="ListCreate",
    response="List",
    errors={409: "You have a list of that name already."},
)
def create_list(body: dict[str, Any]) -> Any:
    """Create a list owned by the token's user."""
    made = lists.create_list(
        viewer(), body["name"], body.get("description") or "", body.get("visibility", "public")
    )
    commit("name", "You have a list of that name already.")
    return lists.to_dict(made)


@api.operation(
    "get",
    "/users/{username}/lists",
    "List a user's lists",
    scope="lists",
    response="List",
    paged=True,
)
def list_user_lists(username: str) -> Any:
    """The lists of a user that the caller may see and that are listed
    (unlisted ones only to their owner)."""
    owner = db_session.scalar(sa.select(User).where(User.username == username.lstrip("~")))
    if owner is None:
        raise ApiError(404, f"no user ~{username.lstrip('~')} here")
    stmt = listed_lists(viewer(), owner)
    return cursor_paginate(db_session, stmt, MailingList.id).json(lists.to_dict)


@api.operation("get", "/lists/{owner}/{list}", "Get a list", scope="lists", response="List")
def get_list(owner: str, list: str) -> Any:  # noqa: A002 - the path's name
    return lists.to_dict(list_for(owner, list).list)


@api.operation(
    "patch",
    "/lists/{owner}/{list}",
    "Change a list's settings",
    scope="lists",
    write=True,
    body="ListUpdate",
    response="List",
)
def update_list(owner: str, list: str, body: dict[str, Any]) -> Any:  # noqa: A002
    """Owner only."""
    access = list_for(owner, list)
    lists.update_list(
        access,
        description=body.get("description"),
        visibility=body.get("visibility"),
        post_policy=body.get("post_policy"),
        allowed_senders=body.get("allowed_senders"),
        moderated=body.get("moderated"),
        rewrite_from=body.get("rewrite_from"),
        archived=body.get("archived"),
    )
    db_session.commit()
    return lists.to_dict(access.list)


@api.operation(
    "delete",
    "/lists/{owner}/{list}",
    "Delete a list and its archive",
    scope="lists",
    write=True,
)
def delete_list(owner: str, list: str) -> None:  # noqa: A002
    """Owner only."""
    lists.delete_list(list_for(owner, list))
    db_session.commit()


# -- members ---------------------------------------------------------------------------


def owned(owner: str, name: str, what: str) -> Access:
    access = list_for(owner, name)
    access.require_owner(what)
    return access


@api.operation(
    "get",
    "/lists/{owner}/{list}/members",
    "List a list's members",
    scope="lists",
    response="Member",
    paged=True,
)
def list_members(owner: str, list: str) -> Any:  # noqa: A002
    """Owner only."""
    access = owned(owner, list, "see the members")
    stmt = sa.select(ListMember).where(ListMember.list_id == access.list.id)
    return cursor_paginate(db_session, stmt, ListMember.id, descending=False).json(as_dict)


@api.operation(
    "put",
    "/lists/{owner}/{list}/members/{username}",
    "Name a member",
    scope="lists",
    write=True,
    status=200,
    response="Member",
    errors={409: "The owner is always a member."},
)
def add_member(owner: str, list: str, username: str) -> Any:  # noqa: A002
    """Owner only. Members may read a private list, and post to a
    members-only one."""
    access = owned(owner, list, "name members")
    member = lists.add_member(access, lists.find_user(username, "username"))
    commit("username", "That user was just named by another request.")
    return member.to_dict()


@api.operation(
    "delete",
    "/lists/{owner}/{list}/members/{username}",
    "Remove a member",
    scope="lists",
    write=True,
)
def remove_member(owner: str, list: str, username: str) -> None:  # noqa: A002
    """Owner only."""
    access = owned(owner, list, "name members")
    user = lists.find_user(username, "username")
    if not lists.remove_member(access, user.id):
        raise ApiError(404, f"~{user.username} is not a member of {access.list.ref}")
    db_session.commit()


# -- subscriptions ---------------------------------------------------------------------


@api.operation(
    "get",
    "/lists/{owner}/{list}/subscriptions",
    "List a list's subscribers",
    scope="lists",
    response="Subscription",
    paged=True,
)
def list_subscriptions(owner: str, list: str) -> Any:  # noqa: A002
    """Owner only."""
    access = owned(owner, list, "see the subscribers")
    stmt = sa.select(Subscription).where(Subscription.list_id == access.list.id)
    return cursor_paginate(db_session, stmt, Subscription.id, descending=False).json(as_dict)


@api.operation(
    "delete",
    "/lists/{owner}/{list}/subscriptions/{subscription_id}",
    "Unsubscribe an address",
    scope="lists",
    write=True,
)
def remove_subscription(owner: str, list: str, subscription_id: int) -> None:  # noqa: A002
    """Owner only."""
    access = owned(owner, list, "unsubscribe others")
    found = db_session.scalar(
        sa.select(Subscription).where(
            Subscription.id == subscription_id, Subscription.list_id == access.list.id
        )
    )
    if found is None:
        raise ApiError(404, f"no subscription {subscription_id} on {access.list.ref}")
    db_session.delete(found)
    db_session.commit()


@api.operation(
    "put",
    "/lists/{owner}/{list}/subscription",
    "Subscribe yourself",
    scope="lists",
    write=True,
    status=200,
    response="Subscription",
)
def subscribe(owner: str, list: str) -> Any:  # noqa: A002
    """Subscribe the token's user's address (idempotent)."""
    access = list_for(owner, list)
    user = viewer()
    entry = subscriptions.subscribe(access.list, user.email, user)
    db_session.commit()
    return entry.to_dict()


@api.operation(
    "delete",
    "/lists/{owner}/{list}/subscription",
    "Unsubscribe yourself",
    scope="lists",
    write=True,
)
def unsubscribe(owner: str, list: str) -> None:  # noqa: A002
    access = list_for(owner, list)
    if not subscriptions.unsubscribe(access.list, viewer().email):
        raise ApiError(404, f"you are not subscribed to {access.list.ref}")
    db_session.commit()


# -- threads and messages --------------------------------------------------------------


@api.operation(
    "get",
    "/lists/{owner}/{list}/threads",
    "List a list's threads",
    scope="emails",
    response="Thread",
    paged=True,
)
def list_threads(owner: str, list: str) -> Any:  # noqa: A002
    """Newest first."""
    access = list_for(owner, list)
    stmt = sa.select(Thread).where(Thread.list_id == access.list.id)
    return cursor_paginate(db_session, stmt, Thread.id).json(as_dict)


@api.operation(
    "get",
    "/lists/{owner}/{list}/threads/{thread_id}",
    "Get a thread",
    scope="emails",
    response="Thread",
)
def get_thread(owner: str, list: str, thread_id: int) -> Any:  # noqa: A002
    return find_thread(list_for(owner, list), thread_id).to_dict()


@api.operation(
    "get",
    "/lists/{owner}/{list}/threads/{thread_id}/messages",
    "List a thread's messages",
    scope="emails",
    response="Message",
    paged=True,
)
def list_thread_messages(owner: str, list: str, thread_id: int) -> Any:  # noqa: A002
    """Oldest first; each names its parent (the message it answers)."""
    found = find_thread(list_for(owner, list), thread_id)
    stmt = sa.select(Email).where(Email.thread_id == found.id, Email.status == ARCHIVED)
    return cursor_paginate(db_session, stmt, Email.id, descending=False).json(as_dict)


@api.operation(
    "get",
    "/lists/{owner}/{list}/messages",
    "List a list's messages",
    scope="emails",
    response="Message",
    paged=True,
)
def list_messages(owner: str, list: str) -> Any:  # noqa: A002
    """Newest first."""
    access = list_for(owner, list)
    stmt = sa.select(Email).where(Email.list_id == access.list.id, Email.status == ARCHIVED)
    return cursor_paginate(db_session, stmt, Email.id).json(as_dict)


@api.operation(
    "get",
    "/lists/{owner}/{list}/messages/{email_id}",
    "Get a message",
    scope="emails",
    response="Message",
)
def get_message(owner: str, list: str, email_id: int) -> Any:  # noqa: A002
    """Its text and attachments' names; the raw message is on the page's
    `/raw` download."""
    return find_email(list_for(owner, list), email_id).to_dict()


# -- patchsets -------------------------------------------------------------------------


@api.operation(
    "get",
    "/lists/{owner}/{list}/patchsets",
    "List a list's patchsets",
    scope="emails",
    response="Patchset",
    paged=True,
    query=("status",),
)
def list_patchsets(owner: str, list: str, query: dict[str, Any]) -> Any:  # noqa: A002
    """Newest first; `status` filters."""
    access = list_for(owner, list)
    stmt = sa.select(Patchset).where(Patchset.list_id == access.list.id)
    if query["status"]:
        stmt = stmt.where(Patchset.status == query["status"])
    return cursor_paginate(db_session, stmt, Patchset.id).json(as_dict)


@api.operation(
    "get",
    "/lists/{owner}/{list}/patchsets/{patchset_id}",
    "Get a patchset",
    scope="emails",
    response="Patchset",
)
def get_patchset(owner: str, list: str, patchset_id: int) -> Any:  # noqa: A002
    return find_patchset(list_for(owner, list), patchset_id).to_dict()


@api.operation(
    "get",
    "/lists/{owner}/{list}/patchsets/{patchset_id}/messages",
    "List a patchset's cover letter and patches",
    scope="emails",
    response="Message",
    paged=True,
)
def list_patchset_messages(owner: str, list: str, patchset_id: int) -> Any:  # noqa: A002
    """In the order they arrived; `patch_number` is 0 for the cover letter."""
    found = find_patchset(list_for(owner, list), patchset_id)
    stmt = sa.select(Email).where(Email.patchset_id == found.id, Email.status == ARCHIVED)
    return cursor_paginate(db_session, stmt, Email.id, descending=False).json(as_dict)


@api.operation(
    "patch",
    "/lists/{owner}/{list}/patchsets/{patchset_id}",
    "Set a patchset's status",
    scope="emails",
    write=True,
    body="PatchsetUpdate",
    response="Patchset",
)
def update_patchset(owner: str, list: str, patchset_id: int, body: dict[str, Any]) -> Any:  # noqa: A002
    """The list owner only."""
    access = owned(owner, list, "set a patchset's status")
    found = find_patchset(access, patchset_id)
    patches.set_status(access.list, found, body["status"])
    db_session.commit()
    return found.to_dict()


@api.operation(
    "get",
    "/lists/{owner}/{list}/patchsets/{patchset_id}/mbox",
    "Get a patchset's patches as an mbox",
    scope="emails",
    response={"type": "string", "description": "An mboxrd file."},
    media_type="application/mbox",
)
def get_patchset_mbox(owner: str, list: str, patchset_id: int) -> Any:  # noqa: A002
    """The patches (not the cover letter) in order, as they arrived: what
    `git am` applies."""
    found = find_patchset(list_for(owner, list), patchset_id)
    return Response(patches.series_mbox(found), mimetype="application/mbox")


@api.operation(
    "get",
    "/lists/{owner}/{list}/patchsets/{patchset_id}/tools",
    "List what tools said of a patchset",
    scope="tools",
    response="Tool",
    paged=True,
)
def list_patchset_tools(owner: str, list: str, patchset_id: int) -> Any:  # noqa: A002
    """One entry per tool (`builds`), with its last word; by name."""
    found = find_patchset(list_for(owner, list), patchset_id)
    stmt = sa.select(PatchsetTool).where(PatchsetTool.patchset_id == found.id)
    return cursor_paginate(db_session, stmt, PatchsetTool.id, descending=False).json(as_dict)


@api.operation(
    "put",
    "/lists/{owner}/{list}/patchsets/{patchset_id}/tools/{tool}",
    "Say what a tool made of a patchset",
    scope="tools",
    write=True,
    body="ToolUpdate",
    response="Tool",
)
def set_patchset_tool(
    owner: str,
    list: str,  # noqa: A002
    patchset_id: int,
    tool: str,
    body: dict[str, Any],
) -> Any:
    """The list owner only (a token acting for them, as builds has): the
    patchset's page shows `TOOL: STATUS` with the details and the link.
    The tool's last word replaces the one before."""
    access = owned(owner, list, "report what tools made of its patchsets")
    found = find_patchset(access, patchset_id)
    entry = patches.set_tool(
        access.list, found, tool, body["status"], body.get("details", ""), body.get("url")
    )
    commit("tool", "Another request reported this tool at the same moment; try again.")
    return entry.to_dict()


# -- webhooks ----------------------------------------------------------------------------


def list_webhook(access: Access, webhook_id: int) -> Webhook:
    hook = db_session.scalar(
        sa.select(Webhook).where(Webhook.id == webhook_id, Webhook.list_id == access.list.id)
    )
    if hook is None:
        raise ApiError(404, f"no webhook {webhook_id} on {access.list.ref}")
    return hook


@api.operation(
    "get",
    "/lists/{owner}/{list}/webhooks",
    "List a list's webhooks",
    scope="lists",
    response="Webhook",
    paged=True,
)
def list_webhooks(owner: str, list: str) -> Any:  # noqa: A002
    """Owner only."""
    access = owned(owner, list, "manage webhooks")
    stmt = sa.select(Webhook).where(Webhook.list_id == access.list.id)
    return cursor_paginate(db_session, stmt, Webhook.id, descending=False).json(as_dict)


@api.operation(
    "post",
    "/lists/{owner}/{list}/webhooks",
    "Register a list webhook",
    scope="lists",
    write=True,
    body="ListWebhookCreate",
    response="Webhook",
)
def create_webhook(owner: str, list: str, body: dict[str, Any]) -> Any:  # noqa: A002
    """Owner only. Deliveries are signed with the site's webhook key."""
    access = owned(owner, list, "manage webhooks")
    hook = events.create_webhook(access.list.owner_id, body["url"], body["events"], access.list)
    db_session.commit()
    return hook.to_dict()


@api.operation(
    "get",
    "/lists/{owner}/{list}/webhooks/{webhook_id}",
    "Get a list webhook",
    scope="lists",
    response="Webhook",
)
def get_webhook(owner: str, list: str, webhook_id: int) -> Any:  # noqa: A002
    """Owner only."""
    return list_webhook(owned(owner, list, "manage webhooks"), webhook_id).to_dict()


@api.operation(
    "delete",
    "/lists/{owner}/{list}/webhooks/{webhook_id}",
    "Remove a list webhook",
    scope="lists",
    write=True,
)
def delete_webhook(owner: str, list: str, webhook_id: int) -> None:  # noqa: A002
    """Owner only."""
    db_session.delete(list_webhook(owned(owner, list, "manage webhooks"), webhook_id))
    db_session.commit()


@api.operation(
    "get",
    "/lists/{owner}/{list}/webhook-deliveries",
    "The list's webhook delivery log",
    scope="lists",
    response="Delivery",
    paged=True,
)
def list_deliveries(owner: str, list: str) -> Any:  # noqa: A002
    """Owner only. Newest first."""
    access = owned(owner, list, "see webhook deliveries")
    return delivery_page(list_key(access.list), session=db_session).json(Delivery.to_dict)


@api.operation(
    "post",
    "/lists/{owner}/{list}/webhook-deliveries/{delivery_id}/redeliver",
    "Send a delivery again",
    scope="lists",
    write=True,
    status=202,
    response="Delivery",
)
def redeliver_delivery(owner: str, list: str, delivery_id: int) -> Any:  # noqa: A002
    """Owner only."""
    access = owned(owner, list, "redeliver webhooks")
    key = list_key(access.list)
    if not deliveries(key, ids=[delivery_id], session=db_session):
        raise ApiError(404, f"no delivery {delivery_id} for {access.list.ref}")
    redeliver(delivery_id, session=db_session)
    db_session.commit()
    return deliveries(key, ids=[delivery_id], session=db_session)[0].to_dict()


@api.operation(
    "get",
    "/user/webhooks",
    "List your own webhooks",
    scope="lists",
    response="Webhook",
    paged=True,
    anonymous=False,
)
def list_user_webhooks() -> Any:
    """Webhooks told of your lists being created, changed and deleted."""
    stmt = sa.select(Webhook).where(Webhook.owner_id == viewer().id, Webhook.list_id.is_(None))
    return cursor_paginate(db_session, stmt, Webhook.id, descending=False).json(as_dict)


@api.operation(
    "post",
    "/user/webhooks",
    "Register a webhook for your lists",
    scope="lists",
    write=True,
    body="UserWebhookCreate",
    response="Webhook",
)
def create_user_webhook(body: dict[str, Any]) -> Any:
    """Told of `list:create`, `list:update` and `list:delete` on your lists."""
    hook = events.create_webhook(viewer().id, body["url"], body["events"])
    db_session.commit()
    return hook.to_dict()


@api.operation(
    "delete",
    "/user/webhooks/{webhook_id}",
    "Remove one of your webhooks",
    scope="lists",
    write=True,
)
def delete_user_webhook(webhook_id: int) -> None:
    hook = db_session.scalar(
        sa.select(Webhook).where(
            Webhook.id == webhook_id, Webhook.owner_id == viewer().id, Webhook.list_id.is_(None)
        )
    )
    if hook is None:
        raise ApiError(404, f"you have no webhook {webhook_id}")
    db_session.delete(hook)
    db_session.commit()


@api.operation(
    "get",
    "/user/webhook-deliveries",
    "Your webhooks' delivery log",
    scope="lists",
    response="Delivery",
    paged=True,
    anonymous=False,
)
def list_user_deliveries() -> Any:
    """Newest first."""
    return delivery_page(user_key(viewer().id), session=db_session).json(Delivery.to_dict)


# -- what needs the caller's attention -------------------------------------------------

api.schema(
    "PatchsetToReview",
    {
        "allOf": [
            {"$ref": "#/components/schemas/Patchset"},
            {
                "type": "object",
                "required": ["list", "url"],
                "properties": {
                    "list": {"type": "string", "description": "~owner/name"},
                    "url": {"type": "string", "description": "The patchset's page."},
                },
            },
        ]
    },
)


@api.operation(
    "get",
    "/user/patchsets-to-review",
    "List the patchsets awaiting review on your lists",
    scope="emails",
    response="PatchsetToReview",
    paged=True,
    anonymous=False,
)
def list_patchsets_to_review() -> Any:
    """Newest first: the patchsets still `proposed` on the lists the
    token's user owns."""
    from srht_core import current_service

    from .models import PROPOSED

    stmt = (
        sa.select(Patchset)
        .join(MailingList, MailingList.id == Patchset.list_id)
        .where(MailingList.owner_id == viewer().id, Patchset.status == PROPOSED)
    )
    page = cursor_paginate(db_session, stmt, Patchset.id)
    shown = {p.list_id for p in page.items}
    found = db_session.scalars(sa.select(MailingList).where(MailingList.id.in_(shown)))
    lists_by_id = {found_list.id: found_list for found_list in found}
    origin = current_service().origin

    def with_list(patchset: Patchset) -> dict[str, Any]:
        on = lists_by_id[patchset.list_id]
        return {
            **patchset.to_dict(),
            "list": on.ref,
            "url": f"{origin}{on.path}/patches/{patchset.id}",
        }

    return page.json(with_list)
