"""The packaged deploys: ordinary pyinfra ``@deploy`` functions taking a
:class:`~srht_deploy.model.Site` as their data.

A run is three stages, each across every host before the next
(``deploy/site.py`` calls them in this order)::

    install(site)     # packages, users, folders, the software
    configure(site)   # PostgreSQL, Redis, config, units, sshd, nginx
    activate(site)    # migrate, (re)start, check, prune, nginx

A daemon is restarted (or reloaded) when the *fingerprint* of what it runs
(software, config, unit) differs from the one recorded on the host after
its last successful restart, not when a file happened to change in this
run: a run that failed half-way, or missed a host, is completed by the
next one.

Within a stage, operations run in dependency order across hosts:
PostgreSQL and Redis, then meta, then the other services, then nginx.
What a service's plugin declares (:class:`srht_core.HostNeeds`) decides its
extra packages, users, folders, daemons and sshd settings. Every operation
has a stable name, so a dry run reads as a plan; all are idempotent, so a
second run changes nothing.

Use them from your own pyinfra project::

    from srht_deploy import Site, install, configure, activate
    site = Site.from_config("config.ini")
    install(site)
    configure(site)
    activate(site)
"""

from __future__ import annotations

import hashlib
from io import StringIO
from typing import Any

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import LinuxDistribution
from pyinfra.operations import apt, files, server, systemd

from . import operations
from .facts import FileText, ManagedFiles
from .model import CONFIG, CONFIG_DIR, GROUP, PREFIX, SRHT, TLS_DIR, VENV, Site
from .render import nginx_vhost, pg_hba, postgresql_conf, redis_conf, unit
from .topology import Placement

__all__ = ["activate", "configure", "fingerprint", "install"]

ACME_ROOT = "/var/www/srht-acme"
#: The login shell of system users (S604 flags the argument's name, not a shell).
NOLOGIN = "/usr/sbin/nologin"
CA_FILE = "/usr/local/share/ca-certificates/srht-site.crt"
#: ``srht`` for administrators on the hosts: the host's config unless told otherwise.
WRAPPER = f"""#!/bin/sh
# Written by `srht deploy`: srht with this host's config.
: "${{SRHT_CONFIG:={CONFIG}}}"
export SRHT_CONFIG
exec {SRHT} "$@"
"""
#: PostgreSQL's major version in each Debian release the deploy knows.
POSTGRESQL_VERSIONS = {"11": "13", "12": "15", "13": "17"}


