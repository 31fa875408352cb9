"""The diagnostics of ``srht-install status``, beyond daemons and health:
what a site needs around it to keep working, the way YunoHost's diagnosis
looks at a server. Each check gives :class:`~.status.Check` lines, and
each red line ends with what to do.

- **dns**: each service's name resolves (from this machine, through
  ``--dns-server`` or the system's resolver) to the addresses of the nginx
  hosts that serve it, the records ``srht-install`` printed. An address of
  another host is red. A name that does not resolve is red with
  ``[deploy] service-names = dns`` (the services find each other through
  DNS) and yellow with ``hosts-file`` (the hosts find it in their
  ``/etc/hosts``; only visitors cannot);
- **certificate**: a certificate nginx presents that is not trusted
  (expired, for another name, ...) is red with its dates and what to do;
- **mail**: the ``[mail]`` relay answers SMTP (its banner and EHLO, and
  STARTTLS when it is used), and with ``--send-test-mail ADDRESS`` takes a
  test message (:mod:`.mailtest`); without a relay the site writes mail to
  an outbox nobody reads: yellow;
- **port**: the ports visitors need are open from this machine: 80 and
  each origin's port on every nginx host, and the services' own public
  ports (git's SSH, lists' SMTP) on the hosts that run them;
- **disk**: free space on each host's file systems (``/``, the data
  folder, PostgreSQL's), read with ``df`` over SSH, against ``--min-free``
  (default: red below 10% and below 2 GiB);
- **postgresql**, **redis**: the versions running, and no replication
  nobody set up (a PostgreSQL replication slot keeps WAL until the disk is
  full; a standby or a Redis replica is a copy of the data the site does
  not know about).
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dns.exception
import dns.resolver
from cryptography import x509

from .hosts import HostError, run_on
from .mailtest import send_test_message
from .status import Check

__all__ = [
    "DEFAULT_MIN_FREE",
    "KINDS",
    "Diagnosis",
    "FreeSpace",
    "certificate_remedy",
    "diagnosis_jobs",
    "lookup",
    "split_server",
    "untrusted_certificate",
]

#: The kinds of line, in the order of the table (after service,
#: certificate and daemon).
KINDS = ("dns", "port", "mail", "disk", "postgresql", "redis")


@dataclass(frozen=True)
class FreeSpace:
    """A threshold of free space: a share of the disk, or a size."""

    percent: float | None = None
    size: int | None = None

    _UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

    @classmethod
    def parse(cls, text: str) -> FreeSpace:
        """``10%`` or ``2GiB`` (``K``, ``M``, ``G``, ``T``, with or without ``iB``).

        :raises ValueError: with a sentence saying what is accepted.
        """
        raw = text.strip()
        if raw.endswith("%"):
            try:
                percent = float(raw[:-1])
            except ValueError:
                percent = -1
            if not 0 <= percent <= 100:
                raise ValueError(f"not a share of the disk between 0% and 100%: {text!r}")
            return cls(percent=percent)
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", raw, re.I)
        if not match:
            raise ValueError(f"not a size like 2GiB or a share like 10%: {text!r}")
        return cls(size=int(float(match.group(1)) * cls._UNITS[match.group(2).lower()]))

    def short_of(self, free: int, total: int) -> bool:
        """Whether ``free`` bytes of ``total`` are below this threshold."""
        if self.percent is not None:
            return total > 0 and free * 100 < self.percent * total
        return free < (self.size or 0)

    def __str__(self) -> str:
        return f"{self.percent:g}%" if self.percent is not None else _size(self.size or 0)


#: Red when free space is below all of these (a big disk may run with less
#: than 10% free; a small one with less than 2 GiB).
DEFAULT_MIN_FREE = (FreeSpace(percent=10), FreeSpace(size=2 << 30))


@dataclass(frozen=True)
class Diagnosis:
    """What the diagnostics are told by ``srht-install status``'s options.

    :param dns_server: ``ADDRESS[:PORT]`` of the resolver to ask; ``None``,
        the system's (``/etc/resolv.conf``).
    :param min_free: thresholds of free space; a file system below all of
        them is red.
    :param send_test_mail: an address the site's relay is given a test
        message for.
    """

    dns_server: str | None = None
    min_free: tuple[FreeSpace, ...] = DEFAULT_MIN_FREE
    send_test_mail: str | None = None
    timeout: float = 10

    def resolver(self) -> dns.resolver.Resolver:
        """A resolver asking ``dns_server``, or the system's."""
        if self.dns_server:
            address, port = split_server(self.dns_server)
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [address]
            resolver.port = port
        else:
            resolver = dns.resolver.Resolver()
        resolver.lifetime = self.timeout
        return resolver

    def resolver_name(self) -> str:
        return f"the DNS server {self.dns_server}" if self.dns_server else "this machine's resolver"


