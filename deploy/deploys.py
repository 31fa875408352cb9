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
import shlex
from io import StringIO
from pathlib import Path
from typing import Any

from pyinfra.api.deploy import deploy
from pyinfra.api.exceptions import OperationError
from pyinfra.context import host
from pyinfra.facts.files import Sha1File
from pyinfra.facts.server import LinuxDistribution
from pyinfra.operations import apt, files, server, systemd

from srht_core import HostNeeds

from . import distro, operations
from .backupplan import backup_secrets
from .backups import BACKUP_UNITS, activate_backups, configure_backups
from .facts import DropinUnits, ManagedFiles
from .model import CONFIG, CONFIG_DIR, GROUP, SRHT, TLS_DIR, VENV, Site
from .render import (
    POSTFIX_KEYS,
    POSTFIX_TRANSPORT,
    nginx_vhost,
    pg_hba,
    postfix_settings,
    postfix_transport,
    postgresql_conf,
    redis_conf,
    runner_unit,
    unit,
)
from .topology import IDENTITY_SERVICE, RUNNER_SERVICE, Placement

__all__ = ["activate", "configure", "fingerprint", "install"]

ACME_ROOT = "/var/www/srht-acme"
#: The login shell of system users (S604 flags the argument's name, not a shell).
NOLOGIN = "/usr/sbin/nologin"
CA_DIR = "/usr/local/share/ca-certificates"
#: With certificates = acme: what nginx serves (a placeholder until certbot
#: has a certificate, then a copy of certbot's), so the virtual hosts are
#: the same bytes before and after and HTTPS works from the first run.
ACME_TLS_DIR = f"{TLS_DIR}/acme"
ACME_HOOK = f"{CONFIG_DIR}/acme-deploy-hook"
#: certbot runs it for each certificate it issues or renews (--deploy-hook).
ACME_HOOK_TEXT = f"""#!/bin/sh
# Written by `srht deploy`: nginx serves each certificate certbot issues or renews.
set -e
name=$(basename "$RENEWED_LINEAGE")
install -D -m 644 "$RENEWED_LINEAGE/fullchain.pem" "{ACME_TLS_DIR}/$name.crt"
install -D -m 600 "$RENEWED_LINEAGE/privkey.pem" "{ACME_TLS_DIR}/$name.key"
systemctl reload nginx
sleep 1  # the new workers serve it; then the deploy checks each origin
"""
#: ``srht`` for administrators on the hosts: the host's config unless told otherwise.
WRAPPER = f"""#!/bin/sh
# Written by `srht deploy`: srht with this host's config.
: "${{SRHT_CONFIG:={CONFIG}}}"
export SRHT_CONFIG
exec {SRHT} "$@"
"""
#: What builds' runner runs (docs/builds.md): containers, mounts, network
#: namespaces, sources cloned on the host, image tarballs and image builds.
RUNNER_PACKAGES = (
    "systemd-container",
    "util-linux",
    "iproute2",
    "git",
    "tar",
    "zstd",
    "mmdebstrap",
)
RUNNER_UNIT = f"srht-{RUNNER_SERVICE}-runner.service"
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
    return {name: text for name, (_service, text) in _service_units(site, placement).items()}


def _unit_owners(site: Site, placement: Placement) -> dict[str, str]:
    """``{unit name: the service it belongs to}``."""
    return {name: service for name, (service, _text) in _service_units(site, placement).items()}


def _service_units(site: Site, placement: Placement) -> dict[str, tuple[str, str]]:
    """``{unit name: (service, unit text)}`` of everything srht runs on the host."""
    out: dict[str, tuple[str, str]] = {}
    after = ["postgresql.service"] if placement.postgresql else []
    after += ["redis-server.service"] if placement.redis else []
    for service in placement.services:
        needs = site.needs(service)
        out[f"srht-{service}.service"] = (
            service,
            _unit(
                site,
                f"srht {service} ({site.title(service)}): web",
                _user(service),
                f"{_srht(site)} serve {service}",
                after=after,
                paths=_writable(site, service, needs),
                shared_paths=bool(needs.login_users),
            ),
        )
    for service in placement.workers:
        needs = site.needs(service)
        out[f"srht-{service}-worker.service"] = (
            service,
            _unit(
                site,
                f"srht {service} ({site.title(service)}): background jobs",
                _user(service),
                f"{_srht(site)} worker {service}",
                after=after,
                paths=_writable(site, service, needs),
                shared_paths=bool(needs.login_users),
            ),
        )
    for service in placement.services:
        needs = site.needs(service)
        for name, command in sorted(needs.daemons.items()):
            out[f"srht-{service}-{name}.service"] = (
                service,
                _unit(
                    site,
                    f"srht {service}: {name}",
                    _user(service),
                    f"/usr/bin/env {command}",
                    after=after,
                    paths=_writable(site, service, needs),
                    shared_paths=bool(needs.login_users),
                ),
            )
    if placement.runner:
        out[RUNNER_UNIT] = (
            RUNNER_SERVICE,
            # The packages ship the runner's unit (srht-builds); the site adds its folder.
            distro.dropin(paths=[_runner_dir(site)])
            if distro.enabled(site)
            else runner_unit(f"{SRHT} {RUNNER_SERVICE} runner", _runner_dir(site)),
        )
    return out


