"""The post-receive hook: how git is told to call srht after a push, and
what srht does then.

Every ``git upload-pack`` and ``receive-pack`` (over HTTP or SSH) runs in
:func:`git_environment`: ``core.hooksPath`` points at one folder of hooks
shared by every repository, and the environment says which repository and
pusher it is. After a push git runs ``srht git hook post-receive`` there,
which records the push, queues a signed ``repo:push`` webhook for each of
the repository's webhook URLs (:mod:`.events`), points HEAD at a branch
that exists when it pointed nowhere, and on the first push tells the
pusher where the repository is.

What the hook prints, git shows the pusher as ``remote:`` lines.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from pathlib import Path

import click
import sqlalchemy as sa
from sqlalchemy.orm import joinedload

from srht_core import current_service, db_session, utcnow

from .cli import without_tracebacks
from .events import RefUpdate, push_payload, send_push
from .models import Repository, User
from .repos import open_repository, repos_dir

__all__ = ["git_environment", "hook_command", "parse_updates", "post_receive"]

HOOKS_FOLDER = ".srht-hooks"

_hooks_written: set[tuple[str, str]] = set()


def hook_script() -> str:
    """The hook git runs after every push: ``srht git hook post-receive``
    with the interpreter running this service."""
    return (
        "#!/bin/sh\n"
        "# Written by srht's git service: tells it about every push.\n"
        f"exec {shlex.quote(sys.executable)} -m srht_core.cli git hook post-receive\n"
    )


def hooks_dir() -> Path:
    """The folder of the hooks every repository uses (``core.hooksPath``),
    written when missing or out of date."""
    folder = repos_dir() / HOOKS_FOLDER
    script = hook_script()
    if (str(folder), script) in _hooks_written:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "post-receive"
    try:
        current = target.read_text()
    except OSError:
        current = None
    if current != script:
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=".post-receive-")
        with os.fdopen(fd, "w") as out:
            out.write(script)
        os.chmod(temporary, 0o755)  # noqa: S103 - git runs it as whoever pushes
        os.replace(temporary, target)
    _hooks_written.add((str(folder), script))
    return folder


def git_environment(repository: Repository, pusher: User | None) -> dict[str, str]:
    """The environment ``git upload-pack``/``receive-pack`` run in: where
    the hooks are, and what they need to know (config, repository, pusher)."""
    state = current_service()
    settings = {
        "core.hooksPath": str(hooks_dir()),
        "uploadpack.allowFilter": "true",
        "receive.advertisePushOptions": "false",
        # The repository belongs to the service's user, and an SSH
        # push runs as [git] ssh-user: git would refuse it as of
        # "dubious ownership". Only srht writes these repositories'
        # config, which is what that check protects.
        "safe.directory": "*",
    }
    env = {
        "SRHT_CONFIG": str(Path(state.config.path).resolve()),
        "SRHT_GIT_REPOSITORY": str(repository.id),
        "SRHT_GIT_PUSHER": str(pusher.id) if pusher is not None else "",
        "GIT_CONFIG_COUNT": str(len(settings)),
    }
    for index, (key, value) in enumerate(settings.items()):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def parse_updates(lines: list[str]) -> list[RefUpdate]:
    """The ``old new ref`` lines git gives a post-receive hook."""
    updates = []
    for line in lines:
        parts = line.split()
        if len(parts) != 3:
            continue
        old, new, name = parts
        updates.append(
            RefUpdate(
                name, None if old.strip("0") == "" else old, None if new.strip("0") == "" else new
            )
        )
    return updates


def _fix_head(repository: Repository, updates: list[RefUpdate]) -> str | None:
    """Point HEAD at a branch that exists, if it points nowhere; the branch."""
    git = open_repository(repository)
    branches = git.branches()
    head = git.head_branch()
    if not branches or head in branches:
        return None
    pushed = [
        u.name.removeprefix("refs/heads/")
        for u in updates
        if u.new is not None and u.name.startswith("refs/heads/")
    ]
    candidates = [b for b in pushed if b in branches] or sorted(branches)
    preferred = [b for b in ("main", "master") if b in candidates]
    branch = (preferred or candidates)[0]
    git.set_head(branch)
    return branch


def post_receive(
    repository: Repository, pusher: User | None, updates: list[RefUpdate]
) -> list[str]:
    """Record a push and queue its webhooks, committed; the lines to show
    the pusher."""
    first = repository.pushed_at is None
    repository.pushed_at = repository.updated = utcnow()
    payload = push_payload(repository, pusher, updates)
    send_push(repository, payload)
    db_session.commit()
    lines = []
    branch = _fix_head(repository, updates)
    if branch is not None:
        lines.append(f"The default branch is now {branch}.")
    if first:
        lines += ["", "Your repository is at:", f"  {payload['repository']['url']}", ""]
    return lines


@click.command("hook", hidden=True)
@click.argument("name", type=click.Choice(["post-receive"]))
@without_tracebacks
def hook_command(name: str) -> None:
    """Run by git after a push (``core.hooksPath``); not for people."""
    raw_id = os.environ.get("SRHT_GIT_REPOSITORY", "")
    if not raw_id.isdigit():
        click.echo("srht git hook: SRHT_GIT_REPOSITORY is not set; not run by srht?", err=True)
        sys.exit(1)
    repository = db_session.scalar(
        sa.select(Repository)
        .options(joinedload(Repository.owner))
        .where(Repository.id == int(raw_id))
    )
    if repository is None:
        return
    pusher_id = os.environ.get("SRHT_GIT_PUSHER", "")
    pusher = db_session.get(User, int(pusher_id)) if pusher_id.isdigit() else None
    updates = parse_updates(sys.stdin.read().splitlines())
    for line in post_receive(repository, pusher, updates):
        click.echo(line)
