"""Keys: generating the site's secrets and deriving per-purpose keys.

``srht keygen`` prints a fresh service key, network key (Fernet) and webhook
signing key (Ed25519). Every other secret (a service's Flask secret, ...) is
derived from these with HKDF, so one site has three secrets to keep.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["SiteKeys", "derive_key", "generate_keys", "webhook_public_key"]


@dataclass(frozen=True)
class SiteKeys:
    service_key: str
    network_key: str
    webhook_private_key: str
    webhook_public_key: str


def generate_keys() -> SiteKeys:
    """Fresh random keys for a new site."""
    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return SiteKeys(
        service_key=secrets.token_urlsafe(32),
        network_key=Fernet.generate_key().decode(),
        webhook_private_key=base64.b64encode(raw).decode(),
        webhook_public_key=webhook_public_key(base64.b64encode(raw).decode()),
    )


def webhook_public_key(private_key_b64: str) -> str:
    """The base64 public key receivers use to verify webhook signatures."""
    private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(private_key_b64))
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(public).decode()


def derive_key(secret: str, purpose: str, length: int = 32) -> bytes:
    """A key for ``purpose`` derived from the site secret ``secret`` (HKDF-SHA256)."""
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=length, salt=None, info=f"srht:{purpose}".encode()
    )
    return hkdf.derive(secret.encode())
