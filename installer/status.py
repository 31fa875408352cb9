"""``srht-install status``: is every part of the site up?

Three kinds of check, all from this machine, the way a user and an
operator would look:

- **daemon**: each systemd unit the site runs on each host (the services'
  web and worker units and their plugins' daemons, PostgreSQL, Redis,
  nginx) is ``active``, over SSH;
- **service**: each service's ``/healthz`` answers through each nginx that
  fronts it, over HTTPS to that host's address with the service's name
  (as DNS will send browsers), trusting the site's authority for
  self-signed certificates, and reports its database ``ok`` and, for the
  services that sign their users in through meta, meta reached (a red
  line names the service, the hosts it runs on and what to do);
- **certificate**: the certificate nginx presented is valid for the name
  and not about to expire (an expired one is red, with its date and what
  to do);
- the diagnostics of :mod:`.diagnose`: **dns** (each service's name
  resolves to the nginx hosts that serve it), **port** (80, 443 and the
  services' own public ports, such as git's SSH, reachable from here),
  **mail** (the ``[mail]`` relay answers; ``--send-test-mail`` sends a
  message through it), **disk** (free space per host against
  ``--min-free``), **postgresql** and **redis** (their versions, and no
  replication nobody set up).
- **backup**: with ``[backup]``, the last scheduled backup succeeded,
  verified, and is not older than the schedule allows
  (:func:`srht_installer.scheduled.backup_checks`).

A check is green, yellow (works, but act soon: a certificate expiring
within 21 days, a name visitors cannot resolve yet, no mail relay) or red,
saying what to do; any red makes the command exit 1.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .hosts import HostError, run_on

if TYPE_CHECKING:  # diagnose imports Check from here
    from .diagnose import Diagnosis

__all__ = ["Check", "check_site"]

#: Days of validity left below which a certificate is yellow, and red.
WARN_DAYS, FAIL_DAYS = 21, 3


@dataclass(frozen=True)
class Check:
    """One line of the status table."""

    kind: str  # daemon, service, certificate, backup, and those of diagnose.KINDS
    what: str
    where: str
    state: str  # green, yellow, red
    detail: str


def expected_units(site: Any, host: str) -> list[str]:
    """The systemd units ``host`` should be running, from the topology."""
    placement = site.placement(host)
    topology = site.topology
    units: list[str] = []
    if placement.postgresql and not topology.postgresql_existing:
        units.append("postgresql.service")
    if placement.redis and not topology.redis_existing:
        units.append("redis-server.service")
    for service in placement.services:
        units.append(f"srht-{service}.service")
        units += [f"srht-{service}-{name}.service" for name in sorted(site.needs(service).daemons)]
    units += [f"srht-{service}-worker.service" for service in placement.workers]
    if placement.nginx:
        units.append("nginx.service")
    return units


def _daemons(config: Path, site: Any, host: str) -> list[Check]:
    units = expected_units(site, host)
    if not units:
        return []
    try:
        result = run_on(config, host, ["systemctl", "is-active", *units], timeout=60)
    except HostError as error:
        return [Check("daemon", "(all)", host, "red", str(error))]
    states = result.stdout.decode(errors="replace").split()
    if result.returncode == 255 or len(states) != len(units):
        reason = result.stderr.decode(errors="replace").strip().splitlines()
        return [
            Check(
                "daemon",
                "(all)",
                host,
                "red",
                f"cannot be reached over SSH: {reason[-1] if reason else 'no answer'}",
            )
        ]
    return [
        Check(
            "daemon",
            unit.removesuffix(".service"),
            host,
            "green" if state == "active" else "red",
            state,
        )
        for unit, state in zip(units, states, strict=True)
    ]


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a given address, with the origin's name for SNI, the
    certificate check and the Host header (``curl --resolve``)."""

    def __init__(
        self, hostname: str, port: int, address: str, context: ssl.SSLContext, timeout: float
    ):
        super().__init__(hostname, port, context=context, timeout=timeout)
        self._address = address
        self._context = context
        self.peer_certificate: dict[str, Any] | None = None

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)
        self.peer_certificate = self.sock.getpeercert()


def _context(site: Any) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not site.acme:
        context.load_verify_locations(cadata=site.authority().cert)
    return context


