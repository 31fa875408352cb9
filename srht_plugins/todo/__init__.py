"""todo: ticket trackers, tickets, comments, labels, subscriptions and
webhooks.

This module is its table of contents: the hooks through which it plugs into
the core. The rest: ``config`` (its section), ``models`` (tables),
``access`` (who may do what), what people do (``trackers``, ``tickets``,
``labels``, ``subscriptions``), ``search``, ``references``, ``events``
(webhooks and notifications), ``listcache``, ``jobs``, ``api`` (REST and
OpenAPI) and ``web`` (pages).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from srht_core import (
    Config,
    DatabaseSchema,
    EventType,
    HostNeeds,
    Job,
    NavEntry,
    ResourceType,
    Scope,
    Section,
    ServiceInfo,
    hookimpl,
)

if TYPE_CHECKING:
    from flask import Blueprint

# Imported under another name before the ``jobs`` hook below is defined:
# importing a submodule sets it as an attribute of its package, and the
# module must not replace the hook.
from . import jobs as todo_jobs  # noqa: E402

HERE = Path(__file__).parent


@hookimpl
def service_info() -> ServiceInfo:
    return ServiceInfo(
        "todo",
        "Tickets",
        "Ticket trackers with labels, subscriptions and webhooks.",
        core_requires=">=0.1.0.dev0,<0.2",
        default_port=5003,
    )


@hookimpl
def config_schema() -> list[Section]:
    from .config import SCHEMA

    return SCHEMA


@hookimpl
def database_schema() -> DatabaseSchema:
    from .models import Base, User

    return DatabaseSchema(Base.metadata, HERE / "migrations", user_model=User)


@hookimpl
def blueprints(config: Config) -> list[Blueprint]:
    from .api import api
    from .web.labels import bp as labels
    from .web.settings import bp as settings
    from .web.tickets import bp as tickets
    from .web.trackers import bp as trackers

    return [trackers, labels, tickets, settings, api.blueprint]


@hookimpl
def jobs() -> list[Job]:
    return todo_jobs.JOBS


@hookimpl
def nav_entries(config: Config) -> list[NavEntry]:
    return [NavEntry("Tickets", "/", order=30)]


@hookimpl
def webhook_events() -> list[EventType]:
    from .events import EVENTS

    return EVENTS


@hookimpl
def resource_types(config: Config) -> list[ResourceType]:
    return [
        ResourceType(
            "tracker",
            "Trackers",
            scope="trackers",
            mine="/api/trackers",
            item="/api/trackers/{ref}",
            page="/{ref}",
            title="{ref}",
            listed="/api/users/{username}/trackers",
            webhooks="/api/trackers/{ref}/webhooks",
            events=(
                "ticket:create",
                "ticket:update",
                "comment:create",
                "tracker:update",
                "tracker:delete",
            ),
        )
    ]


@hookimpl
def oauth_scopes() -> list[Scope]:
    return [
        Scope("trackers", "your trackers, their settings, access lists, labels and webhooks"),
        Scope("tickets", "tickets and comments on the trackers you can see"),
    ]


@hookimpl
def host_needs(config: Config) -> HostNeeds:
    return HostNeeds()


@hookimpl
def user_deleted(user: Any) -> None:
    from .trackers import forget_user

    forget_user(user)
