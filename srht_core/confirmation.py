"""The "are you sure" step of every deletion and revocation.

A view that deletes or revokes something serves both the question and the
answer at one URL::

    @bp.route("/~<owner>/<name>/delete", methods=["GET", "POST"])
    def delete(owner, name):
        repository = owned_repository(owner, name)
        question = confirm(
            f"Delete {repository.ref}?",
            "Its history, settings and access grants are deleted for good.",
            cancel=url_for(".settings", owner=owner, name=name),
            typed=repository.name,
        )
        if question is not None:
            return question
        delete_repository(repository)
        ...

A GET shows the page (``srht/confirm.html``); a POST from that page (its
CSRF token checked by the core, like every form) returns ``None`` and the
view goes on. With ``typed``, the person must type that text first, for
deletions that take much with them. A link, a prefetch or a crawler never
deletes anything: only the page's button does.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Response, make_response, render_template, request

__all__ = ["Confirmation", "confirm"]


@dataclass(frozen=True)
class Confirmation:
    """What ``srht/confirm.html`` shows."""

    title: str
    consequences: tuple[str, ...]
    action: str
    cancel: str
    button: str
    keep: str
    typed: str | None
    #: Why the last answer was not taken (the typed text did not match).
    problem: str | None = None


def confirm(
    title: str,
    *consequences: str,
    cancel: str,
    button: str = "Delete",
    keep: str = "Cancel",
    typed: str | None = None,
    action: str | None = None,
) -> Response | None:
    """Ask before a deletion or revocation; ``None`` once confirmed.

    :param title: the question (``"Delete ~alice/bugs?"``).
    :param consequences: sentences saying what will be lost, one paragraph each.
    :param cancel: where "Cancel" leads (nothing is changed).
    :param button: the text of the button that does it.
    :param keep: the text of the way back.
    :param typed: text the person must type to confirm (the object's name).
    :param action: where the form posts (default: this URL).
    :return: the page to answer with, or ``None`` on a confirmed POST.
    """
    page = Confirmation(
        title, consequences, action or request.full_path.rstrip("?"), cancel, button, keep, typed
    )
    if request.method == "POST" and request.form.get("confirmed") == "yes":
        given = (request.form.get("typed") or "").strip()
        if typed is None or given == typed:
            return None
        problem = f"Type {typed} exactly to confirm; nothing was changed."
        again = Confirmation(**{**page.__dict__, "problem": problem})
        return make_response(render_template("srht/confirm.html", confirm=again), 400)
    return make_response(render_template("srht/confirm.html", confirm=page))
