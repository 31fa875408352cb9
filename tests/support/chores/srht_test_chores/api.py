"""The chores API: JSON, token-authenticated, CSRF-exempt."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import request

from srht_core import (
    ApiError,
    api_blueprint,
    api_user,
    current_service,
    db_session,
    enqueue,
    require_scope,
)

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
    show the job is rolled back with the chore; ``"explode": "after
    commit"`` fails it after the view's commit. ``"hold": NAME`` waits,
    after the chore is written, until ``<hold-dir>/NAME.release`` exists
    (for two requests caught at the same point)."""
    data = request.get_json(silent=True) or {}
    title = str(data.get("title") or "").strip()
    if not title:
        raise ApiError(400, "a chore needs a title", field="title")
    chore = Chore(title=title)
    db_session.add(chore)
    db_session.flush()
    job = enqueue("remind", chore=chore.id)
    if data.get("explode") is True:
        raise RuntimeError("exploded after enqueueing, as asked")
    if data.get("hold"):
        _hold(str(data["hold"]))
    db_session.commit()
    if data.get("explode") == "after commit":
        raise RuntimeError("exploded after committing, as asked")
    return {**_chore(chore), "job": job}, 201


def _hold(name: str) -> None:
    folder = current_service().section["hold-dir"]
    if not folder or not name.isalnum():
        raise ApiError(400, "no hold-dir, or not a plain name", field="hold")
    (Path(folder) / f"{name}.{os.getpid()}.{threading.get_ident()}.started").touch()
    deadline = time.monotonic() + 60
    while not (Path(folder) / f"{name}.release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


@bp.get("/me")
@require_scope("chores/chores")
def me() -> Any:
    """Who the bearer token speaks for (a token-checked read)."""
    user = api_user()
    return {"id": user.id, "username": user.username}
