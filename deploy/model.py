"""The site a deploy works from: the checked config, the installed
services' plugins, the topology, and what is derived from them (host
needs, certificates, the wheelhouse). Built once per run on the deploying
machine; every deploy function takes it as its data.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from functools import cached_property
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from srht_core import Config, ConfigError, HostNeeds, PluginHost, load_config

from .backupplan import BackupPlan, backup_plan
from .hostconfig import databases, host_config_text
from .secrets import Database, redis_password
from .tls import Certificate, service_certificate, site_authority
from .topology import RUNNER_SERVICE, Placement, Topology, read_topology
from .wheels import CORE, Wheelhouse, build_wheelhouse, load_wheelhouse

__all__ = ["Origin", "Site"]

#: Where things go on the hosts.
PREFIX = "/opt/srht"
VENV = f"{PREFIX}/venv"
SRHT = f"{VENV}/bin/srht"
CONFIG_DIR = "/etc/srht"
CONFIG = f"{CONFIG_DIR}/config.ini"
TLS_DIR = f"{CONFIG_DIR}/tls"
GROUP = "srht"
#: Names a wheelhouse folder already built for this run.
WHEELHOUSE_ENV = "SRHT_DEPLOY_WHEELHOUSE"


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Origin:
    """Where a service is served, from its ``origin``."""

    scheme: str
    hostname: str
    port: int

    @property
    def https(self) -> bool:
        return self.scheme == "https"


@dataclass
class Site:
    """Everything a deploy needs to know, from the one config.

    Build it with :meth:`from_config`; pass it to the deploy functions of
    :mod:`srht_deploy.deploys`.
    """

    config: Config
    plugins: PluginHost
    topology: Topology
    wheelhouse_dir: Path | None = None
    _needs: dict[str, HostNeeds] = field(default_factory=dict)
    _with_database: set[str] | None = None

    @classmethod
    def from_config(
        cls, path: str | os.PathLike[str] | None = None, *, plugins: PluginHost | None = None
    ) -> Site:
        """Read and check the config (``path``, ``$SRHT_CONFIG``, ...).

        :raises ConfigError: listing every problem, of the config and of the
            topology it describes.
        """
        config = load_config(path)
        plugins = plugins or PluginHost()
        problems = plugins.check_site(config)
        if problems:
            raise ConfigError(problems)
        topology = read_topology(config, plugins)
        backup_plan(config, topology)  # raises ConfigError naming [backup]'s problems
        return cls(config, plugins, topology)

    # -- per host ------------------------------------------------------------

    def placement(self, host: str) -> Placement:
        return self.topology.placement(host)

    def host_config(self, host: str, service: str | None = None) -> str:
        """The config file ``host`` gets; with ``service``, the part of it
        that service reads (what its restart fingerprint covers): without
        the sections of services from distributions it does not depend on,
        so adding a third-party service restarts none of the others."""
        have = self.host_distributions(host)
        if service is not None:
            have &= self.distribution_closure(self.distribution(service))
        omit = [s for s in self.topology.services if self.distribution(s) not in have]
        return host_config_text(
            self.config, self.topology, host, omit=omit, with_database=self.with_database()
        )

    def needs(self, service: str) -> HostNeeds:
        """What ``service``'s plugin says a host needs to run it."""
        if service not in self._needs:
            # A plugin raising here stops the deploy, naming the plugin (PluginError).
            found = self.plugins.call_one("host_needs", service, config=self.config)
            self._needs[service] = found if isinstance(found, HostNeeds) else HostNeeds()
        return self._needs[service]

    def databases(self, host: str | None = None) -> dict[str, Database]:
        return databases(self.config, self.topology, host, services=self.with_database())

    def with_database(self) -> set[str]:
        """The services that keep data in PostgreSQL: those whose plugin
        declares a ``database_schema`` (a service without one gets no role,
        no database and no migrations)."""
        if self._with_database is None:
            self._with_database = {
                s
                for s in self.topology.services
                if self.plugins.call_one("database_schema", s) is not None
            }
        return self._with_database

    # -- software --------------------------------------------------------------

    def distribution(self, service: str) -> str:
        """The (canonical) name of the distribution providing ``service``."""
        record = self.plugins.get(service)
        return canonicalize_name(record.distribution if record is not None else CORE)

    def host_distributions(self, host: str) -> set[str]:
        """The distributions installed on ``host``: ``srht``, and those of
        the services it runs (builds' on a runner host)."""
        placement = self.placement(host)
        services = [*placement.services, *placement.workers]
        services += [RUNNER_SERVICE] if placement.runner else []
        return {CORE, *(self.distribution(s) for s in services)}

    def distribution_closure(self, distribution: str) -> set[str]:
        """``distribution`` and the site's distributions it depends on (read
        from their installed metadata on this machine: whatever the install
        method, no wheelhouse is needed for it)."""
        site = {canonicalize_name(d) for d in self.distributions()}
        found, todo = set(), [canonicalize_name(distribution)]
        while todo:
            name = todo.pop()
            if name in found:
                continue
            found.add(name)
            try:
                requires = metadata.requires(name) or []
            except metadata.PackageNotFoundError:
                continue
            todo += [
                other
                for other in (canonicalize_name(Requirement(r).name) for r in requires)
                if other in site
            ]
        return {str(name) for name in found}

    def software(self, host: str) -> dict[str, str]:
        """``{wheel: sha256}`` of what ``host``'s virtualenv holds."""
        return self.wheelhouse.closure(sorted(self.host_distributions(host)))

    def service_software(self, service: str) -> str:
        """A hash of the wheels ``service`` runs (its distribution's closure),
        or of the packages with ``install-method = distro``."""
        if self.config.get("srht", "install-method") == "distro":
            from .distro import software_id

            return software_id(self)
        return self.wheelhouse.fingerprint([self.distribution(service)])

    # -- the site ------------------------------------------------------------

    def origin(self, service: str) -> Origin:
        parts = urlsplit(str(self.config[service]["origin"]))
        scheme = parts.scheme
        return Origin(
            scheme, parts.hostname or "", parts.port or (443 if scheme == "https" else 80)
        )

    @property
    def service_key(self) -> str:
        return str(self.config["srht"]["service-key"])

    @property
    def site_name(self) -> str:
        return str(self.config["srht"]["site-name"])

    @property
    def data_dir(self) -> str:
        return str(self.config["srht"]["data-dir"])

    @cached_property
    def backup(self) -> BackupPlan | None:
        """``[backup]``, checked (see :mod:`srht_deploy.backupplan`)."""
        return backup_plan(self.config, self.topology)

    @property
    def acme(self) -> bool:
        return bool(self.config.get("deploy", "certificates") == "acme")

    def service_names(self, host: str) -> dict[str, str]:
        """``{origin's name: address}`` that ``host`` gets in ``/etc/hosts``
        (``[deploy] service-names = hosts-file``, the default): on a host
        that runs a service, the name of each service its config holds (see
        :meth:`host_config`: not a third-party service running elsewhere)
        points at an nginx host that serves it (``host`` itself when it
        does), so the services reach each other (and meta) without DNS.
        Names whose nginx host is given by a DNS name, not an address, are
        left to DNS."""
        if self.config.get("deploy", "service-names") == "dns":
            return {}
        if not self.placement(host).runs_srht:
            return {}
        topology = self.topology
        have = self.host_distributions(host)
        out: dict[str, str] = {}
        for service in topology.services:
            if self.distribution(service) not in have:
                continue
            name = self.origin(service).hostname
            if not name or _is_address(name) or name in out:
                continue
            fronting = [h for h in topology.nginx_hosts if service in topology.fronted_by(h)]
            if not fronting:
                continue
            address = topology.address(host if host in fronting else fronting[0])
            if _is_address(address):
                out[name] = address.strip("[]")
        return out

    def authority(self) -> Certificate:
        return site_authority(self.service_key, self.site_name)

    def certificate(self, hostname: str) -> Certificate:
        return service_certificate(self.service_key, self.site_name, hostname)

    def redis_password(self) -> str:
        return redis_password(self.service_key)

    def distributions(self) -> list[str]:
        """The distributions to install on every host that runs srht: this
        one and each that provides an enabled service."""
        return sorted({CORE, *(self.distribution(s) for s in self.topology.services)})

    @cached_property
    def wheelhouse(self) -> Wheelhouse:
        """Built on first use (cached across runs by its sources), unless
        ``$SRHT_DEPLOY_WHEELHOUSE`` names one already built (``srht deploy``
        builds it before it starts pyinfra)."""
        wanted = self.distributions()
        built = os.environ.get(WHEELHOUSE_ENV)
        if built:
            found = load_wheelhouse(Path(built))
            # Hosts get only what they run, so a wheelhouse built for more
            # distributions will do; one lacking a service's is built anew.
            if {canonicalize_name(d) for d in wanted} <= set(found.requirements):
                return found
        return build_wheelhouse(wanted, cache=self.wheelhouse_dir)

    def title(self, service: str) -> str:
        record = self.plugins.get(service)
        return record.info.title if record is not None and record.info else service
