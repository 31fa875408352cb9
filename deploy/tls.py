"""Certificates for HTTPS origins when no ACME is asked for: a site
certificate authority and one certificate per service, all derived from the
site's service key.

Keys come from HKDF over the service key and certificates are signed with
deterministic ECDSA (RFC 6979) over fixed dates, so every run, on any
machine, produces the same bytes: a re-run uploads nothing, and hosts that
balance one service present the same certificate. Every host trusts the
authority (``/usr/local/share/ca-certificates``), so services calling each
other's origins verify TLS like any client; people import
``srht deploy ca`` into their browser once.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from srht_core import derive_key

__all__ = ["Certificate", "site_authority", "service_certificate"]

NOT_BEFORE = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
NOT_AFTER = datetime.datetime(2124, 1, 1, tzinfo=datetime.UTC)
_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)


@dataclass(frozen=True)
class Certificate:
    """PEM texts of a certificate and its private key."""

    cert: str
    key: str


def _private_key(service_key: str, purpose: str) -> ec.EllipticCurvePrivateKey:
    scalar = int.from_bytes(derive_key(service_key, f"tls:{purpose}", 48), "big")
    return ec.derive_private_key(scalar % (_ORDER - 1) + 1, ec.SECP256R1())


def _serial(*parts: str) -> int:
    digest = hashes.Hash(hashes.SHA256())
    digest.update("\0".join(parts).encode())
    return int.from_bytes(digest.finalize()[:16], "big") >> 1


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@lru_cache(maxsize=8)
def site_authority(service_key: str, site_name: str) -> Certificate:
    """The site's certificate authority."""
    key = _private_key(service_key, "ca")
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{site_name} authority"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "srht"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_serial("ca", site_name))
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256(), ecdsa_deterministic=True)
    )
    return Certificate(cert.public_bytes(serialization.Encoding.PEM).decode(), _pem_key(key))


@lru_cache(maxsize=64)
def service_certificate(service_key: str, site_name: str, hostname: str) -> Certificate:
    """A certificate for ``hostname``, signed by the site's authority."""
    authority = site_authority(service_key, site_name)
    ca_key = serialization.load_pem_private_key(authority.key.encode(), None)
    ca_cert = x509.load_pem_x509_certificate(authority.cert.encode())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = _private_key(service_key, f"host:{hostname}")
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(_serial("host", hostname))
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256(), ecdsa_deterministic=True)
    )
    return Certificate(cert.public_bytes(serialization.Encoding.PEM).decode(), _pem_key(key))
