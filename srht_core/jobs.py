"""Background jobs: recorded in the service's database, run by workers.

A job is a row in the service's ``srht_job`` table before it is anything
else: :func:`enqueue` adds it in the caller's transaction, so the job exists
exactly when the data it is about was committed. Only after the commit is
its id handed to Celery (when ``[srht] broker`` is set), by a thread of the
process that never makes the caller wait (:mod:`srht_core.queue`); the row
stays the truth. A worker claims a row with one atomic ``UPDATE`` (so a
duplicate message or a second worker is harmless), runs it, and marks it
done, or queues it again with exponential backoff, or failed after its last
attempt.

A claim is a lease of :data:`LEASE` seconds, renewed by the worker while
the job runs (up to the job's ``timeout``). A worker that dies, killed or
with its host, stops renewing: its job is queued again within seconds, not
after the job's whole timeout.

Each worker also ticks every few seconds: it fires due timers (each period
once across all workers, by the same atomic claim on ``srht_timer``), puts
jobs whose lease lapsed back in the queue, and re-publishes jobs the broker
lost. Without a broker the tick also runs the due jobs itself: that is the
embedded mode ``srht up`` uses, with the same guarantees and no Redis.

The tick survives outages: while the database cannot be reached it logs
once, waits with backoff and carries on when it is back; anything else
stops the worker with exit code 1, so that systemd starts it again (see
:meth:`Worker.run_forever`).

Jobs run at least once: make them idempotent.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .db import Database, database_unavailable, error_summary, utcnow
from .globals import SrhtState, current_service, state_of
from .queue import celery_for, publisher_for, queue_name, run_jobs_of

if TYPE_CHECKING:
    from flask import Flask

    from .service import Timer

__all__ = ["core_metadata", "enqueue", "queue_depth", "run_celery_worker", "run_job", "Worker"]

log = logging.getLogger("srht.jobs")

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
MAX_BACKOFF = 3600.0
#: A queued job this long past due is presumed lost by the broker.
LOST_AFTER = timedelta(seconds=60)
#: Seconds a claim on a running job lasts unless its worker renews it.
LEASE = 15.0
#: Seconds between two renewals of the leases of a worker's running jobs.
RENEW_EVERY = 5.0
#: Longest wait between two ticks while the database cannot be reached.
MAX_TICK_BACKOFF = 30.0

core_metadata = sa.MetaData()

job_table = sa.Table(
    "srht_job",
    core_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("run_after", sa.DateTime, nullable=False),
    sa.Column("locked_until", sa.DateTime, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created", sa.DateTime, nullable=False),
    sa.Column("updated", sa.DateTime, nullable=False),
    sa.Index("ix_srht_job_status_run_after", "status", "run_after"),
    sqlite_autoincrement=True,  # a deleted row's id never comes back
)

timer_table = sa.Table(
    "srht_timer",
    core_metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("last_run", sa.DateTime, nullable=False),
)


def enqueue(name: str, *, delay: float = 0, session: Session | None = None, **payload: Any) -> int:
    """Record job ``name`` of the current service with ``payload`` (JSON
    values only), to run after ``delay`` seconds.

    The row is added to ``session`` (the request's :data:`db_session` by
    default) and becomes visible with that session's commit; the worker
    hears of it right after. Returns the job's id.

    :raises LookupError: when the service declares no such job.
    """
    state = current_service()
    if name not in state.jobs:
        known = ", ".join(sorted(state.jobs)) or "none"
        raise LookupError(f"service {state.service.name} has no job {name!r} (jobs: {known})")
    body = json.dumps(payload, sort_keys=True)
    if session is None:
        session = state.db.scoped()
    now = utcnow()
    job_id = int(
        session.execute(
            job_table.insert()
            .values(
                name=name,
                payload=body,
                status=QUEUED,
                attempts=0,
                run_after=now + timedelta(seconds=delay),
                created=now,
                updated=now,
            )
            .returning(job_table.c.id)
        ).scalar_one()
    )
    broker = state.config.get("srht", "broker")
    if broker:
        # The listeners go on this very session, never on a scoped session:
        # that would put them on its factory, shared by every thread, and a
        # worker's other thread committing first would spend a once-only
        # listener and leave this thread's ids unpublished.
        real = session() if isinstance(session, sa.orm.scoped_session) else session
        pending: list[tuple[int, float]] = real.info.setdefault("srht_publish", [])
        if not real.info.get("srht_publish_listening"):
            sa.event.listen(real, "after_commit", _publish_after_commit)
            sa.event.listen(real, "after_rollback", _forget_after_rollback)
            real.info["srht_publish_listening"] = True
        pending.append((job_id, delay))
    return job_id


def _publish_after_commit(session: Session) -> None:
    pending = session.info.pop("srht_publish", [])
    state = current_service()
    for job_id, delay in pending:
        publish(state, job_id, delay)


def _forget_after_rollback(session: Session) -> None:
    session.info.pop("srht_publish", None)


def publish(state: SrhtState, job_id: int, delay: float = 0) -> None:
    """Tell the broker about a recorded job, without waiting for it: the
    process's publisher thread sends it, and keeps it while the broker is
    away (:class:`srht_core.queue.Publisher`). Even a lost id loses
    nothing: the worker's tick finds the row and publishes it again."""
    publisher_for(state).submit(state.service.name, job_id, delay)


