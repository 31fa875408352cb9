"""todo's REST API under ``/api``, and its OpenAPI 3 document.

Each view is declared with :func:`operation`, which registers the route and
its entry in the OpenAPI document together, so the document lists exactly
what is served (``/api/openapi.json``).

Authentication: a bearer token issued by meta, with the scopes
``todo/trackers`` (trackers, their access lists, labels and webhooks) and
``todo/tickets`` (tickets and comments), ``:RO`` to read and ``:RW`` to
write. Reading what anonymous visitors may see needs no token; writing
always does (401 without). What the token's user may not see is 404, what
they may see but not change is 403: the same rules as the pages
(``access``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import request
from sqlalchemy.orm import selectinload

from srht_core import (
    API_ERRORS_SCHEMA,
    ApiError,
    api_blueprint,
    api_user,
    current_service,
    current_token,
    cursor_paginate,
    db_session,
    deliveries,
    error_responses,
    json_object,
    json_response,
    redeliver,
    schema_ref,
    string_field,
    string_list_field,
)

from . import tickets as ops
from .access import Access, find_ticket, find_tracker, listed_trackers
from .events import EVENT_NAMES, subscription_key
from .models import (
    ACCESS_NAMES,
    CLOSED,
    OPEN,
    RESOLUTIONS,
    VISIBILITIES,
    Comment,
    Label,
    Ticket,
    Tracker,
    TrackerAccess,
    User,
    Webhook,
    access_mask,
    timestamp,
)
from .search import SearchError, filtered, parse

api = api_blueprint("todo_api", __name__)

# -- declaring operations ------------------------------------------------------------

OPERATIONS: list[dict[str, Any]] = []
USERNAME = r"^~?[a-z_][a-z0-9_-]*$"
TRACKER = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "owner": {
        "description": "The tracker owner's username (a leading ~ is allowed).",
        "schema": {"type": "string", "pattern": USERNAME, "maxLength": 64},
        "example": "alice",
    },
    "username": {
        "description": "A username (a leading ~ is allowed).",
        "schema": {"type": "string", "pattern": USERNAME, "maxLength": 64},
        "example": "alice",
    },
    "tracker": {
        "description": "The tracker's name.",
        "schema": {"type": "string", "pattern": TRACKER},
        "example": "bugs",
    },
    "number": {
        "description": "The ticket's number in its tracker.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
        "example": 1,
    },
    "label_id": {
        "description": "The label's id.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
        "example": 1,
    },
    "webhook_id": {
        "description": "The webhook's id.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
        "example": 1,
    },
    "delivery_id": {
        "description": "The delivery's id.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
        "example": 1,
    },
}
INT_PARAMETERS = {"number", "label_id", "webhook_id", "delivery_id"}
PAGE_PARAMETERS = [
    {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": "The `next` value of the previous page (empty or absent: the first).",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{0,32}$"},
    },
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "Items per page.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 25},
    },
]
ERRORS = {
    400: "The request is malformed or a field is invalid.",
    401: "No token (writes need one), or the token is not valid.",
    403: "The token lacks the scope, or its user may not do this here.",
    404: "No such object, or the caller may not see it.",
    409: "The name is taken, or the change conflicts with the object as it is.",
}


def operation(
    method: str,
    path: str,
    summary: str,
    *,
    scope: str,
    write: bool = False,
    status: int = 200,
    response: Any = None,
    body: Any = None,
    query: list[dict[str, Any]] | None = None,
    paged: bool = False,
    conflict: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a view at ``path`` (OpenAPI syntax) and document it."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        rule = re.sub(
            r"{(\w+)}", lambda m: f"<{'int:' if m[1] in INT_PARAMETERS else ''}{m[1]}>", path
        )
        api.add_url_rule(rule, view.__name__, view, methods=[method.upper()])
        OPERATIONS.append(
            {
                "method": method,
                "path": path,
                "summary": summary,
                "doc": (view.__doc__ or "").strip(),
                "scope": scope,
                "write": write,
                "status": status,
                "response": response,
                "body": body,
                "query": (query or []) + (PAGE_PARAMETERS if paged else []),
                "paged": paged,
                "conflict": conflict,
                "name": view.__name__,
            }
        )
        return view

    return decorate


def caller(scope: str, *, write: bool = False) -> Any:
    """The user a request acts for, ``None`` for an anonymous read.

    :raises ApiError: 401 for a write without a token or a bad token; 403
        for a token without ``todo/<scope>`` (``:RW`` to write).
    """
    grant = current_token()
    if grant is None:
        if write:
            raise ApiError(401, "authentication required: send 'Authorization: Bearer <token>'")
        return None
    if not grant.allows(f"todo/{scope}", write=write):
        raise ApiError(403, f"the token lacks the scope todo/{scope}:{'RW' if write else 'RO'}")
    return api_user()


def access_field(data: dict[str, Any], key: str, *, required: bool = False) -> int | None:
    names = string_list_field(data, key)
    if names is None:
        if required:
            raise ApiError(400, "is required", field=key)
        return None
    try:
        return access_mask(names)
    except KeyError as error:
        raise ApiError(
            400, f"{error.args[0]!r} is not one of {', '.join(ACCESS_NAMES)}", field=key
        ) from None


@api.errorhandler(ops.Problem)
def problem(error: ops.Problem) -> Any:
    return ApiError(error.status, error.reason, field=error.field).body(), error.status


def commit(field: str, reason: str) -> None:
    """Commit; a unique constraint hit by a concurrent request is a 409."""
    try:
        db_session.commit()
    except sa.exc.IntegrityError:
        db_session.rollback()
        raise ApiError(409, reason, field=field) from None


def page(items: list[Any], next_cursor: str | None) -> dict[str, Any]:
    return {"results": [item.to_dict() for item in items], "next": next_cursor}


def tracker_for(owner: str, tracker: str, scope: str, *, write: bool = False) -> Access:
    return find_tracker(owner, tracker, caller(scope, write=write))


# -- trackers --------------------------------------------------------------------------


@operation(
    "get", "/trackers", "List your trackers", scope="trackers", response="Tracker", paged=True
)
def list_own_trackers() -> Any:
    """The trackers of the token's user, newest first."""
    user = caller("trackers")
    if user is None:
        raise ApiError(401, "authentication required: send 'Authorization: Bearer <token>'")
    stmt = sa.select(Tracker).where(Tracker.owner_id == user.id)
    result = cursor_paginate(db_session, stmt, Tracker.id)
    return page(result.items, result.next)