def split_server(text: str) -> tuple[str, int]:
    """``ADDRESS[:PORT]`` (an IPv6 address in brackets) as (address, port).

    :raises ValueError: for anything else (a name, a port out of range).
    """
    match = re.fullmatch(r"\[([^]]+)\](?::(\d+))?|([^:]+)(?::(\d+))?|([0-9a-fA-F:]+)", text)
    if not match:
        raise ValueError(f"not ADDRESS[:PORT]: {text!r}")
    address = match.group(1) or match.group(3) or match.group(5)
    port = int(match.group(2) or match.group(4) or 53)
    ip_address(address)  # raises ValueError for a name
    if not 0 < port < 65536:
        raise ValueError(f"port out of range: {text!r}")
    return address, port


def diagnosis_jobs(
    config: Path, site: Any, diagnosis: Diagnosis
) -> list[tuple[Any, tuple[Any, ...]]]:
    """The checks to run, as ``(function, arguments)`` each returning a list
    of :class:`~.status.Check`, for :func:`.status.check_site`'s pool."""
    topology = site.topology
    jobs: list[tuple[Any, tuple[Any, ...]]] = []
    resolver = diagnosis.resolver()
    for service in topology.services:
        jobs.append((_dns, (site, service, diagnosis, resolver)))
    for host, port, why in _public_ports(site):
        jobs.append((_port, (site, host, port, why, diagnosis.timeout)))
    jobs.append((_mail, (site, diagnosis)))
    for host in topology.hosts:
        jobs.append((_disk, (config, site, host, diagnosis.min_free)))
    if topology.postgresql_host:
        jobs.append((_postgresql, (config, site)))
    if topology.redis_host:
        jobs.append((_redis, (config, site)))
    return jobs


def _check(kind: str, what: str, where: str, state: str, detail: str) -> Check:
    return Check(kind, what, where, state, detail)


def _is_address(text: str) -> bool:
    try:
        ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


# -- dns -----------------------------------------------------------------------------------------


