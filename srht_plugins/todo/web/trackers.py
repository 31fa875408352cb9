"""Trackers: the index, creating one, a user's trackers, and a tracker's
ticket list with its search and submit form, its labels' colours and its
subscription."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from markupsafe import Markup
from sqlalchemy.orm import selectinload

from srht_core import (
    Problem,
    allow_csp,
    db_session,
    login_required,
    paginate,
    user_named,
    viewer,
    watch,
    watched_page,
)

from .. import listcache, subscriptions, tickets, trackers
from ..access import SUBMIT, listed_trackers, tracker_for
from ..forms import TicketForm, TrackerForm
from ..models import CLOSED, OPEN, Comment, Label, Ticket, Tracker, User, resolution_label
from ..search import DEFAULT_SEARCH, SearchError, filtered, parse

bp = Blueprint("trackers", __name__)
bp.add_app_template_filter(resolution_label, "resolution")

PER_PAGE = 25
COLOR = re.compile(r"#[0-9a-fA-F]{6}")


@bp.get("/")
def index() -> Any:
    """Your trackers when signed in; the site's public trackers below."""
    user = viewer()
    mine: Sequence[Tracker] = []
    if user is not None:
        mine = db_session.scalars(
            sa.select(Tracker).where(Tracker.owner_id == user.id).order_by(Tracker.updated.desc())
        ).all()
    public = paginate(
        db_session, listed_trackers(None).order_by(Tracker.updated.desc(), Tracker.id.desc())
    )
    return render_template("todo/index.html", mine=mine, public=public)


@bp.route("/trackers/create", methods=["GET", "POST"])
@login_required
def create() -> Any:
    form = TrackerForm()
    if form.validate_on_submit():
        try:
            tracker = trackers.create_tracker(
                viewer(), form.name.data, form.description.data, form.visibility.data
            )
            db_session.commit()
        except Problem as problem:
            db_session.rollback()
            form.show(problem)
        except sa.exc.IntegrityError:
            db_session.rollback()
            form.name.errors = [*form.name.errors, "You have a tracker of that name already."]
        else:
            flash(f"Tracker {tracker.ref} created.", "success")
            return redirect(
                url_for("trackers.tracker", owner=tracker.owner.username, tracker=tracker.name)
            )
    status = 400 if form.is_submitted() else 200
    return render_template("todo/tracker-create.html", form=form), status


@bp.get("/~<owner>")
def user_trackers(owner: str) -> Any:
    person: User | None = user_named(owner)
    if person is None:
        abort(404, f"No user ~{owner} has trackers here.")
    trackers = paginate(
        db_session,
        listed_trackers(viewer(), person).order_by(Tracker.updated.desc(), Tracker.id.desc()),
    )
    return render_template("todo/user.html", person=person, trackers=trackers)


def _ticket_list(access: Any, search_text: str) -> tuple[Any, str | None]:
    """One page of the tracker's tickets matching the search, with their
    labels, submitters and comment counts: five queries at most, however
    many tickets."""
    error = None
    try:
        search = parse(search_text)
    except SearchError as problem:
        error = str(problem)
        search = parse(DEFAULT_SEARCH)
    comments = (
        sa.select(sa.func.count(Comment.id))
        .where(Comment.ticket_id == Ticket.id, Comment.text != "")
        .correlate(Ticket)
        .scalar_subquery()
    )
    stmt = (
        sa.select(Ticket, comments.label("comments"))
        .where(Ticket.tracker_id == access.tracker.id)
        .options(selectinload(Ticket.labels), selectinload(Ticket.submitter))
        .order_by(Ticket.number.desc())
    )
    stmt = filtered(stmt, search, access.tracker.id, db_session.get_bind().dialect.name)
    page = paginate(db_session, stmt, per_page=PER_PAGE, scalars=False)
    return page, error