@operation(
    "post",
    "/trackers",
    "Create a tracker",
    scope="trackers",
    write=True,
    status=201,
    response="Tracker",
    body="TrackerCreate",
    conflict=True,
)
def create_tracker() -> Any:
    """Create a tracker owned by the token's user."""
    user = caller("trackers", write=True)
    data = json_object()
    tracker = ops.create_tracker(
        user,
        string_field(data, "name", required=True) or "",
        string_field(data, "description") or "",
        string_field(data, "visibility") or "public",
    )
    commit("name", "You have a tracker of that name already.")
    return tracker.to_dict(), 201


@operation(
    "get",
    "/users/{username}/trackers",
    "List a user's trackers",
    scope="trackers",
    response="Tracker",
    paged=True,
)
def list_user_trackers(username: str) -> Any:
    """The trackers of a user that the caller may see and that are listed
    (unlisted ones only to their owner)."""
    user = caller("trackers")
    owner = db_session.scalar(sa.select(User).where(User.username == username.lstrip("~")))
    if owner is None:
        raise ApiError(404, f"no user ~{username.lstrip('~')} here")
    result = cursor_paginate(db_session, listed_trackers(user, owner), Tracker.id)
    return page(result.items, result.next)


@operation(
    "get", "/trackers/{owner}/{tracker}", "Get a tracker", scope="trackers", response="Tracker"
)
def get_tracker(owner: str, tracker: str) -> Any:
    return tracker_for(owner, tracker, "trackers").tracker.to_dict()


@operation(
    "patch",
    "/trackers/{owner}/{tracker}",
    "Change a tracker's settings",
    scope="trackers",
    write=True,
    response="Tracker",
    body="TrackerUpdate",
)
def update_tracker(owner: str, tracker: str) -> Any:
    """Owner only."""
    access = tracker_for(owner, tracker, "trackers", write=True)
    data = json_object()
    ops.update_tracker(
        access,
        description=string_field(data, "description"),
        visibility=string_field(data, "visibility"),
        anonymous_access=access_field(data, "anonymous_access"),
        user_access=access_field(data, "user_access"),
    )
    db_session.commit()
    return access.tracker.to_dict()


