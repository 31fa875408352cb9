"""builds' background jobs (run by ``srht worker builds``): the watchdog
over runners, the triggers of ended jobs, and the jobs a push starts.

These are the service's own chores; the build jobs themselves run on the
runners (``srht builds runner``), not here.
"""

from __future__ import annotations

from typing import Any

from srht_core import Config, Job, Timer, db_session, enqueue

from . import dispatch
from .models import Job as BuildJob

__all__ = ["JOBS", "queue_triggers", "timers"]

#: Seconds between two rounds of the watchdog.
WATCH_EVERY = 10.0


def queue_triggers(job: BuildJob) -> None:
    """Fire ``job``'s triggers once the ending is committed."""
    enqueue("triggers", session=db_session, job=job.id)


def triggers(job: int) -> None:
    """The ``triggers`` job."""
    from .events import fire_triggers

    found = db_session.get(BuildJob, job)
    if found is not None:
        fire_triggers(found)
        db_session.commit()


def push(hook: int, payload: dict[str, Any]) -> None:
    """The ``push`` job: start the jobs of a push git told us of."""
    from .push import start_jobs

    start_jobs(hook, payload)


JOBS = [
    Job("watch", dispatch.watch, max_attempts=1, timeout=60),
    Job("triggers", triggers, max_attempts=10, backoff=30),
    Job("push", push, max_attempts=5, backoff=20),
]


def timers(config: Config) -> list[Timer]:
    return [Timer("watch-runners", "watch", WATCH_EVERY)]
