"""The chores API: JSON, token-authenticated, CSRF-exempt."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import request

from srht_core import ApiError, api_blueprint, api_user, db_session, enqueue, require_scope

from .models import Chore

bp = api_blueprint("chores_api", __name__)


def _chore(chore: Chore) -> dict[str, Any]:
    return {"id": chore.id, "title": chore.title, "done": chore.done, "reminded": chore.reminded}


@bp.get("/chores")
def list_chores() -> Any:
    return {"results": [_chore(c) for c in db_session.scalars(sa.select(Chore).order_by(Chore.id))]}


@bp.post("/chores")
def create_chore() -> Any:
    """Create a chore and enqueue its reminder in the same transaction.
    ``"explode": true`` fails the request after the enqueue, so tests can
    show the job is rolled back with the chore."""
    data = request.get_json(silent=True) or {}
    title = str(data.get("title") or "").strip()
    if not title:
        raise ApiError(400, "a chore needs a title", field="title")
    chore = Chore(title=title)
    db_session.add(chore)
    db_session.flush()
    job = enqueue("remind", chore=chore.id)
    if data.get("explode"):
        raise RuntimeError("exploded after enqueueing, as asked")
    db_session.commit()
    return {**_chore(chore), "job": job}, 201


@bp.get("/me")
@require_scope("chores/chores")
def me() -> Any:
    """Who the bearer token speaks for (a token-checked read)."""
    user = api_user()
    return {"id": user.id, "username": user.username}