def _runner_dir(site: Site) -> str:
    return str(site.config[RUNNER_SERVICE]["runner-dir"])


def _srht(site: Site) -> str:
    return distro.PROGRAM if distro.enabled(site) else SRHT


def _unit(site: Site, *args: Any, **kwargs: Any) -> str:
    """A unit, or with ``install-method = distro`` a drop-in for the packaged one."""
    return (distro.dropin if distro.enabled(site) else unit)(*args, **kwargs)


def _unit_path(site: Site, name: str) -> str:
    return distro.unit_path(name) if distro.enabled(site) else f"/etc/systemd/system/{name}"


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
    if placement.runner:
        packages += list(RUNNER_PACKAGES)
        if site.config[RUNNER_SERVICE]["network"] == "full":
            packages += ["slirp4netns"]
    if _mail_domains(site, placement)[0]:
        packages += ["postfix"]
    return sorted(set(packages))


def _mail_domains(site: Site, placement: Placement) -> tuple[dict[str, str], int]:
    """The mail domains the host's mail server takes (``{domain: LMTP
    address}``, see ``HostNeeds.mail_domains``) and the size it must take."""
    domains: dict[str, str] = {}
    size = 0
    for service in placement.services:
        needs = site.needs(service)
        domains.update(needs.mail_domains)
        if needs.mail_domains:
            size = max(size, needs.mail_max_size)
    return domains, size


# -- install -------------------------------------------------------------------


@deploy("srht install")
def install(site: Site) -> None:
    """System packages, users, folders, the site's certificate authority,
    and the software: a virtualenv holding the wheels of the distributions
    the host runs, of which only the missing ones are uploaded."""
    placement = site.placement(host.name)
    operations.track(_tracked(site))
    packages = _packages(site, placement)
    if packages:
        apt.packages(
            name="Install system packages",
            packages=packages,
            update=True,
            cache_time=24 * 3600,
            no_recommends=True,
        )
    operations.directory(
        name="Deploy state folder", path=operations.STATE_DIR, user="root", group="root", mode="700"
    )
    _trust(site)
    if not placement.runs_srht:
        return

    server.group(name=f"Group {GROUP}", group=GROUP, system=True)
    services = _local_services(placement)
    for service in operations.each(services, order=site.topology.services):
        server.user(
            name=f"User {_user(service)}",
            user=_user(service),
            system=True,
            home=f"{site.data_dir}/{service}",
            shell=NOLOGIN,  # noqa: S604
            groups=[GROUP],
            create_home=False,
            ensure_home=False,
            comment=f"srht {service}",
        )
    for service in operations.each(services, order=site.topology.services):
        for extra in site.needs(service).users:
            server.user(
                name=f"User {extra} (for {service})",
                user=extra,
                system=True,
                shell=NOLOGIN,
                create_home=False,
                ensure_home=False,
            )
        # Reached over SSH: sshd runs the forced command through the shell;
        # the groups let it read the config and work on the service's files.
        # Its home is the service's folder (which the deploy makes below), so
        # sshd has somewhere to chdir to and says nothing about it.
        for login in site.needs(service).login_users:
            server.user(  # noqa: S604 - pyinfra's shell= is the account's login shell
                name=f"SSH account {login} (for {service})",
                user=login,
                system=True,
                shell="/bin/sh",
                home=f"{site.data_dir}/{service}",
                groups=[GROUP, _user(service)],
                create_home=False,
                ensure_home=False,
            )

    operations.directory(
        name="Config folder", path=CONFIG_DIR, user="root", group=GROUP, mode="750"
    )
    operations.directory(
        name="Data folder", path=site.data_dir, user="root", group=GROUP, mode="770"
    )
    operations.directory(
        name="Mail outbox folder",
        path=f"{site.data_dir}/outbox",
        user="root",
        group=GROUP,
        mode="770",
    )
    for service in operations.each(services, order=site.topology.services):
        needs = site.needs(service)
        # setgid and group-writable when an SSH account works there too.
        mode = "2770" if needs.login_users else "750"
        home = f"{site.data_dir}/{service}"
        operations.directory(
            name=f"Folder of {service}",
            path=home,
            user=_user(service),
            group=_user(service),
            mode=mode,
        )
        for path in needs.paths:
            if path != home:
                operations.directory(
                    name=f"Folder {path} (for {service})",
                    path=path,
                    user=_user(service),
                    group=_user(service),
                    mode=mode,
                )

    if placement.runner:
        # Images (unpacked trees owned by the jobs' user range) and jobs' files: root's.
        operations.directory(
            name=f"Folder of {RUNNER_SERVICE}' runner",
            path=_runner_dir(site),
            user="root",
            group="root",
            mode="700",
        )

    if distro.enabled(site):
        distro.install(site, services)
        return
    operations.software(
        name="Install the software",
        venv=VENV,
        wanted=site.software(host.name),
        wheelhouse=site.wheelhouse,
    )
    operations.put(
        name="srht on the PATH, with this host's config",
        src=StringIO(WRAPPER),
        dest="/usr/local/bin/srht",
        user="root",
        group="root",
        mode="755",
    )