def queue_depth(db: Database) -> int:
    """How many jobs are waiting (queued, due or not)."""
    with db.engine.connect() as connection:
        return int(
            connection.scalar(
                sa.select(sa.func.count())
                .select_from(job_table)
                .where(job_table.c.status == QUEUED)
            )
            or 0
        )


def _claim(connection: sa.Connection, job_id: int, lease: float) -> bool:
    now = utcnow()
    result = connection.execute(
        job_table.update()
        .where(job_table.c.id == job_id, job_table.c.status == QUEUED, job_table.c.run_after <= now)
        .values(
            status=RUNNING,
            attempts=job_table.c.attempts + 1,
            locked_until=now + timedelta(seconds=lease),
            updated=now,
        )
    )
    return result.rowcount == 1


class _Leases:
    """The leases of the jobs this process runs on one database, renewed
    by a thread of their own every :data:`RENEW_EVERY` seconds, each until
    its job's timeout. One per database and process (:func:`_leases_for`)."""

    def __init__(self, db: Database):
        self.db = db
        self.pid = os.getpid()
        #: job id → (lease seconds, monotonic time past which it is not renewed)
        self.running: dict[int, tuple[float, float]] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def hold(self, job_id: int, lease: float, timeout: float) -> None:
        with self.lock:
            self.running[job_id] = (lease, time.monotonic() + timeout)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="srht-leases", daemon=True)
                self.thread.start()

    def release(self, job_id: int) -> None:
        with self.lock:
            self.running.pop(job_id, None)

    def _run(self) -> None:
        while True:
            time.sleep(RENEW_EVERY)
            now_monotonic = time.monotonic()
            with self.lock:
                if not self.running:
                    self.thread = None  # the next hold starts another
                    return
                due = [
                    (job_id, lease)
                    for job_id, (lease, until) in self.running.items()
                    if until > now_monotonic
                ]
            if due:
                self.renew(due)

    def renew(self, jobs: list[tuple[int, float]]) -> None:
        now = utcnow()
        try:
            with self.db.engine.begin() as connection:
                for job_id, lease in jobs:
                    connection.execute(
                        job_table.update()
                        .where(job_table.c.id == job_id, job_table.c.status == RUNNING)
                        .values(locked_until=now + timedelta(seconds=lease))
                    )
        except Exception as error:  # noqa: BLE001 - tried again at the next round
            # An unreachable database cannot hand the job to anyone else either.
            log.warning("could not renew the leases of running jobs: %s", error_summary(error))


_all_leases: dict[int, _Leases] = {}
_all_leases_lock = threading.Lock()


def _leases_for(db: Database) -> _Leases:
    with _all_leases_lock:
        leases = _all_leases.get(id(db))
        if leases is None or leases.pid != os.getpid() or leases.db is not db:
            leases = _all_leases[id(db)] = _Leases(db)
        return leases


def run_job(app: Flask, job_id: int) -> str | None:
    """Claim and run one job in ``app``'s context. Returns its new status,
    or ``None`` when it was not claimable (already taken, done, or not due).
    """
    state: SrhtState = state_of(app)
    db = state.db
    with db.engine.connect() as connection:
        row = connection.execute(sa.select(job_table).where(job_table.c.id == job_id)).first()
        if row is None:
            return None
        job = state.jobs.get(row.name)
        timeout = job.timeout if job else 300.0
        lease = min(LEASE, timeout)
        if not _claim(connection, job_id, lease):
            connection.rollback()
            return None
        connection.commit()
    attempts = row.attempts + 1
    error_text: str | None = None
    if job is None:
        error_text = f"no job named {row.name!r} is declared by this service"
    else:
        leases = _leases_for(db)
        leases.hold(job_id, lease, timeout)
        try:
            payload = json.loads(row.payload)
            with app.app_context():
                job.run(**payload)
                state.db.scoped().commit()
        except Exception as error:  # noqa: BLE001 - recorded and retried
            error_text = "".join(traceback.format_exception(error))[-4000:]
            log.warning("job %s %s (attempt %s) failed: %s", job_id, row.name, attempts, error)
        finally:
            leases.release(job_id)
    now = utcnow()
    values: dict[str, Any] = {"updated": now, "locked_until": None}
    if error_text is None:
        values.update(status=DONE, last_error=None)
    elif job is not None and attempts < job.max_attempts:
        delay = min(job.backoff * 2 ** (attempts - 1), MAX_BACKOFF)
        values.update(
            status=QUEUED, last_error=error_text, run_after=now + timedelta(seconds=delay)
        )
    else:
        values.update(status=FAILED, last_error=error_text)
    with db.engine.begin() as connection:
        connection.execute(job_table.update().where(job_table.c.id == job_id).values(**values))
    if values["status"] == QUEUED and state.config.get("srht", "broker"):
        publish(state, job_id, (values["run_after"] - now).total_seconds())
    return str(values["status"])