def _service(site: Any, service: str, nginx_host: str, timeout: float) -> list[Check]:
    origin = site.origin(service)
    address = site.topology.address(nginx_host)
    where = nginx_host
    url = f"{origin.scheme}://{origin.hostname}/healthz"
    connection: http.client.HTTPConnection
    if origin.https:
        connection = _PinnedHTTPSConnection(
            origin.hostname, origin.port, address, _context(site), timeout
        )
    else:
        connection = http.client.HTTPConnection(address, origin.port, timeout=timeout)
    checks: list[Check] = []
    try:
        connection.request(
            "GET", "/healthz", headers={"Host": origin.hostname, "Accept": "application/json"}
        )
        response = connection.getresponse()
        body = response.read(65536).decode(errors="replace")
    except ssl.SSLCertVerificationError as error:
        from .diagnose import untrusted_certificate

        detail = untrusted_certificate(site, origin.hostname, nginx_host, origin.port, error)
        return [
            Check("certificate", origin.hostname, where, "red", detail),
            Check("service", service, where, "red", f"{url}: certificate not trusted"),
        ]
    except (OSError, http.client.HTTPException) as error:
        return [
            Check(
                "service",
                service,
                where,
                "red",
                f"{url}: {getattr(error, 'strerror', None) or error}",
            )
        ]
    finally:
        connection.close()
    if isinstance(connection, _PinnedHTTPSConnection) and connection.peer_certificate:
        checks.append(_certificate(origin.hostname, where, connection.peer_certificate))
        if checks[-1].state != "green":
            from .diagnose import certificate_remedy

            remedy = certificate_remedy(site, origin.hostname, nginx_host)
            checks[-1] = replace(checks[-1], detail=f"{checks[-1].detail}. What to do: {remedy}.")
    try:
        health = json.loads(body)
    except ValueError:
        health = {}
    meta = health.get("meta", "ok")
    if response.status == 200 and health.get("database") == "ok" and meta == "ok":
        checks.append(
            Check(
                "service",
                service,
                where,
                "green",
                f"{url}: 200, version {health.get('version', '?')}",
            )
        )
    elif isinstance(meta, str) and meta != "ok":
        checks.append(
            Check(
                "service",
                service,
                where,
                "red",
                f"{url}: {response.status}; {service}: {meta.removeprefix('error: ')}. "
                + _meta_remedy(site, service),
            )
        )
    else:
        detail = health.get("database") or body.strip()[:120]
        checks.append(
            Check("service", service, where, "red", f"{url}: {response.status} {detail}".strip())
        )
    return checks


def _meta_remedy(site: Any, service: str) -> str:
    """What to do when ``service`` cannot reach meta."""
    topology = site.topology
    hosts = ", ".join(topology.service_hosts.get(service, ())) or "its hosts"
    name = site.origin("meta").hostname
    fronting = [h for h in topology.nginx_hosts if "meta" in topology.fronted_by(h)]
    target = " or ".join(f"{h} ({topology.address(h)})" for h in fronting) or "meta's nginx host"
    how = (
        "in DNS"
        if site.config.get("deploy", "service-names") == "dns"
        else "in DNS or /etc/hosts; running srht-install again writes it into /etc/hosts"
    )
    return (
        f"What to do: {service}'s users cannot sign in until {name} resolves, on {hosts}, "
        f"to {target} and meta answers there ({how})."
    )


def _certificate(hostname: str, where: str, certificate: dict[str, Any]) -> Check:
    expires = ssl.cert_time_to_seconds(certificate["notAfter"])
    days = (expires - time.time()) / 86400
    issuer = dict(item[0] for item in certificate.get("issuer", ()))
    detail = (
        f"expires in {days:.0f} days ({certificate['notAfter']}), "
        f"issued by {issuer.get('commonName') or issuer.get('organizationName', '?')}"
    )
    state = "red" if days < FAIL_DAYS else "yellow" if days < WARN_DAYS else "green"
    return Check("certificate", hostname, where, state, detail)


def check_site(
    config: Path, site: Any, *, timeout: float = 15, diagnosis: Diagnosis | None = None
) -> list[Check]:
    """Every check of the site, hosts in parallel, in a stable order.

    :param diagnosis: a :class:`.diagnose.Diagnosis` (its options); ``None``,
        the defaults.
    """
    from .diagnose import KINDS, Diagnosis, diagnosis_jobs

    topology = site.topology
    jobs: list[tuple[Any, tuple[Any, ...]]] = []
    for host in topology.hosts:
        jobs.append((_daemons, (config, site, host)))
    for service in topology.services:
        for nginx_host in topology.nginx_hosts:
            if service in topology.fronted_by(nginx_host):
                jobs.append((_service, (site, service, nginx_host, timeout)))
    jobs += diagnosis_jobs(config, site, diagnosis or Diagnosis())
    from .scheduled import backup_checks  # the scheduled backups' line

    jobs.append((backup_checks, (config, site)))
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(function, *args) for function, args in jobs]
        results = [future.result() for future in futures]
    order = {
        kind: i
        for i, kind in enumerate(("service", "certificate", "daemon", "backup", "drill", *KINDS))
    }
    checks = [check for found in results for check in found]
    from .drill import last_drill  # here: that module imports Check from this one

    checks.append(last_drill(config, site))
    return sorted(checks, key=lambda c: (order[c.kind], c.where, c.what))