def _trusted(site: Site) -> dict[str, str]:
    """``{file name: PEM}`` of the authorities the host trusts besides the
    system's: the site's own (self-signed certificates), or with ACME those
    of ``acme-ca-file`` (a private ACME server), one file each."""
    if not site.acme:
        https = any(site.origin(s).https for s in site.topology.services)
        return {"srht-site.crt": site.authority().cert} if https else {}
    path = site.config.get("deploy", "acme-ca-file")
    if not path:
        return {}
    try:
        text = Path(path).expanduser().read_text()
    except OSError as error:
        raise OperationError(
            f"[deploy] acme-ca-file: cannot read {path}: {error.strerror}"
        ) from None
    end = "-----END CERTIFICATE-----"
    blocks = [block.strip() + f"\n{end}\n" for block in text.split(end) if block.strip()]
    return {f"srht-acme-{index}.crt": block for index, block in enumerate(blocks)}


def _tracked(site: Site) -> list[str]:
    """What the deploy writes on a host, read in one go (see
    :func:`operations.track`)."""
    data = site.data_dir
    return [
        operations.STATE_DIR,
        CONFIG_DIR,
        f"{CONFIG_DIR}/*",
        f"{TLS_DIR}/*",
        f"{ACME_TLS_DIR}/*",
        "/etc/systemd/system/srht-*",
        "/etc/nginx/sites-enabled/srht-*",
        "/etc/ssh/sshd_config.d/srht-*",
        HostNeeds.SECRETS_DIR,
        f"{HostNeeds.SECRETS_DIR}/*",
        f"{CA_DIR}/srht-*",
        "/usr/local/bin/srht",
        "/etc/postgresql/*/main/conf.d/srht.conf",
        "/etc/postgresql/*/main/pg_hba.conf",
        "/etc/redis/srht.conf",
        ACME_ROOT,
        data,
        f"{data}/*",
    ]


def _trust(site: Site) -> None:
    wanted = _trusted(site)
    present = host.get_fact(ManagedFiles, pattern=f"{CA_DIR}/srht-*.crt")
    for name in operations.each(sorted(wanted)):
        operations.put(
            name="Trust the site's certificate authority"
            if name == "srht-site.crt"
            else f"Trust {name}",
            src=StringIO(wanted[name]),
            dest=f"{CA_DIR}/{name}",
            user="root",
            group="root",
            mode="644",
        )
    for name in operations.each([n for n in present if n not in wanted]):
        files.file(name=f"Stop trusting {name}", path=f"{CA_DIR}/{name}", present=False)
    if wanted or present:
        operations.converge(
            name="Update trusted certificates",
            key="ca-certificates",
            fingerprint=fingerprint(*(wanted[n] for n in sorted(wanted))),
            command="update-ca-certificates --fresh >/dev/null",
        )


