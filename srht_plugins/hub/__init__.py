"""hub: people, projects and the front door of the site.

This module is its table of contents: the hooks through which it plugs into
the core. The rest: ``config`` (its section), ``models`` (tables),
``access`` (who may see and change what), ``projects`` (making and changing
projects, attaching resources), ``sources`` (what hub learns of the other
services, over HTTP only), ``activity`` (their events and the feeds),
``events`` (hub's own webhooks), ``jobs``, ``api`` (REST and OpenAPI) and
``web`` (pages).

hub reads no other service's code or database: it finds what each offers
at its ``/api/resource-types``, reads a user's resources through the
service's REST API with a token meta delegates for the user, and hears of
them by the service's signed webhooks, so it works with any subset of
services, on any host.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from srht_core import (
    Config,
    DatabaseSchema,
    EventType,
    Job,
    NavEntry,
    Scope,
    Section,
    ServiceInfo,
    Timer,
    hookimpl,
)

if TYPE_CHECKING:
    from flask import Blueprint

HERE = Path(__file__).parent


@hookimpl
def service_info() -> ServiceInfo:
    return ServiceInfo(
        "hub",
        "Hub",
        "People, projects and the front door of the site: profiles, projects grouping "
        "repositories, trackers and lists, and their activity.",
        core_requires=">=0.1.0.dev0,<0.2",
        default_port=5014,
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
    from .web.home import bp as home
    from .web.hooks import bp as hooks
    from .web.projects import bp as projects
    from .web.webhooks import bp as webhooks

    return [home, projects, hooks, webhooks, api.blueprint]


@hookimpl
def jobs() -> list[Job]:
    from .jobs import JOBS

    return JOBS


@hookimpl
def timers(config: Config) -> list[Timer]:
    return [Timer("refresh", "refresh", every=float(config["hub"]["refresh-interval"]))]


@hookimpl
def nav_entries(config: Config) -> list[NavEntry]:
    return [NavEntry("Projects", "/", order=5)]


@hookimpl
def webhook_events() -> list[EventType]:
    from .events import EVENTS

    return EVENTS


@hookimpl
def oauth_scopes() -> list[Scope]:
    return [Scope("projects", "your projects, their resources and activity, and their webhooks")]


@hookimpl
def user_deleted(user: Any) -> None:
    from .projects import forget_user

    forget_user(user)
