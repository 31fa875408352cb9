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

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from srht_core import (
    ID_SCHEMA,
    USERNAME_SCHEMA,
    Api,
    ApiError,
    Delivery,
    body_schema,
    current_service,
    cursor_paginate,
    db_session,
    deliveries,
    delivery_page,
    redeliver,
    user_named,
    viewer,
)

from . import events, labels, tickets, trackers
from .access import Access, browsable, find_ticket, listed_trackers, tracker_for, with_grant
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
    ticket_assignee,
)
from .search import MAX_LENGTH as MAX_SEARCH
from .search import SearchError, filtered, parse

api = Api(
    "todo",
    __name__,
    title="todo API",
    description=(__doc__ or "").split("\n\n", 1)[1].strip(),
    reasons={
        404: "No such tracker, ticket, label, user or webhook, or one the caller may not see.",
        409: "The name is taken, or the change conflicts with the object as it is.",
    },
)

TRACKER = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
api.user_parameters("tracker")
api.parameter(
    "tracker", "The tracker's name.", {"type": "string", "pattern": TRACKER}, example="bugs"
)
api.parameter("number", "The ticket's number in its tracker.", ID_SCHEMA, example=1)
api.parameter("label_id", "The label's id.", ID_SCHEMA, example=1)
api.webhook_parameters()
api.parameter(
    "search",
    "A search such as `status:open label:bug crash`: filters status:, label:, assigned:, "
    "submitter:, resolution:, and words to find in titles and descriptions.",
    {"type": "string", "maxLength": MAX_SEARCH},
)


# -- schemas ---------------------------------------------------------------------------

