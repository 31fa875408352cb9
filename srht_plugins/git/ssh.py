"""Clone and push over SSH (``git@git.example.org:~alice/repo``).

Everyone logs in as one system account, ``[git] ssh-user``. sshd looks
keys up with ``curl`` (its AuthorizedKeysCommand, run as an account of its
own, with the curl config :func:`keys_secret` the deploy writes for that
account alone), and every login runs the forced command this service puts
in the key's line: :mod:`srht_plugins.git.ssh_programs` as a script of this
service's interpreter with ``-I -S``, which imports a few standard modules
and nothing of srht. Both ask this service, which does the work here, on
``/internal/ssh/``:

- ``GET /internal/ssh/key`` with the header ``X-Srht-Git-Key: account
  key-type key`` (sshd's ``%u %t %k``) answers the ``authorized_keys`` line
  of the key registered at meta (with the forced command), or nothing.
  It writes nothing: sshd asks before the client has proved it holds the
  key. It keeps nothing either: every lookup asks meta, so a key removed
  there stops working at the next login.
- ``POST /internal/ssh/access`` (the key's fingerprint and the command) runs after
  sshd has checked the key: it mirrors the key's owner, checks what the
  client asked to run (``SSH_ORIGINAL_COMMAND``) and their access to the
  repository exactly as HTTP does, and answers the git program, the
  repository's folder and the environment to run it in, or why not.

Each takes its own credential derived from the network key
(:func:`srht_plugins.git.ssh_programs.credential`), and answers only the internal
networks.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, abort, request

from srht_core import (
    SecretFile,
    current_service,
    db_session,
    from_internal_network,
    internal_request,
    mirror_user,
)

from . import ssh_programs
from .access import access_of, find_repository
from .models import READ, WRITE
from .post_receive import git_environment
from .repos import clone_urls, repository_path
from .ssh_programs import (
    HEADER,
    KEY_HEADER,
    KEYS,
    SHELL,
    access_answer,
    authorized_keys_line,
    credential,
    fingerprint,
)

__all__ = [
    "KEYS_SECRET",
    "KEYS_USER",
    "bp",
    "fingerprint",
    "forced_command",
    "keys_secret",
    "parse_command",
    "sshd_snippet",
]

#: What a client may run, and the access each needs.
GIT_COMMANDS = {"git-upload-pack": READ, "git-upload-archive": READ, "git-receive-pack": WRITE}
_REPO_PATH = re.compile(
    r"^/?~?(?P<owner>[A-Za-z0-9_][A-Za-z0-9_.-]*)/"
    r"(?P<name>[A-Za-z0-9_][A-Za-z0-9._-]*?)(?:\.git)?/?$"
)

bp = Blueprint("git_ssh", __name__, url_prefix="/internal/ssh")


def keys_secret(config: Any) -> SecretFile:
    """The curl config of sshd's key lookup, as the file the deploy writes
    for :data:`KEYS_USER` alone: where to ask (the git service's origin)
    and the lookup credential, which must not be on a command line."""
    url = config["git"]["origin"].rstrip("/") + "/internal/ssh/key"
    token = credential(config["srht"]["network-key"], KEYS)
    text = (
        "# sshd's key lookup for srht's git account (curl --config): "
        "written by the deploy\n"
        f'url = "{url}"\n'
        f'header = "{HEADER}: {token}"\n'
        'proxy = ""\n'
        "silent\nshow-error\nfail\n"
        f"max-time = {ssh_programs.TIMEOUT}\n"
    )
    return SecretFile(KEYS_SECRET, KEYS_USER, text)


#: The key lookup's program (Debian's curl; the deploy installs it).
CURL = "/usr/bin/curl"


def sshd_snippet(
    config: Any,
    keys_user: str | None = None,
    credential_file: str | None = None,
    curl: str = CURL,
) -> str:
    """The sshd configuration for the git account: keys from the git
    service through ``curl``, no passwords, no terminal, no forwarding,
    and the protocol version the client asks for passed on to git.

    :param config: the site's config (the ssh account).
    :param keys_user: the account sshd runs the key lookup as; it needs to
        read nothing of the site. By default ``srht-git-keys``, which the
        deploy creates.
    :param credential_file: the lookup's curl config, readable by that
        account alone (default: where the deploy writes :func:`keys_secret`).
    :param curl: the curl program (sshd wants one owned by root, in folders
        only root may write to).
    """
    ssh_user = config["git"]["ssh-user"]
    # --disable first: no ~/.curlrc of the keys account.
    command = shlex.join(
        [curl, "--disable", "--config", credential_file or keys_secret(config).path, "--header"]
    )
    return (
        "# srht git: sshd asks srht which keys may log in to this account; each key\n"
        "# comes with a forced command, which runs git and nothing else.\n"
        f"Match User {ssh_user}\n"
        "    AuthorizedKeysFile none\n"
        f'    AuthorizedKeysCommand {command} "{KEY_HEADER}: %u %t %k"\n'
        f"    AuthorizedKeysCommandUser {keys_user or KEYS_USER}\n"
        "    PasswordAuthentication no\n"
        "    KbdInteractiveAuthentication no\n"
        "    PermitTTY no\n"
        "    DisableForwarding yes\n"
        "    AcceptEnv GIT_PROTOCOL\n"
    )


def forced_command(config_path: str, key_fingerprint: str) -> list[str]:
    """The forced command of a key: :mod:`~srht_plugins.git.ssh_programs`
    run as a script by this interpreter, isolated and without
    site-packages (``-I -S``: it needs only the standard library, and
    starts in a few milliseconds)."""
    return [
        sys.executable,
        "-I",
        "-S",
        str(Path(ssh_programs.__file__).resolve()),
        "--config",
        config_path,
        key_fingerprint,
    ]


#: The account sshd runs ``srht-git-keys`` as: it can read nothing of the
#: site but its credential, and write nothing (the deploy creates it).
KEYS_USER = "srht-git-keys"
#: The name of its credential's file (:class:`srht_core.SecretFile`).
KEYS_SECRET = "git-ssh-keys"  # noqa: S105 - a file name, not the secret


def _credential_is(purpose: str) -> None:
    """404 unless the request comes from an internal network with the
    credential for ``purpose``."""
    wanted = credential(current_service().config["srht"]["network-key"], purpose)
    given = request.headers.get(HEADER, "")
    if not from_internal_network() or not hmac.compare_digest(given.encode(), wanted.encode()):
        abort(404)


def _registered_key(fingerprint: str) -> Any:
    """meta's record of the key with ``fingerprint`` (key and owner), or ``None``."""
    return internal_request("meta", "/internal/ssh-keys?" + urlencode({"fingerprint": fingerprint}))


@bp.get("/key")
def registered_key() -> Any:
    """For sshd's key lookup: the ``authorized_keys`` line of the key in
    :data:`KEY_HEADER` (``account key-type key``), or nothing."""
    _credential_is(KEYS)
    state = current_service()
    line = _key_line(
        request.headers.get(KEY_HEADER, ""),
        state.config["git"]["ssh-user"],
        str(Path(state.config.path).resolve()),
    )
    return Response(line, mimetype="text/plain")


def _key_line(asked: str, ssh_user: str, config_path: str) -> str:
    words = asked.split()
    if len(words) != 3 or words[0] != ssh_user:
        return ""
    _, key_type, key = words
    try:
        wanted = fingerprint(base64.b64decode(key, validate=True))
    except (binascii.Error, ValueError):
        return ""
    found = _registered_key(wanted)
    if not found:
        return ""
    stored_type, _, stored = str(found["key"]).partition(" ")
    if not stored or stored.split()[0] != key or stored_type != key_type:
        return ""
    return authorized_keys_line(f"{key_type} {key}", forced_command(config_path, wanted)) + "\n"


@dataclass(frozen=True)
class Request:
    """A git command a client asked to run on a repository."""

    program: str
    owner: str
    name: str


class Refused(Exception):
    """What to tell a client whose command is not run."""


def parse_command(command: str) -> Request:
    """Check ``SSH_ORIGINAL_COMMAND``: one of :data:`GIT_COMMANDS` (or its
    ``git upload-pack`` spelling) and a repository path like ``~user/repo``.

    :raises Refused: saying what is allowed.
    """
    allowed = ", ".join(GIT_COMMANDS)
    try:
        words = shlex.split(command)
    except ValueError:
        words = []
    if len(words) == 3 and words[0] == "git":
        words = ["git-" + words[1], words[2]]
    if not words or words[0] not in GIT_COMMANDS:
        shown = command if len(command) <= 80 else command[:77] + "..."
        raise Refused(
            f"Refused to run {shown!r}: this account runs only {allowed} on a "
            "repository (~user/repo); there is no shell."
        )
    if len(words) != 2 or not (match := _REPO_PATH.match(words[1])):
        shown = " ".join(words[1:])
        raise Refused(f"Refused: {shown!r} is not a repository; give one as ~user/repo.")
    return Request(words[0], match.group("owner"), match.group("name"))


@bp.post("/access")
def ssh_access() -> Any:
    """For the forced command: the git command to run for the key's owner,
    or why not, as :func:`~srht_plugins.git.ssh_programs.access_answer`;
    the body is :func:`~srht_plugins.git.ssh_programs.access_request`."""
    _credential_is(SHELL)
    key_fingerprint, nul, command = request.get_data().partition(b"\0")
    if not nul:
        abort(400)
    found = _registered_key(key_fingerprint.decode(errors="replace"))
    if not found:
        abort(404)
    # sshd has checked the key by now: the first write of the login.
    user: Any = mirror_user(found["user"])
    db_session.commit()
    answer = _access(user, command.decode(errors="replace"))
    return Response(access_answer(answer), mimetype="application/octet-stream")


# Called by a program with a credential, never by a browser with a cookie.
ssh_access.srht_csrf_exempt = True  # type: ignore[attr-defined]


def _access(user: Any, command: str) -> dict[str, Any]:
    if not command.strip():
        _, example = clone_urls(user.username, "REPO")
        return {
            "refused": f"Hi {user.canonical_name}! You have authenticated, but there is no "
            f"shell here: use git with a URL like {example}."
        }
    try:
        asked = parse_command(command)
    except Refused as refusal:
        return {"refused": str(refusal)}
    if user.is_suspended:
        notice = user.suspension_notice
        return {"refused": "Your account is suspended" + (f": {notice}" if notice else ".")}
    found = find_repository(asked.owner, asked.name)
    access = access_of(found.repository, user) if found is not None else None
    if found is None or access is None:
        return {
            "refused": f"Repository ~{asked.owner}/{asked.name} not found, or you have no "
            "access to it."
        }
    repository = found.repository
    if GIT_COMMANDS[asked.program] == WRITE and access != WRITE:
        return {
            "refused": f"You may read ~{asked.owner}/{asked.name} but not push to it; ask "
            f"~{repository.owner.username} for write access."
        }
    notice = None
    if found.moved:
        _, ssh_url = clone_urls(repository.owner.username, repository.name)
        notice = (
            f"~{asked.owner}/{asked.name} is now ~{repository.owner.username}/"
            f"{repository.name}; update your remote:\n"
            f"  git remote set-url origin {ssh_url}"
        )
    return {
        "program": asked.program.removeprefix("git-"),
        "path": str(repository_path(repository)),
        "env": git_environment(repository, user),
        "notice": notice,
    }
