"""The site's topology, read from the one config: which hosts there are, how
to reach them, and what runs where.

``[deploy] hosts`` names the hosts; ``postgresql-host``, ``redis-host`` and
``nginx-hosts`` place the shared daemons; each service's ``hosts`` (and
``worker-hosts``) place the service; ``[builds] runner-hosts`` places
builds' job runners. Everything the deploy decides per host
comes from :meth:`Topology.placement`, never from another host's state, so
``--limit`` runs and unreachable hosts cannot change what a host gets.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from srht_core import Config, ConfigError, ConfigProblem, PluginHost
from srht_core.schema import SshTarget

__all__ = ["RUNNER_SERVICE", "Placement", "Topology", "read_topology", "service_order"]

#: Started first: every other service signs users in through it.
IDENTITY_SERVICE = "meta"
#: The service whose ``runner-hosts`` run its jobs (``srht builds runner``).
RUNNER_SERVICE = "builds"
RUNNER_KEY = "runner-hosts"


def service_order(names: list[str]) -> list[str]:
    """Services in dependency order: meta, then the others by name."""
    return sorted(names, key=lambda name: (name != IDENTITY_SERVICE, name))


@dataclass(frozen=True)
class Placement:
    """What one host runs."""

    name: str
    target: SshTarget
    services: tuple[str, ...] = ()
    workers: tuple[str, ...] = ()
    postgresql: bool = False
    redis: bool = False
    nginx: bool = False
    fronted: tuple[str, ...] = ()
    runner: bool = False

    @property
    def runs_srht(self) -> bool:
        """Whether the host needs the srht software (a venv and a config)."""
        return bool(self.services or self.workers or self.runner)

    @property
    def roles(self) -> list[str]:
        roles = [f"service:{s}" for s in self.services]
        roles += [f"worker:{s}" for s in self.workers]
        roles += [f"runner:{RUNNER_SERVICE}"] if self.runner else []
        roles += [
            r
            for r, on in (
                ("postgresql", self.postgresql),
                ("redis", self.redis),
                ("nginx", self.nginx),
            )
            if on
        ]
        return roles


@dataclass(frozen=True)
class Topology:
    """Where everything of a site runs. Build one with :func:`read_topology`."""

    hosts: dict[str, SshTarget]
    services: tuple[str, ...]
    service_hosts: dict[str, tuple[str, ...]]
    worker_hosts: dict[str, tuple[str, ...]]
    binds: dict[str, str]
    postgresql_host: str | None = None
    postgresql_existing: bool = False
    redis_host: str | None = None
    redis_existing: bool = False
    nginx_hosts: tuple[str, ...] = ()
    runner_hosts: tuple[str, ...] = ()
    problems: list[ConfigProblem] = field(default_factory=list)

    def placement(self, host: str) -> Placement:
        services = tuple(s for s in self.services if host in self.service_hosts[s])
        return Placement(
            name=host,
            target=self.hosts[host],
            services=services,
            workers=tuple(s for s in self.services if host in self.worker_hosts[s]),
            postgresql=self.postgresql_host == host,
            redis=self.redis_host == host,
            nginx=host in self.nginx_hosts,
            fronted=tuple(self.fronted_by(host)) if host in self.nginx_hosts else (),
            runner=host in self.runner_hosts,
        )

    def placements(self) -> Iterator[Placement]:
        for name in self.hosts:
            yield self.placement(name)

    def fronted_by(self, nginx_host: str) -> list[str]:
        """The services whose virtual hosts ``nginx_host`` serves: those that
        run on it, and those that run on no nginx host."""
        out = []
        for service in self.services:
            hosts = self.service_hosts[service]
            if nginx_host in hosts or not set(hosts) & set(self.nginx_hosts):
                out.append(service)
        return out

    def upstreams(self, service: str, nginx_host: str) -> list[str]:
        """``ADDRESS:PORT`` of every instance of ``service``, as seen from
        ``nginx_host``: loopback for its own, the host's address for others."""
        port = self.binds[service].rpartition(":")[2]
        out = []
        for host in self.service_hosts[service]:
            if host == nginx_host:
                out.append(self.binds[service])
            else:
                out.append(f"{_bracketed(self.hosts[host].address)}:{port}")
        return out

    def address(self, host: str) -> str:
        return self.hosts[host].address

    def clients_of(self, host: str, services: list[str]) -> list[str]:
        """Hosts other than ``host`` that run any of ``services`` (web or worker)."""
        out: list[str] = []
        for service in services:
            for other in (*self.service_hosts[service], *self.worker_hosts[service]):
                if other != host and other not in out:
                    out.append(other)
        return out


