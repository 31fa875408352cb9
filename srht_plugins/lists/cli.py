"""``srht lists ...``: the mail listeners and importing an archive."""

from __future__ import annotations

import mailbox
import sys
from pathlib import Path

import click
import sqlalchemy as sa
from flask import current_app

from srht_core import current_service, db_session

from . import archive
from .addresses import posting_domain
from .listener import serve
from .messages import Malformed, parse
from .models import MailingList, User

__all__ = ["COMMANDS"]


def _bind(option: str | None, key: str) -> str:
    return option or str(current_service().section[key])


@click.command("lmtp")
@click.option("--bind", metavar="HOST:PORT", help="Listen here instead of [lists] lmtp-bind.")
def lmtp(bind: str | None) -> None:
    """Take mail from the host's mail server over LMTP (its transport for
    the posting domain points here)."""
    where = _bind(bind, "lmtp-bind")
    serve(current_app._get_current_object(), where, lmtp=True, ready=_say)  # type: ignore[attr-defined]


@click.command("smtp")
@click.option("--bind", metavar="HOST:PORT", help="Listen here instead of [lists] smtp-bind.")
def smtp(bind: str | None) -> None:
    """Take mail over plain SMTP, for development (no mail server in front)."""
    where = _bind(bind, "smtp-bind")
    serve(current_app._get_current_object(), where, lmtp=False, ready=_say)  # type: ignore[attr-defined]


def _say(what: str) -> None:
    click.echo(f"Listening: {what}.", err=True)


@click.command("import")
@click.argument("list_ref", metavar="~OWNER/LIST")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_archive(list_ref: str, path: Path) -> None:
    """Import an mbox file into a list's archive, keeping its threads.

    Nothing is sent to subscribers and no webhook is told: the messages are
    history. A message already in the archive (same Message-ID) is skipped;
    one that cannot be read is reported and skipped.
    """
    owner, _sep, name = list_ref.partition("/")
    if not owner.startswith("~") or not name:
        raise click.UsageError(f"{list_ref!r} is not ~OWNER/LIST")
    mailing_list = db_session.scalar(
        sa.select(MailingList)
        .join(MailingList.owner)
        .where(User.username == owner[1:], MailingList.name == name)
    )
    if mailing_list is None:
        click.echo(f"error: there is no list {list_ref}; create it first", err=True)
        sys.exit(1)
    box = mailbox.mbox(path, create=False)
    added = skipped = refused = 0
    domain = posting_domain()
    for count, key in enumerate(box.iterkeys(), start=1):
        raw = box.get_bytes(key).replace(b"\r\n", b"\n")
        try:
            parsed = parse(raw, domain=domain)
        except Malformed as problem:
            refused += 1
            click.echo(f"message {count}: skipped: {problem}", err=True)
            continue
        _email, new = archive.store(mailing_list, raw, parsed, send_on=False, quiet=True)
        added += new
        skipped += not new
        if count % 500 == 0:
            db_session.commit()
            click.echo(f"{count} messages read", err=True)
    db_session.commit()
    click.echo(
        f"Imported {added} messages into {mailing_list.ref} "
        f"({skipped} already there, {refused} unreadable)."
    )


COMMANDS = [lmtp, smtp, import_archive]
