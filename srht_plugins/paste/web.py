"""paste's pages: the new-paste form, a paste with its files highlighted,
raw and download views of a file, a user's list of pastes, and deleting.

Pages work without JavaScript: the form gets another file slot from its
"Add another file" button, which re-renders it. A private paste answers 404
to everyone but its owner, exactly like a paste that does not exist.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from wtforms import FieldList, FormField, RadioField, StringField, TextAreaField
from wtforms import Form as SubForm

from srht_core import (
    Form,
    anonymous_page,
    current_service,
    current_user,
    db_session,
    login_required,
    paginate,
)

from .highlight import render_file
from .models import PRIVATE, UNLISTED, VISIBILITIES, Paste, PasteFile, User
from .pastes import (
    MAX_FILES,
    Limits,
    NewFile,
    Problem,
    check_paste,
    create_paste,
    find_paste,
    listed_for,
)

bp = Blueprint("paste", __name__)

VISIBILITY_HELP = {
    "public": "anyone can see it, and it is listed on your page",
    "unlisted": "anyone with the link can see it",
    "private": "only you can see it",
}


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _unix_newlines(value: Any) -> Any:
    # Browsers send text areas with CRLF line breaks.
    return value.replace("\r\n", "\n") if isinstance(value, str) else value


class FileForm(SubForm):  # type: ignore[misc]
    filename = StringField("File name", filters=[_strip])
    content = TextAreaField("Contents", filters=[_unix_newlines])


class PasteForm(Form):
    files = FieldList(FormField(FileForm), min_entries=1, max_entries=MAX_FILES)
    # Plain values, labelled by the template with VISIBILITY_HELP.
    visibility = RadioField(
        "Visibility", default=UNLISTED, validate_choice=False, choices=list(VISIBILITIES)
    )


class DeleteForm(Form):
    """Nothing but the CSRF token: the confirmation is the button."""


def _viewer() -> User | None:
    user: User | None = current_user._get_current_object()
    return user


def _limits() -> Limits:
    return Limits.from_section(current_service().section)


def _new_page(form: PasteForm, status: int = 200, paste_errors: list[str] | None = None) -> Any:
    return render_template(
        "paste/new.html",
        form=form,
        paste_errors=paste_errors or [],
        limits=_limits(),
        visibility_help=VISIBILITY_HELP,
    ), status


def _show_problems(form: PasteForm, problems: list[Problem], slots: list[int]) -> list[str]:
    """Put each problem next to its field; return those about the paste."""
    general = []
    for problem in problems:
        if problem.index is not None:
            entry = form.files[slots[problem.index]]
            entry[problem.field].errors.append(problem.reason)
        elif problem.field == "visibility":
            form.visibility.errors.append(problem.reason)
        else:
            general.append(problem.reason)
    return general


@bp.route("/", methods=["GET", "POST"])
@login_required
def new_paste() -> Any:
    form = PasteForm()
    if request.method == "GET":
        return _new_page(form)
    if not form.validate_on_submit():
        return _new_page(form, 400)
    if "add_file" in request.form:
        if len(form.files) >= MAX_FILES:
            return _new_page(form, 400, [f"A paste may hold at most {MAX_FILES} files."])
        form.files.append_entry()
        return _new_page(form)
    # Slots left entirely blank are ignored, so an extra slot does no harm.
    slots = [i for i, entry in enumerate(form.files) if entry.filename.data or entry.content.data]
    files = [
        NewFile(form.files[i].filename.data or "", form.files[i].content.data or "") for i in slots
    ]
    problems = check_paste(files, form.visibility.data or "", _limits())
    if problems:
        return _new_page(form, 400, _show_problems(form, problems, slots))
    user = _viewer()
    assert user is not None
    paste = create_paste(user, files, form.visibility.data)
    db_session.commit()
    return redirect(url_for("paste.view_paste", username=user.username, slug=paste.slug), code=303)


@bp.get("/~<username>")
def user_pastes(username: str) -> Any:
    owner = db_session.scalar(sa.select(User).where(User.username == username))
    if owner is None:
        abort(404)
    viewer = _viewer()
    page = paginate(db_session, listed_for(owner, viewer), per_page=25)
    return render_template(
        "paste/user.html",
        owner=owner,
        page=page,
        is_owner=viewer is not None and viewer.id == owner.id,
    )


def _paste_or_404(username: str, slug: str, *, with_content: bool = True) -> Paste:
    paste = find_paste(slug, _viewer(), username=username, with_content=with_content)
    if paste is None:
        abort(404)
    return paste


def _private(response: Response, paste: Paste) -> Response:
    """Keep shared caches from storing what only the owner may see."""
    if paste.visibility == PRIVATE:
        response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/~<username>/<slug>")
def view_paste(username: str, slug: str) -> Any:
    paste = _paste_or_404(username, slug, with_content=False)
    # A paste's files never change; its visibility (shown on the page)
    # changes ``updated``, and the owner's name is in its links.
    return anonymous_page(
        ("paste", paste.id, paste.updated, paste.owner.username), lambda: _paste_page(paste)
    )


def _paste_page(paste: Paste) -> Response:
    contents = dict(
        db_session.execute(  # the contents of all its files: one query
            sa.select(PasteFile.id, PasteFile.content).where(PasteFile.paste_id == paste.id)
        ).all()
    )
    shown = [
        (file, render_file(file.filename, contents[file.id], file.position)) for file in paste.files
    ]
    viewer = _viewer()
    response = Response(
        render_template(
            "paste/paste.html",
            paste=paste,
            files=shown,
            is_owner=viewer is not None and viewer.id == paste.owner_id,
        )
    )
    return _private(response, paste)


def _file_or_404(paste: Paste, position: int) -> PasteFile:
    for file in paste.files:
        if file.position == position:
            return file
    abort(404)


def _raw_response(paste: Paste, file: PasteFile) -> Response:
    response = Response(file.content, mimetype="text/plain")
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Even a browser that ignored the type would run nothing from here.
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return _private(response, paste)


@bp.get("/~<username>/<slug>/raw/<int:position>")
def raw_file(username: str, slug: str, position: int) -> Any:
    paste = _paste_or_404(username, slug)
    return _raw_response(paste, _file_or_404(paste, position))


_SEPARATORS = re.compile(r"[/\\]")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\"';]")
_NOT_ASCII_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def download_disposition(filename: str, fallback: str) -> str:
    """A ``Content-Disposition`` that saves the file under the last part of
    its name, without directories, quotes or control characters; ASCII in
    ``filename``, the full name in ``filename*`` (RFC 6266)."""
    name = _UNSAFE.sub("", _SEPARATORS.split(filename)[-1]).strip().lstrip(".")
    name = name or fallback
    plain = _NOT_ASCII_NAME.sub("_", name).strip("_").lstrip(".") or fallback
    header = f'attachment; filename="{plain}"'
    if plain != name:
        header += "; filename*=UTF-8''" + quote(name, safe="")
    return header


@bp.get("/~<username>/<slug>/download/<int:position>")
def download_file(username: str, slug: str, position: int) -> Any:
    paste = _paste_or_404(username, slug)
    file = _file_or_404(paste, position)
    response = _raw_response(paste, file)
    response.headers["Content-Disposition"] = download_disposition(
        file.filename, f"paste-{paste.slug}-{file.position}.txt"
    )
    return response


@bp.route("/~<username>/<slug>/delete", methods=["GET", "POST"])
@login_required
def delete_paste(username: str, slug: str) -> Any:
    paste = _paste_or_404(username, slug, with_content=False)
    viewer = _viewer()
    if viewer is None or viewer.id != paste.owner_id:
        abort(404)
    form = DeleteForm()
    if request.method == "POST" and form.validate_on_submit():
        db_session.delete(paste)
        db_session.commit()
        flash("The paste is deleted.", "success")
        return redirect(url_for("paste.user_pastes", username=viewer.username), code=303)
    status = 400 if request.method == "POST" else 200
    return render_template("paste/delete.html", paste=paste, form=form), status