@operation(
    "delete",
    "/trackers/{owner}/{tracker}",
    "Delete a tracker and its tickets",
    scope="trackers",
    write=True,
    status=204,
)
def delete_tracker(owner: str, tracker: str) -> Any:
    """Owner only."""
    access = tracker_for(owner, tracker, "trackers", write=True)
    ops.delete_tracker(access)
    db_session.commit()
    return "", 204


# -- access lists --------------------------------------------------------------------


@operation(
    "get",
    "/trackers/{owner}/{tracker}/access",
    "List the named users' access",
    scope="trackers",
    response="AccessEntry",
    paged=True,
)
def list_access(owner: str, tracker: str) -> Any:
    """Owner only."""
    access = tracker_for(owner, tracker, "trackers")
    access.require_owner("see who has access")
    stmt = sa.select(TrackerAccess).where(TrackerAccess.tracker_id == access.tracker.id)
    result = cursor_paginate(db_session, stmt, TrackerAccess.id, descending=False)
    return page(result.items, result.next)


@operation(
    "put",
    "/trackers/{owner}/{tracker}/access/{username}",
    "Set what a named user may do",
    scope="trackers",
    write=True,
    response="AccessEntry",
    body="AccessUpdate",
    conflict=True,
)
def set_access(owner: str, tracker: str, username: str) -> Any:
    """Owner only. The entry replaces the tracker's defaults for that user."""
    access = tracker_for(owner, tracker, "trackers", write=True)
    access.require_owner("change who has access")
    mask = access_field(json_object(), "access", required=True)
    assert mask is not None
    entry = ops.grant_access(access, ops.find_user(username, "username"), mask)
    commit("username", "That user's access was just changed by another request.")
    return entry.to_dict()


@operation(
    "delete",
    "/trackers/{owner}/{tracker}/access/{username}",
    "Remove a named user's entry",
    scope="trackers",
    write=True,
    status=204,
)
def remove_access(owner: str, tracker: str, username: str) -> Any:
    """Owner only. The user gets the tracker's defaults again."""
    access = tracker_for(owner, tracker, "trackers", write=True)
    access.require_owner("change who has access")
    user = ops.find_user(username, "username")
    if not ops.revoke_access(access, user.id):
        raise ApiError(404, f"~{user.username} has no entry on {access.tracker.ref}")
    db_session.commit()
    return "", 204


# -- labels ----------------------------------------------------------------------------


def label_for(access: Access, label_id: int) -> Label:
    label = db_session.scalar(
        sa.select(Label).where(Label.id == label_id, Label.tracker_id == access.tracker.id)
    )
    if label is None:
        raise ApiError(404, f"no label {label_id} on {access.tracker.ref}")
    return label


@operation(
    "get",
    "/trackers/{owner}/{tracker}/labels",
    "List a tracker's labels",
    scope="trackers",
    response="Label",
    paged=True,
)
def list_labels(owner: str, tracker: str) -> Any:
    access = tracker_for(owner, tracker, "trackers")
    stmt = sa.select(Label).where(Label.tracker_id == access.tracker.id)
    result = cursor_paginate(db_session, stmt, Label.id, descending=False)
    return page(result.items, result.next)


@operation(
    "post",
    "/trackers/{owner}/{tracker}/labels",
    "Create a label",
    scope="trackers",
    write=True,
    status=201,
    response="Label",
    body="LabelCreate",
    conflict=True,
)
def create_label(owner: str, tracker: str) -> Any:
    """Needs triage access."""
    access = tracker_for(owner, tracker, "trackers", write=True)
    data = json_object()
    label = ops.create_label(
        access,
        string_field(data, "name", required=True) or "",
        string_field(data, "color", required=True) or "",
    )
    commit("name", "A label of that name was just created.")
    return label.to_dict(), 201


@operation(
    "get",
    "/trackers/{owner}/{tracker}/labels/{label_id}",
    "Get a label",
    scope="trackers",
    response="Label",
)
def get_label(owner: str, tracker: str, label_id: int) -> Any:
    return label_for(tracker_for(owner, tracker, "trackers"), label_id).to_dict()


