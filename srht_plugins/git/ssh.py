"""Clone and push over SSH (``git@git.example.org:~alice/repo``).

Everyone logs in as one system account, ``[git] ssh-user``. sshd asks
``srht-git-keys`` (its AuthorizedKeysCommand, run as an account of its own)
which keys may log in, and every login runs the forced command
``srht-git-shell``: both are small programs of ``srht_plugins.git.ssh_programs``
that import only the standard library and ask this service, which does
the work here, on ``/internal/ssh/``:

- ``GET /internal/ssh/key?fingerprint=`` answers the key registered at
  meta with that fingerprint (404 if none). It writes nothing: sshd asks
  before the client has proved it holds the key.
- ``POST /internal/ssh/access`` (``{"fingerprint", "command"}``) runs after
  sshd has checked the key: it mirrors the key's owner, checks what the
  client asked to run (``SSH_ORIGINAL_COMMAND``) and their access to the
  repository exactly as HTTP does, and answers the git program, the
  repository's folder and the environment to run it in, or why not.

Each takes its own credential derived from the network key
(:func:`srht_plugins.git.ssh_programs.credential`), and answers only the internal
networks.
"""

from __future__ import annotations

import hmac
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, abort, request

from srht_core import (
    SecretFile,
    current_service,
    db_session,
    from_internal_network,
    internal_request,
    json_object,
    mirror_user,
    string_field,
)

from .access import access_of, find_repository
from .models import READ, WRITE
from .post_receive import git_environment
from .repos import clone_urls, repository_path
from .ssh_programs import HEADER, KEYS, SHELL, credential, fingerprint

__all__ = [
    "KEYS_SECRET",
    "KEYS_USER",
    "bp",
    "fingerprint",
    "keys_program",
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


def keys_program(srht: str) -> str:
    """``srht-git-keys``, installed beside the ``srht`` program ``srht``
    (which may be :data:`HostNeeds.SRHT_ON_HOST`, replaced by the deploy)."""
    return srht + "-git-keys"


def keys_secret(config: Any) -> SecretFile:
    """The lookup credential of ``srht-git-keys``, as the file the deploy
    writes for :data:`KEYS_USER` alone."""
    return SecretFile(
        KEYS_SECRET, KEYS_USER, credential(config["srht"]["network-key"], KEYS) + "\n"
    )


def sshd_snippet(
    config: Any,
    program: str,
    config_path: str | None = None,
    keys_user: str | None = None,
    credential_file: str | None = None,
) -> str:
    """The sshd configuration for the git account: keys from
    ``srht-git-keys``, no passwords, no terminal, no forwarding, and the
    protocol version the client asks for passed on to git.

    :param config: the site's config (the git service's origin, the ssh
        account and the network key the credential derives from).
    :param program: the absolute path of ``srht``; ``srht-git-keys`` is
        beside it (sshd insists on one owned by root, in folders only root
        may write to).
    :param config_path: the config the forced command reads (default
        ``/etc/srht/config.ini``).
    :param keys_user: the account sshd runs the key command as; it needs to
        read nothing of the site. By default ``srht-git-keys``, which the
        deploy creates.
    :param credential_file: where that account reads its lookup credential
        (default: where the deploy writes :func:`keys_secret`).
    """
    ssh_user = config["git"]["ssh-user"]
    command = shlex.join(
        [
            keys_program(program),
            "--origin",
            config["git"]["origin"],
            "--credential-file",
            credential_file or keys_secret(config).path,
            "--config",
            config_path or "/etc/srht/config.ini",
            "--ssh-user",
            ssh_user,
        ]
    )
    return (
        "# srht git: sshd asks srht which keys may log in to this account; each key\n"
        "# comes with a forced command, srht-git-shell, which runs git and nothing else.\n"
        f"Match User {ssh_user}\n"
        "    AuthorizedKeysFile none\n"
        f"    AuthorizedKeysCommand {command} %u %k %t\n"
        f"    AuthorizedKeysCommandUser {keys_user or KEYS_USER}\n"
        "    PasswordAuthentication no\n"
        "    KbdInteractiveAuthentication no\n"
        "    PermitTTY no\n"
        "    DisableForwarding yes\n"
        "    AcceptEnv GIT_PROTOCOL\n"
    )


#: The account sshd runs ``srht-git-keys`` as: it can read nothing of the
#: site but its credential, and write nothing (the deploy creates it).
KEYS_USER = "srht-git-keys"
#: The name of its credential's file (:class:`srht_core.SecretFile`).
KEYS_SECRET = "git-ssh-keys"  # noqa: S105 - a file name, not the secret


def default_program() -> str:
    """The ``srht`` program beside the interpreter running this code."""
    return str(Path(sys.executable).parent / "srht")


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
    """The key with ``?fingerprint=``, for ``srht-git-keys``."""
    _credential_is(KEYS)
    found = _registered_key(request.args.get("fingerprint", ""))
    if not found:
        abort(404)
    return {"key": found["key"]}


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
    """For ``srht-git-shell``: the git command to run for the key's owner,
    or why not (``{"refused": ...}``)."""
    _credential_is(SHELL)
    body = json_object()
    found = _registered_key(string_field(body, "fingerprint", required=True) or "")
    if not found:
        abort(404)
    # sshd has checked the key by now: the first write of the login.
    user: Any = mirror_user(found["user"])
    db_session.commit()
    return _access(user, string_field(body, "command") or "")


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
