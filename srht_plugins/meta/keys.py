"""Public keys users add to their account: SSH keys (for git over SSH and
``/~user.keys``) and PGP keys (for signed and encrypted mail).

Both are parsed here before anything is stored, so that a key on file is
always one the rest of the site can use: the SSH key loads and is of a type
and size we accept; the PGP block is well-formed armor around a public key
whose fingerprint we computed ourselves. A key belongs to one account
site-wide (its fingerprint is unique). The pages, the API and the command
line add and remove keys through :func:`add_ssh_key`, :func:`add_pgp_key`
and :func:`remove_key`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from sqlalchemy.exc import IntegrityError

from srht_core import Problem, db_session

from .accounts import audit
from .models import PGPKey, SSHKey, User

__all__ = [
    "KeyInUse",
    "KeyProblem",
    "PGPPublicKey",
    "SSHPublicKey",
    "add_pgp_key",
    "add_ssh_key",
    "commit_key",
    "parse_pgp_key",
    "parse_ssh_key",
    "remove_key",
]

#: Longest SSH key line accepted (an RSA 16384-bit key is about 2,800 characters).
MAX_SSH_LENGTH = 8192
#: Longest armored PGP key accepted (keys carry signatures; some carry many).
MAX_PGP_LENGTH = 64 * 1024
MAX_COMMENT_LENGTH = 256
MIN_RSA_BITS = 2048
SSH_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)


class KeyProblem(Problem):
    """Why a key is refused (the field ``key``), as a sentence to show."""

    def __init__(self, reason: str, status: int = 400):
        super().__init__("key", reason, status)


class KeyInUse(KeyProblem):
    """The key is on an account already, this one or another (409)."""

    def __init__(self, reason: str):
        super().__init__(reason, 409)


# -- SSH -------------------------------------------------------------------------


@dataclass(frozen=True)
class SSHPublicKey:
    """An accepted SSH public key."""

    #: ``ssh-ed25519``, ``ecdsa-sha2-nistp256``, ``ssh-rsa``, ...
    key_type: str
    #: ``type base64``, re-encoded from the parsed key (without the comment).
    key: str
    #: ``SHA256:...``, as ``ssh-keygen -l`` prints it.
    fingerprint: str
    comment: str | None
    bits: int

    @property
    def line(self) -> str:
        """The key as an ``authorized_keys`` line, comment included."""
        return f"{self.key} {self.comment}" if self.comment else self.key


def ssh_fingerprint(blob: bytes) -> str:
    """The SHA-256 fingerprint of a key's wire encoding, like OpenSSH's."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def parse_ssh_key(text: str) -> SSHPublicKey:
    """Parse one SSH public key line (``ssh-ed25519 AAAA... comment``).

    :raises KeyProblem: when it is not a public key, not of an accepted type
        (Ed25519, ECDSA, RSA of at least 2048 bits), or too long.
    """
    text = text.strip()
    if not text:
        raise KeyProblem("Paste a public key: the contents of a file like ~/.ssh/id_ed25519.pub.")
    if len(text) > MAX_SSH_LENGTH:
        raise KeyProblem(
            f"That is too long for an SSH public key (at most {MAX_SSH_LENGTH} characters)."
        )
    if "PRIVATE KEY" in text:
        raise KeyProblem(
            "That is a private key. Never share it; paste the public key "
            "instead (the file ending in .pub)."
        )
    if "\n" in text or "\r" in text:
        raise KeyProblem("Paste one key, on one line.")
    parts = text.split(None, 2)
    looks_like_a_key = len(parts) >= 2 and parts[0].startswith(("ssh-", "ecdsa-", "sk-"))
    if not looks_like_a_key:
        raise KeyProblem(
            "That does not look like an SSH public key: expected a line like "
            "'ssh-ed25519 AAAA... you@host'."
        )
    key_type, body = parts[0], parts[1]
    if key_type not in SSH_TYPES:
        raise KeyProblem(
            f"Keys of type {key_type} are not accepted; use Ed25519 (best), "
            "ECDSA or RSA of at least 2048 bits."
        )
    try:
        key = serialization.load_ssh_public_key(f"{key_type} {body}".encode("ascii"))
    except (ValueError, UnsupportedAlgorithm, UnicodeEncodeError):
        raise KeyProblem(
            "That SSH public key is damaged: its data does not decode. Copy the whole line again."
        ) from None
    if isinstance(key, rsa.RSAPublicKey):
        bits = key.key_size
        if bits < MIN_RSA_BITS:
            raise KeyProblem(
                f"That RSA key has {bits} bits; at least {MIN_RSA_BITS} are "
                "needed. Better: make an Ed25519 key with "
                "'ssh-keygen -t ed25519'."
            )
    elif isinstance(key, ec.EllipticCurvePublicKey):
        bits = key.key_size
    elif isinstance(key, ed25519.Ed25519PublicKey):
        bits = 256
    else:  # pragma: no cover - load_ssh_public_key only returns the types above here
        raise KeyProblem(f"Keys of type {key_type} are not accepted.")
    encoded = key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode("ascii")
    blob = base64.b64decode(encoded.split()[1])
    comment = _clean_comment(parts[2]) if len(parts) > 2 else None
    return SSHPublicKey(encoded.split()[0], encoded, ssh_fingerprint(blob), comment, bits)


