"""A private ACME server for the deploy suite: Debian's ``pebble`` (the
ACME test server of Let's Encrypt), with ``pebble-challtestsrv`` as the DNS
it resolves the site's names with, both on the test hosts' bridge address
so the hosts reach them and they reach the hosts.

Validation is real: pebble fetches each HTTP-01 challenge from the host the
site's DNS names (port 80, the webroot nginx serves), as Let's Encrypt
would. Its own HTTPS listener gets a certificate from a throwaway
authority made here; :attr:`Pebble.ca_file` holds that authority and the
root pebble issues under (random per start), what a self-hoster of a
private ACME server gives the deploy as ``[deploy] acme-ca-file``.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ACME_PORT, MANAGEMENT_PORT, DNS_PORT, DNS_MANAGEMENT_PORT = 14000, 15000, 8053, 8055


@dataclass(frozen=True)
class Pebble:
    """A running pebble: where its directory is and what to trust."""

    directory: str
    ca_file: Path


def _listener_certificate(address: str, folder: Path) -> tuple[Path, Path, str]:
    """``(cert file, key file, authority PEM)`` for pebble's HTTPS at ``address``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "srht tests: pebble's listener")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = folder / "listener.crt", folder / "listener.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file, ca.public_bytes(serialization.Encoding.PEM).decode()


def _get(url: str, context: ssl.SSLContext | None, deadline: float) -> bytes:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5, context=context) as answer:  # noqa: S310
                return bytes(answer.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextmanager
def pebble(folder: Path, address: str, names: dict[str, str]) -> Iterator[Pebble]:
    """Run pebble and its DNS at ``address`` (the bridge's), the DNS
    answering ``{name: IPv4 address}``; stopped (by PID) on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key, authority = _listener_certificate(address, folder)
    config = folder / "pebble.json"
    config.write_text(
        json.dumps(
            {
                "pebble": {
                    "listenAddress": f"{address}:{ACME_PORT}",
                    "managementListenAddress": f"{address}:{MANAGEMENT_PORT}",
                    "certificate": str(cert),
                    "privateKey": str(key),
                    "httpPort": 80,
                    "tlsPort": 443,
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": False,
                }
            }
        )
    )
    started: list[subprocess.Popen[bytes]] = []
    try:
        with open(folder / "challtestsrv.log", "wb") as log:
            started.append(
                subprocess.Popen(
                    [
                        "pebble-challtestsrv",
                        "-dns01",
                        f"{address}:{DNS_PORT}",
                        "-http01",
                        "",
                        "-https01",
                        "",
                        "-tlsalpn01",
                        "",
                        "-management",
                        f"{address}:{DNS_MANAGEMENT_PORT}",
                        "-defaultIPv4",
                        "",
                        "-defaultIPv6",
                        "",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )
        deadline = time.monotonic() + 30
        for name, ip in names.items():
            request = urllib.request.Request(
                f"http://{address}:{DNS_MANAGEMENT_PORT}/add-a",
                method="POST",
                data=json.dumps({"host": name, "addresses": [ip]}).encode(),
            )
            _get_request(request, deadline)
        with open(folder / "pebble.log", "wb") as log:
            started.append(
                subprocess.Popen(
                    ["pebble", "-config", str(config), "-dnsserver", f"{address}:{DNS_PORT}"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    # No artificial delays, and no nonces rejected at random (a
                    # client is supposed to retry those; certbot does once).
                    env={
                        "PATH": "/usr/bin:/bin",
                        "PEBBLE_VA_NOSLEEP": "1",
                        "PEBBLE_WFE_NONCEREJECT": "0",
                    },
                )
            )
        context = ssl.create_default_context(cadata=authority)
        directory = f"https://{address}:{ACME_PORT}/dir"
        _get(directory, context, deadline)
        root = _get(f"https://{address}:{MANAGEMENT_PORT}/roots/0", context, deadline).decode()
        ca_file = folder / "acme-ca.pem"
        ca_file.write_text(authority + root)
        yield Pebble(directory, ca_file)
    finally:
        for process in reversed(started):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _get_request(request: urllib.request.Request, deadline: float) -> None:
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - the bridge
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
