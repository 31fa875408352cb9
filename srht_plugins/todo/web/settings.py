"""A tracker's settings, for its owner only: details and default access,
the named users' access list, webhooks with their delivery log, deletion."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, url_for

from srht_core import Problem, WebhookSettings, confirm, db_session, login_required

from .. import events, trackers
from ..access import Access, tracker_for
from ..events import EVENTS, subscription_key
from ..forms import AccessForm, TrackerSettingsForm
from ..models import TrackerAccess, User, Webhook, access_mask, access_names

bp = Blueprint("settings", __name__)


def owner_access(owner: str, tracker: str) -> Access:
    access = tracker_for(owner, tracker)
    access.require_owner("change this tracker's settings")
    return access


def menu(access: Access) -> list[tuple[str, str, str]]:
    """The side menu of a tracker's settings: (key, label, URL)."""
    owner, tracker = access.tracker.owner.username, access.tracker.name
    return [
        (key, label, url_for(endpoint, owner=owner, tracker=tracker))
        for key, label, endpoint in (
            ("details", "Details and access", "settings.details"),
            ("access", "Named users", "settings.access_list"),
            ("webhooks", "Webhooks", "settings.webhooks"),
            ("delete", "Delete", "settings.delete"),
        )
    ]


def render(template: str, access: Access, section: str, status: int = 200, **context: Any) -> Any:
    return render_template(
        template,
        access=access,
        tracker=access.tracker,
        section=section,
        settings_menu=menu(access),
        **context,
    ), status


def _url(endpoint: str, access: Access, **values: Any) -> str:
    tracker = access.tracker
    return url_for(endpoint, owner=tracker.owner.username, tracker=tracker.name, **values)


def _to(endpoint: str, access: Access) -> Any:
    return redirect(_url(endpoint, access))


@bp.route("/~<owner>/<tracker>/settings", methods=["GET", "POST"])
@login_required
def details(owner: str, tracker: str) -> Any:
    access = owner_access(owner, tracker)
    found = access.tracker
    form = TrackerSettingsForm(
        data={
            "description": found.description,
            "visibility": found.visibility,
            "anonymous_access": access_names(found.anonymous_access),
            "user_access": access_names(found.user_access),
        }
    )
    if form.validate_on_submit():
        try:
            trackers.update_tracker(
                access,
                description=form.description.data or "",
                visibility=form.visibility.data,
                anonymous_access=access_mask(form.anonymous_access.data or []),
                user_access=access_mask(form.user_access.data or []),
            )
            db_session.commit()
        except Problem as problem:
            db_session.rollback()
            form.show(problem)
        else:
            flash("Settings saved.", "success")
            return _to("settings.details", access)
    status = 400 if form.is_submitted() else 200
    return render("todo/settings-details.html", access, "details", status, form=form)


def render_access(access: Access, form: AccessForm | None = None, status: int = 200) -> Any:
    entries = db_session.scalars(
        sa.select(TrackerAccess)
        .where(TrackerAccess.tracker_id == access.tracker.id)
        .order_by(TrackerAccess.id)
    ).all()
    return render(
        "todo/settings-access.html",
        access,
        "access",
        status,
        entries=entries,
        form=form or AccessForm(formdata=None),
        access_names=access_names,
    )


@bp.get("/~<owner>/<tracker>/settings/access")
@login_required
def access_list(owner: str, tracker: str) -> Any:
    return render_access(owner_access(owner, tracker))


@bp.post("/~<owner>/<tracker>/settings/access")
@login_required
def grant(owner: str, tracker: str) -> Any:
    access = owner_access(owner, tracker)
    form = AccessForm()
    if form.validate_on_submit():
        try:
            user = trackers.find_user(form.username.data, "username")
            trackers.grant_access(access, user, access_mask(form.access.data or []))
            db_session.commit()
        except Problem as problem:
            db_session.rollback()
            form.show(problem)
        except sa.exc.IntegrityError:
            db_session.rollback()
            form.username.errors = [
                *form.username.errors,
                "That user's access was just changed; try again.",
            ]
        else:
            flash(f"Access for ~{user.username} saved.", "success")
            return _to("settings.access_list", access)
    return render_access(access, form, 400)