class Worker:
    """Runs the background side of one service: timers, recovery and, in
    the embedded mode (no broker), the jobs themselves.

    :param app: the service's app (from :func:`srht_core.create_app`).
    :param tick: seconds between ticks.
    """

    def __init__(self, app: Flask, *, tick: float = 1.0):
        self.app = app
        self.state: SrhtState = state_of(app)
        self.tick_seconds = tick
        self.timers: list[Timer] = []
        for source in ("srht-core", self.state.service.name):
            plugins = self.state.plugins
            for timer in plugins.call_one("timers", source, config=self.state.config) or ():
                if timer.job not in self.state.jobs:
                    raise LookupError(f"timer {timer.name!r} names unknown job {timer.job!r}")
                self.timers.append(timer)
        self._stop = threading.Event()

    @property
    def embedded(self) -> bool:
        return not self.state.config.get("srht", "broker")

    def stop(self) -> None:
        self._stop.set()

    def run_forever(self, *, on_idle: Callable[[], None] | None = None) -> None:
        """Tick until :meth:`stop` (from another thread or a signal).

        While the database cannot be reached (down, restarting, refusing
        connections: :func:`srht_core.db.database_unavailable`), a tick
        that fails is logged once and tried again with backoff, up to
        :data:`MAX_TICK_BACKOFF` seconds apart, until the database answers.
        Any other error is logged and raised: the worker cannot go on, and
        its process must end (with a failure) so that systemd starts it
        again.
        """
        mode = "embedded" if self.embedded else "celery"
        service = self.state.service.name
        log.info(
            "worker for %s started (%s mode, %d jobs, %d timers)",
            service,
            mode,
            len(self.state.jobs),
            len(self.timers),
        )
        failures = 0
        failing_since = 0.0
        while not self._stop.is_set():
            try:
                ran = self.tick()
            except Exception as error:
                if not database_unavailable(error):
                    log.critical("the worker for %s cannot go on", service, exc_info=True)
                    raise
                if not failures:
                    failing_since = time.monotonic()
                    log.warning(
                        "the database of %s cannot be reached (%s); the worker waits for it",
                        service,
                        error_summary(error),
                    )
                failures += 1
                self._stop.wait(min(self.tick_seconds * 2**failures, MAX_TICK_BACKOFF))
                continue
            if failures:
                log.info(
                    "the database of %s answers again after %.0f s; the worker carries on",
                    service,
                    time.monotonic() - failing_since,
                )
                failures = 0
            if not ran:
                if on_idle is not None:
                    on_idle()
                self._stop.wait(self.tick_seconds)

    def tick(self) -> int:
        """One round: fire timers, recover lost jobs, and run (embedded) or
        re-publish (broker) due jobs. Returns how many jobs it ran."""
        self.fire_timers()
        self.recover()
        if self.embedded:
            return self.run_due()
        self.republish_lost()
        return 0

    def fire_timers(self) -> None:
        db = self.state.db
        for timer in self.timers:
            now = utcnow()
            with db.engine.begin() as connection:
                claimed = (
                    connection.execute(
                        timer_table.update()
                        .where(
                            timer_table.c.name == timer.name,
                            timer_table.c.last_run <= now - timedelta(seconds=timer.every),
                        )
                        .values(last_run=now)
                    ).rowcount
                    == 1
                )
                if not claimed:
                    exists = connection.scalar(
                        sa.select(sa.func.count())
                        .select_from(timer_table)
                        .where(timer_table.c.name == timer.name)
                    )
                    if exists:
                        continue
            if not claimed:
                try:
                    with db.engine.begin() as connection:
                        connection.execute(
                            timer_table.insert().values(name=timer.name, last_run=now)
                        )
                except sa.exc.IntegrityError:
                    continue  # another worker created it this very moment
            with self.app.app_context(), db.session() as session:
                enqueue(timer.job, session=session)

    def recover(self) -> int:
        """Queue again (and publish, with a broker) the jobs whose lease
        lapsed: their worker died while running them. Returns how many."""
        now = utcnow()
        with self.state.db.engine.begin() as connection:
            recovered = list(
                connection.scalars(
                    job_table.update()
                    .where(job_table.c.status == RUNNING, job_table.c.locked_until < now)
                    .values(
                        status=QUEUED,
                        run_after=now,
                        locked_until=None,
                        updated=now,
                        last_error="the worker running this job stopped before it finished",
                    )
                    .returning(job_table.c.id)
                )
            )
        if recovered:
            log.warning(
                "queued again %d job(s) whose worker stopped while running them: %s",
                len(recovered),
                ", ".join(map(str, recovered)),
            )
        if not self.embedded:
            for job_id in recovered:
                publish(self.state, job_id)
        return len(recovered)

    def _due(self, before: Any, limit: int = 20) -> list[int]:
        with self.state.db.engine.connect() as connection:
            return list(
                connection.scalars(
                    sa.select(job_table.c.id)
                    .where(job_table.c.status == QUEUED, job_table.c.run_after <= before)
                    .order_by(job_table.c.run_after, job_table.c.id)
                    .limit(limit)
                )
            )

    def run_due(self) -> int:
        ran = 0
        for job_id in self._due(utcnow()):
            if self._stop.is_set():
                break
            if run_job(self.app, job_id) is not None:
                ran += 1
        return ran

    def republish_lost(self) -> None:
        """Publish again queued jobs long past due and untouched: their
        message was lost (the broker restarted, or publishing failed)."""
        now = utcnow()
        cutoff = now - LOST_AFTER
        with self.state.db.engine.begin() as connection:
            lost = list(
                connection.scalars(
                    sa.select(job_table.c.id)
                    .where(
                        job_table.c.status == QUEUED,
                        job_table.c.run_after <= cutoff,
                        job_table.c.updated <= cutoff,
                    )
                    .limit(100)
                )
            )
            if lost:
                connection.execute(
                    job_table.update().where(job_table.c.id.in_(lost)).values(updated=now)
                )
        for job_id in lost:
            publish(self.state, job_id)


