"""The first admin: an account on meta with the admin role, created with
meta's own command on the host that runs meta::

    runuser -u srht-meta -- srht meta create-user NAME --email EMAIL --admin --password-stdin

over SSH (``/usr/local/bin/srht`` is the deploy's wrapper with the host's
config). The password goes over the SSH connection's standard input, never
on a command line, and is neither logged nor kept. With nobody at a terminal
and no password file, the account is made with ``--no-password`` and meta
prints a one-time link where the admin sets their password.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .hosts import run_on

__all__ = ["AdminResult", "create_admin", "meta_host"]

IDENTITY = "meta"


@dataclass(frozen=True)
class AdminResult:
    """What meta said: ``created``, ``exists`` (that username is taken:
    a re-run), or ``refused`` with meta's reason (a weak password, ...)."""

    outcome: str
    message: str
    link: str | None = None


def meta_host(site: Any) -> str:
    """The host whose meta creates accounts (its first)."""
    hosts = site.topology.service_hosts.get(IDENTITY) or ()
    if not hosts:
        raise LookupError("meta runs on no host; it is required")
    return str(hosts[0])


def create_admin(
    config: Path, site: Any, username: str, email: str, password: str | None
) -> AdminResult:
    """Create the admin ``username`` on meta's host; with no ``password``,
    the result's ``link`` is where they set one (it works once)."""
    host = meta_host(site)
    command = [
        "runuser",
        "-u",
        f"srht-{IDENTITY}",
        "--",
        "srht",
        IDENTITY,
        "create-user",
        username,
        "--email",
        email,
        "--admin",
    ]
    command.append("--password-stdin" if password is not None else "--no-password")
    stdin = (password + "\n").encode() if password is not None else b""
    result = run_on(config, host, command, input=stdin, timeout=120)
    out = (result.stdout + result.stderr).decode(errors="replace").strip()
    if result.returncode == 0:
        lines = result.stdout.decode(errors="replace").strip().splitlines()
        link = lines[-1] if password is None and lines else None
        return AdminResult("created", lines[0] if lines else "created", link)
    reason = _reason(out)
    if "username is taken" in reason.lower():
        return AdminResult("exists", f"~{username} exists already on {host}")
    return AdminResult("refused", reason)


def _reason(output: str) -> str:
    """meta's sentence out of click's usage error (``Error: ...``)."""
    for line in reversed(output.splitlines()):
        if line.startswith("Error:"):
            return line.removeprefix("Error:").strip()
    return output.splitlines()[-1] if output else "no output"
