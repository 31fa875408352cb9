"""Celery, for sites with a broker: carries job ids from the web processes
to the workers of each service, on one queue per service (``srht.<service>``).

Only ids travel: the job itself is the row :func:`srht_core.enqueue`
recorded, so a lost broker loses nothing (see :mod:`srht_core.jobs`).

Publishing never holds the caller. After the commit that records a job,
its id goes to this process's :class:`Publisher`, a thread that sends it on
a connection with bounded timeouts and keeps it while the broker cannot be
reached (stopped, or alive but not answering), trying again with backoff
until it answers. A web request therefore answers as soon as its data is
committed, whatever the broker does; an id still waiting when the process
ends is found and published again by a worker's tick.

A worker takes a message off Redis and acknowledges it at once, with no
emulation of acknowledgements in Redis (:class:`RedisTransport`): the row
is what survives a worker that dies, not the message, and kombu's
emulation crashes the worker when the broker goes away.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from celery import Celery
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual

from .globals import SrhtState

__all__ = [
    "Publisher",
    "RedisTransport",
    "celery_for",
    "close_all",
    "publisher_for",
    "queue_name",
    "run_jobs_of",
]

log = logging.getLogger("srht.queue")

#: Seconds to connect to the broker, and to wait for its answer, when publishing.
PUBLISH_TIMEOUT = 3.0
#: Ids kept per process while the broker is away; past that the oldest are
#: dropped (a worker's tick publishes them again: their rows are queued).
MAX_PENDING = 10_000
#: Longest wait between two attempts to reach an absent broker (seconds).
MAX_BACKOFF = 30.0
#: How long a process that ends waits for its last ids to be published.
FLUSH_AT_EXIT = 5.0

_apps: dict[str, Celery] = {}
_publishers: dict[str, Publisher] = {}
_lock = threading.Lock()
#: What runs a job id, by service, in this process's Celery worker.
_runners: dict[str, Callable[[int], None]] = {}


class _QoS(virtual.QoS):
    # Not when a channel closes: that is when the broker went away, and
    # putting messages back then needs the connection kombu has just
    # dropped ("'NoneType' object has no attribute 'hostname'").
    restore_at_shutdown = False


class _Channel(kombu_redis.Channel):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]  # kombu is untyped
        # (kombu's own choice without ack emulation is virtual.QoS, made
        # here after the transport options are read)
        self.QoS = _QoS  # type: ignore[assignment]  # not a redis.QoS


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport as srht's workers use it: a message leaves
    Redis when a worker takes it, and acknowledging it is bookkeeping in
    the worker's memory only.

    kombu's emulation of acknowledgements (an ``unacked`` hash, messages
    put back when a channel closes) talks to Redis from callbacks that can
    run after the connection they need was dropped, when the broker goes
    away; they crash the worker ("'NoneType' object has no attribute
    'hostname'", an "Unrecoverable error"). srht needs none of it: the
    job's row is what must survive, and it does (a dead worker's lease
    lapses; a lost message is published again by the tick).
    """

    Channel = _Channel


def _make(broker: str, *, publishing: bool = False) -> Celery:
    celery = Celery("srht", broker=broker, set_as_current=False)
    transport: dict[str, Any] = {}
    if urlsplit(broker).scheme in ("redis", "rediss") and not publishing:
        celery.conf.broker_transport = f"{__name__}:RedisTransport"
        transport["ack_emulation"] = False
    if publishing:
        # A broker that accepts connections but never answers (stopped with
        # SIGSTOP, swapping, a half-open connection) must not hang the
        # publisher; without these, redis-py waits for ever.
        transport.update(socket_timeout=PUBLISH_TIMEOUT, socket_connect_timeout=PUBLISH_TIMEOUT)
    celery.conf.update(
        # Acknowledged on receipt: the job's row, not the message, is what
        # must survive a worker that dies (see RedisTransport).
        task_acks_late=False,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
        broker_transport_options=transport,
    )
    if publishing:
        celery.conf.update(broker_connection_timeout=PUBLISH_TIMEOUT, task_publish_retry=False)
        return celery

    @celery.task(name="srht.run_job")  # type: ignore[untyped-decorator]
    def run_job_task(service: str, job_id: int) -> None:
        runner = _runners.get(service)
        if runner is None:
            # A message for a service this worker does not run: leave it to
            # the tick of that service's workers, which re-publishes it.
            return
        runner(job_id)

    return celery


def queue_name(service: str) -> str:
    """The broker queue of ``service``'s jobs."""
    return f"srht.{service}"


def run_jobs_of(service: str, runner: Callable[[int], None]) -> None:
    """Have this process's Celery worker run ``service``'s job ids with
    ``runner`` (:func:`srht_core.jobs.run_celery_worker` registers it)."""
    _runners[service] = runner


