"""Each host's copy of the config: the one config, filtered to what that
host needs, with the values the deploy derives filled in.

- ``[deploy]`` is left out: how to reach the hosts is the deploying
  machine's business. So is ``[backup]`` (no service reads it; the backup
  host gets the whole config as a secret file, see
  :mod:`srht_deploy.backupplan`).
- Every service section stays (origins, navigation and token scopes span
  the site), but the optional secrets of services the host does not run
  (their connection strings) are dropped. Sections of services whose
  distribution is not installed on the host (a third-party service that
  runs elsewhere) are left out: the host could not check them.
- A service on this host with an empty connection string gets the one of
  its managed database; ``[srht] broker`` is set when Redis is managed.

The result is deterministic (no dates, stable order), so a re-run writes
the same bytes and changes nothing.
"""

from __future__ import annotations

from collections.abc import Collection

from srht_core import Config
from srht_core.config import dump_ini

from .secrets import Database, database_for, redis_password
from .topology import Topology

__all__ = ["databases", "host_config_text", "redis_url"]


def databases(
    config: Config,
    topology: Topology,
    host: str | None = None,
    *,
    services: Collection[str] | None = None,
) -> dict[str, Database]:
    """The PostgreSQL database of each service that has one, with its URL
    as seen from ``host`` (loopback on the PostgreSQL host itself).

    :param services: the services that keep data in a database (those whose
        plugin declares a ``database_schema``); default: every service.
    """
    out: dict[str, Database] = {}
    service_key = config["srht"]["service-key"]
    pg = topology.postgresql_host
    for service in topology.services:
        if services is not None and service not in services:
            continue
        address = None
        if pg is not None:
            address = "127.0.0.1" if host == pg else topology.address(pg)
        database = database_for(
            service, config.get(service, "connection-string"), service_key, address
        )
        if database is not None:
            out[service] = database
    return out


def redis_url(config: Config, topology: Topology, host: str) -> str | None:
    """``[srht] broker`` for ``host``: as written, or derived when Redis is managed."""
    written = config.get("srht", "broker")
    if written or topology.redis_host is None or topology.redis_existing:
        return written or None
    address = "127.0.0.1" if host == topology.redis_host else topology.address(topology.redis_host)
    address = f"[{address}]" if ":" in address else address
    return f"redis://:{redis_password(config['srht']['service-key'])}@{address}:6379/0"


def host_config_text(
    config: Config,
    topology: Topology,
    host: str,
    *,
    omit: Collection[str] = (),
    with_database: Collection[str] | None = None,
) -> str:
    """The config file ``host`` gets, as text.

    :param omit: services whose sections are left out (those whose
        distribution the host does not have: the host's ``srht`` would
        report them as unknown sections).
    :param with_database: the services that have a database (see
        :func:`databases`).
    """
    placement = topology.placement(host)
    local = set(placement.services) | set(placement.workers)
    derived = databases(config, topology, host, services=with_database)
    data: dict[str, dict[str, str]] = {}
    for name, raw in config.raw.items():
        if name in ("deploy", "backup", "drill"):  # read on the deploying and backup hosts only
            continue
        service = name.split("::", 1)[0]
        if service in omit:
            continue
        schema = config.schemas.get(name)
        values: dict[str, str] = {}
        for key, value in raw.values.items():
            declared = schema.key(key) if schema is not None else None
            remote_secret = (
                service in topology.services
                and service not in local
                and declared is not None
                and declared.secret
                and not declared.required
            )
            if not remote_secret:
                values[key] = value.value
        if name in local and name in derived and derived[name].derived:
            values["connection-string"] = derived[name].url
        data[name] = values
    broker = redis_url(config, topology, host)
    if broker:
        data.setdefault("srht", {})["broker"] = broker
    # Not the site config's file name: a plan made from a copy of it (the
    # installer's, before a change is confirmed) must read the same.
    header = (
        f"# The config of host {host}, written by `srht deploy` from the site's config\n"
        "# on the machine that deploys: edit that and deploy again; changes made here\n"
        "# are overwritten.\n\n"
    )
    return header + dump_ini(data)