def _local_services(placement: Placement) -> list[str]:
    return list(dict.fromkeys([*placement.services, *placement.workers]))


# -- configure -----------------------------------------------------------------


@deploy("srht configure")
def configure(site: Site) -> None:
    """PostgreSQL roles and databases, Redis, the host's config file,
    systemd units, sshd settings and nginx virtual hosts."""
    placement = site.placement(host.name)
    operations.track(_tracked(site))
    if placement.postgresql:
        _postgresql(site, placement)
    if placement.redis and not site.topology.redis_existing:
        _redis(site)
    if placement.runs_srht:
        operations.put(
            name="Config file",
            src=StringIO(site.host_config(host.name)),
            dest=CONFIG,
            user="root",
            group=GROUP,
            mode="640",
        )
    else:
        # A host whose last service went keeps no copy of the site's secrets.
        operations.absent(name="Remove the config file (no service runs here)", path=CONFIG)
    operations.service_names(
        name="Service names in /etc/hosts", entries=site.service_names(host.name)
    )
    wanted = _units(site, placement)
    for unit_name in operations.each(sorted(wanted)):
        operations.put(
            name=f"Unit {unit_name}",
            src=StringIO(wanted[unit_name]),
            dest=_unit_path(site, unit_name),
            user="root",
            group="root",
            mode="644",
        )
    configure_backups(site)  # the backup's account owns secret files
    _secret_files(site, placement)
    _sshd(site, placement)
    _postfix(site, placement)
    _nginx_files(site, placement)


def _postgresql(site: Site, placement: Placement) -> None:
    topology = site.topology
    databases = site.databases()
    if not topology.postgresql_existing:
        release = str(
            host.get_fact(LinuxDistribution).get("release_meta", {}).get("VERSION_ID", "12")
        )
        cluster = f"/etc/postgresql/{POSTGRESQL_VERSIONS.get(release.split('.')[0], '15')}/main"
        grants = []
        for database in databases.values():
            for client in topology.clients_of(placement.name, [database.service]):
                grants.append((database.name, database.role, topology.address(client)))
        conf = postgresql_conf(["*"] if grants else ["localhost"])
        hba = pg_hba(grants)
        operations.put(
            name="PostgreSQL listens for the services' hosts",
            src=StringIO(conf),
            dest=f"{cluster}/conf.d/srht.conf",
            user="postgres",
            group="postgres",
            mode="644",
        )
        operations.put(
            name="PostgreSQL access: each database from its service's hosts",
            src=StringIO(hba),
            dest=f"{cluster}/pg_hba.conf",
            user="postgres",
            group="postgres",
            mode="640",
        )
        operations.converge(
            name="Restart PostgreSQL for its settings",
            key="postgresql",
            fingerprint=fingerprint(conf),
            command="systemctl restart postgresql",
        )
        operations.converge(
            name="Reload PostgreSQL for its access rules",
            key="postgresql-hba",
            fingerprint=fingerprint(hba),
            command="systemctl reload postgresql",
        )
        operations.running(name="PostgreSQL is running", unit="postgresql.service")
    for database in operations.each(list(databases.values()), key=lambda d: d.name):
        operations.postgres_role(
            name=f"PostgreSQL role {database.role}", role=database.role, verifier=database.verifier
        )
        operations.postgres_database(
            name=f"PostgreSQL database {database.name}", database=database.name, owner=database.role
        )


def _redis(site: Site) -> None:
    topology = site.topology
    clients = topology.clients_of(host.name, list(topology.services))
    # builds' runners take their jobs from the broker's queues (no database).
    clients += [h for h in topology.runner_hosts if h != host.name]
    bind = ["127.0.0.1", "-::1"] + ([topology.address(host.name)] if clients else [])
    conf = redis_conf(site.redis_password(), bind)
    operations.put(
        name="Redis settings",
        src=StringIO(conf),
        dest="/etc/redis/srht.conf",
        user="redis",
        group="redis",
        mode="640",
    )
    files.line(
        name="Redis reads its srht settings",
        path="/etc/redis/redis.conf",
        line="include /etc/redis/srht.conf",
    )
    operations.converge(
        name="Restart Redis for its settings",
        key="redis",
        fingerprint=fingerprint(conf),
        command="systemctl restart redis-server",
    )
    operations.running(name="Redis is running", unit="redis-server.service")


