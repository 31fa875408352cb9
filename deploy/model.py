"""The site a deploy works from: the checked config, the installed
services' plugins, the topology, and what is derived from them (host
needs, certificates, the wheelhouse). Built once per run on the deploying
machine; every deploy function takes it as its data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

from packaging.utils import canonicalize_name

from srht_core import Config, ConfigError, HostNeeds, PluginHost, load_config

from .hostconfig import databases, host_config_text
from .secrets import Database, redis_password
from .tls import Certificate, service_certificate, site_authority
from .topology import Placement, Topology, read_topology
from .wheels import Wheelhouse, build_wheelhouse, load_wheelhouse

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

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, *,
                    plugins: PluginHost | None = None) -> Site:
        """Read and check the config (``path``, ``$SRHT_CONFIG``, ...).

        :raises ConfigError: listing every problem, of the config and of the
            topology it describes.
        """
        config = load_config(path)
        plugins = plugins or PluginHost()
        problems = plugins.check_config(config)
        if problems:
            raise ConfigError(problems)
        return cls(config, plugins, read_topology(config, plugins))

    # -- per host ------------------------------------------------------------

    def placement(self, host: str) -> Placement:
        return self.topology.placement(host)

    def host_config(self, host: str) -> str:
        return host_config_text(self.config, self.topology, host)

    def needs(self, service: str) -> HostNeeds:
        """What ``service``'s plugin says a host needs to run it."""
        if service not in self._needs:
            # A plugin raising here stops the deploy, naming the plugin (PluginError).
            found = self.plugins.call_one("host_needs", service, config=self.config)
            self._needs[service] = found if isinstance(found, HostNeeds) else HostNeeds()
        return self._needs[service]

    def databases(self, host: str | None = None) -> dict[str, Database]:
        return databases(self.config, self.topology, host)

    # -- the site ------------------------------------------------------------

    def origin(self, service: str) -> Origin:
        parts = urlsplit(str(self.config[service]["origin"]))
        scheme = parts.scheme
        return Origin(scheme, parts.hostname or "", parts.port or (443 if scheme == "https"
                                                                  else 80))

    @property
    def service_key(self) -> str:
        return str(self.config["srht"]["service-key"])

    @property
    def site_name(self) -> str:
        return str(self.config["srht"]["site-name"])

    @property
    def data_dir(self) -> str:
        return str(self.config["srht"]["data-dir"])

    @property
    def acme(self) -> bool:
        return self.config.get("deploy", "certificates") == "acme"

    def authority(self) -> Certificate:
        return site_authority(self.service_key, self.site_name)

    def certificate(self, hostname: str) -> Certificate:
        return service_certificate(self.service_key, self.site_name, hostname)

    def redis_password(self) -> str:
        return redis_password(self.service_key)

    def distributions(self) -> list[str]:
        """The distributions to install on every host that runs srht: this
        one and each that provides an enabled service."""
        names = {"srht"}
        for service in self.topology.services:
            record = self.plugins.get(service)
            if record is not None:
                names.add(record.distribution)
        return sorted(names)

    @cached_property
    def wheelhouse(self) -> Wheelhouse:
        """Built on first use (cached across runs by its sources), unless
        ``$SRHT_DEPLOY_WHEELHOUSE`` names one already built (``srht deploy``
        builds it before it starts pyinfra)."""
        wanted = self.distributions()
        built = os.environ.get(WHEELHOUSE_ENV)
        if built:
            found = load_wheelhouse(Path(built))
            # Built for other services (one was added or removed): build anew.
            if set(found.requirements) == {canonicalize_name(d) for d in wanted}:
                return found
        return build_wheelhouse(wanted, cache=self.wheelhouse_dir)

    def title(self, service: str) -> str:
        record = self.plugins.get(service)
        return record.info.title if record is not None and record.info else service