def _bracketed(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _is_loopback(bind: str) -> bool:
    host = bind.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_topology(config: Config, plugins: PluginHost, *, strict: bool = True) -> Topology:
    """The topology of a bound config (see :meth:`PluginHost.check_config`).

    :param strict: raise :class:`ConfigError` listing every problem found,
        rather than returning them on :attr:`Topology.problems`.
    """
    problems: list[ConfigProblem] = []

    def problem(section: str, key: str | None, message: str) -> None:
        line = None
        raw = config.raw.get(section)
        if raw is not None:
            line = raw.values[key].line if key and key in raw.values else raw.line
        problems.append(ConfigProblem(config.path, line, section, key, message))

    deploy: Any = config["deploy"] if config.has_section("deploy") else {}
    hosts: dict[str, SshTarget] = {}
    for target in deploy.get("hosts") or ():
        if target.name in hosts:
            problem("deploy", "hosts", f"host {target.name!r} is named twice")
        hosts[target.name] = target
    if not hosts:
        problem(
            "deploy" if config.has_section("deploy") else "srht",
            None,
            "no hosts to deploy to; list them in [deploy] hosts (NAME=[USER@]ADDRESS[:PORT], ...)",
        )

    def known(section: str, key: str, names: list[str]) -> tuple[str, ...]:
        for name in names:
            if name not in hosts:
                choices = ", ".join(hosts) or "none"
                problem(section, key, f"no host {name!r} in [deploy] hosts (hosts: {choices})")
        return tuple(n for n in names if n in hosts)

    services = service_order([r.name for r in plugins.enabled(config)])
    service_hosts: dict[str, tuple[str, ...]] = {}
    worker_hosts: dict[str, tuple[str, ...]] = {}
    binds: dict[str, str] = {}
    for service in services:
        section = config[service]
        placed = known(service, "hosts", list(section.get("hosts") or ()))
        if not section.get("hosts"):
            if len(hosts) == 1:
                placed = tuple(hosts)
            elif hosts:
                problem(
                    service, "hosts", f"say which hosts run this service (of {', '.join(hosts)})"
                )
        service_hosts[service] = placed
        workers = section.get("worker-hosts")
        worker_hosts[service] = known(service, "worker-hosts", list(workers)) if workers else placed
        binds[service] = str(section["bind"])

    def one(key: str) -> str | None:
        name = deploy.get(key)
        if not name:
            return None
        return (known("deploy", key, [name]) or (None,))[0]

    postgresql_host, redis_host = one("postgresql-host"), one("redis-host")
    nginx = deploy.get("nginx-hosts")
    if nginx:
        nginx_hosts = known("deploy", "nginx-hosts", list(nginx))
    else:
        nginx_hosts = tuple(h for h in hosts if any(h in service_hosts[s] for s in services))

    runner_hosts: tuple[str, ...] = ()
    if RUNNER_SERVICE in services:
        named = list(config[RUNNER_SERVICE].get(RUNNER_KEY) or ())
        runner_hosts = tuple(dict.fromkeys(known(RUNNER_SERVICE, RUNNER_KEY, named)))
        if not named:
            problem(
                RUNNER_SERVICE,
                RUNNER_KEY,
                "say which hosts run its jobs (of "
                f"{', '.join(hosts) or 'the hosts of [deploy] hosts'}): "
                "without a runner every job waits forever",
            )

    topology = Topology(
        hosts=hosts,
        services=tuple(services),
        service_hosts=service_hosts,
        worker_hosts=worker_hosts,
        binds=binds,
        postgresql_host=postgresql_host,
        postgresql_existing=bool(deploy.get("postgresql-existing")),
        redis_host=redis_host,
        redis_existing=bool(deploy.get("redis-existing")),
        nginx_hosts=nginx_hosts,
        runner_hosts=runner_hosts,
        problems=problems,
    )
    _check_reachability(config, topology, problem)
    _check_install_method(config, deploy, problem)
    if topology.redis_existing and not config["srht"]["broker"]:
        problem(
            "deploy",
            "redis-existing",
            "the deploy leaves your Redis alone, so say where it is: [srht] broker = redis://...",
        )
    if strict and problems:
        raise ConfigError(problems)
    return topology


def _check_reachability(config: Config, topology: Topology, problem: Any) -> None:
    """What a multi-host site needs of the config to work across hosts."""
    for service in topology.services:
        for nginx_host in topology.nginx_hosts:
            if service not in topology.fronted_by(nginx_host):
                continue
            remote = [h for h in topology.service_hosts[service] if h != nginx_host]
            if remote and _is_loopback(topology.binds[service]):
                problem(
                    service,
                    "bind",
                    f"listens on loopback only, but nginx on {nginx_host} must reach it "
                    f"on {', '.join(remote)}; bind to 0.0.0.0:PORT (or the host's "
                    "address)",
                )
        shared_db = config.get(service, "connection-string") or topology.postgresql_host
        hosts = set(topology.service_hosts[service]) | set(topology.worker_hosts[service])
        if len(hosts) > 1 and not shared_db:
            problem(
                service,
                "hosts",
                f"runs on {len(hosts)} hosts but has no shared database; "
                "set [deploy] postgresql-host or its connection-string",
            )
    if len(topology.hosts) < 2:
        return
    networks = config.get("srht", "internal-networks") or []
    wanted = ["127.0.0.1"] + [t.address for t in topology.hosts.values()]
    for address in wanted:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            continue  # a DNS name: the operator knows where it points
        if not any(ip in network for network in networks):
            problem(
                "srht",
                "internal-networks",
                f"must include {address}: services on several hosts call each other's "
                "internal APIs through nginx (add the hosts' network and 127.0.0.0/8)",
            )


def _check_install_method(config: Config, deploy: Any, problem: Any) -> None:
    """``install-method = distro`` needs exactly one place to take the
    packages from: said before any host is touched, not half-way through."""
    if config["srht"]["install-method"] != "distro":
        return
    given = [key for key in ("apt-packages", "apt-source") if deploy.get(key)]
    if not given:
        problem(
            "srht",
            "install-method",
            "distro needs [deploy] apt-packages (a folder of "
            ".deb files the deploy publishes to the hosts) or [deploy] apt-source (an "
            "apt repository holding srht's packages)",
        )
    elif len(given) == 2:
        problem("deploy", "apt-source", "give apt-packages or apt-source, not both")
