"""What todo's pages share: who is looking, and showing a domain problem
next to the form field it is about."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, request

from srht_core import current_user

from ..access import Access, find_tracker
from ..tickets import Problem


def viewer() -> Any:
    """The signed-in user, or ``None`` (``current_user`` is a proxy, never
    ``None`` itself)."""
    user = current_user._get_current_object()
    return user if user else None


def tracker_access(owner: str, tracker: str) -> Access:
    return find_tracker(owner, tracker, viewer())


def show_problem(form: Any, problem: Problem) -> None:
    """Put ``problem`` on the form field it names, or flash it."""
    field = getattr(form, problem.field, None) if problem.field else None
    if field is not None and hasattr(field, "errors"):
        field.errors = [*field.errors, problem.reason]
    else:
        flash(problem.reason, "error")


def refuse_nul() -> None:
    """Answer 400 to a request with a NUL character in its path, query or
    form: PostgreSQL cannot store one, and no name or text needs it. (The
    API checks JSON bodies field by field.)"""
    values = [request.path, *request.args.values()]
    if request.method in ("POST", "PUT", "PATCH") and request.mimetype in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        values += list(request.form.values())
    if any("\x00" in value for value in values):
        abort(400, "NUL characters are not allowed in names, searches or text.")
