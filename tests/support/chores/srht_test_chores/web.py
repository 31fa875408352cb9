"""The chores pages: the list with its form, a chore's page (kept for
visitors without cookies until the chore changes), and two pages that tell
which gunicorn worker answered (for the multi-worker metrics test)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, redirect, render_template, url_for
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from srht_core import (
    Form,
    current_service,
    current_user,
    db_session,
    enqueue,
    watch,
    watched_page,
)

from .models import Chore

bp = Blueprint("chores", __name__)


class ChoreForm(Form):
    title = StringField("Title", validators=[DataRequired(), Length(max=200)])


@bp.get("/")
def index() -> Any:
    chores = db_session.scalars(sa.select(Chore).order_by(Chore.id)).all()
    return render_template("chores/index.html", chores=chores, form=ChoreForm())


@bp.post("/")
def add() -> Any:
    form = ChoreForm()
    if not form.validate():
        chores = db_session.scalars(sa.select(Chore).order_by(Chore.id)).all()
        return render_template("chores/index.html", chores=chores, form=form), 400
    chore = Chore(title=form.title.data)
    db_session.add(chore)
    db_session.flush()
    enqueue("remind", chore=chore.id)
    db_session.commit()
    return redirect(url_for("chores.index"))


#: How many times this process rendered a chore's page.
renders = 0


@bp.get("/chore/<int:number>")
def chore(number: int) -> Any:
    def render() -> Any:
        global renders
        found = db_session.get(Chore, number)
        if found is None:
            abort(404)
        watch(found)
        renders += 1
        return {"title": found.title, "done": found.done, "pid": os.getpid(), "render": renders}

    return watched_page(render)


@bp.get("/whoami")
def whoami() -> Any:
    return {"pid": os.getpid(), "user": current_user.username if current_user else None}


@bp.get("/hold/<name>")
def hold(name: str) -> Any:
    """Keep this worker busy until ``<hold-dir>/<name>.release`` exists."""
    folder = current_service().section["hold-dir"]
    if not folder or not name.isalnum():
        abort(404)
    (Path(folder) / f"{name}.started").write_text(str(os.getpid()), encoding="utf-8")
    deadline = time.monotonic() + 60
    while not (Path(folder) / f"{name}.release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"pid": os.getpid()}