def run_until_idle(app: Flask, *, limit: float = 30.0) -> None:
    """Run due jobs until none are left (for tests and one-shot commands)."""
    worker = Worker(app)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        worker.recover()
        if not worker.run_due():
            return


#: Seconds before a job that met an unreachable database is tried again.
RETRY_UNAVAILABLE = 5.0


def _run_published(app: Flask, job_id: int) -> None:
    """Run a job id the broker delivered to this process's Celery worker."""
    try:
        run_job(app, job_id)
    except Exception as error:
        if not database_unavailable(error):
            raise
        # The message is spent and the row untouched (or its lease will
        # lapse): ask again shortly rather than wait for the tick's sweep of
        # lost messages.
        state = state_of(app)
        log.warning(
            "job %s of %s: the database cannot be reached; trying again in %.0f s",
            job_id,
            state.service.name,
            RETRY_UNAVAILABLE,
        )
        publish(state, job_id, RETRY_UNAVAILABLE)


def run_celery_worker(app: Flask, *, concurrency: int = 2, loglevel: str = "INFO") -> None:
    """Run a Celery worker for ``app``'s service, with the core's tick (timers,
    recovery, lost-message re-publishing) in a thread beside it.

    The tick outlives database and broker outages (see
    :meth:`Worker.run_forever`); should it stop for any other reason, the
    whole worker stops and exits 1, so that its supervisor (systemd) starts
    it again, rather than go on without timers and recovery.
    """
    state = state_of(app)
    run_jobs_of(state.service.name, functools.partial(_run_published, app))
    ticker = Worker(app, tick=5.0)
    fatal = threading.Event()
    thread = threading.Thread(
        target=_tick_until_fatal, args=(ticker, fatal), name="srht-tick", daemon=True
    )
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
        if fatal.is_set():
            raise SystemExit(1)


def _tick_until_fatal(ticker: Worker, fatal: threading.Event) -> None:
    """The tick thread of a Celery worker: when the tick gives up, stop the
    process (Celery's warm shutdown, on SIGTERM) and mark it failed."""
    try:
        ticker.run_forever()
    except BaseException:  # noqa: BLE001 - anything that ends the tick ends the worker
        log.critical(
            "the tick of the %s worker stopped; stopping the worker so that it is started again",
            ticker.state.service.name,
            exc_info=True,
        )
        fatal.set()
        os.kill(os.getpid(), signal.SIGTERM)
