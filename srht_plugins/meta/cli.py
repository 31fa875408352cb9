"""``srht meta ...``: accounts without the web."""

from __future__ import annotations

import sys

import click

from srht_core import Problem, current_service, db_session

from .accounts import AccountError, audit, create_user, email_link, find_user
from .keys import KeyProblem, add_ssh_key, commit_key
from .models import ACTIVE, ADMIN, User
from .tokens import issue_personal_token


@click.command("create-user")
@click.argument("username")
@click.option("--email", required=True, help="The user's email address.")
@click.option("--admin", is_flag=True, help="Make the user an administrator.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input (else: asked on the terminal).",
)
@click.option(
    "--no-password",
    is_flag=True,
    help="Set no password; print a one-time link where the user sets one.",
)
def create_user_command(
    username: str, email: str, admin: bool, password_stdin: bool, no_password: bool
) -> None:
    """Create a confirmed account (the first admin, typically)."""
    if no_password and password_stdin:
        raise click.UsageError("--no-password and --password-stdin exclude each other")
    password: str | None = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif not no_password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = create_user(username, email, password, user_type=ADMIN if admin else ACTIVE)
    except AccountError as error:
        raise click.UsageError(str(error)) from None
    db_session.flush()
    link = _password_link(user) if no_password else None
    db_session.commit()
    click.echo(f"created {'admin' if admin else 'user'} {user.canonical_name} (id {user.id})")
    if link is not None:
        click.echo("Set the password (the link works once):", err=True)
        click.echo(link)


@click.command("password-link")
@click.argument("username")
def password_link_command(username: str) -> None:
    """Print a one-time link where USERNAME sets a new password (what the
    "forgot password" mail holds), as the last line."""
    user = find_user(username)
    if user is None:
        raise click.UsageError(f"no user {username!r}")
    link = _password_link(user)
    db_session.commit()
    click.echo(link)


@click.command("add-ssh-key")
@click.argument("username")
def add_ssh_key_command(username: str) -> None:
    """Add an SSH public key, read from standard input as one line of an
    ``id_*.pub`` file, to USERNAME's account (what the keys page does)."""
    user = find_user(username)
    if user is None:
        raise click.UsageError(f"no user {username!r}")
    try:
        key = add_ssh_key(user, sys.stdin.read(), how="on the command line")
        commit_key()
    except KeyProblem as problem:
        raise click.UsageError(str(problem)) from None
    click.echo(f"added {key.fingerprint} to {user.canonical_name}")


def _password_link(user: User) -> str:
    """A one-time password link for ``user`` (not committed)."""
    token = email_link(user, "reset")
    audit(user, "password link made on the command line")
    return f"{current_service().origin}/reset/{token}"


@click.command("token")
@click.argument("username")
@click.option("--scopes", required=True, help="Space-separated, e.g. 'todo/tickets:RW'.")
@click.option(
    "--expires",
    type=click.IntRange(1, 3650),
    metavar="DAYS",
    help="Days until the token expires (default: never).",
)
@click.option("--comment", help="What the token is for.")
def token_command(username: str, scopes: str, expires: int | None, comment: str | None) -> None:
    """Issue a personal access token; it is printed once, as the last line."""
    user = find_user(username)
    if user is None:
        raise click.UsageError(f"no user {username!r}")
    try:
        token = issue_personal_token(user, scopes, expires_days=expires, comment=comment)
    except Problem as error:
        raise click.UsageError(str(error)) from None
    db_session.commit()
    click.echo(
        f"Personal access token for {user.canonical_name} ({scopes}); it is not shown again:",
        err=True,
    )
    click.echo(token)


COMMANDS = [add_ssh_key_command, create_user_command, password_link_command, token_command]
