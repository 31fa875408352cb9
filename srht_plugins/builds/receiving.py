"""Receiving the signed webhooks builds subscribes to (git's ``repo:push``,
lists' ``patchset:received``) at a URL whose key names the subscription."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from srht_core import WebhookError, db_session, enqueue, verify_request

__all__ = ["receive_webhook"]


def receive_webhook(model: Any, key: str, event: str, job: str, argument: str, unknown: str) -> Any:
    """Answer a delivery to the subscription of ``model`` with ``key``:
    404 (``unknown``) for an unknown key, 403 for a bad signature, 200 for another event
    than ``event`` (ignored), else 202 with the background ``job`` queued
    with the subscription's id as ``argument`` and the event's data."""
    found = db_session.scalar(sa.select(model).where(model.key == key))
    if found is None:
        db_session.rollback()
        return {"errors": [{"reason": unknown}]}, 404
    try:
        payload = verify_request(db_session)
    except WebhookError as error:
        db_session.rollback()
        return {"errors": [{"reason": str(error)}]}, 403
    if payload.get("event") != event:
        db_session.commit()
        return {"ignored": f"builds starts jobs on {event}, not {payload.get('event')}"}, 200
    data = payload.get("data") or {}
    enqueue(job, session=db_session, payload=data, **{argument: found.id})
    db_session.commit()
    return {"queued": True}, 202
