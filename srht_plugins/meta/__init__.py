"""meta: accounts, sign-on, keys and tokens for every service.

The one service with a login form. This module is its table of contents:
the hooks through which it plugs into the core. The rest: ``config`` (its
sections), ``models`` (tables), ``access`` (who may do what), ``accounts``
(signing up and in, sessions, suspending, deleting), ``passwords``,
``totp`` (the second factor), ``keys`` (SSH and PGP public keys),
``tokens`` (personal access tokens and revocations), ``oauth`` (the OAuth2
provider), ``events`` (what the other services are told), ``forms``,
``api`` (REST and internal APIs), ``web`` (pages) and ``cli``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from srht_core import (
    Config,
    DatabaseSchema,
    NavEntry,
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
        "meta",
        "Account",
        "Accounts, sign-on, SSH and PGP keys, OAuth2 and access tokens.",
        core_requires=">=0.1.0.dev0,<0.2",
        default_port=5000,
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
    from .api import api, internal
    from .web.admin import bp as admin
    from .web.auth import bp as auth
    from .web.keys import bp as keys
    from .web.oauth import bp as oauth
    from .web.settings import bp as settings

    return [auth, settings, keys, admin, oauth, api.blueprint, internal]


@hookimpl
def cli_commands() -> list[Any]:
    from .cli import COMMANDS

    return COMMANDS


@hookimpl
def is_revoked(kind: str, ident: int) -> bool:
    from .tokens import token_revoked

    return token_revoked(kind, ident)


@hookimpl
def nav_entries(config: Config) -> list[NavEntry]:
    return [NavEntry("Account", "/", order=1000)]


@hookimpl
def oauth_scopes() -> list[Scope]:
    return [
        Scope("profile", "your profile: username, email, name"),
        Scope("keys", "your SSH and PGP public keys"),
    ]
