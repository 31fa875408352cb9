"""Secrets the deploy derives from the site's service key, so that the one
config stays the only place a secret is written down and a re-run derives
the same values (nothing to store, nothing that changes between runs).

Passwords never reach a command line: PostgreSQL is given a SCRAM verifier
(computed here, with a salt derived from the password), Redis a config file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from srht_core import derive_key

__all__ = ["Database", "database_for", "redis_password", "scram_verifier"]

SCRAM_ITERATIONS = 4096


def _password(service_key: str, purpose: str) -> str:
    return (
        base64.urlsafe_b64encode(derive_key(service_key, f"deploy:{purpose}")).decode().rstrip("=")
    )


def redis_password(service_key: str) -> str:
    return _password(service_key, "redis")


@dataclass(frozen=True)
class Database:
    """A service's PostgreSQL role and database, and the URL to reach them."""

    service: str
    role: str
    name: str
    password: str | None
    url: str
    derived: bool

    @property
    def verifier(self) -> str | None:
        return scram_verifier(self.password, self.role) if self.password else None


def database_for(
    service: str, connection_string: str | None, service_key: str, address: str | None
) -> Database | None:
    """The database of ``service``: parsed from its connection string, or,
    when that is empty and PostgreSQL is managed (``address`` is where it
    runs, as seen by the service), derived: role and database ``srht_<name>``,
    password from the service key."""
    if connection_string:
        parts = urlsplit(connection_string)
        if not parts.scheme.startswith("postgresql"):
            return None
        name = parts.path.lstrip("/") or (parts.username or "")
        return Database(
            service,
            unquote(parts.username or ""),
            unquote(name),
            unquote(parts.password) if parts.password else None,
            connection_string,
            derived=False,
        )
    if address is None:
        return None
    ident = "srht_" + service.replace("-", "_")
    password = _password(service_key, f"postgresql:{service}")
    host = f"[{address}]" if ":" in address else address
    url = f"postgresql+psycopg2://{ident}:{quote(password, safe='')}@{host}:5432/{ident}"
    return Database(service, ident, ident, password, url, derived=True)


def scram_verifier(password: str, role: str) -> str:
    """PostgreSQL's ``SCRAM-SHA-256`` verifier of ``password``, with a salt
    derived from both, so the same password always gives the same verifier
    and a re-run can tell that nothing changed."""
    salt = hashlib.sha256(f"srht-scram:{role}:{password}".encode()).digest()[:16]
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt).decode()}$"
        f"{b64(stored_key).decode()}:{b64(server_key).decode()}"
    )
