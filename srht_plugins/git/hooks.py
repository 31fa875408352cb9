"""What happens after a push: git runs ``srht git hook post-receive`` in
every repository (through ``core.hooksPath``, set by the HTTP and SSH
paths along with the repository and pusher), which records the push,
queues a signed ``repo:push`` webhook for each of the repository's webhook
URLs (old and new id of every ref) through the core's durable delivery,
points HEAD at a branch that exists when it pointed nowhere, and on the
first push tells the pusher where the repository is.

What the hook prints, git shows the pusher as ``remote:`` lines.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

import click
import sqlalchemy as sa
from sqlalchemy.orm import joinedload

from srht_core import EventType, db_session, send_webhook, utcnow

from .cli import without_tracebacks
from .models import Repository, User, Webhook
from .repos import clone_urls, open_repository

__all__ = ["EVENTS", "RefUpdate", "hook_command", "post_receive"]

EVENTS = [
    EventType(
        "repo:push",
        "Refs of a repository were updated by a push (each ref with its old and new commit id).",
    ),
]


@dataclass(frozen=True)
class RefUpdate:
    """One ref changed by a push; ``None`` for a ref created or deleted."""

    name: str
    old: str | None
    new: str | None


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


def subscription_key(repository: Repository) -> str:
    """The key a repository's deliveries are recorded (and listed) under."""
    return f"repository:{repository.id}"


def push_payload(repository: Repository, pusher: Any, updates: list[RefUpdate]) -> dict[str, Any]:
    http_url, ssh_url = clone_urls(repository.owner.username, repository.name)
    return {
        "repository": {
            "id": repository.id,
            "name": repository.name,
            "owner": repository.owner.canonical_name,
            "url": http_url,
            "ssh_url": ssh_url,
            "visibility": repository.visibility,
        },
        "pusher": pusher.canonical_name if pusher is not None else None,
        "refs": [{"name": u.name, "old": u.old, "new": u.new} for u in updates],
    }


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


def post_receive(repository: Repository, pusher: Any, updates: list[RefUpdate]) -> list[str]:
    """Record a push and queue its webhooks, committed; the lines to show
    the pusher."""
    first = repository.pushed_at is None
    repository.pushed_at = repository.updated = utcnow()
    payload = push_payload(repository, pusher, updates)
    hooks = db_session.scalars(
        sa.select(Webhook).where(Webhook.repository_id == repository.id).order_by(Webhook.id)
    ).all()
    for hook in hooks:
        send_webhook(
            hook.url,
            "repo:push",
            payload,
            subscription=subscription_key(repository),
            session=db_session,
        )
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
