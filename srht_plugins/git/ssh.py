"""Clone and push over SSH (``git@git.example.org:~alice/repo``).

Everyone logs in as one system account, ``[git] ssh-user``. sshd asks
``srht git keys USER KEY TYPE`` (its AuthorizedKeysCommand) which keys may
log in: the command looks the key up at meta by its fingerprint and answers
with the key, restricted, and a forced command, ``srht git shell USER-ID``.
That shell reads what the client asked to run (``SSH_ORIGINAL_COMMAND``),
checks the user's access to the repository exactly as HTTP does, and
replaces itself with ``git upload-pack``, ``receive-pack`` or
``upload-archive``; it runs nothing else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlencode

import click

from srht_core import current_service, db_session, internal_request, mirror_user

from .access import access_of, find_repository
from .cli import without_tracebacks
from .models import READ, WRITE, User
from .post_receive import git_environment
from .repos import clone_urls, repository_path

__all__ = ["COMMANDS", "authorized_keys_line", "parse_command", "sshd_snippet"]

#: What a client may run, and the access each needs.
GIT_COMMANDS = {"git-upload-pack": READ, "git-upload-archive": READ, "git-receive-pack": WRITE}
_REPO_PATH = re.compile(
    r"^/?~?(?P<owner>[A-Za-z0-9_][A-Za-z0-9_.-]*)/"
    r"(?P<name>[A-Za-z0-9_][A-Za-z0-9._-]*?)(?:\.git)?/?$"
)


def sshd_snippet(
    ssh_user: str, program: str, config_path: str | None = None, keys_user: str | None = None
) -> str:
    """The sshd configuration for the git account: keys from ``srht git
    keys``, no passwords, no terminal, no forwarding, and the protocol
    version the client asks for passed on to git.

    :param program: the absolute path of ``srht`` (sshd insists on one
        owned by root, in folders only root may write to).
    :param config_path: the config, when not in a default location.
    :param keys_user: the account sshd runs the key command as (it must
        read the config); by default the git account itself.
    """
    command = shlex.quote(program)
    if config_path:
        command += " --config " + shlex.quote(config_path)
    return (
        "# srht git: sshd asks srht which keys may log in to this account; each key\n"
        "# comes with a forced command, srht's git shell, which runs git and nothing else.\n"
        f"Match User {ssh_user}\n"
        "    AuthorizedKeysFile none\n"
        f"    AuthorizedKeysCommand {command} git keys %u %k %t\n"
        f"    AuthorizedKeysCommandUser {keys_user or ssh_user}\n"
        "    PasswordAuthentication no\n"
        "    KbdInteractiveAuthentication no\n"
        "    PermitTTY no\n"
        "    DisableForwarding yes\n"
        "    AcceptEnv GIT_PROTOCOL\n"
    )


def default_program() -> str:
    """The ``srht`` program beside the interpreter running this code."""
    return str(Path(sys.executable).parent / "srht")


def fingerprint(blob: bytes) -> str:
    """A key's SHA-256 fingerprint, as ``ssh-keygen -l`` and meta write it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def authorized_keys_line(key: str, user_id: int, config_path: str) -> str:
    """An ``authorized_keys`` line for ``key`` that allows nothing but
    ``srht git shell`` for ``user_id``."""
    command = (
        f"{shlex.quote(sys.executable)} -m srht_core.cli --config "
        f"{shlex.quote(config_path)} git shell {user_id}"
    )
    quoted = command.replace("\\", "\\\\").replace('"', '\\"')
    return f'restrict,command="{quoted}" {key}'


@click.command("keys")
@click.argument("username")
@click.argument("key")
@click.argument("key_type", required=False)
@without_tracebacks
def keys_command(username: str, key: str, key_type: str | None) -> None:
    """sshd's AuthorizedKeysCommand: print the authorized key line for KEY
    (base64, as sshd's %k) if a user registered it at meta."""
    state = current_service()
    if username != state.section["ssh-user"]:
        return
    try:
        blob = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        return
    try:
        found = internal_request(
            "meta", "/internal/ssh-keys?" + urlencode({"fingerprint": fingerprint(blob)})
        )
    except OSError as error:
        click.echo(f"srht git keys: cannot ask meta: {error}", err=True)
        sys.exit(1)
    if not found:
        return
    stored_type, _, stored = str(found["key"]).partition(" ")
    if stored.split()[0] != key or (key_type and stored_type != key_type):
        return
    user = mirror_user(found["user"])
    db_session.commit()
    config_path = str(Path(state.config.path).resolve())
    click.echo(authorized_keys_line(f"{stored_type} {key}", user.id, config_path))


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


def _refuse(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(1)


@click.command("shell")
@click.argument("user_id", type=int)
@without_tracebacks
def shell_command(user_id: int) -> None:
    """The forced command of every SSH login: run the git command the
    client asked for, if the user may, and nothing else."""
    user: Any = db_session.get(User, user_id)
    if user is None:
        _refuse("Your account is not known here; sign in on the web once and try again.")
    command = os.environ.get("SSH_ORIGINAL_COMMAND", "")
    if not command.strip():
        _, example = clone_urls(user.username, "REPO")
        _refuse(
            f"Hi {user.canonical_name}! You have authenticated, but there is no shell "
            f"here: use git with a URL like {example}."
        )
    try:
        asked = parse_command(command)
    except Refused as refusal:
        _refuse(str(refusal))
    if user.is_suspended:
        notice = user.suspension_notice
        _refuse("Your account is suspended" + (f": {notice}" if notice else "."))
    found = find_repository(asked.owner, asked.name)
    access = access_of(found.repository, user) if found is not None else None
    if found is None or access is None:
        _refuse(f"Repository ~{asked.owner}/{asked.name} not found, or you have no access to it.")
    repository = found.repository
    if GIT_COMMANDS[asked.program] == WRITE and access != WRITE:
        _refuse(
            f"You may read ~{asked.owner}/{asked.name} but not push to it; ask "
            f"~{repository.owner.username} for write access."
        )
    if found.moved:
        _, ssh_url = clone_urls(repository.owner.username, repository.name)
        click.echo(
            f"~{asked.owner}/{asked.name} is now ~{repository.owner.username}/"
            f"{repository.name}; update your remote:\n"
            f"  git remote set-url origin {ssh_url}",
            err=True,
        )
    env = {**os.environ, **git_environment(repository, user)}
    path = str(repository_path(repository))
    db_session.commit()
    current_service().db.dispose()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe("git", ["git", asked.program.removeprefix("git-"), path], env)  # noqa: S606


COMMANDS = [keys_command, shell_command]
