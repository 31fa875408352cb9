"""Where the other services post the events of the resources hub watches:
``POST /webhooks/<source id>/<key>``, signed with the site's webhook key
(checked, with its nonce, by the core) at a URL holding the resource's own
secret, so neither a stranger nor another user's webhook can feed a
project's activity."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint

from srht_core import WebhookError, db_session, verify_request

from .. import activity
from ..models import Source

bp = Blueprint("hooks", __name__)


@bp.post("/webhooks/<int:source_id>/<key>")
def receive(source_id: int, key: str) -> Any:
    try:
        payload = verify_request(db_session)
    except WebhookError as error:
        return {"errors": [{"reason": f"refused: {error}"}]}, 400
    source = db_session.get(Source, source_id)
    if source is None or not secrets.compare_digest(source.hook_key, key):
        db_session.commit()  # keep the nonce: a replay stays refused
        return {"errors": [{"reason": "no such subscription here"}]}, 404
    event = activity.record(source, payload)
    db_session.commit()
    return {"recorded": event is not None}, 200


receive.srht_csrf_exempt = True  # type: ignore[attr-defined]
