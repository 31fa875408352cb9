"""hub's REST API under ``/api``: projects, their resources and their
activity, and the webhooks that tell of your projects.

Send a token issued by meta with the scope `hub/projects` (`:RO` to read,
`:RW` to write); public and unlisted projects read without one. A project
shows other people only the resources that are public on their own
service, and only their activity.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from srht_core import (
    ID_SCHEMA,
    USER_REF_SCHEMA,
    Api,
    ApiError,
    Delivery,
    body_schema,
    cursor_paginate,
    db_session,
    delivery_page,
    user_named,
    viewer,
)

from . import activity, projects
from .access import changeable_project, find_project, listed_projects
from .events import EVENT_NAMES, create_webhook, subscription_key
from .models import (
    MAX_DESCRIPTION,
    MAX_NAME,
    MAX_README,
    MAX_TAG,
    MAX_TAGS,
    VISIBILITIES,
    Event,
    Project,
    Webhook,
)

api = Api(
    "hub",
    __name__,
    title="hub API",
    description=(__doc__ or "").split("\n\n", 1)[1].strip(),
    reasons={
        404: "No such user, project, resource or webhook, or one the caller may not see.",
        409: "The name is taken, or the resource is attached already.",
        503: "The service holding the resource (named in the reason) did not answer.",
    },
)

NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
api.user_parameters("project")
api.parameter(
    "name",
    "The project's name.",
    {"type": "string", "pattern": NAME, "maxLength": MAX_NAME},
    example="hello",
)
api.parameter("resource_id", "The resource's id in hub.", ID_SCHEMA, example=1)
api.parameter("webhook_id", "The webhook's id.", ID_SCHEMA, example=1)

STAMP = {"type": "string", "format": "date-time"}
VISIBILITY = {"type": "string", "enum": list(VISIBILITIES)}
TAGS = {
    "type": "array",
    "maxItems": MAX_TAGS,
    "items": {"type": "string", "maxLength": MAX_TAG},
    "description": "Lower-case letters, digits, dots, pluses and dashes.",
}
api.schema(
    "Project",
    {
        "type": "object",
        "required": ["id", "ref", "owner", "name", "visibility", "tags", "created", "updated"],
        "properties": {
            "id": {"type": "integer"},
            "ref": {"type": "string", "description": "~owner/name"},
            "owner": USER_REF_SCHEMA,
            "name": {"type": "string"},
            "description": {"type": "string"},
            "readme": {"type": "string", "description": "Markdown."},
            "visibility": VISIBILITY,
            "tags": {"type": "array", "items": {"type": "string"}},
            "created": STAMP,
            "updated": STAMP,
        },
    },
)
FIELDS = {
    "name": {"type": "string", "maxLength": MAX_NAME, "pattern": NAME},
    "description": {"type": "string", "maxLength": MAX_DESCRIPTION},
    "readme": {"type": "string", "description": f"Markdown, at most {MAX_README} characters."},
    "visibility": VISIBILITY,
    "tags": TAGS,
}
api.schema("ProjectCreate", body_schema(FIELDS, required=["name"]))
api.schema("ProjectUpdate", body_schema(FIELDS))
api.schema(
    "Resource",
    {
        "type": "object",
        "required": ["id", "service", "kind", "title", "url", "visibility"],
        "properties": {
            "id": {"type": "integer"},
            "service": {"type": "string"},
            "kind": {"type": "string", "description": "repository, tracker, list, ..."},
            "title": {"type": "string"},
            "url": {"type": "string", "format": "uri"},
            "description": {"type": "string"},
            "visibility": VISIBILITY,
        },
    },
)
api.schema(
    "ResourceAttach",
    body_schema(
        {
            "service": {"type": "string", "maxLength": 64, "description": "git, todo, ..."},
            "type": {
                "type": "string",
                "maxLength": 64,
                "description": "One of the service's resource types "
                "(its `/api/resource-types`): repository, tracker, ...",
            },
            "resource": {
                "type": "string",
                "maxLength": 1024,
                "description": "Which of your own: its name as the service shows it "
                "(`~alice/hello`).",
            },
        },
        required=["service", "type", "resource"],
    ),
)
api.schema(
    "Event",
    {
        "type": "object",
        "required": ["id", "event", "summary", "resource", "created"],
        "properties": {
            "id": {"type": "integer"},
            "event": {"type": "string", "description": "The service's event (repo:push, ...)."},
            "actor": {"type": "string"},
            "summary": {"type": "string"},
            "url": {"type": "string"},
            "resource": {
                "type": "object",
                "required": ["id", "title"],
                "properties": {"id": {"type": "integer"}, "title": {"type": "string"}},
            },
            "created": STAMP,
        },
    },
)
api.webhook_schemas(EVENT_NAMES)


def _problems(found: activity.Checked) -> dict[str, str]:
    return {"X-Srht-Unreachable": "; ".join(found.problems)} if found.problems else {}


# -- projects --------------------------------------------------------------------------


@api.operation(
    "get",
    "/projects",
    "List your projects",
    scope="projects",
    response="Project",
    paged=True,
    anonymous=False,
)
def list_projects() -> Any:
    """Recently created first."""
    stmt = sa.select(Project).where(Project.owner_id == viewer().id)
    return cursor_paginate(db_session, stmt, Project.id).json(Project.to_dict)


@api.operation(
    "post",
    "/projects",
    "Create a project",
    scope="projects",
    write=True,
    body="ProjectCreate",
    response="Project",
)
def create_project(body: dict[str, Any]) -> Any:
    project = projects.create_project(viewer(), body)
    db_session.commit()
    return project.to_dict()


@api.operation(
    "get",
    "/users/{username}/projects",
    "List a user's projects",
    scope="projects",
    response="Project",
    paged=True,
)
def list_user_projects(username: str) -> Any:
    """The public ones (and all of them, to their owner)."""
    owner = user_named(username)
    if owner is None:
        raise ApiError(404, f"no user ~{username.lstrip('~')} here", field="username")
    stmt = listed_projects(viewer(), owner).order_by(None)
    return cursor_paginate(db_session, stmt, Project.id).json(Project.to_dict)


@api.operation(
    "get", "/projects/{owner}/{name}", "Get a project", scope="projects", response="Project"
)
def get_project(owner: str, name: str) -> Any:
    return find_project(owner, name, viewer(), api=True).to_dict()


@api.operation(
    "patch",
    "/projects/{owner}/{name}",
    "Change a project",
    scope="projects",
    write=True,
    body="ProjectUpdate",
    response="Project",
)
def update_project(owner: str, name: str, body: dict[str, Any]) -> Any:
    project = changeable_project(owner, name, viewer(), api=True)
    projects.update_project(project, body)
    db_session.commit()
    return project.to_dict()


@api.operation(
    "delete", "/projects/{owner}/{name}", "Delete a project", scope="projects", write=True
)
def delete_project(owner: str, name: str) -> None:
    """Its resources stay as they are on their services."""
    projects.delete_project(changeable_project(owner, name, viewer(), api=True))
    db_session.commit()


# -- resources and activity ------------------------------------------------------------


@api.operation(
    "get",
    "/projects/{owner}/{name}/resources",
    "List a project's resources",
    scope="projects",
    response="Resource",
    paged=True,
    headers={
        "X-Srht-Unreachable": {
            "description": "The services that did not answer, each with why; their "
            "resources are listed as hub last knew them.",
            "schema": {"type": "string"},
        }
    },
)
def list_resources(owner: str, name: str) -> Any:
    """Those the caller may see: the public ones, and all to their owner.
    Each is checked with its service (at most a few seconds old)."""
    user = viewer()
    project = find_project(owner, name, user, api=True)
    found = activity.check_sources([a.source for a in project.attachments], user)
    return {"results": [s.to_dict() for s in found.shown], "next": None}, 200, _problems(found)


@api.operation(
    "post",
    "/projects/{owner}/{name}/resources",
    "Attach one of your resources",
    scope="projects",
    write=True,
    body="ResourceAttach",
    response="Resource",
    errors={503: "The resource's service, or meta, did not answer; nothing was stored."},
)
def attach_resource(owner: str, name: str, body: dict[str, Any]) -> Any:
    """A repository, tracker, list, ... of your own, on any service of the
    site that offers it. hub subscribes to its events for you."""
    project = changeable_project(owner, name, viewer(), api=True)
    source = projects.attach(project, body["service"], body["type"], body["resource"])
    db_session.commit()
    return source.to_dict()


@api.operation(
    "delete",
    "/projects/{owner}/{name}/resources/{resource_id}",
    "Detach a resource",
    scope="projects",
    write=True,
)
def detach_resource(owner: str, name: str, resource_id: int) -> None:
    projects.detach(changeable_project(owner, name, viewer(), api=True), resource_id)
    db_session.commit()


@api.operation(
    "get",
    "/projects/{owner}/{name}/feed",
    "A project's activity",
    scope="projects",
    response="Event",
    paged=True,
)
def project_feed(owner: str, name: str) -> Any:
    """Newest first: what happened to the resources the caller may see."""
    user = viewer()
    project = find_project(owner, name, user, api=True)
    found = activity.check_sources([a.source for a in project.attachments], user)
    stmt = activity.visible_events(user, source_ids=[s.id for s in found.shown]).order_by(None)
    page = cursor_paginate(db_session, stmt, Event.id)
    return page.json(Event.to_dict), 200, _problems(found)


# -- webhooks --------------------------------------------------------------------------


@api.operation(
    "get",
    "/user/webhooks",
    "List your webhooks",
    scope="projects",
    response="Webhook",
    paged=True,
    anonymous=False,
)
def list_webhooks() -> Any:
    stmt = sa.select(Webhook).where(Webhook.owner_id == viewer().id)
    return cursor_paginate(db_session, stmt, Webhook.id, descending=False).json(Webhook.to_dict)


@api.operation(
    "post",
    "/user/webhooks",
    "Register a webhook for your projects",
    scope="projects",
    write=True,
    body="WebhookCreate",
    response="Webhook",
)
def create_user_webhook(body: dict[str, Any]) -> Any:
    """Told of `project:create`, `project:update` and `project:delete` on
    your projects, signed with the site's webhook key."""
    hook = create_webhook(viewer().id, body["url"], body["events"])
    db_session.commit()
    return hook.to_dict()


@api.operation(
    "delete", "/user/webhooks/{webhook_id}", "Remove a webhook", scope="projects", write=True
)
def delete_user_webhook(webhook_id: int) -> None:
    hook = db_session.scalar(
        sa.select(Webhook).where(Webhook.id == webhook_id, Webhook.owner_id == viewer().id)
    )
    if hook is None:
        raise ApiError(404, f"you have no webhook {webhook_id}", field="webhook_id")
    db_session.delete(hook)
    db_session.commit()


@api.operation(
    "get",
    "/user/webhook-deliveries",
    "Your webhooks' delivery log",
    scope="projects",
    response="Delivery",
    paged=True,
    anonymous=False,
)
def list_deliveries() -> Any:
    """Newest first."""
    return delivery_page(subscription_key(viewer().id), session=db_session).json(Delivery.to_dict)