@bp.route("/~<owner>/<tracker>/settings/access/<int:user_id>/remove", methods=["GET", "POST"])
@login_required
def revoke(owner: str, tracker: str, user_id: int) -> Any:
    access = owner_access(owner, tracker)
    entry = db_session.scalar(
        sa.select(TrackerAccess).where(
            TrackerAccess.tracker_id == access.tracker.id, TrackerAccess.user_id == user_id
        )
    )
    if entry is None:
        abort(404, f"That user is not named on {access.tracker.ref}.")
    user = db_session.get(User, user_id)
    name = user.canonical_name if user is not None else "this user"
    question = confirm(
        f"Remove {name} from the named users of {access.tracker.ref}?",
        "The tracker's defaults apply to them again.",
        cancel=url_for("settings.access_list", owner=owner, tracker=tracker),
        button="Remove",
    )
    if question is not None:
        return question
    trackers.revoke_access(access, user_id)
    db_session.commit()
    flash("Access entry removed; the defaults apply to that user again.", "success")
    return _to("settings.access_list", access)


def webhook_settings(access: Access) -> WebhookSettings:
    """The tracker's webhook settings page (the core's views)."""
    tracker = access.tracker
    return WebhookSettings(
        events=EVENTS,
        subscription=subscription_key(tracker),
        hooks=lambda: db_session.scalars(
            sa.select(Webhook).where(Webhook.tracker_id == tracker.id).order_by(Webhook.id)
        ).all(),
        find=lambda webhook_id: events.find_webhook(access, webhook_id),
        create=lambda url, names: events.create_webhook(access, url, names),
        render=lambda status, **context: render(
            "todo/settings-webhooks.html", access, "webhooks", status, **context
        ),
        url=_url("settings.webhooks", access),
        remove_url=lambda hook: _url("settings.delete_webhook", access, webhook_id=hook.id),
        redeliver_url=lambda d: _url("settings.redeliver_delivery", access, delivery_id=d.id),
        subject=tracker.ref,
        owner=f"{tracker.ref} has",
    )


@bp.get("/~<owner>/<tracker>/settings/webhooks")
@login_required
def webhooks(owner: str, tracker: str) -> Any:
    return webhook_settings(owner_access(owner, tracker)).page()


@bp.post("/~<owner>/<tracker>/settings/webhooks")
@login_required
def create_webhook(owner: str, tracker: str) -> Any:
    return webhook_settings(owner_access(owner, tracker)).add()


@bp.route("/~<owner>/<tracker>/settings/webhooks/<int:webhook_id>/delete", methods=["GET", "POST"])
@login_required
def delete_webhook(owner: str, tracker: str, webhook_id: int) -> Any:
    return webhook_settings(owner_access(owner, tracker)).remove(webhook_id)


@bp.post("/~<owner>/<tracker>/settings/deliveries/<int:delivery_id>/redeliver")
@login_required
def redeliver_delivery(owner: str, tracker: str, delivery_id: int) -> Any:
    return webhook_settings(owner_access(owner, tracker)).redeliver(delivery_id)


@bp.route("/~<owner>/<tracker>/settings/delete", methods=["GET", "POST"])
@login_required
def delete(owner: str, tracker: str) -> Any:
    access = owner_access(owner, tracker)
    ref = access.tracker.ref
    question = confirm(
        f"Delete {ref}?",
        "This deletes the tracker with every ticket, comment, label, subscription and "
        "webhook. It cannot be undone.",
        cancel=url_for("settings.details", owner=owner, tracker=tracker),
        button="Delete tracker",
        typed=access.tracker.name,
    )
    if question is not None:
        return question
    trackers.delete_tracker(access)
    db_session.commit()
    flash(f"Tracker {ref} deleted.", "success")
    return redirect(url_for("trackers.index"))