@operation(
    "patch",
    "/trackers/{owner}/{tracker}/labels/{label_id}",
    "Rename or recolour a label",
    scope="trackers",
    write=True,
    response="Label",
    body="LabelUpdate",
    conflict=True,
)
def update_label(owner: str, tracker: str, label_id: int) -> Any:
    """Needs triage access."""
    access = tracker_for(owner, tracker, "trackers", write=True)
    label = label_for(access, label_id)
    data = json_object()
    ops.update_label(access, label, string_field(data, "name"), string_field(data, "color"))
    commit("name", "A label of that name was just created.")
    return label.to_dict()


@operation(
    "delete",
    "/trackers/{owner}/{tracker}/labels/{label_id}",
    "Delete a label (and remove it from its tickets)",
    scope="trackers",
    write=True,
    status=204,
)
def delete_label(owner: str, tracker: str, label_id: int) -> Any:
    """Needs triage access."""
    access = tracker_for(owner, tracker, "trackers", write=True)
    ops.delete_label(access, label_for(access, label_id))
    db_session.commit()
    return "", 204


# -- tickets ---------------------------------------------------------------------------


def ticket_for(
    owner: str, tracker: str, number: int, *, write: bool = False
) -> tuple[Access, Ticket]:
    access = tracker_for(owner, tracker, "tickets", write=write)
    return access, find_ticket(access, number)


@operation(
    "get",
    "/trackers/{owner}/{tracker}/tickets",
    "List and search tickets",
    scope="tickets",
    response="Ticket",
    paged=True,
    query=[
        {
            "name": "search",
            "in": "query",
            "required": False,
            "description": "A search such as `status:open label:bug crash`: filters "
            "status:, label:, assigned:, submitter:, resolution:, and "
            "words to find in titles and descriptions.",
            "schema": {"type": "string", "maxLength": 1000},
        }
    ],
)
def list_tickets(owner: str, tracker: str) -> Any:
    """Newest first."""
    access = tracker_for(owner, tracker, "tickets")
    try:
        search = parse(request.args.get("search", ""))
    except SearchError as error:
        raise ApiError(400, str(error), field="search") from None
    stmt = (
        sa.select(Ticket)
        .where(Ticket.tracker_id == access.tracker.id)
        .options(*ops.ticket_options())
    )
    stmt = filtered(stmt, search, access.tracker.id, db_session.get_bind().dialect.name)
    result = cursor_paginate(db_session, stmt, Ticket.number)
    ops.attach_tracker(result.items, access.tracker)
    return page(result.items, result.next)


@operation(
    "post",
    "/trackers/{owner}/{tracker}/tickets",
    "Submit a ticket",
    scope="tickets",
    write=True,
    status=201,
    response="Ticket",
    body="TicketCreate",
)
def submit_ticket(owner: str, tracker: str) -> Any:
    """Needs submit access."""
    access = tracker_for(owner, tracker, "tickets", write=True)
    data = json_object()
    ticket = ops.submit_ticket(
        access,
        access.user,
        string_field(data, "title", required=True) or "",
        string_field(data, "description") or "",
    )
    db_session.commit()
    return ticket.to_dict(), 201


@operation(
    "get",
    "/trackers/{owner}/{tracker}/tickets/{number}",
    "Get a ticket",
    scope="tickets",
    response="Ticket",
)
def get_ticket(owner: str, tracker: str, number: int) -> Any:
    return ticket_for(owner, tracker, number)[1].to_dict()


@operation(
    "patch",
    "/trackers/{owner}/{tracker}/tickets/{number}",
    "Change a ticket",
    scope="tickets",
    write=True,
    response="Ticket",
    body="TicketUpdate",
)
def update_ticket(owner: str, tracker: str, number: int) -> Any:
    """Title and description: the submitter, or edit access. Status,
    resolution, labels (the full list of names) and assignees (the full
    list of usernames): triage access. A `comment` is added with the
    change (comment access)."""
    access, ticket = ticket_for(owner, tracker, number, write=True)
    data = json_object()
    changes = ops.Changes(
        title=string_field(data, "title"),
        description=string_field(data, "description"),
        status=string_field(data, "status"),
        resolution=string_field(data, "resolution"),
        labels=string_list_field(data, "labels"),
        assignees=string_list_field(data, "assignees"),
    )
    ops.change_ticket(access, ticket, access.user, changes, string_field(data, "comment") or "")
    db_session.commit()
    return ticket.to_dict()