def _secret_files(site: Site, placement: Placement) -> None:
    """The services' :class:`~srht_core.SecretFile` s: each readable by its
    owner alone, in a folder only root lists; those no service on the host
    needs any more are removed."""
    wanted: dict[str, Any] = {}
    for service in placement.services:
        for secret in site.needs(service).secret_files:
            if secret.name in wanted and wanted[secret.name].text != secret.text:
                raise OperationError(
                    f"two services need a different secret file called {secret.name}"
                )
            wanted[secret.name] = secret
    wanted.update({s.name: s for s in backup_secrets(site.config, site.backup, placement.name)})
    folder = HostNeeds.SECRETS_DIR
    present = host.get_fact(ManagedFiles, pattern=f"{folder}/*")
    if wanted:
        operations.directory(
            name="Secret files folder", path=folder, user="root", group="root", mode="711"
        )
    for name in operations.each(sorted(wanted)):
        secret = wanted[name]
        operations.put(
            name=f"Secret file {name} (for {secret.owner})",
            src=StringIO(secret.text),
            dest=secret.path,
            user=secret.owner,
            group="root",
            mode="400",
        )
    for name in operations.each([n for n in present if n not in wanted]):
        files.file(name=f"Remove secret file {name}", path=f"{folder}/{name}", present=False)


def _sshd(site: Site, placement: Placement) -> None:
    wanted = {}
    for service in placement.services:
        snippets = site.needs(service).sshd_snippets
        if snippets:
            text = "\n".join(snippets) + "\n"
            wanted[f"srht-{service}.conf"] = text.replace(HostNeeds.SRHT_ON_HOST, _srht(site))
    present = host.get_fact(ManagedFiles, pattern="/etc/ssh/sshd_config.d/srht-*.conf")
    for name in operations.each(sorted(wanted)):
        operations.put(
            name=f"sshd settings {name}",
            src=StringIO(wanted[name]),
            dest=f"/etc/ssh/sshd_config.d/{name}",
            user="root",
            group="root",
            # sshd reads it as root; nobody else needs to.
            mode="600",
        )
    for name in operations.each([n for n in present if n not in wanted]):
        files.file(
            name=f"Remove sshd settings {name}",
            path=f"/etc/ssh/sshd_config.d/{name}",
            present=False,
        )
    if wanted or present:
        operations.converge(
            name="Check and reload sshd",
            key="sshd",
            fingerprint=fingerprint(*(f"{k}\n{v}" for k, v in sorted(wanted.items()))),
            command="sshd -t && systemctl reload ssh",
        )


def _postfix(site: Site, placement: Placement) -> None:
    """Postfix takes the mail domains of the host's services and passes
    their mail on over LMTP; a host whose last one went stops taking it
    (Postfix stays, as the deploy removes no package)."""
    domains, size = _mail_domains(site, placement)
    present = host.get_fact(ManagedFiles, pattern=POSTFIX_TRANSPORT)
    if not domains:
        if present:
            operations.converge(
                name="Postfix no longer takes mail for srht",
                key="postfix",
                fingerprint=fingerprint("none"),
                command=(
                    f"postconf -X {' '.join(POSTFIX_KEYS)}"
                    f" && rm -f {POSTFIX_TRANSPORT} {POSTFIX_TRANSPORT}.db"
                    " && systemctl reload postfix"
                ),
            )
        return
    transport = postfix_transport(domains)
    operations.put(
        name="Postfix transport of the mail domains",
        src=StringIO(transport),
        dest=POSTFIX_TRANSPORT,
        user="root",
        group="root",
        mode="644",
    )
    settings = postfix_settings(domains, size)
    assignments = " ".join(shlex.quote(f"{key} = {value}") for key, value in settings.items())
    operations.converge(
        name="Postfix takes the mail domains",
        key="postfix",
        fingerprint=fingerprint(transport, assignments),
        command=(
            f"postmap {POSTFIX_TRANSPORT} && postconf -e {assignments}"
            " && systemctl enable --now postfix && systemctl reload postfix"
        ),
    )


def _vhost_name(service: str) -> str:
    return f"srht-{service}.conf"