def fingerprint(*parts: str) -> str:
    """A short hash of what a restart or reload applies."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]


def _user(service: str) -> str:
    return f"srht-{service}"


def _units(site: Site, placement: Placement) -> dict[str, str]:
    """``{unit name: unit text}`` of everything srht runs on the host."""
    out: dict[str, str] = {}
    after = ["postgresql.service"] if placement.postgresql else []
    after += ["redis-server.service"] if placement.redis else []
    for service in placement.services:
        needs = site.needs(service)
        out[f"srht-{service}.service"] = unit(
            f"srht {service} ({site.title(service)}): web", _user(service),
            f"{SRHT} serve {service}", after=after, paths=_writable(site, service, needs))
    for service in placement.workers:
        needs = site.needs(service)
        out[f"srht-{service}-worker.service"] = unit(
            f"srht {service} ({site.title(service)}): background jobs", _user(service),
            f"{SRHT} worker {service}", after=after, paths=_writable(site, service, needs))
    for service in placement.services:
        needs = site.needs(service)
        for name, command in sorted(needs.daemons.items()):
            out[f"srht-{service}-{name}.service"] = unit(
                f"srht {service}: {name}", _user(service), f"/usr/bin/env {command}",
                after=after, paths=_writable(site, service, needs))
    return out


def _writable(site: Site, service: str, needs: Any) -> list[str]:
    return [site.data_dir, *needs.paths]


def _packages(site: Site, placement: Placement) -> list[str]:
    packages: list[str] = []
    if placement.runs_srht:
        packages += ["python3-venv", "curl", "ca-certificates"]
    if placement.postgresql and not site.topology.postgresql_existing:
        packages += ["postgresql"]
    if placement.redis and not site.topology.redis_existing:
        packages += ["redis-server"]
    if placement.nginx and placement.fronted:
        packages += ["nginx", "curl", "ca-certificates"]
        if site.acme:
            packages += ["certbot"]
    for service in dict.fromkeys([*placement.services, *placement.workers]):
        packages += list(site.needs(service).packages)
    return sorted(set(packages))


# -- install -------------------------------------------------------------------


@deploy("srht install")
def install(site: Site) -> None:
    """System packages, users, folders, the site's certificate authority,
    and the software (a virtualenv from the uploaded wheelhouse)."""
    placement = site.placement(host.name)
    packages = _packages(site, placement)
    if packages:
        apt.packages(name="Install system packages", packages=packages, update=True,
                     cache_time=24 * 3600, no_recommends=True)
    files.directory(name="Deploy state folder", path=operations.STATE_DIR, user="root",
                    group="root", mode="700")
    if _trusts_authority(site):
        authority = site.authority().cert
        files.put(name="Trust the site's certificate authority", src=StringIO(authority),
                  dest=CA_FILE, user="root", group="root", mode="644")
        operations.converge(name="Update trusted certificates", key="ca-certificates",
                            fingerprint=fingerprint(authority),
                            command="update-ca-certificates")
    if not placement.runs_srht:
        return

    server.group(name=f"Group {GROUP}", group=GROUP, system=True)
    services = _local_services(placement)
    for service in host.loop(services):
        server.user(name=f"User {_user(service)}", user=_user(service), system=True,
                    home=f"{site.data_dir}/{service}", shell=NOLOGIN,  # noqa: S604
                    groups=[GROUP], create_home=False, ensure_home=False,
                    comment=f"srht {service}")
    for service in host.loop(services):
        for extra in site.needs(service).users:
            server.user(name=f"User {extra} (for {service})", user=extra, system=True,
                        shell=NOLOGIN, create_home=False, ensure_home=False)  # noqa: S604

    files.directory(name="Config folder", path=CONFIG_DIR, user="root", group=GROUP,
                    mode="750")
    files.directory(name="Data folder", path=site.data_dir, user="root", group=GROUP,
                    mode="770")
    files.directory(name="Mail outbox folder", path=f"{site.data_dir}/outbox", user="root",
                    group=GROUP, mode="770")
    for service in host.loop(services):
        files.directory(name=f"Folder of {service}", path=f"{site.data_dir}/{service}",
                        user=_user(service), group=_user(service), mode="750")
    for service in host.loop(services):
        for path in site.needs(service).paths:
            files.directory(name=f"Folder {path} (for {service})", path=path,
                            user=_user(service), group=_user(service), mode="750")

    wheelhouse = site.wheelhouse
    venv = f"{PREFIX}/venvs/{wheelhouse.id}"
    tarball = f"{PREFIX}/wheelhouse-{wheelhouse.id}.tar"
    if host.get_fact(FileText, path=f"{venv}/.srht-complete") is None:
        files.put(name="Upload the wheelhouse", src=str(wheelhouse.tarball), dest=tarball,
                  mode="600")
    operations.virtualenv(name="Install srht into a virtualenv", root=PREFIX,
                          wheelhouse_id=wheelhouse.id, tarball=tarball,
                          requirements=list(wheelhouse.requirements))
    files.link(name="Make it the current virtualenv", path=VENV, target=venv)
    files.put(name="srht on the PATH, with this host's config", src=StringIO(WRAPPER),
              dest="/usr/local/bin/srht", user="root", group="root", mode="755")


def _trusts_authority(site: Site) -> bool:
    return not site.acme and any(site.origin(s).https for s in site.topology.services)


def _local_services(placement: Placement) -> list[str]:
    return list(dict.fromkeys([*placement.services, *placement.workers]))


# -- configure -----------------------------------------------------------------


@deploy("srht configure")
def configure(site: Site) -> None:
    """PostgreSQL roles and databases, Redis, the host's config file,
    systemd units, sshd settings and nginx virtual hosts."""
    placement = site.placement(host.name)
    if placement.postgresql:
        _postgresql(site, placement)
    if placement.redis and not site.topology.redis_existing:
        _redis(site)
    if placement.runs_srht:
        files.put(name="Config file", src=StringIO(site.host_config(host.name)), dest=CONFIG,
                  user="root", group=GROUP, mode="640")
    wanted = _units(site, placement)
    for unit_name in host.loop(sorted(wanted)):
        files.put(name=f"Unit {unit_name}", src=StringIO(wanted[unit_name]),
                  dest=f"/etc/systemd/system/{unit_name}", user="root", group="root",
                  mode="644")
    _sshd(site, placement)
    if placement.nginx:
        _nginx_files(site, placement)


def _postgresql(site: Site, placement: Placement) -> None:
    topology = site.topology
    databases = site.databases()
    if not topology.postgresql_existing:
        release = str(host.get_fact(LinuxDistribution).get("release_meta", {})
                      .get("VERSION_ID", "12"))
        cluster = f"/etc/postgresql/{POSTGRESQL_VERSIONS.get(release.split('.')[0], '15')}/main"
        grants = []
        for database in databases.values():
            for client in topology.clients_of(placement.name, [database.service]):
                grants.append((database.name, database.role, topology.address(client)))
        conf = postgresql_conf(["*"] if grants else ["localhost"])
        hba = pg_hba(grants)
        files.put(name="PostgreSQL listens for the services' hosts", src=StringIO(conf),
                  dest=f"{cluster}/conf.d/srht.conf", user="postgres", group="postgres",
                  mode="644")
        files.put(name="PostgreSQL access: each database from its service's hosts",
                  src=StringIO(hba), dest=f"{cluster}/pg_hba.conf", user="postgres",
                  group="postgres", mode="640")
        operations.converge(name="Restart PostgreSQL for its settings", key="postgresql",
                            fingerprint=fingerprint(conf),
                            command="systemctl restart postgresql")
        operations.converge(name="Reload PostgreSQL for its access rules",
                            key="postgresql-hba", fingerprint=fingerprint(hba),
                            command="systemctl reload postgresql")
        systemd.service(name="PostgreSQL is running", service="postgresql", running=True,
                        enabled=True)
    for database in host.loop(list(databases.values())):
        operations.postgres_role(name=f"PostgreSQL role {database.role}", role=database.role,
                                 verifier=database.verifier)
        operations.postgres_database(name=f"PostgreSQL database {database.name}",
                                     database=database.name, owner=database.role)


def _redis(site: Site) -> None:
    topology = site.topology
    clients = topology.clients_of(host.name, list(topology.services))
    bind = ["127.0.0.1", "-::1"] + ([topology.address(host.name)] if clients else [])
    conf = redis_conf(site.redis_password(), bind)
    files.put(name="Redis settings", src=StringIO(conf), dest="/etc/redis/srht.conf",
              user="redis", group="redis", mode="640")
    files.line(name="Redis reads its srht settings", path="/etc/redis/redis.conf",
               line="include /etc/redis/srht.conf")
    operations.converge(name="Restart Redis for its settings", key="redis",
                        fingerprint=fingerprint(conf), command="systemctl restart redis-server")
    systemd.service(name="Redis is running", service="redis-server", running=True,
                    enabled=True)


def _sshd(site: Site, placement: Placement) -> None:
    wanted = {}
    for service in placement.services:
        snippets = site.needs(service).sshd_snippets
        if snippets:
            wanted[f"srht-{service}.conf"] = "\n".join(snippets) + "\n"
    present = host.get_fact(ManagedFiles, pattern="/etc/ssh/sshd_config.d/srht-*.conf")
    for name in host.loop(sorted(wanted)):
        files.put(name=f"sshd settings {name}", src=StringIO(wanted[name]),
                  dest=f"/etc/ssh/sshd_config.d/{name}", user="root", group="root",
                  mode="644")
    for name in host.loop([n for n in present if n not in wanted]):
        files.file(name=f"Remove sshd settings {name}", path=f"/etc/ssh/sshd_config.d/{name}",
                   present=False)
    if wanted or present:
        operations.converge(name="Check and reload sshd", key="sshd",
                            fingerprint=fingerprint(*(f"{k}\n{v}" for k, v in
                                                      sorted(wanted.items()))),
                            command="sshd -t && systemctl reload ssh")


def _vhost_name(service: str) -> str:
    return f"srht-{service}.conf"


def _nginx_wanted(site: Site, placement: Placement
                  ) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """What ``placement``'s nginx serves: ``{site file: text}`` and the
    self-signed certificates ``{path: (text, mode)}`` they use."""
    sites: dict[str, str] = {}
    certificates: dict[str, tuple[str, str]] = {}
    for service in placement.fronted:
        origin = site.origin(service)
        certificate = None
        if origin.https and site.acme:
            live = f"/etc/letsencrypt/live/{origin.hostname}"
            if host.get_fact(FileText, path=f"{live}/fullchain.pem") is not None:
                certificate = (f"{live}/fullchain.pem", f"{live}/privkey.pem")
        elif origin.https:
            cert = site.certificate(origin.hostname)
            certificate = (f"{TLS_DIR}/{origin.hostname}.crt", f"{TLS_DIR}/{origin.hostname}.key")
            certificates[certificate[0]] = (cert.cert, "644")
            certificates[certificate[1]] = (cert.key, "600")
        sites[_vhost_name(service)] = nginx_vhost(
            service, origin.hostname, https=origin.https, port=origin.port,
            upstreams=site.topology.upstreams(service, placement.name),
            certificate=certificate,
            static_dir=f"{VENV}/static" if placement.runs_srht else None,
            acme_root=ACME_ROOT)
    return sites, certificates


def _nginx_files(site: Site, placement: Placement) -> None:
    sites, certificates = _nginx_wanted(site, placement)
    for path in host.loop(sorted(certificates)):
        text, mode = certificates[path]
        files.put(name=f"TLS file {path.rsplit('/', 1)[1]}", src=StringIO(text), dest=path,
                  user="root", group="root", mode=mode)
    if sites:
        files.directory(name="ACME challenge folder", path=ACME_ROOT, user="root",
                        group="root", mode="755")
    for name in host.loop(sorted(sites)):
        files.put(name=f"nginx site {name}", src=StringIO(sites[name]),
                  dest=f"/etc/nginx/sites-enabled/{name}", user="root", group="root",
                  mode="644")
    present = host.get_fact(ManagedFiles, pattern="/etc/nginx/sites-enabled/srht-*.conf")
    for name in host.loop([n for n in present if n not in sites]):
        files.file(name=f"Remove nginx site {name}", path=f"/etc/nginx/sites-enabled/{name}",
                   present=False)


# -- activate ------------------------------------------------------------------


@deploy("srht activate")
def activate(site: Site) -> None:
    """Migrate each service's database (before its new code starts),
    restart what changed and start what is missing (meta first), check
    each service answers, remove what the config no longer places here,
    then reload nginx and check each site through it."""
    placement = site.placement(host.name)
    topology = site.topology
    wanted = _units(site, placement)
    present = host.get_fact(ManagedFiles, pattern="/etc/systemd/system/srht-*.service")
    obsolete = [name for name in present if name not in wanted]

    if wanted or obsolete:
        operations.converge(name="Reload systemd units", key="systemd",
                            fingerprint=fingerprint(*(f"{k}\n{v}" for k, v in
                                                      sorted(wanted.items()))),
                            command="systemctl daemon-reload")

    software = site.wheelhouse.id if placement.runs_srht else ""
    config = site.host_config(host.name) if placement.runs_srht else ""
    databases = site.databases()
    for service in host.loop(list(topology.services)):
        hosts = topology.service_hosts[service] or topology.worker_hosts[service]
        if not hosts or hosts[0] != host.name:
            continue
        database = databases.get(service)
        stamp = fingerprint(software, database.url if database else "")
        operations.migrate(name=f"Migrate the database of {service}", service=service,
                           stamp=stamp, srht=SRHT, config=CONFIG)

    ordered = [name for service in topology.services for name in wanted
               if name == f"srht-{service}.service"]
    ordered += [name for name in sorted(wanted) if name not in ordered]
    for unit_name in host.loop(ordered):
        operations.converge(name=f"Restart {unit_name}", key=unit_name,
                            fingerprint=fingerprint(software, config, wanted[unit_name]),
                            command=f"systemctl restart {unit_name}")
        systemd.service(name=f"{unit_name} is running", service=unit_name, running=True,
                        enabled=True)
    for service in host.loop(list(placement.services)):
        address, _, port = topology.binds[service].rpartition(":")
        if address in ("0.0.0.0", "::", "[::]"):  # noqa: S104 - reading a config value
            address = "127.0.0.1"
        operations.health(name=f"{service} answers", what=service,
                          url=f"http://{address}:{port}/healthz")

    for unit_name in host.loop(obsolete):
        systemd.service(name=f"Stop {unit_name}", service=unit_name, running=False,
                        enabled=False)
        files.file(name=f"Remove {unit_name}", path=f"/etc/systemd/system/{unit_name}",
                   present=False)
    if obsolete:
        systemd.daemon_reload(name="Forget removed units")

    if placement.nginx:
        _activate_nginx(site, placement)


def _activate_nginx(site: Site, placement: Placement) -> None:
    sites, certificates = _nginx_wanted(site, placement)
    present = host.get_fact(ManagedFiles, pattern="/etc/nginx/sites-enabled/srht-*.conf")
    if not sites and not present:
        return
    operations.converge(
        name="Check nginx's config and reload it", key="nginx",
        fingerprint=fingerprint(*(f"{k}\n{v}" for k, v in sorted(sites.items())),
                                *(text for text, _mode in certificates.values())),
        command="nginx -t -q && systemctl reload-or-restart nginx")
    systemd.service(name="nginx is running", service="nginx", running=True, enabled=True)
    if site.acme:
        _certbot(site, placement)
    for service in host.loop(list(placement.fronted)):
        origin = site.origin(service)
        url = f"{origin.scheme}://{origin.hostname}:{origin.port}/healthz"
        operations.health(name=f"{origin.hostname} answers through nginx", what=service,
                          url=url, resolve=f"{origin.hostname}:{origin.port}:127.0.0.1")


def _certbot(site: Site, placement: Placement) -> None:
    email = site.config.get("deploy", "acme-email")
    account = f"--email {email}" if email else "--register-unsafely-without-email"
    for service in host.loop([s for s in placement.fronted if site.origin(s).https]):
        hostname = site.origin(service).hostname
        live = f"/etc/letsencrypt/live/{hostname}/fullchain.pem"
        if host.get_fact(FileText, path=live) is not None:
            continue
        # The site was written without TLS while its certificate was missing;
        # the next run serves it with the new certificate.
        server.shell(name=f"Certificate for {hostname} from Let's Encrypt",
                     commands=[f"certbot certonly --webroot -w {ACME_ROOT} -d {hostname} "
                               f"{account} --agree-tos --non-interactive "
                               "--deploy-hook 'systemctl reload nginx'"])
