"""git: repositories owned by users, browsed on the web and cloned and
pushed over HTTP and SSH, at one URL (``/~user/repo``).

This module is the service's table of contents: the hooks through which it
plugs into the core.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from srht_core import (
    Config,
    DatabaseSchema,
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
        "git",
        "Git",
        "Git repositories: browse them on the web, clone and push over HTTP and SSH.",
        core_requires=">=0.1.0.dev0,<0.2",
        default_port=5001,
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
    from .http import bp as http
    from .ssh import bp as ssh
    from .web.browse import bp as browse
    from .web.repos import bp as repos
    from .web.settings import bp as settings

    return [http, ssh, repos, settings, browse, api.blueprint]


@hookimpl
def cli_commands() -> list[Any]:
    from .post_receive import hook_command

    return [hook_command]


@hookimpl
def nav_entries(config: Config) -> list[NavEntry]:
    return [NavEntry("Git", "/", order=20)]


@hookimpl
def resource_types(config: Config) -> list[ResourceType]:
    return [
        ResourceType(
            "repository",
            "Repositories",
            scope="repos",
            mine="/api/repos",
            item="/api/{owner[canonical_name]}/repos/{name}",
            page="/{owner[canonical_name]}/{name}",
            title="{owner[canonical_name]}/{name}",
            listed="/api/~{username}/repos",
            webhooks="/api/{owner[canonical_name]}/repos/{name}/webhooks",
            events=("repo:push",),
            choose_events=False,
        )
    ]


@hookimpl
def oauth_scopes() -> list[Scope]:
    return [
        Scope(
            "repos",
            "your git repositories: read and clone them, or also create, "
            "change, delete and push to them",
        )
    ]


@hookimpl
def webhook_events() -> list[EventType]:
    from .events import EVENTS

    return EVENTS


@hookimpl
def host_needs(config: Config) -> HostNeeds:
    from .ssh import KEYS_USER, keys_secret, sshd_snippet

    section = config["git"]
    repos = section["repos"] or str(Path(config["srht"]["data-dir"]) / "git")
    ssh_user = section["ssh-user"]
    if not section["ssh"]:
        return HostNeeds(packages=("git",), paths=(repos,))
    # curl is sshd's key lookup (ssh.sshd_snippet).
    return HostNeeds(
        packages=("git", "openssh-server", "curl"),
        users=(KEYS_USER,),
        login_users=(ssh_user,),
        paths=(repos,),
        ports=(22,),
        sshd_snippets=(sshd_snippet(config),),
        secret_files=(keys_secret(config),),
    )


@hookimpl
def user_deleted(user: Any) -> None:
    from .repos import delete_repositories_of

    delete_repositories_of(user)
