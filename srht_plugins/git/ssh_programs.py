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
one plain HTTP request (:func:`access_request`, :func:`access_answer`: no
``json``, ``re``, ``socket`` nor ``configparser``, whose imports cost three
times the interpreter's own start), and replaces itself with ``git upload-pack``,
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
    "access_answer",
    "access_request",
    "authorized_keys_line",
    "credential",
    "fingerprint",
    "keys_main",
    "read_answer",
    "read_site",
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


def access_request(key_fingerprint: str, command: bytes) -> bytes:
    """The body of the forced command's request: the key's fingerprint and
    what the client asked to run, NUL-separated (an environment variable
    holds no NUL)."""
    return key_fingerprint.encode() + b"\0" + command


def access_answer(answer: dict[str, Any]) -> bytes:
    """The git service's answer to the forced command, in a form it reads
    without ``json`` (whose ``re`` costs more than the rest of its start):
    fields separated by NUL, ``refused``, ``notice``, ``program``,
    ``path``, then the environment's names and values. No field holds a NUL
    (the answer comes from refusals, repository paths and environment
    values)."""
    fields = [
        answer.get("refused") or "",
        answer.get("notice") or "",
        answer.get("program") or "",
        answer.get("path") or "",
    ]
    for name, value in (answer.get("env") or {}).items():
        fields += [name, value]
    return "\0".join(str(field) for field in fields).encode()


def read_answer(data: bytes) -> dict[str, Any]:
    """:func:`access_answer`'s dict back (``refused`` and ``notice`` only
    when given)."""
    fields = data.decode(errors="replace").split("\0")
    if len(fields) < 4 or len(fields) % 2:
        raise ValueError("not an answer of the git service")
    answer: dict[str, Any] = {"program": fields[2], "path": fields[3]}
    answer["env"] = dict(zip(fields[4::2], fields[5::2], strict=True))
    if fields[0]:
        answer["refused"] = fields[0]
    if fields[1]:
        answer["notice"] = fields[1]
    return answer


def _refuse(message: str) -> NoReturn:
    sys.stdout.flush()
    print(message, file=sys.stderr)
    sys.exit(1)


def _ini_values(text: str, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The values of ``(section, key)`` in an INI ``text``, read as
    ``configparser`` reads single-line values without interpolation (``=``
    or ``:``, ``#`` and ``;`` comments), without its import of ``re``."""
    found = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;" or raw[0].isspace():
            continue
        if line[0] == "[" and line[-1] == "]":
            section = line[1:-1]
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        where = (section, line[:cut].strip().lower())
        if cut > 0 and where in wanted:
            found[where] = line[cut + 1 :].strip()
    return found


def read_site(config_path: str) -> tuple[str, str]:
    """The git service's origin and the site's network key from the config
    (these two keys are all this program needs)."""
    origin, network_key = ("git", "origin"), ("srht", "network-key")
    try:
        with open(config_path, encoding="utf-8") as file:
            values = _ini_values(file.read(), {origin, network_key})
    except (OSError, ValueError) as error:
        _refuse(f"srht-git-shell: cannot read the git service's origin from {config_path}: {error}")
    if not values.get(origin) or not values.get(network_key):
        missing = "[git] origin" if not values.get(origin) else "[srht] network-key"
        _refuse(f"srht-git-shell: {config_path} has no {missing}")
    return values[origin], values[network_key]


def _post(origin: str, path: str, token: str, body: bytes) -> tuple[int, bytes]:
    """POST ``body`` to the git service: its status and answer.

    One HTTP/1.0 request over ``_socket`` (``socket`` builds enums that
    cost more than the rest of this program's start) for an ``http://``
    origin, what the service listens on; ``urllib`` for another scheme.

    :raises OSError: when it cannot be reached.
    """
    scheme, _, rest = origin.partition("://")
    netloc = rest.split("/", 1)[0]
    host, colon, port = netloc.rpartition(":")
    if not colon or not port.isdigit():
        host, port = netloc, "80"
    if scheme != "http" or not host or not host.isascii():
        return _post_urllib(origin, path, token, body)
    import _socket

    request = (
        f"POST {path} HTTP/1.0\r\nHost: {netloc}\r\n{HEADER}: {token}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    # The host as bytes: as a str, getaddrinfo imports the idna codec (and re).
    address = _socket.getaddrinfo(host.strip("[]").encode(), int(port), 0, _socket.SOCK_STREAM)[0]
    sock = _socket.socket(address[0], address[1], address[2])
    try:
        sock.settimeout(TIMEOUT)
        sock.connect(address[4])
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    finally:
        sock.close()
    head, _, answer = b"".join(chunks).partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1:2]
    if not status or not status[0].isdigit():
        raise OSError(f"{origin} answered no HTTP")
    return int(status[0]), answer


def _post_urllib(origin: str, path: str, token: str, body: bytes) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(  # noqa: S310 - origin is a URL from the config
        origin.rstrip("/") + path,
        data=body,
        method="POST",
        headers={HEADER: token, "Content-Type": "application/octet-stream"},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), b""
    except (urllib.error.URLError, ValueError) as error:
        raise OSError(f"cannot reach {origin}: {getattr(error, 'reason', error)}") from error


SHELL_HELP = """\
usage: srht-git-shell --config PATH FINGERPRINT

The forced command of every SSH login to the git service: sshd runs it
with the key's FINGERPRINT (the git service writes it into the key's
authorized_keys line). It asks the service whether that key's user may run
SSH_ORIGINAL_COMMAND (git upload-pack, receive-pack or upload-archive on a
repository), then hands over to git; anything else is refused, saying why.

options:
  --config PATH  the site's config (the git service's origin and key)
  -h, --help     show this message and exit
  --version      show the version and exit"""


def shell_main(argv: list[str] | None = None) -> NoReturn:
    """``srht-git-shell``: the forced command of every SSH login.

    Arguments: ``--config PATH FINGERPRINT``."""
    args = sys.argv[1:] if argv is None else argv
    if args in (["--help"], ["-h"]):
        print(SHELL_HELP)
        sys.exit(0)
    if args == ["--version"]:
        from importlib.metadata import version  # only here: the login path stays small

        print(f"srht-git-shell {version('srht')}")
        sys.exit(0)
    if len(args) != 3 or args[0] != "--config":
        _refuse("usage: srht-git-shell --config PATH FINGERPRINT")
    origin, network_key = read_site(args[1])
    body = access_request(args[2], os.environb.get(b"SSH_ORIGINAL_COMMAND", b""))
    try:
        status, data = _post(origin, "/internal/ssh/access", credential(network_key, SHELL), body)
    except OSError as error:
        _refuse(f"The git service cannot be reached just now; try again later. ({error})")
    if status == 404:
        _refuse("Your key is no longer registered here; add it again on your account's keys page.")
    try:
        answer = read_answer(data) if status == 200 else None
    except ValueError:
        answer = None
    if answer is None:
        _refuse(f"The git service cannot be reached just now; try again later. ({status})")
    if answer.get("notice"):
        print(answer["notice"], file=sys.stderr)
    if answer.get("refused"):
        _refuse(str(answer["refused"]))
    env = {**os.environ, **answer["env"]}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe("git", ["git", answer["program"], answer["path"]], env)  # noqa: S606


if __name__ == "__main__":
    shell_main()
