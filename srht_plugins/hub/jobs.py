"""Hub's background jobs: subscribing to a resource's events, taking the
subscription off again, and the periodic check of every resource."""

from __future__ import annotations

from srht_core import Job, current_service, db_session

from . import sources
from .activity import refresh_all
from .models import Source


def subscribe(source_id: int) -> None:
    """The ``subscribe`` job: hub's webhook on a newly attached resource,
    retried with backoff while its service (or meta) does not answer; why
    it failed is kept for the owner to see."""
    source = db_session.get(Source, source_id)
    if source is None or source.webhook_id is not None:
        return
    try:
        webhook_id = sources.subscribe(source)
    except (sources.Unreachable, LookupError) as problem:
        with current_service().db.session() as session:
            failed = session.get(Source, source_id)
            if failed is not None:
                failed.hook_problem = str(problem)
        raise
    source.webhook_id = webhook_id
    source.hook_problem = ""


def unsubscribe(owner_id: int, service: str, kind: str, item: str, webhook_id: int) -> None:
    """The ``unsubscribe`` job: hub's webhook off a resource no project shows."""
    sources.unsubscribe(owner_id, service, kind, item, webhook_id)


JOBS = [
    Job("subscribe", subscribe, max_attempts=12, backoff=5.0, timeout=60.0),
    Job("unsubscribe", unsubscribe, max_attempts=6, backoff=30.0, timeout=60.0),
    Job("refresh", refresh_all, max_attempts=1, timeout=600.0),
]
