"""Handing jobs to runners, and noticing runners that went away.

A queued job is a row first: once it is committed, its id is published on
the broker queue of its image (:func:`.images.queue_name`), one queue per
image, where the runners that have the image take it (``srht builds
runner``). Only the id travels; a runner claims the job through the
service's internal API (:mod:`.runners`), which hands it out once. A lost
message loses nothing: the watchdog publishes again any job still queued a
minute later. Without a broker (a site without Redis), runners ask the
service for work instead.

The watchdog (a timer of the service's worker) also fails running jobs
whose runner stopped answering, or queues them again, once, when they had
not started their first task.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from celery import Celery

from srht_core import current_service, db_session, utcnow

from .images import queue_name
from .models import FAILED, PENDING, QUEUED, RUNNING, Job

__all__ = ["RUN_TASK", "celery_app", "lose", "publish", "publish_after_commit", "watch"]

log = logging.getLogger("srht.builds.dispatch")

#: The Celery task name runners consume.
RUN_TASK = "srht.builds.run"
#: Runs a job may be taken by: once, and once again if its runner was lost
#: before it began a task.
MAX_ATTEMPTS = 2
#: A queued job untouched this long is published again.
REPUBLISH_AFTER = timedelta(seconds=60)

_apps: dict[str, Celery] = {}
_lock = threading.Lock()


def celery_app(broker: str) -> Celery:
    """The Celery app builds uses with ``broker`` (one per URL)."""
    with _lock:
        if broker not in _apps:
            app = Celery("srht-builds", broker=broker, set_as_current=False)
            app.conf.update(
                worker_prefetch_multiplier=1,
                broker_connection_retry_on_startup=True,
                task_ignore_result=True,
                worker_hijack_root_logger=False,
                # A message is taken before its job is claimed: a runner
                # that dies with it leaves the job queued, and the watchdog
                # publishes it again.
                task_acks_late=False,
            )
            _apps[broker] = app
        return _apps[broker]


def publish(job_id: int, image: str) -> bool:
    """Publish job ``job_id`` on its image's queue. ``False`` without a
    broker, or when the broker cannot be reached (the watchdog retries)."""
    broker = current_service().config.get("srht", "broker")
    if not broker:
        return False
    try:
        celery_app(broker).send_task(RUN_TASK, args=[job_id], queue=queue_name(image))
    except Exception as error:  # noqa: BLE001 - the job stays queued; the watchdog retries
        log.warning("could not publish job %s (%s); it will be retried", job_id, error)
        return False
    return True


def publish_after_commit(job: Job) -> None:
    """Publish ``job`` once the session it was added in commits."""
    session = current_service().db.scoped()
    pending: list[tuple[int, str]] = session.info.setdefault("builds_publish", [])
    if not pending:
        sa.event.listen(session, "after_commit", _after_commit, once=True)
        sa.event.listen(session, "after_rollback", _after_rollback, once=True)
    pending.append((job.id, job.image))


def _after_commit(session: Any) -> None:
    for job_id, image in session.info.pop("builds_publish", []):
        publish(job_id, image)


def _after_rollback(session: Any) -> None:
    session.info.pop("builds_publish", None)


def lose(job: Job, why: str) -> None:
    """The runner of ``job`` went away (``why`` says how): queue the job
    again if it had not begun a task and may be retried, else fail it."""
    from .submit import end

    began = any(task.status != PENDING for task in job.tasks)
    if not began and job.attempts < MAX_ATTEMPTS:
        job.status = QUEUED
        job.reason = f"{why} before the job began; queued again"
        job.runner = None
        job.heartbeat = None
        job.started = None
        job.queued = utcnow()
        publish_after_commit(job)
        return
    running = next((t.name for t in job.tasks if t.status == RUNNING), None)
    where = f" during task {running}" if running else ""
    end(job, FAILED, f"{why}{where}")


def watch() -> None:
    """The ``watch`` job: fail (or queue again) running jobs whose runner
    has been silent past ``[builds] runner-timeout``, and publish again
    jobs that no runner took."""
    section = current_service().section
    now = utcnow()
    silent = now - timedelta(seconds=section["runner-timeout"])
    lost = db_session.scalars(
        sa.select(Job)
        .where(Job.status == RUNNING, Job.heartbeat < silent)
        .order_by(Job.id)
        .limit(100)
        .with_for_update(skip_locked=True)
    ).all()
    for job in lost:
        assert job.heartbeat is not None
        seconds = int((now - job.heartbeat).total_seconds())
        lose(job, f"the runner {job.runner} stopped answering ({seconds} s without word)")
    stale = db_session.scalars(
        sa.select(Job)
        .where(Job.status == QUEUED, Job.queued < now - REPUBLISH_AFTER)
        .order_by(Job.id)
        .limit(100)
        .with_for_update(skip_locked=True)
    ).all()
    for job in stale:
        job.queued = now
    db_session.commit()
    for job in stale:
        publish(job.id, job.image)