def _clean_comment(comment: str) -> str | None:
    comment = re.sub(r"[\x00-\x1f\x7f]", "", comment).strip()
    if len(comment) > MAX_COMMENT_LENGTH:
        raise KeyProblem(
            f"The key's comment is too long (at most {MAX_COMMENT_LENGTH} characters)."
        )
    return comment or None


# -- PGP ---------------------------------------------------------------------------

ARMOR_BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
ARMOR_END = "-----END PGP PUBLIC KEY BLOCK-----"
_ARMOR_LINE = re.compile(r"^-----(BEGIN|END) PGP ([A-Z ,/0-9]+)-----$")
_HEADER = re.compile(r"^[A-Za-z][A-Za-z0-9-]*: ?.*$")
#: OpenPGP packet tags (RFC 9580 §5).
TAG_SECRET_KEY, TAG_PUBLIC_KEY, TAG_SECRET_SUBKEY = 5, 6, 7


@dataclass(frozen=True)
class PGPPublicKey:
    """An accepted PGP public key."""

    #: The primary key's fingerprint, upper-case hex (40 digits for v4 keys).
    fingerprint: str
    version: int
    #: The armored block, normalised (``\\n`` line ends, nothing around it).
    armored: str

    @property
    def key_id(self) -> str:
        """The long key id: the last 16 hex digits of a v4 fingerprint, the
        first 16 of a v5 or v6 one."""
        return self.fingerprint[-16:] if self.version == 4 else self.fingerprint[:16]


