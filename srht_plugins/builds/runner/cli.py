"""``srht builds runner``: run jobs on this host."""

from __future__ import annotations

import logging
import signal
import socket
import sys
from typing import Any

import click
from flask import current_app

__all__ = ["runner_command"]


@click.command("runner")
@click.option(
    "--name", default=None, help="How the service knows this runner [default: host name]."
)
@click.option(
    "--jobs",
    "slots",
    type=click.IntRange(1, 256),
    default=None,
    help="Jobs at once [default: [builds] runner-jobs].",
)
@click.option("--dir", "directory", default=None, help="Its folder [default: [builds] runner-dir].")
def runner_command(name: str | None, slots: int | None, directory: str | None) -> None:
    """Run jobs in systemd-nspawn containers on this host (as root).

    Takes jobs from the broker queues of the site's images ([srht] broker),
    or asks the service for them without a broker, until stopped.
    """
    from .runner import Runner, RunnerError

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s"
    )
    app: Any = current_app._get_current_object()  # type: ignore[attr-defined]
    runner = Runner(app, name or socket.gethostname(), slots=slots, directory=directory)
    try:
        runner.start()
    except RunnerError as error:
        click.echo(f"srht builds runner: {error}", err=True)
        sys.exit(1)

    def stop(*_args: Any) -> None:
        runner.shutdown()

    if not runner.broker:
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    runner.serve()