@operation(
    "get",
    "/trackers/{owner}/{tracker}/tickets/{number}/comments",
    "List a ticket's comments",
    scope="tickets",
    response="Comment",
    paged=True,
)
def list_comments(owner: str, tracker: str, number: int) -> Any:
    """Oldest first. Changes (status, labels, ...) are comments with a
    `change`."""
    _access, ticket = ticket_for(owner, tracker, number)
    stmt = (
        sa.select(Comment)
        .where(Comment.ticket_id == ticket.id)
        .options(selectinload(Comment.author))
    )
    result = cursor_paginate(db_session, stmt, Comment.id, descending=False)
    return page(result.items, result.next)


@operation(
    "post",
    "/trackers/{owner}/{tracker}/tickets/{number}/comments",
    "Comment on a ticket",
    scope="tickets",
    write=True,
    status=201,
    response="Comment",
    body="CommentCreate",
)
def create_comment(owner: str, tracker: str, number: int) -> Any:
    """Needs comment access."""
    access, ticket = ticket_for(owner, tracker, number, write=True)
    data = json_object()
    note = ops.add_comment(
        access, ticket, access.user, string_field(data, "text", required=True) or ""
    )
    db_session.commit()
    return note.to_dict(), 201


# -- webhooks ----------------------------------------------------------------------------


def webhook_for(access: Access, webhook_id: int) -> Webhook:
    hook = ops.find_webhook(access, webhook_id)
    if hook is None:
        raise ApiError(404, f"no webhook {webhook_id} on {access.tracker.ref}")
    return hook


def delivery_json(delivery: Any) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event": delivery.event,
        "url": delivery.url,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "response_status": delivery.response_status,
        "created": timestamp(delivery.created),
        "updated": timestamp(delivery.updated),
    }


@operation(
    "get",
    "/trackers/{owner}/{tracker}/webhooks",
    "List a tracker's webhooks",
    scope="trackers",
    response="Webhook",
    paged=True,
)
def list_webhooks(owner: str, tracker: str) -> Any:
    """Owner only."""
    access = tracker_for(owner, tracker, "trackers")
    access.require_owner("manage webhooks")
    stmt = sa.select(Webhook).where(Webhook.tracker_id == access.tracker.id)
    result = cursor_paginate(db_session, stmt, Webhook.id, descending=False)
    return page(result.items, result.next)


@operation(
    "post",
    "/trackers/{owner}/{tracker}/webhooks",
    "Register a webhook",
    scope="trackers",
    write=True,
    status=201,
    response="Webhook",
    body="WebhookCreate",
)
def create_webhook(owner: str, tracker: str) -> Any:
    """Owner only. Deliveries are signed with the site's webhook key."""
    access = tracker_for(owner, tracker, "trackers", write=True)
    access.require_owner("manage webhooks")
    data = json_object()
    names = string_list_field(data, "events")
    if names is None:
        raise ApiError(400, "is required", field="events")
    hook = ops.create_webhook(access, string_field(data, "url", required=True) or "", names)
    db_session.commit()
    return hook.to_dict(), 201


@operation(
    "get",
    "/trackers/{owner}/{tracker}/webhooks/{webhook_id}",
    "Get a webhook",
    scope="trackers",
    response="Webhook",
)
def get_webhook(owner: str, tracker: str, webhook_id: int) -> Any:
    """Owner only."""
    access = tracker_for(owner, tracker, "trackers")
    return webhook_for(access, webhook_id).to_dict()


@operation(
    "delete",
    "/trackers/{owner}/{tracker}/webhooks/{webhook_id}",
    "Remove a webhook",
    scope="trackers",
    write=True,
    status=204,
)
def delete_webhook(owner: str, tracker: str, webhook_id: int) -> Any:
    """Owner only."""
    access = tracker_for(owner, tracker, "trackers", write=True)
    db_session.delete(webhook_for(access, webhook_id))
    db_session.commit()
    return "", 204


@operation(
    "get",
    "/trackers/{owner}/{tracker}/webhook-deliveries",
    "The tracker's webhook delivery log",
    scope="trackers",
    response="Delivery",
    query=[
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "description": "How many, newest first.",
            "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50},
        }
    ],
)
def list_deliveries(owner: str, tracker: str) -> Any:
    """Owner only. Newest first; `next` is always null."""
    access = tracker_for(owner, tracker, "trackers")
    access.require_owner("see webhook deliveries")
    raw = request.args.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise ApiError(400, "must be a number from 1 to 100", field="limit")
    found = deliveries(subscription_key(access.tracker), limit=int(raw), session=db_session)
    return {"results": [delivery_json(d) for d in found], "next": None}