def _nginx_wanted(
    site: Site, placement: Placement
) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """What ``placement``'s nginx serves: ``{site file: text}`` and the
    self-signed certificates ``{path: (text, mode)}`` they use."""
    sites: dict[str, str] = {}
    certificates: dict[str, tuple[str, str]] = {}
    for service in placement.fronted:
        origin = site.origin(service)
        certificate = None
        if origin.https and site.acme:
            certificate = (
                f"{ACME_TLS_DIR}/{origin.hostname}.crt",
                f"{ACME_TLS_DIR}/{origin.hostname}.key",
            )
        elif origin.https:
            cert = site.certificate(origin.hostname)
            certificate = (f"{TLS_DIR}/{origin.hostname}.crt", f"{TLS_DIR}/{origin.hostname}.key")
            certificates[certificate[0]] = (cert.cert, "644")
            certificates[certificate[1]] = (cert.key, "600")
        sites[_vhost_name(service)] = nginx_vhost(
            service,
            origin.hostname,
            https=origin.https,
            port=origin.port,
            upstreams=site.topology.upstreams(service, placement.name),
            certificate=certificate,
            static_dir=(distro.STATIC_DIR if distro.enabled(site) else f"{VENV}/static")
            if placement.runs_srht
            else None,
            acme_root=ACME_ROOT,
        )
    return sites, certificates


def _nginx_files(site: Site, placement: Placement) -> None:
    """The virtual hosts and certificates of what ``placement`` fronts, and
    none of those it no longer does (on any host: one whose last service
    went is no nginx host any more, and must not answer 502 for it)."""
    sites, certificates = _nginx_wanted(site, placement)
    for path in operations.each(sorted(certificates)):
        text, mode = certificates[path]
        operations.put(
            name=f"TLS file {path.rsplit('/', 1)[1]}",
            src=StringIO(text),
            dest=path,
            user="root",
            group="root",
            mode=mode,
        )
    if sites:
        operations.directory(
            name="ACME challenge folder", path=ACME_ROOT, user="root", group="root", mode="755"
        )
    if site.acme and sites:
        _acme_placeholders(site, placement)
    for name in operations.each(sorted(sites)):
        operations.put(
            name=f"nginx site {name}",
            src=StringIO(sites[name]),
            dest=f"/etc/nginx/sites-enabled/{name}",
            user="root",
            group="root",
            mode="644",
        )
    present = host.get_fact(ManagedFiles, pattern="/etc/nginx/sites-enabled/srht-*.conf")
    for name in operations.each([n for n in present if n not in sites]):
        files.file(
            name=f"Remove nginx site {name}", path=f"/etc/nginx/sites-enabled/{name}", present=False
        )
    issued = host.get_fact(ManagedFiles, pattern=f"{TLS_DIR}/*.*")
    stale = [
        name
        for name in issued
        if name.endswith((".crt", ".key")) and f"{TLS_DIR}/{name}" not in certificates
    ]
    for name in operations.each(stale):
        files.file(name=f"Remove TLS file {name}", path=f"{TLS_DIR}/{name}", present=False)


# -- activate ------------------------------------------------------------------


