"""Pastes: the new-paste form, a paste with its files highlighted, a user's
list of pastes, and deleting one."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from srht_core import (
    Problem,
    anonymous_page,
    confirm,
    db_session,
    login_required,
    paginate,
    render_file,
    user_named,
    viewer,
    watch,
    watched_page,
)

from ..access import find_paste, is_owner, listed_pastes
from ..forms import VISIBILITY_HELP, PasteForm
from ..models import PRIVATE, Paste, PasteFile, User
from ..pastes import MAX_FILES, Limits, NewFile, check_paste, create_paste

bp = Blueprint("pastes", __name__)


def paste_or_404(username: str, slug: str, *, with_content: bool = True) -> Paste:
    """``~username``'s paste ``slug``, if the viewer may see it."""
    paste = find_paste(slug, viewer(), username=username, with_content=with_content)
    if paste is None:
        abort(404, f"~{username} has no paste {slug} here.")
    return paste


def keep_private(response: Response, paste: Paste) -> Response:
    """Keep shared caches from storing what only the owner may see."""
    if paste.visibility == PRIVATE:
        response.headers["Cache-Control"] = "private, no-store"
    return response


def _new_page(form: PasteForm, status: int = 200) -> tuple[str, int]:
    return render_template(
        "paste/new.html", form=form, limits=Limits.current(), visibility_help=VISIBILITY_HELP
    ), status


@bp.route("/", methods=["GET", "POST"])
@login_required
def new_paste() -> ResponseReturnValue:
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
    # Slots left blank are ignored, so an extra slot does no harm.
    files = [
        NewFile(entry.filename.data or "", entry.content.data or "")
        for entry in form.filled_files()
    ]
    problems = check_paste(files, form.visibility.data, Limits.current())
    if problems:
        for problem in problems:
            form.show(problem)
        return _new_page(form, 400)
    user = viewer()
    paste = create_paste(user, files, form.visibility.data)
    db_session.commit()
    return redirect(url_for(".view_paste", username=user.username, slug=paste.slug), code=303)


@bp.get("/~<username>")
def user_pastes(username: str) -> str:
    owner: User | None = user_named(username)
    if owner is None:
        abort(404, f"No user ~{username} has pastes here.")
    user = viewer()
    page = paginate(db_session, listed_pastes(owner, user), per_page=25)
    return render_template(
        "paste/user.html", owner=owner, page=page, is_owner=user is not None and user.id == owner.id
    )


@bp.get("/~<username>/<slug>")
def view_paste(username: str, slug: str) -> Response:
    def render() -> Response:
        paste = paste_or_404(username, slug, with_content=False)
        # A paste's files never change; its visibility (shown on the page)
        # and its deletion change its row, its owner's name the owner's row.
        # With PostgreSQL's row feed a visitor without cookies gets the kept
        # page with no query until one of them changes; without it (SQLite)
        # the lookup runs and the rendering is kept by the paste's version.
        watch(paste, paste.owner)
        return anonymous_page(
            ("paste", paste.id, paste.updated, paste.owner.username), lambda: _paste_page(paste)
        )

    return watched_page(render)


def _anchor(file: PasteFile) -> str:
    """The prefix of a file's line anchors: ``L12`` in the first file,
    ``F2-L12`` in the second, and so on, so that every line of the page has
    its own and the common one-file paste gets the short form."""
    return "L" if file.position == 1 else f"F{file.position}-L"


def _paste_page(paste: Paste) -> Response:
    contents = dict(
        db_session.execute(  # the contents of all its files: one query
            sa.select(PasteFile.id, PasteFile.content).where(PasteFile.paste_id == paste.id)
        ).all()
    )
    shown = [
        (file, render_file(file.filename, contents[file.id], anchor=_anchor(file)))
        for file in paste.files
    ]
    page = render_template(
        "paste/paste.html", paste=paste, files=shown, is_owner=is_owner(paste, viewer())
    )
    return keep_private(Response(page), paste)


@bp.route("/~<username>/<slug>/delete", methods=["GET", "POST"])
@login_required
def delete_paste(username: str, slug: str) -> ResponseReturnValue:
    paste = paste_or_404(username, slug, with_content=False)
    if not is_owner(paste, viewer()):
        abort(404, f"~{username} has no paste {slug} of yours.")
    count = len(paste.files)
    names = ", ".join(file.filename or f"File {file.position}" for file in paste.files)
    question = confirm(
        f"Delete {paste.title}?",
        f"It holds {count} file{'' if count == 1 else 's'}: {names}.",
        "Deleting it cannot be undone; its links will answer “not found”.",
        cancel=url_for(".view_paste", username=username, slug=slug),
        button="Delete paste",
        keep="Keep it",
    )
    if question is not None:
        return question
    title = paste.title
    db_session.delete(paste)
    db_session.commit()
    flash(f"{title} is deleted.", "success")
    return redirect(url_for(".user_pastes", username=username), code=303)
