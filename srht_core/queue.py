"""Celery, for sites with a broker: carries job ids from the web processes
to the workers of each service, on one queue per service (``srht.<service>``).

Only ids travel: the job itself is the row :func:`srht_core.enqueue`
recorded, so a lost broker loses nothing (see :mod:`srht_core.jobs`).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from celery import Celery

from .globals import SrhtState, state_of

if TYPE_CHECKING:
    from flask import Flask


__all__ = ["celery_for", "run_celery_worker"]

_apps: dict[str, Celery] = {}
_lock = threading.Lock()
#: The service apps of this worker process, by service name.
_flask_apps: dict[str, Flask] = {}


def _make(broker: str) -> Celery:
    celery = Celery("srht", broker=broker, set_as_current=False)
    celery.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
        broker_transport_options={"visibility_timeout": 3600},
    )

    @celery.task(name="srht.run_job")  # type: ignore[untyped-decorator]
    def run_job_task(service: str, job_id: int) -> None:
        from .jobs import run_job

        app = _flask_apps.get(service)
        if app is None:
            # A message for a service this worker does not run: leave it to
            # the tick of that service's workers, which re-publishes it.
            return
        run_job(app, job_id)

    return celery


def celery_for(state: SrhtState) -> Celery:
    """The Celery app for the site's broker (one per broker URL)."""
    broker = str(state.config.get("srht", "broker"))
    with _lock:
        if broker not in _apps:
            _apps[broker] = _make(broker)
        return _apps[broker]


def run_celery_worker(app: Flask, *, concurrency: int = 2, loglevel: str = "INFO") -> None:
    """Run a Celery worker for ``app``'s service, with the core's tick (timers,
    recovery, lost-message re-publishing) in a thread beside it."""
    from .jobs import Worker, queue_name

    state = state_of(app)
    _flask_apps[state.service.name] = app
    ticker = Worker(app, tick=5.0)
    thread = threading.Thread(target=ticker.run_forever, name="srht-tick", daemon=True)
    thread.start()
    # Gossip, mingle and event heartbeats are for workers that talk to each
    # other; srht's never do. Gossip's restart after a lost broker can also
    # crash the worker (kombu's "'NoneType' object has no attribute
    # 'hostname'"), which leaves it hung instead of reconnecting.
    argv: list[Any] = [
        "worker",
        "-Q",
        queue_name(state.service.name),
        "-c",
        str(concurrency),
        "--loglevel",
        loglevel,
        "-n",
        f"{state.service.name}@%h",
        "-P",
        "threads",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    try:
        celery_for(state).worker_main(argv)
    finally:
        ticker.stop()