@deploy("srht activate")
def activate(site: Site) -> None:
    """Migrate each service's database (before its new code starts),
    restart what changed and start what is missing (meta first), remove
    what the config no longer places here, reload nginx, then check: each
    host that runs a service reaches meta at its origin, each service
    answers, and each site answers through nginx.

    A service whose migration or check fails is marked failed on the host
    (:func:`srht_deploy.operations.failed`) and skips its later steps; the
    other services go on, and the host fails at the end naming it."""
    placement = site.placement(host.name)
    topology = site.topology
    wanted = _units(site, placement)
    packaged: dict[str, str | None] = {}
    if distro.enabled(site):  # the packages' units, with the deploy's drop-ins
        packaged = host.get_fact(DropinUnits, dropin=distro.DROPIN)
        present = sorted(packaged)
    else:
        present = host.get_fact(ManagedFiles, pattern="/etc/systemd/system/srht-*.service")
    obsolete = [name for name in present if name not in wanted and name not in BACKUP_UNITS]

    if wanted or obsolete:
        operations.converge(
            name="Reload systemd units",
            key="systemd",
            fingerprint=fingerprint(*(f"{k}\n{v}" for k, v in sorted(wanted.items()))),
            command="systemctl daemon-reload",
        )

    # Each service's steps (migrate, restart, check) are its own: one that
    # fails marks the service and skips its later steps; the others go on,
    # and the run ends by failing the host with what failed (settled).
    operations.forget_failures(name="Forget the failures of earlier runs")
    databases = site.databases()
    for service in operations.each(list(topology.services), order=topology.services):
        hosts = topology.service_hosts[service] or topology.worker_hosts[service]
        database = databases.get(service)
        if database is None or not hosts or hosts[0] != host.name:
            continue
        stamp = fingerprint(site.service_software(service), database.url)
        operations.migrate(
            name=f"Migrate the database of {service}",
            service=service,
            stamp=stamp,
            srht=_srht(site),
            config=CONFIG,
        )

    # Each daemon's fingerprint covers what it runs: its distribution's
    # wheels, the part of the config it reads, its unit. Adding a service
    # to a host changes none of the others' (see Site.host_config).
    owners = _unit_owners(site, placement)
    for unit_name in operations.each(sorted(wanted), order=_restart_order(site)):
        service = owners[unit_name]
        applied = fingerprint(
            site.service_software(service), site.host_config(host.name, service), wanted[unit_name]
        )
        operations.converge(
            name=f"Restart {unit_name}",
            key=unit_name,
            fingerprint=applied,
            command=f"systemctl restart {unit_name}",
            step=service,
        )
        operations.running(name=f"{unit_name} is running", unit=unit_name, step=service)

    # What the config no longer places here stops; its data and database stay.
    for unit_name in operations.each(obsolete):
        systemd.service(name=f"Stop {unit_name}", service=unit_name, running=False, enabled=False)
        files.file(name=f"Remove {unit_name}", path=_unit_path(site, unit_name), present=False)
    if obsolete:
        systemd.daemon_reload(name="Forget removed units")
    if distro.enabled(site):
        still = {f"srht-{service}" for service in _local_services(placement)}
        unused = sorted({p for name in obsolete if (p := packaged.get(name))} - still)
        for packages in operations.each([unused] if unused else [], key=" ".join):
            distro.remove(packages)

    # nginx serves every site before anything is checked: the services on
    # one host sign their users in through meta's nginx on another.
    _activate_nginx(site, placement)
    activate_backups(site)
    _check_meta(site, placement)
    for service in operations.each(list(placement.services), order=topology.services):
        address, _, port = topology.binds[service].rpartition(":")
        if address in ("0.0.0.0", "::", "[::]"):  # noqa: S104 - reading a config value
            address = "127.0.0.1"
        operations.health(
            name=f"{service} answers",
            what=service,
            url=f"http://{address}:{port}/healthz",
            step=True,
        )
    for service in operations.each(list(placement.fronted), order=topology.services):
        origin = site.origin(service)
        url = f"{origin.scheme}://{origin.hostname}:{origin.port}/healthz"
        operations.health(
            name=f"{origin.hostname} answers through nginx",
            what=service,
            url=url,
            resolve=f"{origin.hostname}:{origin.port}:127.0.0.1",
            step=True,
        )
    operations.settled(name="Every service's steps succeeded")


def _restart_order(site: Site) -> list[str]:
    """Every unit of the site, in the order restarts go: the services' web
    units first, meta's before the others, then the rest by name."""
    units = {name for p in site.topology.placements() for name in _units(site, p)}
    first = [f"srht-{s}.service" for s in site.topology.services if f"srht-{s}.service" in units]
    return first + sorted(units - set(first))


def _check_meta(site: Site, placement: Placement) -> None:
    """Fail, naming this host and meta's URL, unless this host reaches meta
    at its origin: every other service here signs its users in through it
    (a host that cannot would send its signed-in visitors to meta's login
    and back, forever)."""
    topology = site.topology
    local = [s for s in _local_services(placement) if s != IDENTITY_SERVICE]
    if IDENTITY_SERVICE not in topology.services or not local:
        return
    origin = site.origin(IDENTITY_SERVICE)
    url = f"{origin.scheme}://{origin.hostname}:{origin.port}/healthz"
    fronting = [h for h in topology.nginx_hosts if IDENTITY_SERVICE in topology.fronted_by(h)]
    where = ", ".join(f"{h} ({topology.address(h)})" for h in fronting) or "its nginx host"
    pinned = origin.hostname in site.service_names(host.name)
    remedy = (
        f"{', '.join(local)} on {host.name} sign their users in through meta: "
        + (
            f"{origin.hostname} is in {host.name}'s /etc/hosts; check that {host.name} "
            f"reaches {where} on port {origin.port}"
            if pinned
            else f"make {origin.hostname} resolve on {host.name} to an nginx host that "
            f"serves meta ({where}), in DNS or /etc/hosts ([deploy] service-names = "
            "hosts-file does it)"
        )
        + ", then deploy again."
    )
    operations.reaches(
        name=f"{host.name} reaches meta at {origin.hostname}",
        service=IDENTITY_SERVICE,
        url=url,
        remedy=remedy,
    )