def lookup(resolver: dns.resolver.Resolver, name: str) -> list[str]:
    """The A and AAAA addresses of ``name`` (after CNAMEs); ``[]`` for a
    name that does not exist or has no address.

    :raises dns.exception.DNSException: when the resolver does not answer.
    """
    found: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            answer = resolver.resolve(name, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        found += [str(ip_address(record.to_text())) for record in answer]
    return found


def _dns(
    site: Any, service: str, diagnosis: Diagnosis, resolver: dns.resolver.Resolver
) -> list[Check]:
    topology = site.topology
    name = site.origin(service).hostname
    if not name or _is_address(name):
        return []
    fronting = [h for h in topology.nginx_hosts if service in topology.fronted_by(h)]
    where = ", ".join(fronting)
    by_dns = site.config.get("deploy", "service-names") == "dns"
    try:
        found = lookup(resolver, name)
        # {address: host} of the nginx hosts; a host given by a DNS name has
        # the addresses that name has. A loopback host (`local`) is reached by
        # an address only its owner knows: any answer will do.
        expected: dict[str, str] = {}
        anything = False
        for host in fronting:
            address = topology.address(host).strip("[]")
            if not _is_address(address):
                expected.update(dict.fromkeys(lookup(resolver, address), host))
            elif ip_address(address).is_loopback:
                anything = True
            else:
                expected[str(ip_address(address))] = host
    except dns.exception.DNSException as error:
        return [
            _check(
                "dns",
                name,
                where,
                "red" if by_dns else "yellow",
                f"{diagnosis.resolver_name()} did not answer ({error}). What to do: check "
                "that it answers, or give another with --dns-server ADDRESS[:PORT].",
            )
        ]
    records = ", ".join(_records(site, service))
    if not found:
        if by_dns:
            return [
                _check(
                    "dns",
                    name,
                    where,
                    "red",
                    f"does not resolve ({diagnosis.resolver_name()}): with [deploy] "
                    "service-names = dns neither visitors nor the site's own services "
                    f"find it. What to do: create the records {records}.",
                )
            ]
        return [
            _check(
                "dns",
                name,
                where,
                "yellow",
                f"does not resolve ({diagnosis.resolver_name()}): the hosts find it in "
                f"their /etc/hosts, visitors do not. What to do: create the records {records}.",
            )
        ]
    stray = [a for a in found if a not in expected]
    shown = ", ".join(f"{a} ({expected[a]})" if a in expected else a for a in found)
    if anything:
        return [_check("dns", name, where, "green", f"resolves to {shown}")]
    if stray:
        return [
            _check(
                "dns",
                name,
                where,
                "red",
                f"resolves to {shown}: {', '.join(stray)} is none of the hosts whose nginx "
                f"serves it, and visitors sent there do not reach {service}. What to do: "
                f"make the records {records}, and no other.",
            )
        ]
    missing = sorted({host for host in expected.values()} - {expected[a] for a in found})
    if missing:
        return [
            _check(
                "dns",
                name,
                where,
                "yellow",
                f"resolves to {shown}, not to {', '.join(missing)}, which serves it too. "
                f"What to do: add the records {records} so visitors are spread.",
            )
        ]
    return [_check("dns", name, where, "green", f"resolves to {shown}")]


def _records(site: Any, service: str) -> list[str]:
    from .finish import dns_records

    name = site.origin(service).hostname
    return [f"`{r.name}. IN {r.type} {r.value}`" for r in dns_records(site) if r.name == name]


# -- certificates --------------------------------------------------------------------------------


def untrusted_certificate(
    site: Any, hostname: str, host: str, port: int, error: ssl.SSLCertVerificationError
) -> str:
    """The detail of a red certificate line: why it is not trusted, its
    dates when it could be read, and what to do."""
    reason = error.verify_message or str(error)
    dates = ""
    try:
        raw = socket.create_connection((site.topology.address(host), port), timeout=10)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with context.wrap_socket(raw, server_hostname=hostname) as tls:
            der = tls.getpeercert(binary_form=True)
        if der:
            certificate = x509.load_der_x509_certificate(der)
            after = certificate.not_valid_after_utc
            days = (after - datetime.now(UTC)).total_seconds() / 86400
            when = after.strftime("%Y-%m-%d %H:%M UTC")
            ago = round(-days)
            dates = (
                f"; it expired on {when}, {ago} day{'s' if ago != 1 else ''} ago"
                if days < 0
                else f"; valid until {when}"
            )
    except (OSError, ValueError):
        pass
    return f"not trusted: {reason}{dates}. What to do: {certificate_remedy(site, hostname, host)}."


def certificate_remedy(site: Any, hostname: str, host: str) -> str:
    """What to do about the certificate of ``hostname`` that ``host``'s nginx
    presents, when it is expired, untrusted or about to expire."""
    if site.acme:
        return (
            f"on {host}, `certbot renew` renews it (and `systemctl status certbot.timer` "
            f"says whether renewals run); the ACME server must reach {hostname} on port 80"
        )
    # The site's own certificates are valid for a century: one that is not
    # was put there by something else. The deploy puts the site's back and
    # reloads nginx (it reloads whenever a file of its was changed on a host).
    return (
        "run srht-install again: it puts back the certificates of the site's authority "
        f"on {host} and reloads nginx there"
    )


# -- ports ---------------------------------------------------------------------------------------


def _public_ports(site: Any) -> list[tuple[str, int, str]]:
    """``(host, port, why)`` for every port visitors need, in a stable order."""
    topology = site.topology
    wanted: dict[tuple[str, int], list[str]] = {}
    for host in topology.nginx_hosts:
        for service in topology.fronted_by(host):
            origin = site.origin(service)
            if origin.https:
                wanted.setdefault((host, 80), []).append("nginx")
            wanted.setdefault((host, origin.port), []).append("nginx")
    for service in topology.services:
        for port in site.needs(service).ports:
            for host in topology.service_hosts[service]:
                wanted.setdefault((host, port), []).append(service)
    return [(host, port, ", ".join(dict.fromkeys(users))) for (host, port), users in wanted.items()]


def _port(site: Any, host: str, port: int, why: str, timeout: float) -> list[Check]:
    address = site.topology.address(host)
    try:
        with socket.create_connection((address.strip("[]"), port), timeout=timeout):
            pass
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        return [
            _check(
                "port",
                f"{port} ({why})",
                host,
                "red",
                f"{address}:{port} cannot be reached from here ({reason}). What to do: "
                f"check that {why} runs on {host} (`systemctl status`) and that no firewall "
                f"between here and {host} closes port {port}.",
            )
        ]
    return [_check("port", f"{port} ({why})", host, "green", f"{address}:{port} open")]


# -- mail ----------------------------------------------------------------------------------------


def _mail(site: Any, diagnosis: Diagnosis) -> list[Check]:
    mail = site.config["mail"]
    host, port = mail.get("smtp-host"), int(mail.get("smtp-port") or 587)
    encryption = mail.get("smtp-encryption") or "starttls"
    if not host:
        return [
            _check(
                "mail",
                "(no relay)",
                "-",
                "yellow",
                "[mail] smtp-host is empty: the site writes its mail to an outbox folder on "
                "the hosts and nobody receives it (no sign-up or reset mail). What to do: "
                "set [mail] smtp-host (and smtp-port, smtp-user) and run srht-install again.",
            )
        ]
    relay = f"{host}:{port}"
    checks = [_relay_answers(host, port, encryption, diagnosis.timeout)]
    if diagnosis.send_test_mail and checks[0].state == "green":
        answers = {
            "smtp-host": host,
            "smtp-port": port,
            "smtp-encryption": encryption,
            "smtp-user": mail.get("smtp-user"),
            "smtp-password": mail.get("smtp-password"),
            "smtp-from": mail.get("smtp-from"),
            "owner-email": diagnosis.send_test_mail,
            "site-name": site.site_name,
            "domain": site.config["srht"]["global-domain"],
        }
        failed = send_test_message(answers, timeout=diagnosis.timeout)
        if failed:
            checks.append(
                _check(
                    "mail",
                    f"test message to {diagnosis.send_test_mail}",
                    relay,
                    "red",
                    f"{failed}. What to do: check [mail] smtp-user, smtp-password and "
                    "smtp-from with the relay's operator.",
                )
            )
        else:
            checks.append(
                _check(
                    "mail",
                    f"test message to {diagnosis.send_test_mail}",
                    relay,
                    "green",
                    "the relay took it; look for it in that mailbox",
                )
            )
    return checks


def _relay_answers(host: str, port: int, encryption: str, timeout: float) -> Check:
    relay = f"{host}:{port}"
    remedy = (
        f"What to do: check [mail] smtp-host, smtp-port and smtp-encryption, and that "
        f"nothing between here and {relay} blocks it."
    )
    started = time.monotonic()
    try:
        smtp: smtplib.SMTP
        if encryption == "tls":
            smtp = smtplib.SMTP_SSL(
                host, port, context=ssl.create_default_context(), timeout=timeout
            )
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        with smtp:
            code, _ = smtp.ehlo()
            if code != 250:
                raise smtplib.SMTPResponseException(code, "EHLO refused")
            if encryption == "starttls":
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            banner = (
                smtp.ehlo_resp.decode(errors="replace").splitlines()[0] if smtp.ehlo_resp else ""
            )
    except (OSError, smtplib.SMTPException) as error:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        return _check("mail", "relay", relay, "red", f"does not answer SMTP ({reason}). {remedy}")
    took = time.monotonic() - started
    how = {"tls": "over TLS", "starttls": "with STARTTLS", "none": "without encryption"}
    return _check(
        "mail",
        "relay",
        relay,
        "green",
        f"answers ({banner}) {how.get(encryption, encryption)} in {took:.1f}s",
    )


# -- disk ----------------------------------------------------------------------------------------


def _disk(config: Path, site: Any, host: str, min_free: tuple[FreeSpace, ...]) -> list[Check]:
    paths = ["/", site.data_dir]
    if site.topology.postgresql_host == host:
        paths.append("/var/lib/postgresql")
    # A folder not made yet is on its parent's file system: ask for the
    # nearest one that exists.
    script = (
        'for p in "$@"; do while [ ! -e "$p" ]; do p=$(dirname "$p"); done; '
        'df -P -B1 "$p" | tail -n 1; done'
    )
    try:
        result = run_on(config, host, ["sh", "-c", script, "sh", *paths], timeout=60)
    except HostError as error:
        return [_check("disk", "(all)", host, "red", str(error))]
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).decode(errors="replace").strip()
        return [_check("disk", "(all)", host, "red", f"df failed: {reason[-300:] or 'no output'}")]
    seen: dict[str, tuple[int, int]] = {}
    for line in result.stdout.decode(errors="replace").splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1].isdigit() and fields[3].isdigit():
            seen.setdefault(fields[5], (int(fields[3]), int(fields[1])))
    checks = []
    for mount, (free, total) in seen.items():
        percent = 100 * free / total if total else 0
        detail = f"{_size(free)} free of {_size(total)} ({percent:.0f}%)"
        if all(threshold.short_of(free, total) for threshold in min_free):
            limits = " and ".join(str(t) for t in min_free)
            checks.append(
                _check(
                    "disk",
                    mount,
                    host,
                    "red",
                    f"{detail}, below {limits}. What to do: free space on {host} "
                    f"(`du -xsh {mount.rstrip('/')}/* | sort -h`; old backups, logs with "
                    "`journalctl --vacuum-size=200M`) or grow the disk; PostgreSQL stops "
                    "taking writes when it is full.",
                )
            )
        else:
            checks.append(_check("disk", mount, host, "green", detail))
    return checks


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{size} B"
        value /= 1024
    return f"{size} B"