def render_tracker(access: Any, form: TicketForm | None = None, status: int = 200) -> Any:
    search_text = request.args.get("search", DEFAULT_SEARCH)
    error = None
    try:
        parse(search_text)
    except SearchError as problem:
        error = str(problem)

    def render_list() -> str:
        page, _error = _ticket_list(access, search_text)
        by_status = dict(
            db_session.execute(
                sa.select(Ticket.status, sa.func.count(Ticket.id))
                .where(Ticket.tracker_id == access.tracker.id)
                .group_by(Ticket.status)
            ).all()
        )
        return render_template(
            "todo/ticket-list.html",
            tracker=access.tracker,
            page=page,
            search=search_text.strip(),
            counts={"open": by_status.get(OPEN, 0), "closed": by_status.get(CLOSED, 0)},
        )

    # The list is the same for everyone who may browse the tracker: cached
    # per revision of the tracker (see listcache), so a repeat view runs no
    # ticket queries.
    ticket_list = listcache.cached_list(access.tracker, request.query_string, render_list)
    subscribed = subscriptions.subscription(viewer(), tracker=access.tracker) is not None
    can_submit = access.can(SUBMIT)
    if form is None and can_submit:
        # Only a shown form: making one puts a CSRF token in the visitor's
        # session, which would give every visitor a cookie.
        form = TicketForm(formdata=None)
    return render_template(
        "todo/tracker.html",
        access=access,
        tracker=access.tracker,
        ticket_list=ticket_list,
        search=search_text,
        search_error=error,
        form=form,
        subscribed=subscribed,
        can_submit=can_submit,
    ), status


@bp.get("/~<owner>/<tracker>")
def tracker(owner: str, tracker: str) -> Any:
    def render() -> Any:
        access = tracker_for(owner, tracker)
        # Anything the page shows, and who may see it, is in the tracker's
        # row or raises its revision (see listcache): a visitor without
        # cookies gets the kept page, with no query, until the row changes.
        watch(access.tracker)
        return render_tracker(access)

    return watched_page(render)


@bp.post("/~<owner>/<tracker>/submit")
def submit(owner: str, tracker: str) -> Any:
    access = tracker_for(owner, tracker)
    access.require(SUBMIT, "submit tickets")
    form = TicketForm()
    if form.validate_on_submit():
        try:
            ticket = tickets.submit_ticket(access, viewer(), form.title.data, form.description.data)
            db_session.commit()
        except Problem as problem:
            db_session.rollback()
            form.show(problem)
        else:
            flash(f"Ticket #{ticket.number} submitted.", "success")
            return redirect(
                url_for("tickets.ticket", owner=owner, tracker=tracker, number=ticket.number)
            )
    return render_tracker(access, form, 400)


def labels_style(tracker: Tracker) -> Markup:
    """The colours of ``tracker``'s labels as a ``<style>`` element for the
    page's head, allowed by its hash in this page's Content-Security-Policy
    (which allows no other inline style): the page needs no second
    stylesheet. Kept with the tracker's ticket lists, until its revision
    changes. Colours are ``#rrggbb``, checked again here."""

    def render() -> str:
        labels = db_session.scalars(
            sa.select(Label).where(Label.tracker_id == tracker.id).order_by(Label.id)
        ).all()
        return "".join(
            f".label-{label.id} {{ background-color: {label.color}; color: {label.text_color}; }}"
            for label in labels
            if COLOR.fullmatch(label.color)
        )

    css = str(listcache.cached_list(tracker, b"\0labels.css", render))
    if not css:
        return Markup("")
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    allow_csp("style-src", f"'sha256-{digest}'")
    return Markup(f"<style>{css}</style>")  # noqa: S704 - ids and checked #rrggbb only


bp.add_app_template_global(labels_style)


@bp.post("/~<owner>/<tracker>/subscribe")
@login_required
def subscribe(owner: str, tracker: str) -> Any:
    access = tracker_for(owner, tracker)
    subscriptions.subscribe(viewer(), tracker=access.tracker)
    db_session.commit()
    flash(f"You will hear of every ticket on {access.tracker.ref} by mail.", "success")
    return redirect(url_for("trackers.tracker", owner=owner, tracker=tracker))


@bp.post("/~<owner>/<tracker>/unsubscribe")
@login_required
def unsubscribe(owner: str, tracker: str) -> Any:
    access = tracker_for(owner, tracker)
    subscriptions.unsubscribe(viewer(), tracker=access.tracker)
    db_session.commit()
    flash(f"You unsubscribed from {access.tracker.ref}.", "success")
    return redirect(url_for("trackers.tracker", owner=owner, tracker=tracker))
