"""Forms: WTForms through Flask-WTF, with CSRF tokens, and the helpers that
turn validation errors into the shapes pages and APIs show.

Pages render fields with the ``field`` macro of ``srht/macros.html``, which
shows each field's errors next to it; APIs answer
``{"errors": [{"field": ..., "reason": ...}]}`` through :func:`api_validate`.
"""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict

from .errors import ApiError

__all__ = ["Form", "api_validate", "form_errors"]


class Form(FlaskForm):  # type: ignore[misc]
    """Base class of every form: a FlaskForm with a CSRF token, whose text
    fields refuse NUL characters (no database column stores them) with an
    error next to the field."""

    def validate(self, extra_validators: Any = None) -> bool:
        valid: bool = super().validate(extra_validators)
        for field in self:
            if isinstance(field.data, str) and "\x00" in field.data:
                field.errors = [*field.errors, "NUL characters are not accepted."]
                valid = False
        return valid


def form_errors(form: Any) -> list[tuple[str | None, str]]:
    """``(field, reason)`` for every error of a validated form."""
    out: list[tuple[str | None, str]] = []
    for name, messages in form.errors.items():
        for message in messages if isinstance(messages, list) else [messages]:
            out.append((name if name != "csrf_token" else None, str(message)))
    return out


def api_validate(form_class: type[Any], data: Any) -> Any:
    """Validate JSON ``data`` with a form class (without CSRF, as APIs are
    token-authenticated); raise :class:`ApiError` 400 listing every error."""
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    flat = MultiDict({k: v for k, v in data.items() if not isinstance(v, list | dict)})
    form = form_class(formdata=flat, meta={"csrf": False})
    if not form.validate():
        raise ApiError(400, errors=form_errors(form))
    return form
