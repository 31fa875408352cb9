"""sshd's two programs for git over SSH, kept small: besides the standard
library they load only the git package's ``__init__`` (its hooks and the
core's lazy facade: pluggy, no Flask, no SQLAlchemy), so each SSH operation
starts three short interpreters instead of three copies of the whole stack.
They live in the git package, as every piece of a service does.

``srht-git-keys`` is sshd's AuthorizedKeysCommand. It runs as an account of
its own that reads nothing of the site but its lookup credential (a file
only that account reads, which the deploy writes: never an argument, which
every local user could see in ``ps``); its arguments carry the git service's
origin. It asks the running git service whether a key is registered, and
prints the key with a forced command, ``srht-git-shell``. It writes nothing,
and the credential allows nothing but that lookup.

``srht-git-shell`` is that forced command, run as the git account after
sshd has checked the key. It reads the config, asks the git service whether
the key's owner may run what the client asked (``SSH_ORIGINAL_COMMAND``)
and replaces itself with ``git upload-pack``, ``receive-pack`` or
``upload-archive``. The service does every check (and mirrors the user,
now that the key has authenticated); this program only carries the answer.

The git service answers both on ``/internal/ssh/``, only to the internal
networks and only with the credential (:func:`credential`) derived from the
site's network key for each purpose.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import configparser
import hashlib
import hmac
import json
import os
import shlex
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "HEADER",
    "KEYS",
    "SHELL",
    "authorized_keys_line",
    "credential",
    "fingerprint",
    "keys_main",
    "shell_main",
]

#: The header that carries the credential.
HEADER = "X-Srht-Git-Ssh"
#: What each credential allows: looking keys up, and asking for access.
KEYS = "ssh-keys"
SHELL = "ssh-shell"
#: How long either program waits for the git service.
TIMEOUT = 20


def credential(network_key: str, purpose: str) -> str:
    """The credential for ``purpose`` (:data:`KEYS` or :data:`SHELL`),
    derived from the site's network key: it proves the caller was given it
    by someone who holds that key, and allows nothing else."""
    return hmac.new(
        network_key.encode(), f"srht git {purpose}".encode(), hashlib.sha256
    ).hexdigest()


def fingerprint(blob: bytes) -> str:
    """A key's SHA-256 fingerprint, as ``ssh-keygen -l`` and meta write it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def authorized_keys_line(key: str, key_fingerprint: str, config_path: str, program: str) -> str:
    """An ``authorized_keys`` line for ``key`` that allows nothing but
    ``srht-git-shell`` for the key with ``key_fingerprint``."""
    command = shlex.join([program, "--config", config_path, key_fingerprint])
    quoted = command.replace("\\", "\\\\").replace('"', '\\"')
    return f'restrict,command="{quoted}" {key}'


def _ask(origin: str, path: str, token: str, body: dict[str, Any] | None = None) -> Any:
    """JSON from the git service (``None`` for 404).

    :raises OSError: when it cannot be reached or answers an error.
    """
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - origin is an http(s) URL from the config
        origin.rstrip("/") + path,
        data=data,
        method="POST" if data is not None else "GET",
        headers={HEADER: token, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise OSError(f"{origin} answered {error.code}") from error
    except (urllib.error.URLError, ValueError) as error:
        raise OSError(f"cannot reach {origin}: {getattr(error, 'reason', error)}") from error


def _shell_program() -> str:
    """``srht-git-shell`` beside this program (both are installed in the
    same folder)."""
    return str(Path(sys.argv[0]).resolve().parent / "srht-git-shell")


def keys_main(argv: list[str] | None = None) -> int:
    """``srht-git-keys``: sshd's AuthorizedKeysCommand."""
    parser = argparse.ArgumentParser(
        prog="srht-git-keys",
        description="sshd's AuthorizedKeysCommand for srht's git account: print the "
        "authorized key line for KEY (base64, sshd's %%k) if a user registered it.",
    )
    parser.add_argument("--origin", required=True, help="the git service's origin")
    parser.add_argument(
        "--credential-file",
        required=True,
        help="the file holding the lookup credential (readable by this account alone)",
    )
    parser.add_argument("--config", required=True, help="the config the forced command reads")
    parser.add_argument("--ssh-user", required=True, help="the git account")
    parser.add_argument("--shell", default=None, help="the forced command's program")
    parser.add_argument("username")
    parser.add_argument("key")
    parser.add_argument("key_type", nargs="?")
    args = parser.parse_args(argv)
    if args.username != args.ssh_user:
        return 0
    try:
        blob = base64.b64decode(args.key, validate=True)
    except (binascii.Error, ValueError):
        return 0
    wanted = fingerprint(blob)
    try:
        with open(args.credential_file, encoding="utf-8") as file:
            lookup = file.read().strip()
    except OSError as error:
        print(f"srht-git-keys: cannot read the lookup credential: {error}", file=sys.stderr)
        return 1
    try:
        found = _ask(
            args.origin,
            "/internal/ssh/key?" + urllib.parse.urlencode({"fingerprint": wanted}),
            lookup,
        )
    except OSError as error:
        print(f"srht-git-keys: cannot ask the git service: {error}", file=sys.stderr)
        return 1
    if not found:
        return 0
    stored_type, _, stored = str(found["key"]).partition(" ")
    if not stored or stored.split()[0] != args.key:
        return 0
    if args.key_type and stored_type != args.key_type:
        return 0
    line = authorized_keys_line(
        f"{stored_type} {args.key}", wanted, args.config, args.shell or _shell_program()
    )
    print(line)
    return 0


def _refuse(message: str) -> NoReturn:
    sys.stdout.flush()
    print(message, file=sys.stderr)
    sys.exit(1)


def read_site(config_path: str) -> tuple[str, str]:
    """The git service's origin and the site's network key from the config
    (read as plain INI: these two keys are all this program needs)."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(config_path, encoding="utf-8") as file:
            parser.read_file(file)
        return parser["git"]["origin"], parser["srht"]["network-key"]
    except (OSError, configparser.Error, KeyError) as error:
        _refuse(f"srht-git-shell: cannot read the git service's origin from {config_path}: {error}")


def shell_main(argv: list[str] | None = None) -> NoReturn:
    """``srht-git-shell``: the forced command of every SSH login."""
    parser = argparse.ArgumentParser(
        prog="srht-git-shell",
        description="The forced command of srht's git account: run the git command the "
        "client asked for, if the key's owner may, and nothing else.",
    )
    parser.add_argument("--config", required=True)
    parser.add_argument("fingerprint")
    args = parser.parse_args(argv)
    origin, network_key = read_site(args.config)
    try:
        answer = _ask(
            origin,
            "/internal/ssh/access",
            credential(network_key, SHELL),
            {
                "fingerprint": args.fingerprint,
                "command": os.environ.get("SSH_ORIGINAL_COMMAND", ""),
            },
        )
    except OSError as error:
        _refuse(f"The git service cannot be reached just now; try again later. ({error})")
    if not isinstance(answer, dict):
        _refuse("Your key is no longer registered here; add it again on your account's keys page.")
    if answer.get("notice"):
        print(answer["notice"], file=sys.stderr)
    if answer.get("refused"):
        _refuse(str(answer["refused"]))
    env = {**os.environ, **{str(k): str(v) for k, v in answer["env"].items()}}
    sys.stdout.flush()
    sys.stderr.flush()
    program = str(answer["program"])
    os.execvpe("git", ["git", program, str(answer["path"])], env)  # noqa: S606
