"""What git's commands (``srht git hook``) share.

They run for sshd and for git, not for people at a terminal, so a failure
must be one readable line, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

__all__ = ["without_tracebacks"]

F = TypeVar("F", bound=Callable[..., Any])


def without_tracebacks(command: F) -> F:
    """Turn an unexpected failure into one line on standard error (which
    the pusher sees, for the shell and the hook; which sshd logs, for the
    key command) and exit status 1."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - reported in a sentence
            detail = (str(error).splitlines() or [""])[0][:200]
            click.echo(
                f"srht git {command.__name__.removesuffix('_command')}: the server "
                f"could not do this ({type(error).__name__}: {detail}); tell the "
                "site's administrators.",
                err=True,
            )
            sys.exit(1)

    return wrapper  # type: ignore[return-value]
