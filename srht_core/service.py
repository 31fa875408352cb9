"""What a service declares about itself: the data its hooks return.

Hooks return these plain, frozen records and the core applies them, so that
every contribution can be checked and attributed to the plugin that made it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = [
    "DatabaseSchema",
    "DevDaemon",
    "EventType",
    "HostNeeds",
    "Job",
    "NavEntry",
    "ResourceType",
    "Scope",
    "SecretFile",
    "ServiceInfo",
    "Timer",
]


@dataclass(frozen=True)
class ServiceInfo:
    """Who a service is.

    :param name: the short name: the config section, the URL prefix of its
        scopes, the ``srht <name>`` command group. Lower case letters, digits
        and dashes; it must equal the entry point's name.
    :param title: a human name for the nav bar (``todo`` → ``Tickets``).
    :param description: one sentence, shown by ``srht services`` and installers.
    :param core_requires: PEP 440 specifier of the core versions the service
        works with (``">=0.1,<0.2"``); empty accepts any.
    :param default_port: the port a development config gives it.
    :param request_timeout: the default of the service's ``timeout`` key:
        seconds a request may take before gunicorn restarts its worker. A
        request that streams (git's clones and pushes) needs no long
        timeout: it calls :func:`~srht_core.report_progress` as data moves,
        and is cut off only when it stalls.
    """

    name: str
    title: str
    description: str
    core_requires: str = ""
    default_port: int = 5000
    request_timeout: int = 60


@dataclass(frozen=True)
class DatabaseSchema:
    """A service's tables and where its Alembic migrations live.

    :param metadata: the SQLAlchemy ``MetaData`` of the service's models.
    :param migrations: the folder holding the service's Alembic revision
        files (inside its package); ``None`` creates tables from ``metadata``
        directly, which is only acceptable for examples.
    :param user_model: the service's mirrored user class (built on
        :class:`~srht_core.MirroredUserMixin`); with it, the core signs users
        in from meta's login cookie, mirrors them on first sight, and applies
        identity events to it.
    """

    metadata: sa.MetaData
    migrations: Path | None = None
    user_model: type[Any] | None = None


@dataclass(frozen=True)
class Job:
    """A kind of background job. Instances are enqueued with
    :func:`srht_core.enqueue` and recorded in the service's database before
    they are handed to a worker.

    :param name: unique within the service (``deliver-webhook``).
    :param run: called as ``run(**payload)`` inside the service's app context.
        Raising schedules a retry.
    :param max_attempts: attempts before the job is marked failed.
    :param backoff: seconds before the first retry; doubled on each retry,
        capped at one hour.
    :param timeout: seconds a job may run. While it runs, its worker renews
        its claim (a lease of 15 s) up to this long; a worker that dies
        stops renewing, and the job is queued again within seconds. A job
        still running past ``timeout`` is presumed hung and queued again.

    .. versionchanged:: 0.1
       ``timeout`` bounds the renewal of a lease instead of being the
       lease itself, so the job of a dead worker comes back in seconds.
    """

    name: str
    run: Callable[..., Any]
    max_attempts: int = 10
    backoff: float = 10.0
    timeout: float = 300.0


@dataclass(frozen=True)
class Timer:
    """Periodic work: enqueue ``job`` every ``every`` seconds. Each period
    runs once across all workers of the service.

    :param name: unique within the service.
    :param job: the name of a :class:`Job` of the same service.
    :param every: seconds between runs.
    """

    name: str
    job: str
    every: float


@dataclass(frozen=True)
class NavEntry:
    """A link in the shared navigation bar.

    :param label: the text of the link.
    :param path: a path under the service's origin (``/trackers``).
    :param order: smaller first; built-ins use multiples of 10.
    """

    label: str
    path: str = "/"
    order: int = 100


@dataclass(frozen=True)
class EventType:
    """A webhook event a service emits.

    :param name: ``<object>:<verb>`` (``ticket:create``); unique site-wide
        once prefixed with the service name.
    :param description: one sentence for the webhook settings page.
    """

    name: str
    description: str


@dataclass(frozen=True)
class Scope:
    """An OAuth2 scope a service defines, granted read-only or read-write
    (``todo/tickets:RO``).

    :param name: the resource name (``tickets``).
    :param description: one sentence shown on the authorization page.
    """

    name: str
    description: str


_SECRET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class SecretFile:
    """A secret one account of a host must read and no other, such as a
    credential a program needs and must not take on its command line (where
    every local user sees it in ``ps``). The deploy writes it as
    ``HostNeeds.SECRETS_DIR/name``, owned by ``owner``, mode ``0400``, in a
    folder only root lists, and removes it when no service on the host
    needs it any more. Point the program at its ``path``.

    :param name: the file's name, unique on the host (``git-ssh-keys``).
    :param owner: the account that reads it: the service's own or one of
        its ``users``.
    :param text: what the file holds.

    .. versionadded:: 0.1
    """

    name: str
    owner: str
    text: str = field(repr=False)

    def __post_init__(self) -> None:
        if not _SECRET_NAME.match(self.name):
            raise ValueError(
                f"secret file name {self.name!r}: letters, digits, '.', '_' and '-', "
                "starting with a letter or digit"
            )

    @property
    def path(self) -> str:
        """Where the deploy puts it."""
        return f"{HostNeeds.SECRETS_DIR}/{self.name}"


@dataclass(frozen=True)
class HostNeeds:
    """What a host must have to run a service; the deploy reads it.

    :param packages: Debian packages.
    :param users: system users the service needs besides its own.
    :param login_users: accounts people reach over SSH (git's ``git@``):
        the deploy gives them a shell (sshd runs a key's forced command
        through it) and the service's folder as their home, and makes them
        members of the service's group and of ``srht``, so what they run
        reads the config and works on the service's files; the service's
        ``paths`` become group-writable.
    :param paths: directories to create, owned by the service's user.
    :param ports: TCP ports the service listens on publicly (besides its
        web port behind nginx), for the firewall.
    :param daemons: extra processes: ``{name: command}``, each becoming a
        systemd unit.
    :param sshd_snippets: text for ``/etc/ssh/sshd_config.d/``. Write
        ``HostNeeds.SRHT_ON_HOST`` where the ``srht`` program goes: the
        deploy puts that host's own path there (the hook runs on the
        deploying machine, whose ``srht`` is elsewhere).
    :param mail_domains: ``{domain: "host:port"}``: the host takes mail
        for each domain (its MX record must point at the host) and passes
        it on over LMTP to that address, a daemon of ``daemons`` (lists'
        ``srht lists lmtp``). The deploy installs Postfix and writes its
        transport; a host left with no mail domain keeps Postfix but no
        longer takes mail for them. List port 25 in ``ports``.
    :param mail_max_size: the largest message, in bytes, the mail server
        takes for ``mail_domains`` (Postfix's own limit is 10 MB).
    :param secret_files: :class:`SecretFile` s for the host, each readable
        by its owner alone.

    .. versionchanged:: 0.1
        ``mail_domains``, ``mail_max_size`` and ``secret_files``.
    """

    #: Stands for the absolute path of ``srht`` on the host, in sshd snippets.
    SRHT_ON_HOST: ClassVar[str] = "@srht@"
    #: The folder of :class:`SecretFile` s on a host (root's, mode 0711).
    SECRETS_DIR: ClassVar[str] = "/etc/srht-secrets"

    packages: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    login_users: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    daemons: dict[str, str] = field(default_factory=dict)
    sshd_snippets: tuple[str, ...] = ()
    mail_domains: dict[str, str] = field(default_factory=dict)
    mail_max_size: int = 0
    secret_files: tuple[SecretFile, ...] = ()


@dataclass(frozen=True)
class DevDaemon:
    """A process ``srht up`` runs for a service on a developer's machine,
    besides its web server and worker (a listener standing in for what the
    deploy puts in front of a production daemon: lists' SMTP listener, where
    production has Postfix passing mail on over LMTP).

    :param name: short and unique within the service (``smtp``).
    :param command: the ``srht`` arguments that run it (``("lists",
        "smtp")``); ``srht up`` adds ``--config`` with its own config.
    :param address: where it listens, printed by ``srht up`` for the
        developer (``127.0.0.1:2525``).
    :param description: what to do with it, printed beside the address.
    """

    name: str
    command: tuple[str, ...]
    address: str = ""
    description: str = ""


@dataclass(frozen=True)
class ResourceType:
    """A kind of object a service offers to projects (hub's): what another
    service, on any host, needs to list a user's objects of this kind, read
    one, tell who may see it and hear of what happens to it, all through the
    service's public REST API and webhooks.

    Paths are relative to the service's ``origin``. ``item``, ``page``,
    ``title`` and ``webhooks`` are :meth:`str.format` templates over one
    object as the API answers it (``"/api/{owner[canonical_name]}/repos/{name}"``).

    :param name: singular, lower-case (``repository``); unique in the service.
    :param label: plural, for people (``Repositories``).
    :param scope: the service's OAuth2 scope that reads these objects
        (``repos``); a caller's token carries ``<service>/<scope>:RO``.
    :param mine: the API path listing the token user's own objects, paged as
        every API list (``{"results": [...], "next": cursor}``).
    :param listed: the API path listing the objects of user ``{username}``
        that the caller may see, asked without a token for a public profile
        (``""``: the service lists no one's objects).
    :param item: the API path of one object (404 when it is gone, or hidden
        from the caller). The object has a ``visibility`` (``public``,
        ``unlisted`` or ``private``).
    :param page: the path of the object's page.
    :param title: how to name the object to people (``{ref}``).
    :param webhooks: the API path where its owner subscribes a URL to its
        events (``POST {"url": ..., "events": [...]}``), or ``""`` when it
        has none.
    :param events: the webhook events worth showing in an activity feed,
        as declared by :func:`~srht_core.hookspecs.webhook_events`.
    :param choose_events: the ``webhooks`` endpoint takes the events to
        send (``False``: it takes only the URL and sends every event).

    .. versionadded:: 0.1
    """

    name: str
    label: str
    scope: str
    mine: str
    item: str
    page: str
    title: str
    listed: str = ""
    webhooks: str = ""
    events: tuple[str, ...] = ()
    choose_events: bool = True

    def to_dict(self, service: str) -> dict[str, Any]:
        """What ``/api/resource-types`` answers for it."""
        return {
            "name": self.name,
            "label": self.label,
            "scope": f"{service}/{self.scope}",
            "mine": self.mine,
            "item": self.item,
            "page": self.page,
            "title": self.title,
            "listed": self.listed,
            "webhooks": self.webhooks,
            "events": list(self.events),
            "choose_events": self.choose_events,
        }
