"""Lists: the index, creating one, a user's lists, a list's page (its
threads, or a search of its messages), its patchsets, subscribing on the
web, and the whole archive as an mbox."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)

from srht_core import (
    Problem,
    db_session,
    login_required,
    paginate,
    viewer,
    watch,
    watched_page,
)

from .. import lists, subscriptions
from ..access import Access, list_for, listed_lists
from ..addresses import list_address
from ..forms import ListForm
from ..mbox import mbox_entry
from ..models import ARCHIVED, PATCHSET_STATUSES, Email, MailingList, Patchset, Thread, User

bp = Blueprint("lists", __name__)

PER_PAGE = 25
#: Messages read at once for the archive's mbox.
MBOX_BATCH = 100
#: Longest search accepted (characters).
MAX_SEARCH = 256


@bp.get("/")
def index() -> Any:
    """Your lists when signed in; the site's public lists below."""
    user = viewer()
    mine: Sequence[MailingList] = []
    if user is not None:
        mine = db_session.scalars(
            sa.select(MailingList)
            .where(MailingList.owner_id == user.id)
            .order_by(MailingList.updated.desc())
        ).all()
    public = paginate(
        db_session,
        listed_lists(None).order_by(MailingList.updated.desc(), MailingList.id.desc()),
    )
    return render_template("lists/index.html", mine=mine, public=public)


@bp.route("/lists/create", methods=["GET", "POST"])
@login_required
def create() -> Any:
    form = ListForm()
    if form.validate_on_submit():
        try:
            made = lists.create_list(
                viewer(), form.name.data, form.description.data, form.visibility.data
            )
            db_session.commit()
        except Problem as problem:
            db_session.rollback()
            form.show(problem)
        except sa.exc.IntegrityError:
            db_session.rollback()
            form.name.errors = [*form.name.errors, "You have a list of that name already."]
        else:
            flash(f"List {made.ref} created: write to {list_address(made)}.", "success")
            return redirect(
                url_for("lists.mailing_list", owner=made.owner.username, name=made.name)
            )
    status = 400 if form.is_submitted() else 200
    return render_template("lists/create.html", form=form), status


@bp.get("/~<owner>")
def user_lists(owner: str) -> Any:
    person = db_session.scalar(sa.select(User).where(User.username == owner))
    if person is None:
        abort(404, f"No user ~{owner} has lists here.")
    found = paginate(
        db_session,
        listed_lists(viewer(), person).order_by(MailingList.updated.desc(), MailingList.id.desc()),
    )
    return render_template("lists/user.html", person=person, lists=found)


def subscribed(access: Access) -> bool:
    user = access.user
    return user is not None and subscriptions.subscription_of(access.list, user.email) is not None


@bp.get("/~<owner>/<name>")
def mailing_list(owner: str, name: str) -> Any:
    search = request.args.get("search", "").strip()[:MAX_SEARCH]

    def render() -> Any:
        access = list_for(owner, name)
        watch(access.list)
        found = access.list
        if search:
            pattern = (
                "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            )
            stmt = (
                sa.select(Email)
                .where(
                    Email.list_id == found.id,
                    Email.status == ARCHIVED,
                    sa.or_(
                        Email.subject.ilike(pattern, escape="\\"),
                        Email.sender_address.ilike(pattern, escape="\\"),
                        Email.body.ilike(pattern, escape="\\"),
                    ),
                )
                .order_by(Email.id.desc())
            )
            page = paginate(db_session, stmt, per_page=PER_PAGE)
            threads = None
        else:
            by_update = (
                sa.select(Thread)
                .where(Thread.list_id == found.id)
                .order_by(Thread.updated.desc(), Thread.id.desc())
            )
            threads = paginate(db_session, by_update, per_page=PER_PAGE)
            page = None
        return render_template(
            "lists/list.html",
            access=access,
            mailing_list=found,
            address=list_address(found),
            threads=threads,
            results=page,
            search=search,
            subscribed=subscribed(access),
        )

    return watched_page(render)


@bp.get("/~<owner>/<name>/patches")
def patchsets(owner: str, name: str) -> Any:
    status = request.args.get("status", "")
    if status and status not in PATCHSET_STATUSES:
        abort(400, f"{status!r} is not a patchset status ({', '.join(PATCHSET_STATUSES)}).")

    def render() -> Any:
        access = list_for(owner, name)
        watch(access.list)
        stmt = sa.select(Patchset).where(Patchset.list_id == access.list.id)
        if status:
            stmt = stmt.where(Patchset.status == status)
        page = paginate(
            db_session,
            stmt.order_by(Patchset.updated.desc(), Patchset.id.desc()),
            per_page=PER_PAGE,
        )
        return render_template(
            "lists/patches.html",
            access=access,
            mailing_list=access.list,
            page=page,
            status=status,
            statuses=PATCHSET_STATUSES,
        )

    return watched_page(render)


@bp.post("/~<owner>/<name>/subscribe")
@login_required
def subscribe(owner: str, name: str) -> Any:
    access = list_for(owner, name)
    user = viewer()
    subscriptions.subscribe(access.list, user.email, user)
    db_session.commit()
    flash(f"{user.email} gets every post of {access.list.ref}.", "success")
    return redirect(url_for("lists.mailing_list", owner=owner, name=name))


@bp.post("/~<owner>/<name>/unsubscribe")
@login_required
def unsubscribe(owner: str, name: str) -> Any:
    access = list_for(owner, name)
    subscriptions.unsubscribe(access.list, viewer().email)
    db_session.commit()
    flash(f"You unsubscribed from {access.list.ref}.", "success")
    return redirect(url_for("lists.mailing_list", owner=owner, name=name))


def mbox_response(entries: Iterator[bytes] | bytes, filename: str) -> Response:
    """An mbox download: whole (``bytes``) or streamed from an iterator."""
    body = entries if isinstance(entries, bytes) else stream_with_context(entries)
    response = Response(body, mimetype="application/mbox")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/~<owner>/<name>/mbox")
def archive_mbox(owner: str, name: str) -> Any:
    """The whole archive, oldest first, read a batch at a time."""
    access = list_for(owner, name)
    list_id = access.list.id

    def entries() -> Iterator[bytes]:
        # A batch at a time by id (read-only requests run in autocommit,
        # where PostgreSQL has no server-side cursors to stream with).
        after = 0
        while True:
            rows = db_session.execute(
                sa.select(Email.id, Email.raw)
                .where(Email.list_id == list_id, Email.status == ARCHIVED, Email.id > after)
                .order_by(Email.id)
                .limit(MBOX_BATCH)
            ).all()
            for email_id, raw in rows:
                after = email_id
                yield mbox_entry(raw)
            if len(rows) < MBOX_BATCH:
                return

    return mbox_response(entries(), f"{access.list.name}.mbox")