def _activate_nginx(site: Site, placement: Placement) -> None:
    sites, certificates = _nginx_wanted(site, placement)
    present = host.get_fact(ManagedFiles, pattern="/etc/nginx/sites-enabled/srht-*.conf")
    if not sites and not present:
        return
    # A site file or certificate changed on the host behind the deploy's back
    # (and put back by this run): nginx still holds what it read, so it is
    # reloaded even though what the deploy applies did not change.
    wanted = {f"/etc/nginx/sites-enabled/{name}": text for name, text in sites.items()}
    wanted |= {path: text for path, (text, _mode) in certificates.items()}
    # SHA-1: the fact files.put reads for the same files, so it is asked once.
    drifted = any(
        (present := host.get_fact(Sha1File, path=path)) is not None
        and present != hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
        for path, text in wanted.items()
    )
    operations.converge(
        name="Check nginx's config and reload it",
        key="nginx",
        fingerprint=fingerprint(
            *(f"{k}\n{v}" for k, v in sorted(sites.items())),
            *(text for text, _mode in certificates.values()),
        ),
        command="nginx -t -q && systemctl reload-or-restart nginx",
        drifted=drifted,
    )
    if not sites:
        return  # the host fronts nothing any more: nginx stays as it is otherwise
    operations.running(name="nginx is running", unit="nginx.service")
    if site.acme:
        _certbot(site, placement)


def _acme_placeholders(site: Site, placement: Placement) -> None:
    """certbot's deploy hook, and a stand-in certificate (from the site's
    authority) for each HTTPS origin certbot has none for yet, so nginx
    starts and serves the ACME challenges on the first run."""
    operations.put(
        name="certbot's deploy hook",
        src=StringIO(ACME_HOOK_TEXT),
        dest=ACME_HOOK,
        user="root",
        group="root",
        mode="755",
    )
    have = host.get_fact(ManagedFiles, pattern=f"{ACME_TLS_DIR}/*.crt")
    missing = [
        site.origin(s).hostname
        for s in placement.fronted
        if site.origin(s).https and f"{site.origin(s).hostname}.crt" not in have
    ]
    if missing:
        operations.directory(
            name="ACME certificates folder",
            path=ACME_TLS_DIR,
            user="root",
            group="root",
            mode="755",
        )
    for hostname in operations.each(missing):
        stand_in = site.certificate(hostname)
        operations.put(
            name=f"Stand-in key for {hostname}",
            src=StringIO(stand_in.key),
            dest=f"{ACME_TLS_DIR}/{hostname}.key",
            user="root",
            group="root",
            mode="600",
        )
        operations.put(
            name=f"Stand-in certificate for {hostname}",
            src=StringIO(stand_in.cert),
            dest=f"{ACME_TLS_DIR}/{hostname}.crt",
            user="root",
            group="root",
            mode="644",
        )


def _certbot(site: Site, placement: Placement) -> None:
    """A certificate for each HTTPS origin the host fronts that certbot has
    none for, through the webroot nginx serves on port 80; the deploy hook
    puts it where nginx reads it and reloads nginx (on renewals too)."""
    email = site.config.get("deploy", "acme-email")
    account = f"--email {shlex.quote(email)}" if email else "--register-unsafely-without-email"
    acme_server = site.config.get("deploy", "acme-server")
    server_arg = f" --server {shlex.quote(acme_server)}" if acme_server else ""
    hostnames = [site.origin(s).hostname for s in placement.fronted if site.origin(s).https]
    # certbot makes live/NAME (--cert-name) once it has the certificate.
    live = set(host.get_fact(ManagedFiles, pattern="/etc/letsencrypt/live/*"))
    for hostname in operations.each([h for h in hostnames if h not in live]):
        server.shell(
            name=f"Certificate for {hostname} from the ACME server",
            commands=[
                f"certbot certonly --webroot -w {ACME_ROOT} -d {hostname} "
                f"--cert-name {hostname} {account}{server_arg} --agree-tos "
                f"--non-interactive --quiet --deploy-hook {ACME_HOOK}"
            ],
        )