def crc24(data: bytes) -> int:
    """The armor checksum (RFC 9580 §6.1)."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def parse_pgp_key(text: str) -> PGPPublicKey:
    """Check an ASCII-armored public key block and compute the fingerprint
    of its primary key.

    :raises KeyProblem: when the armor is malformed, its checksum is wrong,
        the block holds a private key, or its first packet is not a public key.
    """
    if len(text) > MAX_PGP_LENGTH:
        raise KeyProblem(
            f"That is too long for a PGP public key (at most "
            f"{MAX_PGP_LENGTH // 1024} KiB). Export it without extra "
            "signatures: gpg --export --armor --export-options "
            "export-minimal YOUR-KEY-ID."
        )
    lines = [line.strip() for line in text.strip().splitlines()]
    kinds = [m.group(2) for line in lines if (m := _ARMOR_LINE.match(line))]
    if any("PRIVATE KEY" in kind for kind in kinds):
        raise KeyProblem(
            "That is a private key. Never share it; export the public key "
            "with gpg --export --armor YOUR-KEY-ID."
        )
    if ARMOR_BEGIN not in lines:
        raise KeyProblem(
            "Paste an ASCII-armored public key: it starts with the line "
            f"{ARMOR_BEGIN} (gpg --export --armor YOUR-KEY-ID prints it)."
        )
    start = lines.index(ARMOR_BEGIN)
    try:
        end = lines.index(ARMOR_END, start)
    except ValueError:
        raise KeyProblem(f"The key block is cut short: the line {ARMOR_END} is missing.") from None
    block = lines[start + 1 : end]
    # Armor headers ("Comment: ..."), then a blank line, then the data.
    position = 0
    while position < len(block) and _HEADER.match(block[position]):
        position += 1
    if position < len(block) and block[position] == "":
        position += 1
    body = [line for line in block[position:] if line]
    checksum: str | None = None
    if body and body[-1].startswith("=") and len(body[-1]) == 5:
        checksum = body.pop()[1:]
    try:
        data = base64.b64decode("".join(body), validate=True)
        expected = base64.b64decode(checksum, validate=True) if checksum else None
    except (binascii.Error, ValueError):
        raise KeyProblem(
            "The key block is damaged: its lines are not valid base64. Copy the whole block again."
        ) from None
    if not data:
        raise KeyProblem("The key block is empty.")
    if expected is not None and int.from_bytes(expected, "big") != crc24(data):
        raise KeyProblem(
            "The key block is damaged: its checksum does not match. Copy the whole block again."
        )
    tag, packet = _first_packet(data)
    if tag in (TAG_SECRET_KEY, TAG_SECRET_SUBKEY):
        raise KeyProblem(
            "That is a private key. Never share it; export the public key "
            "with gpg --export --armor YOUR-KEY-ID."
        )
    if tag != TAG_PUBLIC_KEY:
        raise KeyProblem("The key block does not start with a public key.")
    version, fingerprint = _fingerprint(packet)
    armored = "\n".join(lines[start : end + 1]) + "\n"
    return PGPPublicKey(fingerprint, version, armored)


def _first_packet(data: bytes) -> tuple[int, bytes]:
    """The tag and body of the first OpenPGP packet, with old- or
    new-format headers (RFC 9580 §4.2)."""
    damaged = KeyProblem("The key block is damaged: its first packet is cut short.")
    first = data[0]
    if not first & 0x80:
        raise KeyProblem("The key block does not hold OpenPGP data.")
    if first & 0x40:  # new format
        tag = first & 0x3F
        if len(data) < 2:
            raise damaged
        octet = data[1]
        if octet < 192:
            length, offset = octet, 2
        elif octet < 224:
            if len(data) < 3:
                raise damaged
            length, offset = ((octet - 192) << 8) + data[2] + 192, 3
        elif octet == 255:
            if len(data) < 6:
                raise damaged
            length, offset = int.from_bytes(data[2:6], "big"), 6
        else:
            # Partial body lengths are allowed only for data packets, never keys.
            raise KeyProblem("The key block is malformed: its key packet has a partial length.")
    else:  # old format
        tag = (first >> 2) & 0x0F
        length_type = first & 0x03
        if length_type == 3:  # indeterminate: to the end of the data
            length, offset = len(data) - 1, 1
        else:
            size = 1 << length_type
            if len(data) < 1 + size:
                raise damaged
            length, offset = int.from_bytes(data[1 : 1 + size], "big"), 1 + size
    packet = data[offset : offset + length]
    if len(packet) != length:
        raise damaged
    return tag, packet


def _fingerprint(packet: bytes) -> tuple[int, str]:
    """The version and fingerprint of a public-key packet body."""
    if not packet:
        raise KeyProblem("The key block is damaged: its public key packet is empty.")
    version = packet[0]
    if version == 4:
        if len(packet) < 7:
            raise KeyProblem("The key block is damaged: its public key packet is cut short.")
        prefix = b"\x99" + len(packet).to_bytes(2, "big")
        return 4, hashlib.sha1(prefix + packet, usedforsecurity=False).hexdigest().upper()
    if version in (5, 6):
        if len(packet) < 11:
            raise KeyProblem("The key block is damaged: its public key packet is cut short.")
        prefix = (b"\x9a" if version == 5 else b"\x9b") + len(packet).to_bytes(4, "big")
        return version, hashlib.sha256(prefix + packet).hexdigest().upper()
    raise KeyProblem(
        f"Version {version} PGP keys are not accepted (they are obsolete); "
        "make a new key with a current GnuPG."
    )


# -- on an account -------------------------------------------------------------------


def _check_free(model: type[SSHKey] | type[PGPKey], fingerprint: str, user: User) -> None:
    owner = db_session.scalar(sa.select(model.user_id).where(model.fingerprint == fingerprint))
    if owner is None:
        return
    if owner == user.id:
        raise KeyInUse("You have added this key already.")
    raise KeyInUse("This key is in use by another account; a key can belong to one account only.")


def add_ssh_key(user: User, text: str, *, how: str | None = None) -> SSHKey:
    """Parse ``text`` and add the SSH key to ``user``'s account (not
    committed; see :func:`commit_key`). ``how`` goes into the audit log.

    :raises KeyProblem: why the key is refused (:class:`KeyInUse` when it
        is on an account already).
    """
    key = parse_ssh_key(text)
    _check_free(SSHKey, key.fingerprint, user)
    row = SSHKey(user_id=user.id, key=key.key, comment=key.comment, fingerprint=key.fingerprint)
    db_session.add(row)
    audit(user, "SSH key added", f"{key.fingerprint} ({how})" if how else key.fingerprint)
    return row


def add_pgp_key(user: User, text: str) -> PGPKey:
    """Parse ``text`` and add the PGP key to ``user``'s account (not
    committed; see :func:`commit_key`).

    :raises KeyProblem: why the key is refused (:class:`KeyInUse` when it
        is on an account already).
    """
    key = parse_pgp_key(text)
    _check_free(PGPKey, key.fingerprint, user)
    row = PGPKey(user_id=user.id, key=key.armored, fingerprint=key.fingerprint)
    db_session.add(row)
    audit(user, "PGP key added", key.fingerprint)
    return row


def commit_key() -> None:
    """Commit a key just added.

    :raises KeyInUse: when another request stored the same key first
        (nothing is stored).
    """
    try:
        db_session.commit()
    except IntegrityError:
        db_session.rollback()
        raise KeyInUse("This key was just added to an account.") from None


def remove_key(key: SSHKey | PGPKey) -> None:
    """Remove a key from its account (not committed)."""
    db_session.delete(key)
    kind = "SSH" if isinstance(key, SSHKey) else "PGP"
    audit(key.user, f"{kind} key removed", key.fingerprint)