@operation(
    "post",
    "/trackers/{owner}/{tracker}/webhook-deliveries/{delivery_id}/redeliver",
    "Send a delivery again",
    scope="trackers",
    write=True,
    status=202,
    response="Delivery",
)
def redeliver_delivery(owner: str, tracker: str, delivery_id: int) -> Any:
    """Owner only."""
    access = tracker_for(owner, tracker, "trackers", write=True)
    access.require_owner("redeliver webhooks")
    key = subscription_key(access.tracker)
    if not deliveries(key, ids=[delivery_id], session=db_session):
        raise ApiError(404, f"no delivery {delivery_id} for {access.tracker.ref}")
    redeliver(delivery_id, session=db_session)
    db_session.commit()
    return delivery_json(deliveries(key, ids=[delivery_id], session=db_session)[0]), 202


# -- the OpenAPI document ------------------------------------------------------------

USER_SCHEMA = {
    "type": ["object", "null"],
    "required": ["id", "canonical_name", "username"],
    "properties": {
        "id": {"type": "integer"},
        "canonical_name": {"type": "string"},
        "username": {"type": "string"},
    },
}
ACCESS_LIST = {"type": "array", "items": {"type": "string", "enum": list(ACCESS_NAMES)}}
STAMP = {"type": "string", "format": "date-time"}
LABEL = '^[^"\\s\\x00][^"\\x00]{0,63}$'
#: Text PostgreSQL can store (no NUL), and text with something in it.
TEXT = {"type": "string", "maxLength": 65536, "pattern": "^[^\\x00]*$"}
TITLE = {"type": "string", "minLength": 1, "maxLength": 512, "pattern": "^[^\\x00]*\\S[^\\x00]*$"}

SCHEMAS: dict[str, Any] = {
    "Errors": API_ERRORS_SCHEMA,
    "User": USER_SCHEMA,
    "Tracker": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "ref": {"type": "string"},
            "owner": {"$ref": "#/components/schemas/User"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "visibility": {"type": "string", "enum": list(VISIBILITIES)},
            "anonymous_access": ACCESS_LIST,
            "user_access": ACCESS_LIST,
            "ticket_count": {"type": "integer"},
            "created": STAMP,
            "updated": STAMP,
        },
        "required": ["id", "ref", "owner", "name", "visibility"],
    },
    "TrackerCreate": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "pattern": TRACKER},
            "description": TEXT,
            "visibility": {"type": "string", "enum": list(VISIBILITIES)},
        },
    },
    "TrackerUpdate": {
        "type": "object",
        "properties": {
            "description": TEXT,
            "visibility": {"type": "string", "enum": list(VISIBILITIES)},
            "anonymous_access": ACCESS_LIST,
            "user_access": ACCESS_LIST,
        },
    },
    "AccessEntry": {
        "type": "object",
        "required": ["user", "access"],
        "properties": {"user": {"$ref": "#/components/schemas/User"}, "access": ACCESS_LIST},
    },
    "AccessUpdate": {
        "type": "object",
        "required": ["access"],
        "properties": {"access": ACCESS_LIST},
    },
    "Label": {
        "type": "object",
        "required": ["id", "name", "color", "text_color"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "color": {"type": "string", "pattern": "^#[0-9a-f]{6}$"},
            "text_color": {"type": "string", "enum": ["#000000", "#ffffff"]},
            "created": STAMP,
        },
    },
    "LabelCreate": {
        "type": "object",
        "required": ["name", "color"],
        "properties": {
            "name": {"type": "string", "pattern": LABEL},
            "color": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
        },
    },
    "LabelUpdate": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "pattern": LABEL},
            "color": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
        },
    },
    "Ticket": {
        "type": "object",
        "required": ["id", "ref", "number", "title", "status"],
        "properties": {
            "id": {"type": "integer"},
            "ref": {"type": "string"},
            "tracker": {"type": "string"},
            "number": {"type": "integer"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "status": {"type": "string", "enum": [OPEN, CLOSED]},
            "resolution": {"type": ["string", "null"]},
            "submitter": {"$ref": "#/components/schemas/User"},
            "labels": {"type": "array", "items": {"type": "string"}},
            "assignees": {"type": "array", "items": {"$ref": "#/components/schemas/User"}},
            "created": STAMP,
            "updated": STAMP,
        },
    },
    "TicketCreate": {
        "type": "object",
        "required": ["title"],
        "properties": {"title": TITLE, "description": {"type": "string", "maxLength": 65536}},
    },
    "TicketUpdate": {
        "type": "object",
        "properties": {
            "title": TITLE,
            "description": TEXT,
            "status": {"type": "string", "enum": [OPEN, CLOSED]},
            "resolution": {"type": "string", "enum": list(RESOLUTIONS)},
            "labels": {"type": "array", "items": {"type": "string"}},
            "assignees": {"type": "array", "items": {"type": "string"}},
            "comment": TEXT,
        },
    },
    "Comment": {
        "type": "object",
        "required": ["id", "author", "text"],
        "properties": {
            "id": {"type": "integer"},
            "author": {"$ref": "#/components/schemas/User"},
            "text": {"type": "string"},
            "change": {"type": ["string", "null"]},
            "created": STAMP,
        },
    },
    "CommentCreate": {
        "type": "object",
        "required": ["text"],
        "properties": {"text": {**TEXT, "minLength": 1, "pattern": "^[^\\x00]*\\S[^\\x00]*$"}},
    },
    "Webhook": {
        "type": "object",
        "required": ["id", "url", "events"],
        "properties": {
            "id": {"type": "integer"},
            "url": {"type": "string"},
            "events": {"type": "array", "items": {"type": "string", "enum": EVENT_NAMES}},
            "created": STAMP,
        },
    },
    "WebhookCreate": {
        "type": "object",
        "required": ["url", "events"],
        "properties": {
            "url": {
                "type": "string",
                "format": "uri",
                "pattern": "^https?://[^/\\s]+",
                "maxLength": 2048,
            },
            "events": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "enum": EVENT_NAMES},
            },
        },
    },
    "Delivery": {
        "type": "object",
        "required": ["id", "event", "url", "status"],
        "properties": {
            "id": {"type": "integer"},
            "event": {"type": "string"},
            "url": {"type": "string"},
            "status": {"type": "string"},
            "attempts": {"type": "integer"},
            "response_status": {"type": ["integer", "null"]},
            "created": STAMP,
            "updated": STAMP,
        },
    },
}