STAMP = {"type": "string", "format": "date-time"}
ACCESS_LIST = {"type": "array", "items": {"type": "string", "enum": list(ACCESS_NAMES)}}
TEXT = {"type": "string", "maxLength": tickets.MAX_TEXT}
NOT_BLANK = {"pattern": "\\S", "description": "Not empty, nor only spaces."}
TITLE = {"type": "string", "minLength": 1, "maxLength": tickets.MAX_TITLE, **NOT_BLANK}
COLOR = {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$", "description": "Like #a0b1c2."}
LABEL_NAME = {
    "type": "string",
    "pattern": '^[^"\\s][^"]{0,63}$',
    "description": "1 to 64 characters, no double quotes, not starting with a space.",
}
VISIBILITY = {"type": "string", "enum": list(VISIBILITIES)}
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
    "Tracker",
    {
        "type": "object",
        "required": ["id", "ref", "owner", "name", "visibility"],
        "properties": {
            "id": {"type": "integer"},
            "ref": {"type": "string"},
            "owner": {"$ref": "#/components/schemas/User"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "visibility": VISIBILITY,
            "anonymous_access": ACCESS_LIST,
            "user_access": ACCESS_LIST,
            "ticket_count": {"type": "integer"},
            "created": STAMP,
            "updated": STAMP,
        },
    },
)
api.schema(
    "TrackerCreate",
    body_schema(
        {
            "name": {
                "type": "string",
                "pattern": TRACKER,
                "description": "1 to 128 letters, digits, dots, dashes and underscores, "
                "starting with a letter or digit.",
            },
            "description": TEXT,
            "visibility": VISIBILITY,
        },
        required=["name"],
    ),
)
api.schema(
    "TrackerUpdate",
    body_schema(
        {
            "description": TEXT,
            "visibility": VISIBILITY,
            "anonymous_access": ACCESS_LIST,
            "user_access": ACCESS_LIST,
        }
    ),
)
api.schema(
    "AccessEntry",
    {
        "type": "object",
        "required": ["user", "access"],
        "properties": {"user": {"$ref": "#/components/schemas/User"}, "access": ACCESS_LIST},
    },
)
api.schema("AccessUpdate", body_schema({"access": ACCESS_LIST}, required=["access"]))
api.schema(
    "Label",
    {
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
)
api.schema(
    "LabelCreate", body_schema({"name": LABEL_NAME, "color": COLOR}, required=["name", "color"])
)
api.schema("LabelUpdate", body_schema({"name": LABEL_NAME, "color": COLOR}))
api.schema(
    "Ticket",
    {
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
)
api.schema("TicketCreate", body_schema({"title": TITLE, "description": TEXT}, required=["title"]))
api.schema(
    "TicketUpdate",
    body_schema(
        {
            "title": TITLE,
            "description": TEXT,
            "status": {"type": "string", "enum": [OPEN, CLOSED]},
            "resolution": {"type": "string", "enum": list(RESOLUTIONS)},
            "labels": {"type": "array", "maxItems": 100, "items": LABEL_NAME},
            "assignees": {
                "type": "array",
                "maxItems": 100,
                "items": {"type": "string", "pattern": USERNAME_SCHEMA["pattern"], "maxLength": 65},
            },
            "comment": TEXT,
        }
    ),
)
api.schema(
    "Comment",
    {
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
)
api.schema(
    "CommentCreate", body_schema({"text": {**TEXT, "minLength": 1, **NOT_BLANK}}, required=["text"])
)
api.webhook_schemas(EVENT_NAMES)


def access_field(names: list[str] | None) -> int | None:
    return None if names is None else access_mask(names)


def commit(field: str, reason: str) -> None:
    """Commit; a unique constraint hit by a concurrent request is a 409."""
    try:
        db_session.commit()
    except sa.exc.IntegrityError:
        db_session.rollback()
        raise ApiError(409, reason, field=field) from None


def as_dict(item: Any) -> dict[str, Any]:
    return item.to_dict()  # type: ignore[no-any-return]


# -- trackers --------------------------------------------------------------------------


@api.operation(
    "get",
    "/trackers",
    "List your trackers",
    scope="trackers",
    response="Tracker",
    paged=True,
    anonymous=False,
)
def list_own_trackers() -> Any:
    """The trackers of the token's user, newest first."""
    stmt = sa.select(Tracker).where(Tracker.owner_id == viewer().id)
    return cursor_paginate(db_session, stmt, Tracker.id).json(as_dict)


@api.operation(
    "post",
    "/trackers",
    "Create a tracker",
    scope="trackers",
    write=True,
    body="TrackerCreate",
    response="Tracker",
    errors={409: "You have a tracker of that name already."},
)
def create_tracker(body: dict[str, Any]) -> Any:
    """Create a tracker owned by the token's user."""
    tracker = trackers.create_tracker(
        viewer(), body["name"], body.get("description") or "", body.get("visibility", "public")
    )
    commit("name", "You have a tracker of that name already.")
    return tracker.to_dict()


@api.operation(
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
    owner: User | None = user_named(username)
    if owner is None:
        raise ApiError(404, f"no user ~{username.lstrip('~')} here")
    return cursor_paginate(db_session, listed_trackers(viewer(), owner), Tracker.id).json(as_dict)


@api.operation(
    "get", "/trackers/{owner}/{tracker}", "Get a tracker", scope="trackers", response="Tracker"
)
def get_tracker(owner: str, tracker: str) -> Any:
    return tracker_for(owner, tracker).tracker.to_dict()


@api.operation(
    "patch",
    "/trackers/{owner}/{tracker}",
    "Change a tracker's settings",
    scope="trackers",
    write=True,
    body="TrackerUpdate",
    response="Tracker",
)
def update_tracker(owner: str, tracker: str, body: dict[str, Any]) -> Any:
    """Owner only."""
    access = tracker_for(owner, tracker)
    trackers.update_tracker(
        access,
        description=body.get("description"),
        visibility=body.get("visibility"),
        anonymous_access=access_field(body.get("anonymous_access")),
        user_access=access_field(body.get("user_access")),
    )
    db_session.commit()
    return access.tracker.to_dict()


@api.operation(
    "delete",
    "/trackers/{owner}/{tracker}",
    "Delete a tracker and its tickets",
    scope="trackers",
    write=True,
)
def delete_tracker(owner: str, tracker: str) -> None:
    """Owner only."""
    trackers.delete_tracker(tracker_for(owner, tracker))
    db_session.commit()


# -- access lists --------------------------------------------------------------------


@api.operation(
    "get",
    "/trackers/{owner}/{tracker}/access",
    "List the named users' access",
    scope="trackers",
    response="AccessEntry",
    paged=True,
)
def list_access(owner: str, tracker: str) -> Any:
    """Owner only."""
    access = tracker_for(owner, tracker)
    access.require_owner("see who has access")
    stmt = sa.select(TrackerAccess).where(TrackerAccess.tracker_id == access.tracker.id)
    return cursor_paginate(db_session, stmt, TrackerAccess.id, descending=False).json(as_dict)


@api.operation(
    "put",
    "/trackers/{owner}/{tracker}/access/{username}",
    "Set what a named user may do",
    scope="trackers",
    write=True,
    body="AccessUpdate",
    response="AccessEntry",
    errors={409: "The owner always has full access, or the entry was just changed."},
)
def set_access(owner: str, tracker: str, username: str, body: dict[str, Any]) -> Any:
    """Owner only. The entry replaces the tracker's defaults for that user."""
    access = tracker_for(owner, tracker)
    access.require_owner("change who has access")
    entry = trackers.grant_access(
        access, trackers.find_user(username, "username"), access_mask(body["access"])
    )
    commit("username", "That user's access was just changed by another request.")
    return entry.to_dict()


@api.operation(
    "delete",
    "/trackers/{owner}/{tracker}/access/{username}",
    "Remove a named user's entry",
    scope="trackers",
    write=True,
)
def remove_access(owner: str, tracker: str, username: str) -> None:
    """Owner only. The user gets the tracker's defaults again."""
    access = tracker_for(owner, tracker)
    access.require_owner("change who has access")
    user = trackers.find_user(username, "username")
    if not trackers.revoke_access(access, user.id):
        raise ApiError(404, f"~{user.username} has no entry on {access.tracker.ref}")
    db_session.commit()


# -- labels ----------------------------------------------------------------------------


def label_for(access: Access, label_id: int) -> Label:
    label = db_session.scalar(
        sa.select(Label).where(Label.id == label_id, Label.tracker_id == access.tracker.id)
    )
    if label is None:
        raise ApiError(404, f"no label {label_id} on {access.tracker.ref}")
    return label


@api.operation(
    "get",
    "/trackers/{owner}/{tracker}/labels",
    "List a tracker's labels",
    scope="trackers",
    response="Label",
    paged=True,
)
def list_labels(owner: str, tracker: str) -> Any:
    access = tracker_for(owner, tracker)
    stmt = sa.select(Label).where(Label.tracker_id == access.tracker.id)
    return cursor_paginate(db_session, stmt, Label.id, descending=False).json(as_dict)


@api.operation(
    "post",
    "/trackers/{owner}/{tracker}/labels",
    "Create a label",
    scope="trackers",
    write=True,
    body="LabelCreate",
    response="Label",
    errors={409: "A label of that name exists."},
)
def create_label(owner: str, tracker: str, body: dict[str, Any]) -> Any:
    """Needs triage access."""
    access = tracker_for(owner, tracker)
    label = labels.create_label(access, body["name"], body["color"])
    commit("name", "A label of that name was just created.")
    return label.to_dict()


@api.operation(
    "get",
    "/trackers/{owner}/{tracker}/labels/{label_id}",
    "Get a label",
    scope="trackers",
    response="Label",
)
def get_label(owner: str, tracker: str, label_id: int) -> Any:
    return label_for(tracker_for(owner, tracker), label_id).to_dict()


@api.operation(
    "patch",
    "/trackers/{owner}/{tracker}/labels/{label_id}",
    "Rename or recolour a label",
    scope="trackers",
    write=True,
    body="LabelUpdate",
    response="Label",
    errors={409: "A label of that name exists."},
)
def update_label(owner: str, tracker: str, label_id: int, body: dict[str, Any]) -> Any:
    """Needs triage access."""
    access = tracker_for(owner, tracker)
    label = label_for(access, label_id)
    labels.update_label(access, label, body.get("name"), body.get("color"))
    commit("name", "A label of that name was just created.")
    return label.to_dict()


@api.operation(
    "delete",
    "/trackers/{owner}/{tracker}/labels/{label_id}",
    "Delete a label (and remove it from its tickets)",
    scope="trackers",
    write=True,
)
def delete_label(owner: str, tracker: str, label_id: int) -> None:
    """Needs triage access."""
    access = tracker_for(owner, tracker)
    labels.delete_label(access, label_for(access, label_id))
    db_session.commit()


# -- tickets ---------------------------------------------------------------------------


def ticket_for(owner: str, tracker: str, number: int) -> tuple[Access, Ticket]:
    access = tracker_for(owner, tracker)
    return access, find_ticket(access, number)


@api.operation(
    "get",
    "/trackers/{owner}/{tracker}/tickets",
    "List and search tickets",
    scope="tickets",
    response="Ticket",
    paged=True,
    query=("search",),
)
def list_tickets(owner: str, tracker: str, query: dict[str, Any]) -> Any:
    """Newest first."""
    access = tracker_for(owner, tracker)
    try:
        search = parse(query["search"] or "")
    except SearchError as error:
        raise ApiError(400, str(error), field="search") from None
    stmt = (
        sa.select(Ticket)
        .where(Ticket.tracker_id == access.tracker.id)
        .options(*tickets.ticket_options())
    )
    stmt = filtered(stmt, search, access.tracker.id, db_session.get_bind().dialect.name)
    result = cursor_paginate(db_session, stmt, Ticket.number)
    tickets.attach_tracker(result.items, access.tracker)
    return result.json(as_dict)


@api.operation(
    "post",
    "/trackers/{owner}/{tracker}/tickets",
    "Submit a ticket",
    scope="tickets",
    write=True,
    body="TicketCreate",
    response="Ticket",
)
def submit_ticket(owner: str, tracker: str, body: dict[str, Any]) -> Any:
    """Needs submit access."""
    access = tracker_for(owner, tracker)
    ticket = tickets.submit_ticket(
        access, access.user, body["title"], body.get("description") or ""
    )
    db_session.commit()
    return ticket.to_dict()


@api.operation(
    "get",
    "/trackers/{owner}/{tracker}/tickets/{number}",
    "Get a ticket",
    scope="tickets",
    response="Ticket",
)
def get_ticket(owner: str, tracker: str, number: int) -> Any:
    return ticket_for(owner, tracker, number)[1].to_dict()


@api.operation(
    "patch",
    "/trackers/{owner}/{tracker}/tickets/{number}",
    "Change a ticket",
    scope="tickets",
    write=True,
    body="TicketUpdate",
    response="Ticket",
)
def update_ticket(owner: str, tracker: str, number: int, body: dict[str, Any]) -> Any:
    """Title and description: the submitter, or edit access. Status,
    resolution, labels (the full list of names) and assignees (the full
    list of usernames): triage access. A `comment` is added with the
    change (comment access)."""
    access, ticket = ticket_for(owner, tracker, number)
    changes = tickets.Changes(
        title=body.get("title"),
        description=body.get("description"),
        status=body.get("status"),
        resolution=body.get("resolution"),
        labels=body.get("labels"),
        assignees=body.get("assignees"),
    )
    tickets.change_ticket(access, ticket, access.user, changes, body.get("comment") or "")
    db_session.commit()
    return ticket.to_dict()


@api.operation(
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
    return cursor_paginate(db_session, stmt, Comment.id, descending=False).json(as_dict)


@api.operation(
    "post",
    "/trackers/{owner}/{tracker}/tickets/{number}/comments",
    "Comment on a ticket",
    scope="tickets",
    write=True,
    body="CommentCreate",
    response="Comment",
)
def create_comment(owner: str, tracker: str, number: int, body: dict[str, Any]) -> Any:
    """Needs comment access."""
    access, ticket = ticket_for(owner, tracker, number)
    note = tickets.add_comment(access, ticket, access.user, body["text"])
    db_session.commit()
    return note.to_dict()


# -- webhooks ----------------------------------------------------------------------------


def webhook_for(access: Access, webhook_id: int) -> Webhook:
    hook = events.find_webhook(access, webhook_id)
    if hook is None:
        raise ApiError(404, f"no webhook {webhook_id} on {access.tracker.ref}")
    return hook


@api.operation(
    "get",
    "/trackers/{owner}/{tracker}/webhooks",
    "List a tracker's webhooks",
    scope="trackers",
    response="Webhook",
    paged=True,
)
def list_webhooks(owner: str, tracker: str) -> Any:
    """Owner only."""
    access = tracker_for(owner, tracker)
    access.require_owner("manage webhooks")
    stmt = sa.select(Webhook).where(Webhook.tracker_id == access.tracker.id)
    return cursor_paginate(db_session, stmt, Webhook.id, descending=False).json(as_dict)


@api.operation(
    "post",
    "/trackers/{owner}/{tracker}/webhooks",
    "Register a webhook",
    scope="trackers",
    write=True,
    body="WebhookCreate",
    response="Webhook",
)
def create_webhook(owner: str, tracker: str, body: dict[str, Any]) -> Any:
    """Owner only. Deliveries are signed with the site's webhook key."""
    access = tracker_for(owner, tracker)
    access.require_owner("manage webhooks")
    hook = events.create_webhook(access, body["url"], body["events"])
    db_session.commit()
    return hook.to_dict()


@api.operation(
    "get",
    "/trackers/{owner}/{tracker}/webhooks/{webhook_id}",
    "Get a webhook",
    scope="trackers",
    response="Webhook",
)
def get_webhook(owner: str, tracker: str, webhook_id: int) -> Any:
    """Owner only."""
    return webhook_for(tracker_for(owner, tracker), webhook_id).to_dict()


@api.operation(
    "delete",
    "/trackers/{owner}/{tracker}/webhooks/{webhook_id}",
    "Remove a webhook",
    scope="trackers",
    write=True,
)
def delete_webhook(owner: str, tracker: str, webhook_id: int) -> None:
    """Owner only."""
    db_session.delete(webhook_for(tracker_for(owner, tracker), webhook_id))
    db_session.commit()


@api.operation(
    "get",
    "/trackers/{owner}/{tracker}/webhook-deliveries",
    "The tracker's webhook delivery log",
    scope="trackers",
    response="Delivery",
    paged=True,
)
def list_deliveries(owner: str, tracker: str) -> Any:
    """Owner only. Newest first."""
    access = tracker_for(owner, tracker)
    access.require_owner("see webhook deliveries")
    page = delivery_page(subscription_key(access.tracker), session=db_session)
    return page.json(Delivery.to_dict)


@api.operation(
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
    access = tracker_for(owner, tracker)
    access.require_owner("redeliver webhooks")
    key = subscription_key(access.tracker)
    if not deliveries(key, ids=[delivery_id], session=db_session):
        raise ApiError(404, f"no delivery {delivery_id} for {access.tracker.ref}")
    redeliver(delivery_id, session=db_session)
    db_session.commit()
    return deliveries(key, ids=[delivery_id], session=db_session)[0].to_dict()


# -- what needs the caller's attention -------------------------------------------------

api.schema(
    "AssignedTicket",
    {
        "allOf": [
            {"$ref": "#/components/schemas/Ticket"},
            {
                "type": "object",
                "required": ["url"],
                "properties": {"url": {"type": "string", "description": "The ticket's page."}},
            },
        ]
    },
)


@api.operation(
    "get",
    "/user/assigned-tickets",
    "List the open tickets assigned to you",
    scope="tickets",
    response="AssignedTicket",
    paged=True,
    anonymous=False,
)
def list_assigned_tickets() -> Any:
    """Newest first: the open tickets assigned to the token's user, on the
    trackers they may still browse (a ticket on a tracker that shut them
    out since is not listed)."""
    user = viewer()
    stmt = (
        with_grant(sa.select(Ticket).join(Tracker, Tracker.id == Ticket.tracker_id), user)
        .join(
            ticket_assignee,
            sa.and_(ticket_assignee.c.ticket_id == Ticket.id, ticket_assignee.c.user_id == user.id),
        )
        .where(Ticket.status == OPEN, browsable(user))
        .options(selectinload(Ticket.tracker), *tickets.ticket_options())
    )
    origin = current_service().origin

    def shown(ticket: Ticket) -> dict[str, Any]:
        return {**ticket.to_dict(), "url": f"{origin}{ticket.tracker.path}/{ticket.number}"}

    return cursor_paginate(db_session, stmt, Ticket.id).json(shown)
