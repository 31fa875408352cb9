"""A long request's heartbeat: how a transfer that keeps moving outlives
the service's ``timeout``.

Under ``srht serve`` each gunicorn worker reports to its master that it is
alive between requests; a worker silent for longer than the service's
``timeout`` (``[<service>] timeout``) is killed, with the request it was
answering. That is right for a page stuck in a loop, and wrong for a clone
of a large repository, which takes as long as the network makes it. A
request that streams calls :func:`report_progress` as data moves: each call
counts as the worker's heartbeat, so the transfer runs as long as it keeps
moving, and one that stalls for longer than ``timeout`` is still cut off.

This module imports nothing: the server registers its worker's heartbeat
here after forking (:func:`set_heartbeat`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["report_progress"]

#: Seconds between two heartbeats passed on to the server: a heartbeat is a
#: system call (gunicorn touches a file), a transfer moves 64 KiB at a time.
INTERVAL = 1.0

_heartbeat: Callable[[], None] | None = None
_last = 0.0


def set_heartbeat(heartbeat: Callable[[], None] | None) -> None:
    """Make ``heartbeat`` (gunicorn's ``worker.notify``) what
    :func:`report_progress` calls in this process; ``None`` turns it off."""
    global _heartbeat, _last
    _heartbeat = heartbeat
    _last = 0.0


def report_progress() -> None:
    """Say that the request being answered is making progress (a chunk of
    a transfer went in or out), so the server does not cut it off at the
    service's ``timeout`` while it keeps moving. Cheap enough to call per
    chunk, from any thread of the request; outside ``srht serve`` it does
    nothing.

    .. versionadded:: 0.1
    """
    global _last
    heartbeat = _heartbeat
    if heartbeat is None:
        return
    now = time.monotonic()
    if now - _last >= INTERVAL:
        _last = now
        heartbeat()
