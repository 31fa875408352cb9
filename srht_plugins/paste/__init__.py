"""paste: share text files, highlighted, with line anchors, raw views and an API.

This module is the service's table of contents: the hooks through which it
plugs into the core. The rest: ``config`` (its section), ``models``
(tables), ``access`` (who may see a paste), ``pastes`` (what a new paste
must satisfy, making one), ``forms``, ``api`` (REST and OpenAPI) and
``web`` (pages).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from srht_core import (
    Config,
    DatabaseSchema,
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
        "paste",
        "Pastes",
        "Text files shared by link, highlighted, with raw views and an API.",
        core_requires=">=0.1.0.dev0,<0.2",
        default_port=5011,
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
    from .web.files import bp as files
    from .web.pastes import bp as pastes

    return [pastes, files, api.blueprint]


@hookimpl
def nav_entries(config: Config) -> list[NavEntry]:
    return [NavEntry("Pastes", "/", order=40)]


@hookimpl
def resource_types(config: Config) -> list[ResourceType]:
    return [
        ResourceType(
            "paste",
            "Pastes",
            scope="pastes",
            mine="/api/pastes",
            item="/api/pastes/{id}",
            page="/{owner[canonical_name]}/{id}",
            title="{owner[canonical_name]}/{id}",
        )
    ]


@hookimpl
def oauth_scopes() -> list[Scope]:
    return [Scope("pastes", "your pastes: read them, or also create and delete them")]


@hookimpl
def host_needs(config: Config) -> HostNeeds:
    return HostNeeds()


@hookimpl
def user_deleted(user: Any) -> None:
    from .pastes import delete_pastes_of

    delete_pastes_of(user)
