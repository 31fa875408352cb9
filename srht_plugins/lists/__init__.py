"""lists: mailing lists with an archive of threads and patchsets, fed by
mail, the way sr.ht projects take contributions.

This module is its table of contents: the hooks through which it plugs into
the core. The rest: ``config`` (its section), ``models`` (tables),
``access`` (who may do what), ``addresses`` (list addresses and their
commands), what arrives (``listener`` for LMTP and SMTP, ``inbound`` for
the decision, ``messages`` for reading mail, ``archive`` for storing it,
``patches``, ``subscriptions``), what leaves (``outbound``), ``lists``
(creating and configuring), ``events`` (webhooks), ``render`` and ``mbox``
(showing and downloading), ``cli`` (``srht lists lmtp|smtp|import``),
``api`` (REST and OpenAPI) and ``web`` (pages).

It reads no other service's code or database: a ticket reference in a
message links to todo's page through todo's origin in the config.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from srht_core import (
    Config,
    DatabaseSchema,
    DevDaemon,
    EventType,
    HostNeeds,
    NavEntry,
    ResourceType,
    Scope,
    Section,
    ServiceInfo,
    hookimpl,
)

if TYPE_CHECKING:
    from flask import Blueprint

HERE = Path(__file__).parent


@hookimpl
def service_info() -> ServiceInfo:
    return ServiceInfo(
        "lists",
        "Lists",
        "Mailing lists with archives, patchsets and review, fed by mail.",
        core_requires=">=0.1.0.dev0,<0.2",
        default_port=5006,
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
    from .web.archive import bp as archive
    from .web.lists import bp as lists
    from .web.settings import bp as settings

    return [lists, archive, settings, api.blueprint]


@hookimpl
def cli_commands() -> list[click.Command]:
    from .cli import COMMANDS

    return COMMANDS


@hookimpl
def nav_entries(config: Config) -> list[NavEntry]:
    return [NavEntry("Lists", "/", order=40)]


@hookimpl
def webhook_events() -> list[EventType]:
    from .events import EVENTS

    return EVENTS


@hookimpl
def resource_types(config: Config) -> list[ResourceType]:
    return [
        ResourceType(
            "list",
            "Lists",
            scope="lists",
            mine="/api/lists",
            item="/api/lists/{ref}",
            page="/{ref}",
            title="{ref}",
            listed="/api/users/{username}/lists",
            webhooks="/api/lists/{ref}/webhooks",
            events=("email:received", "patchset:received", "patchset:update"),
        )
    ]


@hookimpl
def oauth_scopes() -> list[Scope]:
    return [
        Scope("lists", "your lists, their settings, members, subscriptions and webhooks"),
        Scope("emails", "the threads, messages and patchsets of the lists you can read"),
        Scope("tools", "what tools (CI) report on your lists' patchsets: builds: success"),
    ]


@hookimpl
def host_needs(config: Config) -> HostNeeds:
    from .addresses import posting_domain

    # Postfix (which the deploy installs for mail_domains) takes the posting
    # domain's mail and passes it on over LMTP to the listener below.
    section = config["lists"]
    return HostNeeds(
        ports=(25,),
        daemons={"lmtp": "srht lists lmtp"},
        mail_domains={posting_domain(config): str(section["lmtp-bind"])},
        mail_max_size=int(section["max-message-size"]),
    )


@hookimpl
def dev_daemons(config: Config) -> list[DevDaemon]:
    bind = str(config["lists"]["smtp-bind"])
    return [
        DevDaemon(
            "smtp",
            ("lists", "smtp"),
            bind,
            "SMTP: send mail to the lists here (git send-email --smtp-server)",
        )
    ]


@hookimpl
def user_deleted(user: Any) -> None:
    from .lists import forget_user

    forget_user(user)