def celery_for(state: SrhtState) -> Celery:
    """The Celery app a worker of the site's broker runs (one per broker URL)."""
    broker = str(state.config.get("srht", "broker"))
    with _lock:
        if broker not in _apps:
            _apps[broker] = _make(broker)
        return _apps[broker]


@dataclass(frozen=True)
class _Message:
    service: str
    job_id: int
    due: float  # UNIX time


class Publisher:
    """Sends job ids to one broker from a thread of its own, so that no
    caller ever waits on the broker. Ids wait in memory (up to
    :data:`MAX_PENDING`) while the broker cannot be reached, and go out in
    order once it answers again.

    One per broker and process: use :func:`publisher_for`.
    """

    def __init__(self, broker: str):
        self.broker = broker
        self.pid = os.getpid()
        self._pending: deque[_Message] = deque()
        self._sending = False
        self._closed = False
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._celery: Celery | None = None

    def submit(self, service: str, job_id: int, delay: float = 0) -> None:
        """Publish job ``job_id`` of ``service``, to run after ``delay``
        seconds. Returns at once."""
        with self._changed:
            if len(self._pending) >= MAX_PENDING:
                dropped = self._pending.popleft()
                log.warning(
                    "%d job ids wait for the broker; job %s of %s is left to the workers' "
                    "tick, which publishes it again",
                    MAX_PENDING,
                    dropped.job_id,
                    dropped.service,
                )
            self._pending.append(_Message(service, job_id, time.time() + delay))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="srht-publisher", daemon=True
                )
                self._thread.start()
            self._changed.notify_all()

    def pending(self) -> int:
        """How many ids wait to be published."""
        with self._changed:
            return len(self._pending) + (1 if self._sending else 0)

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every waiting id to be sent;
        whether they were."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._pending or self._sending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def close(self) -> None:
        """Stop the thread (what still waits is left to the tick)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(PUBLISH_TIMEOUT * 2)
        self._forget_connection()

    def _run(self) -> None:
        backoff = 0.5
        failing_since: float | None = None
        while True:
            with self._changed:
                while not self._pending and not self._closed:
                    self._changed.wait()
                if self._closed:
                    return
                message = self._pending.popleft()
                self._sending = True
            try:
                self._send(message)
            except Exception as error:  # noqa: BLE001 - kept, and tried again
                with self._changed:
                    self._pending.appendleft(message)
                    self._sending = False
                    self._changed.notify_all()
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.warning(
                        "could not publish job %s to the broker (%s); it is kept, with any "
                        "that follow, and sent when the broker answers again",
                        message.job_id,
                        error,
                    )
                self._forget_connection()
                with self._changed:
                    if not self._closed:
                        self._changed.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            with self._changed:
                self._sending = False
                self._changed.notify_all()
            if failing_since is not None:
                log.info(
                    "the broker answers again after %.0f s; publishing the jobs that waited",
                    time.monotonic() - failing_since,
                )
                failing_since = None
            backoff = 0.5

    def _send(self, message: _Message) -> None:
        if self._celery is None:
            self._celery = _make(self.broker, publishing=True)
        countdown = message.due - time.time()
        self._celery.send_task(
            "srht.run_job",
            args=[message.service, message.job_id],
            queue=queue_name(message.service),
            countdown=countdown if countdown > 0 else None,
            retry=False,
        )

    def _forget_connection(self) -> None:
        celery, self._celery = self._celery, None
        if celery is not None:
            try:
                celery.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail too
                log.debug("closing the publisher's broker connection failed", exc_info=True)


def publisher_for(state: SrhtState) -> Publisher:
    """This process's publisher for the site's broker."""
    broker = str(state.config.get("srht", "broker"))
    with _lock:
        publisher = _publishers.get(broker)
        if publisher is None or publisher.pid != os.getpid():
            # (a forked process starts its own: the parent's thread did not follow)
            publisher = _publishers[broker] = Publisher(broker)
        return publisher


def close_all() -> None:
    """Stop this process's publishers and close its Celery apps (tests)."""
    with _lock:
        publishers = list(_publishers.values())
        _publishers.clear()
        apps = list(_apps.values())
        _apps.clear()
    for publisher in publishers:
        if publisher.pid == os.getpid():
            publisher.close()
    for celery in apps:
        celery.close()


@atexit.register
def _flush_at_exit() -> None:
    """Give the last ids of an ending process (a one-shot command, a
    gunicorn worker that stops) a moment to reach the broker."""
    deadline = time.monotonic() + FLUSH_AT_EXIT
    for publisher in list(_publishers.values()):
        if publisher.pid == os.getpid():
            publisher.flush(max(0.0, deadline - time.monotonic()))
