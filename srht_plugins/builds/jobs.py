"""builds' background jobs (run by ``srht worker builds``): the watchdog
over runners, the triggers of ended jobs, the jobs a push or a patchset
starts, and telling lists what became of a patchset.

These are the service's own chores; the build jobs themselves run on the
runners (``srht builds runner``), not here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from srht_core import Config, Job, Timer

if TYPE_CHECKING:
    from .models import Job as BuildJob

# The package imports this module when a plugin host loads builds (for its
# ``jobs`` hook), and every ``srht`` command loads it: the database, models
# and dispatch are imported when a job runs.

__all__ = ["JOBS", "queue_triggers", "timers"]

#: Seconds between two rounds of the watchdog.
WATCH_EVERY = 10.0


def queue_triggers(job: BuildJob) -> None:
    """Fire ``job``'s triggers once the ending is committed."""
    from srht_core import db_session, enqueue

    enqueue("triggers", session=db_session, job=job.id)


def triggers(job: int) -> None:
    """The ``triggers`` job."""
    from srht_core import db_session

    from .events import fire_triggers
    from .models import Job as BuildJob

    found = db_session.get(BuildJob, job)
    if found is not None:
        fire_triggers(found)
        db_session.commit()


def push(hook: int, payload: dict[str, Any]) -> None:
    """The ``push`` job: start the jobs of a push git told us of."""
    from .push import start_jobs

    start_jobs(hook, payload)


def patchset(link: int, payload: dict[str, Any]) -> None:
    """The ``patchset`` job: start the jobs of a patchset lists told us of
    (tried again later while lists, git or meta cannot be asked)."""
    from .patchsets import start_jobs

    start_jobs(link, payload)


def report(build: int) -> None:
    """The ``report`` job: tell lists what became of a patchset's jobs."""
    from .patchsets import report as report_patchset

    report_patchset(build)


def watch() -> None:
    """The ``watch`` job: fail the jobs of runners gone silent."""
    from .dispatch import watch as watch_runners

    watch_runners()


JOBS = [
    Job("watch", watch, max_attempts=1, timeout=60),
    Job("triggers", triggers, max_attempts=10, backoff=30),
    Job("push", push, max_attempts=5, backoff=20),
    Job("patchset", patchset, max_attempts=8, backoff=30),
    Job("report", report, max_attempts=10, backoff=30),
]


def timers(config: Config) -> list[Timer]:
    return [Timer("watch-runners", "watch", WATCH_EVERY)]
