"""What a self-hoster needs once the site runs: every service's URL, where
the admin signs in, the DNS records the site needs, and (self-signed) the
authority to import in browsers."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DnsRecord", "authority_file", "dns_records", "mail_hosts", "service_urls"]


@dataclass(frozen=True)
class DnsRecord:
    name: str
    type: str
    value: str

    def __str__(self) -> str:
        return f"{self.name}.  IN {self.type:<5} {self.value}"


def service_urls(site: Any) -> dict[str, str]:
    """``{service: origin}`` in the deploy's order (meta first)."""
    return {s: str(site.config[s]["origin"]) for s in site.topology.services}


def dns_records(site: Any) -> list[DnsRecord]:
    """A record per service name, pointing at the nginx hosts that front it
    (several records: DNS spreads browsers across them), then an MX record
    per mail domain (lists' posting domain), pointing at the hosts whose
    Postfix takes it."""
    records = _web_records(site)
    for domain, hosts in mail_hosts(site).items():
        for host_name in hosts:
            records += _mx_records(site, domain, host_name)
    return records


def mail_hosts(site: Any) -> dict[str, list[str]]:
    """``{mail domain: [host, ...]}``: the hosts that take each service's
    mail domains (``HostNeeds.mail_domains``)."""
    found: dict[str, list[str]] = {}
    for service in site.topology.services:
        for domain in site.needs(service).mail_domains:
            hosts = found.setdefault(domain, [])
            hosts += [h for h in site.topology.service_hosts[service] if h not in hosts]
    return found


def _mx_records(site: Any, domain: str, host_name: str) -> list[DnsRecord]:
    """The MX record of ``domain`` for ``host_name``: an MX names a host,
    never an address, so a host reached by address gets a name of its own
    (HOST.mail.GLOBAL-DOMAIN) and its A or AAAA record."""
    address = site.topology.address(host_name)
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return [DnsRecord(domain, "MX", f"10 {address.rstrip('.')}.")]
    target = f"{host_name}.mail.{site.config['srht']['global-domain']}"
    value = "<this machine's public address>" if ip.is_loopback else str(ip)
    return [
        DnsRecord(domain, "MX", f"10 {target}."),
        DnsRecord(target, "A" if ip.version == 4 else "AAAA", value),
    ]


def _web_records(site: Any) -> list[DnsRecord]:
    topology = site.topology
    records: list[DnsRecord] = []
    for service in topology.services:
        hostname = site.origin(service).hostname
        for nginx_host in topology.nginx_hosts:
            if service not in topology.fronted_by(nginx_host):
                continue
            address = topology.address(nginx_host)
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                records.append(DnsRecord(hostname, "CNAME", address.rstrip(".") + "."))
                continue
            value = "<this machine's public address>" if ip.is_loopback else str(ip)
            records.append(DnsRecord(hostname, "A" if ip.version == 4 else "AAAA", value))
    return records


def authority_file(config: Path, site: Any) -> Path | None:
    """Write the site's certificate authority beside the config (for
    self-signed certificates); ``None`` with ACME."""
    if site.acme:
        return None
    path = config.with_name("site-ca.pem")
    text = site.authority().cert
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path
