"""A list's settings and moderation, for its owner only: details and
posting rules, named members, webhooks with their delivery log, the
moderation queue, deletion."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, url_for
from sqlalchemy.orm import undefer

from srht_core import Problem, WebhookSettings, confirm, db_session, login_required

from .. import archive, events, lists
from ..access import Access, list_for
from ..events import LIST_EVENTS, list_key
from ..forms import ListSettingsForm, MemberForm
from ..models import HELD, Email, ListMember, User, Webhook

bp = Blueprint("settings", __name__)


def owner_access(owner: str, name: str) -> Access:
    access = list_for(owner, name)
    access.require_owner("change this list's settings")
    return access


def menu(access: Access) -> list[tuple[str, str, str]]:
    """The side menu of a list's settings: (key, label, URL)."""
    owner, name = access.list.owner.username, access.list.name
    return [
        (key, label, url_for(endpoint, owner=owner, name=name))
        for key, label, endpoint in (
            ("details", "Details and posting", "settings.details"),
            ("members", "Members", "settings.members"),
            ("webhooks", "Webhooks", "settings.webhooks"),
            ("delete", "Delete", "settings.delete"),
        )
    ]


def render(template: str, access: Access, section: str, status: int = 200, **context: Any) -> Any:
    return render_template(
        template,
        access=access,
        mailing_list=access.list,
        section=section,
        settings_menu=menu(access),
        **context,
    ), status


def _url(endpoint: str, access: Access, **values: Any) -> str:
    return url_for(endpoint, owner=access.list.owner.username, name=access.list.name, **values)


def _to(endpoint: str, access: Access, **values: Any) -> Any:
    return redirect(_url(endpoint, access, **values))


@bp.route("/~<owner>/<name>/settings", methods=["GET", "POST"])
@login_required
def details(owner: str, name: str) -> Any:
    access = owner_access(owner, name)
    found = access.list
    form = ListSettingsForm(
        data={
            "description": found.description,
            "visibility": found.visibility,
            "post_policy": found.post_policy,
            "allowed_senders": found.allowed_senders,
            "moderated": found.moderated,
            "rewrite_from": found.rewrite_from,
            "archived": found.archived,
        }
    )
    if form.validate_on_submit():
        try:
            lists.update_list(
                access,
                description=form.description.data or "",
                visibility=form.visibility.data,
                post_policy=form.post_policy.data,
                allowed_senders=lists.split_addresses(form.allowed_senders.data or ""),
                moderated=bool(form.moderated.data),
                rewrite_from=bool(form.rewrite_from.data),
                archived=bool(form.archived.data),
            )
            db_session.commit()
        except Problem as problem:
            db_session.rollback()
            form.show(problem)
        else:
            flash("Settings saved.", "success")
            return _to("settings.details", access)
    status = 400 if form.is_submitted() else 200
    return render("lists/settings-details.html", access, "details", status, form=form)


def render_members(access: Access, form: MemberForm | None = None, status: int = 200) -> Any:
    members = db_session.scalars(
        sa.select(ListMember).where(ListMember.list_id == access.list.id).order_by(ListMember.id)
    ).all()
    return render(
        "lists/settings-members.html",
        access,
        "members",
        status,
        members=members,
        form=form or MemberForm(formdata=None),
    )


@bp.get("/~<owner>/<name>/settings/members")
@login_required
def members(owner: str, name: str) -> Any:
    return render_members(owner_access(owner, name))


@bp.post("/~<owner>/<name>/settings/members")
@login_required
def add_member(owner: str, name: str) -> Any:
    access = owner_access(owner, name)
    form = MemberForm()
    if form.validate_on_submit():
        try:
            user = lists.find_user(form.username.data, "username")
            lists.add_member(access, user)
            db_session.commit()
        except Problem as problem:
            db_session.rollback()
            form.show(problem)
        except sa.exc.IntegrityError:
            db_session.rollback()
            form.username.errors = [*form.username.errors, "They were just added; reload."]
        else:
            flash(f"~{user.username} is a member of {access.list.ref}.", "success")
            return _to("settings.members", access)
    return render_members(access, form, 400)


@bp.route("/~<owner>/<name>/settings/members/<int:user_id>/remove", methods=["GET", "POST"])
@login_required
def remove_member(owner: str, name: str, user_id: int) -> Any:
    access = owner_access(owner, name)
    member = db_session.scalar(
        sa.select(ListMember).where(
            ListMember.list_id == access.list.id, ListMember.user_id == user_id
        )
    )
    if member is None:
        abort(404, f"That user is not a member of {access.list.ref}.")
    user = db_session.get(User, user_id)
    who = user.canonical_name if user is not None else "this user"
    question = confirm(
        f"Remove {who} from the members of {access.list.ref}?",
        "They lose what only members may do here (reading a private list, posting to a "
        "members-only one). Their messages stay in the archive.",
        cancel=url_for("settings.members", owner=owner, name=name),
        button="Remove",
    )
    if question is not None:
        return question
    lists.remove_member(access, user_id)
    db_session.commit()
    flash(f"{who} is no longer a member.", "success")
    return _to("settings.members", access)


