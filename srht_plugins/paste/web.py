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
    Problem,
    anonymous_page,
    db_session,
    login_required,
    paginate,
    viewer,
)

from .access import find_paste, is_owner, listed_pastes
from .highlight import render_file
from .models import PRIVATE, UNLISTED, VISIBILITIES, Paste, PasteFile, User
from .pastes import MAX_FILES, Limits, NewFile, check_paste, create_paste

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
    files = FieldList(FormField(FileForm, "File"), "Files", min_entries=1, max_entries=MAX_FILES)
    # Plain values, labelled by the template with VISIBILITY_HELP.
    visibility = RadioField(
        "Visibility", default=UNLISTED, validate_choice=False, choices=list(VISIBILITIES)
    )


class DeleteForm(Form):
    """Nothing but the CSRF token: the confirmation is the button."""


def _new_page(form: PasteForm, status: int = 200) -> Any:
    return render_template(
        "paste/new.html", form=form, limits=Limits.current(), visibility_help=VISIBILITY_HELP
    ), status


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
            form.show(Problem("files", f"A paste may hold at most {MAX_FILES} files."))
            return _new_page(form, 400)
        form.files.append_entry()
        return _new_page(form)
    # Slots left entirely blank are ignored, so an extra slot does no harm;
    # the form comes back without them, numbered as the problems number them.
    filled = [entry for entry in form.files if entry.filename.data or entry.content.data]
    form.files.entries = filled or form.files.entries[:1]
    files = [NewFile(entry.filename.data or "", entry.content.data or "") for entry in filled]
    problems = check_paste(files, form.visibility.data or "", Limits.current())
    if problems:
        for problem in problems:
            form.show(problem)
        return _new_page(form, 400)
    user = viewer()
    paste = create_paste(user, files, form.visibility.data)
    db_session.commit()
    return redirect(url_for("paste.view_paste", username=user.username, slug=paste.slug), code=303)


@bp.get("/~<username>")
def user_pastes(username: str) -> Any:
    owner = db_session.scalar(sa.select(User).where(User.username == username))
    if owner is None:
        abort(404)
    user = viewer()
    page = paginate(db_session, listed_pastes(owner, user), per_page=25)
    return render_template(
        "paste/user.html",
        owner=owner,
        page=page,
        is_owner=user is not None and user.id == owner.id,
    )


def _paste_or_404(username: str, slug: str, *, with_content: bool = True) -> Paste:
    paste = find_paste(slug, viewer(), username=username, with_content=with_content)
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
    response = Response(
        render_template(
            "paste/paste.html",
            paste=paste,
            files=shown,
            is_owner=is_owner(paste, viewer()),
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
    user = viewer()
    if not is_owner(paste, user):
        abort(404)
    form = DeleteForm()
    if request.method == "POST" and form.validate_on_submit():
        db_session.delete(paste)
        db_session.commit()
        flash("The paste is deleted.", "success")
        return redirect(url_for("paste.user_pastes", username=user.username), code=303)
    status = 400 if request.method == "POST" else 200
    return render_template("paste/delete.html", paste=paste, form=form), status
