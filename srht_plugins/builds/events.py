"""What builds tells the outside when a job ends: the triggers of its
manifest, a mail or a signed webhook (``job:finish``), each recorded in the
transaction that ends the job and sent by the worker, retried until it
goes out.
"""

from __future__ import annotations

from typing import Any

from srht_core import EventType, current_service, db_session, send_mail, send_webhook

from .manifest import ManifestError, parse
from .models import SUCCESS, Job

__all__ = ["EVENTS", "fire_triggers", "job_payload"]

EVENTS = [
    EventType(
        "job:finish",
        "A job ended (success, failed, timeout or cancelled); sent to the URLs of its "
        "manifest's webhook triggers.",
    ),
]


def job_payload(job: Job) -> dict[str, Any]:
    return job.to_dict(current_service().origin)


def fire_triggers(job: Job) -> int:
    """Record the mail and webhooks ``job``'s manifest asks for on its end;
    how many."""
    try:
        manifest = parse(job.manifest)
    except ManifestError:
        return 0  # checked when submitted; an unparsable one never ran
    state = current_service()
    succeeded = job.status == SUCCESS
    url = f"{state.origin}/~{job.owner.username}/job/{job.id}"
    fired = 0
    for trigger in manifest.triggers:
        if not trigger.fires(succeeded):
            continue
        if trigger.action == "email" and trigger.to:
            subject = f"[#{job.id}] {job.status}: {job.note or job.image}"
            lines = [f"Job #{job.id} of {job.owner.canonical_name}: {job.status}."]
            if job.reason:
                lines.append(job.reason)
            lines += ["", *(f"  {task.name}: {task.status}" for task in job.tasks), "", url, ""]
            send_mail(
                trigger.to,
                subject,
                "\n".join(lines),
                headers={"X-Srht-Job": str(job.id)},
                session=db_session,
            )
            fired += 1
        elif trigger.action == "webhook" and trigger.url:
            send_webhook(
                trigger.url,
                "job:finish",
                job_payload(job),
                subscription=f"job:{job.id}",
                session=db_session,
            )
            fired += 1
    return fired