def webhook_settings(access: Access) -> WebhookSettings:
    """The list's webhook settings page (the core's views)."""
    mailing_list = access.list
    return WebhookSettings(
        events=LIST_EVENTS,
        subscription=list_key(mailing_list),
        hooks=lambda: db_session.scalars(
            sa.select(Webhook).where(Webhook.list_id == mailing_list.id).order_by(Webhook.id)
        ).all(),
        find=lambda webhook_id: db_session.scalar(
            sa.select(Webhook).where(Webhook.id == webhook_id, Webhook.list_id == mailing_list.id)
        ),
        create=lambda url, names: events.create_webhook(
            mailing_list.owner_id, url, names, mailing_list
        ),
        render=lambda status, **context: render(
            "lists/settings-webhooks.html", access, "webhooks", status, **context
        ),
        url=_url("settings.webhooks", access),
        remove_url=lambda hook: _url("settings.delete_webhook", access, webhook_id=hook.id),
        redeliver_url=lambda d: _url("settings.redeliver_delivery", access, delivery_id=d.id),
        subject=mailing_list.ref,
        owner=f"{mailing_list.ref} has",
    )


@bp.get("/~<owner>/<name>/settings/webhooks")
@login_required
def webhooks(owner: str, name: str) -> Any:
    return webhook_settings(owner_access(owner, name)).page()


@bp.post("/~<owner>/<name>/settings/webhooks")
@login_required
def create_webhook(owner: str, name: str) -> Any:
    return webhook_settings(owner_access(owner, name)).add()


@bp.route("/~<owner>/<name>/settings/webhooks/<int:webhook_id>/delete", methods=["GET", "POST"])
@login_required
def delete_webhook(owner: str, name: str, webhook_id: int) -> Any:
    return webhook_settings(owner_access(owner, name)).remove(webhook_id)


@bp.post("/~<owner>/<name>/settings/deliveries/<int:delivery_id>/redeliver")
@login_required
def redeliver_delivery(owner: str, name: str, delivery_id: int) -> Any:
    return webhook_settings(owner_access(owner, name)).redeliver(delivery_id)


@bp.route("/~<owner>/<name>/settings/delete", methods=["GET", "POST"])
@login_required
def delete(owner: str, name: str) -> Any:
    access = owner_access(owner, name)
    ref = access.list.ref
    question = confirm(
        f"Delete {ref}?",
        "This deletes the list with its whole archive (every thread, message and patchset), "
        "its subscribers and its webhooks. Mail to its address is refused from then on. "
        "It cannot be undone; to keep the archive, mark the list archived instead.",
        cancel=url_for("settings.details", owner=owner, name=name),
        button="Delete list",
        typed=access.list.name,
    )
    if question is not None:
        return question
    lists.delete_list(access)
    db_session.commit()
    flash(f"List {ref} deleted.", "success")
    return redirect(url_for("lists.index"))


# -- moderation ----------------------------------------------------------------


def held(access: Access, email_id: int) -> Email:
    found = db_session.scalar(
        sa.select(Email)
        .where(Email.id == email_id, Email.list_id == access.list.id, Email.status == HELD)
        .options(undefer(Email.raw))
    )
    if found is None:
        abort(404, f"No message {email_id} waits for approval on {access.list.ref}.")
    return found


@bp.get("/~<owner>/<name>/moderation")
@login_required
def moderation(owner: str, name: str) -> Any:
    access = owner_access(owner, name)
    waiting = db_session.scalars(
        sa.select(Email)
        .where(Email.list_id == access.list.id, Email.status == HELD)
        .order_by(Email.id)
    ).all()
    return render_template(
        "lists/moderation.html", access=access, mailing_list=access.list, waiting=waiting
    )


@bp.post("/~<owner>/<name>/moderation/<int:email_id>/approve")
@login_required
def approve(owner: str, name: str, email_id: int) -> Any:
    access = owner_access(owner, name)
    found = held(access, email_id)
    archive.publish(access.list, found, found.raw)
    db_session.commit()
    flash(f"Approved: {found.subject or '(no subject)'} is archived and sent on.", "success")
    return _to("settings.moderation", access)


@bp.route("/~<owner>/<name>/moderation/<int:email_id>/reject", methods=["GET", "POST"])
@login_required
def reject(owner: str, name: str, email_id: int) -> Any:
    access = owner_access(owner, name)
    found = held(access, email_id)
    question = confirm(
        f"Reject {found.subject or '(no subject)'} from {found.sender_address}?",
        "The message is deleted; nobody on the list sees it.",
        cancel=url_for("settings.moderation", owner=owner, name=name),
        button="Reject",
    )
    if question is not None:
        return question
    db_session.delete(found)
    db_session.commit()
    flash("Rejected; the message is deleted.", "success")
    return _to("settings.moderation", access)
