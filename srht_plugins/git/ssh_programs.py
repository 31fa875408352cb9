"""The two programs sshd runs for git over SSH, kept as cheap as a plain
sshd's: no interpreter on the key lookup, one short one per login.

**The key lookup** (sshd's AuthorizedKeysCommand, asked twice per login:
once for the client's unsigned probe, once for its signed request) is
``curl``, run as an account of its own (``srht-git-keys``) that reads
nothing of the site but its curl config: a file only that account reads,
which the deploy writes (:func:`srht_plugins.git.ssh.keys_secret`), holding
the git service's address and the lookup credential (never on a command
line, where ``ps`` would show it to every local user). sshd passes the
account, key type and key in the :data:`KEY_HEADER` header; the running git
service answers the ``authorized_keys`` line (the key with its forced
command) or nothing. It writes nothing, and the credential allows nothing
but that lookup.

**The forced command** is this file, run as a script by the git service's
own interpreter with ``-I -S`` (no site-packages, no ``srht_plugins``
package, only the few standard modules :func:`shell_main` imports), as the
git account after sshd has checked the key. It reads the git service's
origin and the network key from the config, asks the service whether the
key's owner may run what the client asked (``SSH_ORIGINAL_COMMAND``) over
one plain HTTP request, and replaces itself with ``git upload-pack``,
``receive-pack`` or ``upload-archive``: no Python stays in the data path.
The service does every check (and mirrors the user, now that the key has
authenticated); this program only carries the answer.

The git service answers both on ``/internal/ssh/``, only to the internal
networks and only with the credential (:func:`credential`) derived from the
site's network key for each purpose.

``srht-git-keys`` and ``srht-git-shell`` are the same two programs as
installed commands, for a person checking a key or a login by hand.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

__all__ = [
    "HEADER",
    "KEYS",
    "KEY_HEADER",
    "SHELL",
    "authorized_keys_line",
    "credential",
    "fingerprint",
    "keys_main",
    "shell_main",
]

#: The header that carries the credential.
HEADER = "X-Srht-Git-Ssh"
#: The header in which sshd's key lookup passes ``account key-type key``.
KEY_HEADER = "X-Srht-Git-Key"
#: What each credential allows: looking keys up, and asking for access.
KEYS = "ssh-keys"
SHELL = "ssh-shell"
#: How long either program waits for the git service.
TIMEOUT = 20


def credential(network_key: str, purpose: str) -> str:
    """The credential for ``purpose`` (:data:`KEYS` or :data:`SHELL`),
    derived from the site's network key: it proves the caller was given it
    by someone who holds that key, and allows nothing else."""
    import hashlib
    import hmac

    return hmac.new(
        network_key.encode(), f"srht git {purpose}".encode(), hashlib.sha256
    ).hexdigest()


def fingerprint(blob: bytes) -> str:
    """A key's SHA-256 fingerprint, as ``ssh-keygen -l`` and meta write it."""
    import base64
    import hashlib

    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def authorized_keys_line(key: str, command: list[str]) -> str:
    """An ``authorized_keys`` line for ``key`` that allows nothing but
    ``command`` (the forced command, as words)."""
    import shlex

    quoted = shlex.join(command).replace("\\", "\\\\").replace('"', '\\"')
    return f'restrict,command="{quoted}" {key}'


def keys_main(argv: list[str] | None = None) -> NoReturn:
    """``srht-git-keys``: what sshd's key lookup answers for a key."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="srht-git-keys",
        description="Print the authorized_keys line the git service answers sshd for KEY "
        "(base64, as sshd's %%k): the lookup sshd runs, with its curl config.",
    )
    parser.add_argument(
        "--credential-file",
        default="/etc/srht-secrets/git-ssh-keys",
        help="the lookup's curl config (readable by the keys account alone)",
    )
    parser.add_argument("username")
    parser.add_argument("key")
    parser.add_argument("key_type")
    args = parser.parse_args(argv)
    header = f"{KEY_HEADER}: {args.username} {args.key_type} {args.key}"
    os.execvp("curl", ["curl", "--config", args.credential_file, "--header", header])  # noqa: S606


def _refuse(message: str) -> NoReturn:
    sys.stdout.flush()
    print(message, file=sys.stderr)
    sys.exit(1)


def read_site(config_path: str) -> tuple[str, str]:
    """The git service's origin and the site's network key from the config
    (read as plain INI: these two keys are all this program needs)."""
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(config_path, encoding="utf-8") as file:
            parser.read_file(file)
        return parser["git"]["origin"], parser["srht"]["network-key"]
    except (OSError, configparser.Error, KeyError) as error:
        _refuse(f"srht-git-shell: cannot read the git service's origin from {config_path}: {error}")


def _post(origin: str, path: str, token: str, body: bytes) -> tuple[int, bytes]:
    """POST ``body`` (JSON) to the git service: its status and answer.

    One HTTP/1.0 request on a plain socket for an ``http://`` origin (what
    the service listens on); ``urllib`` only for another scheme.

    :raises OSError: when it cannot be reached.
    """
    import urllib.parse

    url = urllib.parse.urlsplit(origin)
    if url.scheme != "http" or not url.hostname:
        return _post_urllib(origin, path, token, body)
    import socket

    request = (
        f"POST {path} HTTP/1.0\r\nHost: {url.netloc}\r\n{HEADER}: {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection((url.hostname, url.port or 80), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, answer = b"".join(chunks).partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        raise OSError(f"{origin} answered no HTTP") from None
    return status, answer


def _post_urllib(origin: str, path: str, token: str, body: bytes) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(  # noqa: S310 - origin is a URL from the config
        origin.rstrip("/") + path,
        data=body,
        method="POST",
        headers={HEADER: token, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), b""
    except (urllib.error.URLError, ValueError) as error:
        raise OSError(f"cannot reach {origin}: {getattr(error, 'reason', error)}") from error


def shell_main(argv: list[str] | None = None) -> NoReturn:
    """``srht-git-shell``: the forced command of every SSH login.

    Arguments: ``--config PATH FINGERPRINT``."""
    import json

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] != "--config":
        _refuse("usage: srht-git-shell --config PATH FINGERPRINT")
    origin, network_key = read_site(args[1])
    body = {"fingerprint": args[2], "command": os.environ.get("SSH_ORIGINAL_COMMAND", "")}
    try:
        token = credential(network_key, SHELL)
        status, answer = _post(origin, "/internal/ssh/access", token, json.dumps(body).encode())
    except OSError as error:
        _refuse(f"The git service cannot be reached just now; try again later. ({error})")
    if status == 404:
        _refuse("Your key is no longer registered here; add it again on your account's keys page.")
    try:
        found: Any = json.loads(answer) if status == 200 else None
    except ValueError:
        found = None
    if not isinstance(found, dict):
        _refuse(f"The git service cannot be reached just now; try again later. ({status})")
    if found.get("notice"):
        print(found["notice"], file=sys.stderr)
    if found.get("refused"):
        _refuse(str(found["refused"]))
    env = {**os.environ, **{str(k): str(v) for k, v in found["env"].items()}}
    sys.stdout.flush()
    sys.stderr.flush()
    program = str(found["program"])
    os.execvpe("git", ["git", program, str(found["path"])], env)  # noqa: S606


if __name__ == "__main__":
    shell_main()
