"""The core's own behaviour, plugged in through the same hooks as services
(registered on every plugin host as ``srht-core``): mail and webhook delivery,
and housekeeping of jobs and idempotency keys."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from .hookspecs import hookimpl
from .service import Job, Timer

if TYPE_CHECKING:
    from .config import Config

# Mail, webhooks, jobs and the database are imported when a job runs: every
# plugin host registers this module, and most commands run none of them.

#: Finished jobs are kept this long, for the record.
KEEP_DONE_JOBS = timedelta(days=7)


def purge_finished_jobs() -> None:
    from .db import utcnow
    from .globals import current_service
    from .jobs import DONE, job_table

    with current_service().db.engine.begin() as connection:
        connection.execute(
            job_table.delete().where(
                job_table.c.status == DONE, job_table.c.updated < utcnow() - KEEP_DONE_JOBS
            )
        )


def _deliver_webhook(delivery: int) -> None:
    from . import webhooks

    webhooks.deliver(delivery)


def _purge_idempotency_keys() -> None:
    from .idempotency import purge_expired_keys

    purge_expired_keys()


def _send_mail(**message: object) -> None:
    from . import mail

    mail.deliver(**message)  # type: ignore[arg-type]


def _send_message(**message: object) -> None:
    from . import mail

    mail.deliver_message(**message)  # type: ignore[arg-type]


@hookimpl
def jobs() -> list[Job]:
    return [
        Job("srht.send-mail", _send_mail, max_attempts=12, backoff=30),
        Job("srht.send-message", _send_message, max_attempts=12, backoff=30),
        Job("srht.purge-jobs", purge_finished_jobs, max_attempts=3),
        # 30 attempts with backoff capped at an hour: a receiver may be down
        # for about a day and still catch up.
        Job("srht.deliver-webhook", _deliver_webhook, max_attempts=30, backoff=10),
        Job("srht.purge-idempotency-keys", _purge_idempotency_keys, max_attempts=3),
    ]


@hookimpl
def timers(config: Config) -> list[Timer]:
    return [
        Timer("srht.purge-jobs", "srht.purge-jobs", every=24 * 3600),
        Timer("srht.purge-idempotency-keys", "srht.purge-idempotency-keys", every=3600),
    ]


__all__ = ["jobs", "timers"]
