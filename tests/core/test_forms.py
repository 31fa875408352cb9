"""The core's forms: choice fields refuse what is not one of their options
with an error next to the field, on every wtforms srht supports."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.datastructures import MultiDict

from srht_core import ChoiceField, Form, MultipleChoiceField

OPTIONS = [("ro", "Read"), ("rw", "Read and write")]


class Choices(Form):
    one = ChoiceField("One", OPTIONS, default="ro")
    many = MultipleChoiceField("Many", OPTIONS)


def validated(data: list[tuple[str, str]]) -> Any:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", WTF_CSRF_ENABLED=False)
    with app.test_request_context(method="POST"):
        form = Choices(formdata=MultiDict(data))
        return form.validate(), form.one.errors, form.many.errors, form.many.data


def test_chosen_options_are_taken() -> None:
    assert validated([("one", "rw"), ("many", "ro"), ("many", "rw")]) == (
        True,
        [],
        [],
        ["ro", "rw"],
    )


def test_a_value_that_is_not_an_option_is_an_error_next_to_its_field() -> None:
    valid, one, many, _data = validated([("one", "admin"), ("many", "ro"), ("many", "admin")])
    assert valid is False
    assert one == ["Choose one of the options."]
    assert many == ["'admin' is not one of the options."]
