"""The pages of the hello service."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from srht_core import Form, current_service

web = Blueprint("hello", __name__)


class GreetForm(Form):
    name = StringField(
        "Your name", [DataRequired(), Length(max=64)], render_kw={"autocomplete": "name"}
    )


@web.route("/", methods=["GET", "POST"])
def index() -> ResponseReturnValue:
    greeting = current_service().section["greeting"]
    form = GreetForm()
    if form.validate_on_submit():
        flash(f"{greeting}, {form.name.data}!", "ok")
        # Post/redirect/get: reloading the page does not post again.
        return redirect(url_for("hello.index"))
    status = 400 if form.errors else 200
    return render_template("hello/index.html", greeting=greeting, form=form), status