# -- postgresql, redis ---------------------------------------------------------------------------

_PG_QUERY = (
    "SELECT current_setting('server_version'); "
    "SELECT 'slot ' || slot_name || ' ' || slot_type || ' ' || active FROM pg_replication_slots; "
    "SELECT 'standby ' || coalesce(client_addr::text, 'local') || ' ' || "
    "coalesce(application_name, '') FROM pg_stat_replication; "
    "SELECT 'recovery ' || pg_is_in_recovery();"
)


def _postgresql(config: Path, site: Any) -> list[Check]:
    host = site.topology.postgresql_host
    command = ["runuser", "-u", "postgres", "--", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1"]
    try:
        result = run_on(config, host, command, input=_PG_QUERY.encode(), timeout=60)
    except HostError as error:
        return [_check("postgresql", "(server)", host, "red", str(error))]
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).decode(errors="replace").strip()
        return [
            _check(
                "postgresql",
                "(server)",
                host,
                "red",
                f"psql failed: {reason[-300:] or 'no output'}. What to do: "
                f"`systemctl status postgresql` and its journal on {host}.",
            )
        ]
    lines = result.stdout.decode(errors="replace").splitlines()
    version = lines[0].strip() if lines else "?"
    checks = [_check("postgresql", "version", host, "green", f"PostgreSQL {version}")]
    unexpected = []
    for line in lines[1:]:
        kind, _, rest = line.partition(" ")
        if kind == "slot":
            name, slot_type, active = (rest.split() + ["", ""])[:3]
            used = "in use" if active in ("t", "true") else "unused"
            unexpected.append(
                f"replication slot {name} ({slot_type}, {used}): WAL is kept for it until "
                "the disk is full. What to do: if nothing of yours reads it, "
                f"`SELECT pg_drop_replication_slot('{name}')` as postgres on {host}."
            )
        elif kind == "standby":
            unexpected.append(
                f"a standby replicates from it ({rest.strip()}): a copy of every service's "
                "data the site does not know about. What to do: if it is not yours, stop it "
                "and remove its access from pg_hba.conf."
            )
        elif kind == "recovery" and rest.strip() in ("t", "true"):
            unexpected.append(
                "the server is a standby (in recovery): the services cannot write. What to "
                "do: promote it (`pg_ctlcluster ... promote`) or point the site at the primary."
            )
    for problem in unexpected:
        checks.append(_check("postgresql", "replication", host, "red", problem))
    if not unexpected:
        checks.append(
            _check("postgresql", "replication", host, "green", "no replication slot, no standby")
        )
    return checks