def _describe(op: dict[str, Any]) -> dict[str, Any]:
    names = re.findall(r"{(\w+)}", op["path"])
    parameters = [
        {"name": n, "in": "path", "required": True, **PATH_PARAMETERS[n]} for n in names
    ] + op["query"]
    if op["response"] is None:
        success: dict[str, Any] = {"description": "Done."}
    else:
        schema = schema_ref(op["response"])
        if op["paged"] or op["name"] == "list_deliveries":
            schema = {
                "type": "object",
                "required": ["results", "next"],
                "properties": {
                    "results": {"type": "array", "items": schema},
                    "next": {"type": ["string", "null"]},
                },
            }
        success = json_response(schema, "OK.")
    failures = [400] if op["body"] or op["query"] else []
    failures += [401, 403] + ([404] if names else []) + ([409] if op["conflict"] else [])
    responses: dict[str, Any] = {str(op["status"]): success, **error_responses(ERRORS, *failures)}
    scope = f"todo/{op['scope']}:{'RW' if op['write'] else 'RO'}"
    out: dict[str, Any] = {
        "operationId": op["name"],
        "summary": op["summary"],
        "description": (op["doc"] + "\n\n" if op["doc"] else "") + f"Scope: `{scope}`.",
        "tags": [op["scope"]],
        "parameters": parameters,
        "responses": responses,
        "security": [{"token": [scope]}] if op["write"] else [{"token": [scope]}, {}],
    }
    if op["body"]:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema_ref(op["body"])}},
        }
    return out


def openapi_document(server: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault("/api" + op["path"], {})[op["method"]] = _describe(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "todo API",
            "version": "1",
            "description": (__doc__ or "").split("\n\n", 1)[1].strip(),
        },
        "servers": [{"url": server}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "token": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A personal access token or OAuth2 access token from meta, "
                    "with todo/trackers and todo/tickets scopes.",
                }
            },
        },
    }


@api.get("/openapi.json")
def openapi() -> Any:
    """This API's OpenAPI 3 document."""
    return openapi_document(current_service().origin)
