"""What the diagnostics tests of ``srht-install status`` put around the
site: a DNS server on loopback whose answers a test can change, a mail
relay in the config, and a certificate that has expired."""

from __future__ import annotations

import datetime
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


class DnsServer:
    """``with DnsServer({name: [address, ...]}) as server:``: answers A
    queries over UDP on loopback from :attr:`answers` (a test may change
    it), NXDOMAIN for any other name; ``server.address`` is
    ``127.0.0.1:PORT``, for ``--dns-server``."""

    def __init__(self, answers: dict[str, list[str]]):
        self.answers = dict(answers)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.address = f"127.0.0.1:{self._socket.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, client = self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            self._socket.sendto(self._answer(wire), client)

    def _answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        question = query.question[0]
        addresses = self.answers.get(question.name.to_text().rstrip("."))
        if addresses is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.A:
            response.answer.append(
                dns.rrset.from_text_list(
                    question.name, 60, dns.rdataclass.IN, dns.rdatatype.A, addresses
                )
            )
        return response.to_wire()

    def __enter__(self) -> DnsServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()


@contextmanager
def relay_in_config(config: Path, host: str, port: int) -> Iterator[None]:
    """The site's config names ``host:port`` (no encryption) as its mail
    relay, then is put back byte for byte (only ``srht-install status``
    reads it meanwhile: no host is deployed with it)."""
    before = config.read_bytes()
    text = before.decode()
    assert "\n[mail]\n" in text
    config.write_text(
        text.replace(
            "\n[mail]\n",
            f"\n[mail]\nsmtp-host = {host}\nsmtp-port = {port}\nsmtp-encryption = none\n",
            1,
        )
    )
    try:
        yield
    finally:
        config.write_bytes(before)


def unused_port() -> int:
    """A loopback TCP port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def expired_certificate(current_pem: str, authority_cert: str, authority_key: str) -> str:
    """``current_pem`` re-issued by the site's authority, same name and key,
    but valid only until yesterday."""
    current = x509.load_pem_x509_certificate(current_pem.encode())
    issuer = x509.load_pem_x509_certificate(authority_cert.encode())
    key = serialization.load_pem_private_key(authority_key.encode(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(current.subject)
        .issuer_name(issuer.subject)
        .public_key(current.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=90))
        .not_valid_after(now - datetime.timedelta(days=1))
    )
    for extension in current.extensions:
        builder = builder.add_extension(extension.value, critical=extension.critical)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()
