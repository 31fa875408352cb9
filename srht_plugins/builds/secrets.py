"""Secrets: files, SSH keys and PGP keys a user's jobs may ask for.

Each is sealed (Fernet: AES and an HMAC) with a key derived from the site's
service key before it is stored, so the database alone reveals nothing.
It is shown once, when it is made; after that only its id. Only a runner
that took a job of the secret's owner, which asks for the secret by id and
was not started by someone else's push, ever gets it unsealed (see
:mod:`.runners`).
"""

from __future__ import annotations

import base64
import re
import uuid as uuids
from typing import Any

from cryptography.fernet import Fernet

from srht_core import Problem, current_service, db_session, derive_key

from .models import (
    FILE,
    MAX_SECRET,
    MAX_SECRET_NAME,
    MAX_SECRET_PATH,
    PGP_KEY,
    SECRET_KINDS,
    SSH_KEY,
    Secret,
)

__all__ = ["create_secret", "delete_secret", "unseal"]

MODE = re.compile(r"^0?[0-7]{3}$")


def _fernet() -> Fernet:
    key = derive_key(current_service().config["srht"]["service-key"], "builds:secrets")
    return Fernet(base64.urlsafe_b64encode(key))


def unseal(secret: Secret) -> bytes:
    """The secret's content."""
    return _fernet().decrypt(secret.sealed)


def _check_path(path: str) -> str:
    path = path.strip()
    if not path:
        raise Problem("path", "Say where the file goes in the job (~/.netrc, say).")
    if len(path) > MAX_SECRET_PATH or "\0" in path or "\n" in path:
        raise Problem("path", f"A path is at most {MAX_SECRET_PATH} characters, on one line.")
    if not (path.startswith("/") or path.startswith("~/")):
        raise Problem("path", "Give an absolute path, or one in the home folder (~/...).")
    if any(part in ("..", ".") for part in path.split("/")):
        raise Problem("path", "A path must not have . or .. parts.")
    if path.endswith("/"):
        raise Problem("path", "Name a file, not a folder.")
    return path


def create_secret(
    owner: Any,
    kind: str,
    content: bytes,
    *,
    name: str = "",
    path: str | None = None,
    mode: str | None = None,
) -> Secret:
    """Seal and add a secret of ``owner``'s (flushed, not committed).

    :raises Problem: naming the field at fault.
    """
    if kind not in SECRET_KINDS:
        raise Problem("kind", f"Choose one of {', '.join(SECRET_KINDS)}.")
    name = name.strip()
    if len(name) > MAX_SECRET_NAME:
        raise Problem("name", f"A name is at most {MAX_SECRET_NAME} characters.")
    if not content.strip():
        raise Problem("content", "The secret is empty.")
    if len(content) > MAX_SECRET:
        raise Problem("content", f"A secret is at most {MAX_SECRET // 1024} KiB.")
    text = content.decode("utf-8", "replace")
    if kind == SSH_KEY and "PRIVATE KEY-----" not in text:
        raise Problem(
            "content", "That is not an SSH private key (-----BEGIN ... PRIVATE KEY-----)."
        )
    if kind == PGP_KEY and "-----BEGIN PGP PRIVATE KEY BLOCK-----" not in text:
        raise Problem(
            "content", "That is not a PGP private key (-----BEGIN PGP PRIVATE KEY BLOCK-----)."
        )
    file_mode = 0o600
    if kind == FILE:
        path = _check_path(path or "")
        if mode:
            if not MODE.match(mode.strip()):
                raise Problem("mode", "Give the file's mode in octal, like 600 or 644.")
            file_mode = int(mode.strip(), 8)
    else:
        path = None
    secret = Secret(
        owner_id=owner.id,
        uuid=str(uuids.uuid4()),
        name=name,
        kind=kind,
        path=path,
        mode=file_mode,
        sealed=_fernet().encrypt(content),
    )
    db_session.add(secret)
    db_session.flush()
    return secret


def delete_secret(secret: Secret) -> None:
    db_session.delete(secret)