def _redis(config: Path, site: Any) -> list[Check]:
    host = site.topology.redis_host
    broker = site.config["srht"].get("broker") if site.topology.redis_existing else None
    password = urlsplit(str(broker)).password if broker else site.redis_password()
    commands = (f"AUTH {password}\n" if password else "") + "INFO server\nINFO replication\n"
    try:
        # The password on standard input, never on a command line.
        result = run_on(config, host, ["redis-cli"], input=commands.encode(), timeout=60)
    except HostError as error:
        return [_check("redis", "(server)", host, "red", str(error))]
    text = result.stdout.decode(errors="replace")
    info = dict(
        line.strip().split(":", 1) for line in text.splitlines() if re.match(r"^\w+:", line)
    )
    if result.returncode != 0 or "redis_version" not in info:
        reason = (result.stderr.decode(errors="replace") + text).strip()
        return [
            _check(
                "redis",
                "(server)",
                host,
                "red",
                f"redis-cli got no answer: {reason[-300:] or 'no output'}. What to do: "
                f"`systemctl status redis-server` and its journal on {host}.",
            )
        ]
    checks = [_check("redis", "version", host, "green", f"Redis {info['redis_version']}")]
    role, replicas = info.get("role", "?"), int(info.get("connected_slaves", "0") or 0)
    if role != "master":
        checks.append(
            _check(
                "redis",
                "replication",
                host,
                "red",
                f"it is a replica of {info.get('master_host', '?')}: it takes no jobs. What to "
                f"do: `redis-cli REPLICAOF NO ONE` on {host} if that is not yours.",
            )
        )
    elif replicas:
        checks.append(
            _check(
                "redis",
                "replication",
                host,
                "red",
                f"{replicas} replica(s) copy it: the site did not set them up. What to do: "
                f"if they are not yours, `redis-cli INFO replication` on {host} says where "
                "they are; stop them and close port 6379 to them.",
            )
        )
    else:
        checks.append(_check("redis", "replication", host, "green", "primary, no replica"))
    return checks
