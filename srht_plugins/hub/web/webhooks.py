"""The settings page of the webhooks that tell a user of their projects
(``project:create``, ``project:update``, ``project:delete``): the same
webhooks as the REST API's ``/api/user/webhooks``, listed, added and
removed, with their recent deliveries and a button to send one again.

They are the signed-in user's own: each project's settings link here, and
nobody else's webhook or delivery can be named in a URL (404).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, url_for

from srht_core import (
    Problem,
    WebhookForm,
    confirm,
    db_session,
    deliveries,
    login_required,
    redeliver,
    viewer,
    webhook_signature_key,
)

from ..events import EVENTS, create_webhook, subscription_key
from ..models import Webhook

bp = Blueprint("webhooks", __name__)

#: Deliveries the page shows.
LOG_LENGTH = 50


def _page(form: WebhookForm | None = None, status: int = 200) -> Any:
    user = viewer()
    hooks = db_session.scalars(
        sa.select(Webhook).where(Webhook.owner_id == user.id).order_by(Webhook.id)
    ).all()
    return render_template(
        "hub/webhooks.html",
        hooks=hooks,
        deliveries=deliveries(subscription_key(user.id), limit=LOG_LENGTH, session=db_session),
        form=form or WebhookForm(EVENTS, formdata=None),
        remove_url=lambda hook: url_for("webhooks.remove", webhook_id=hook.id),
        redeliver_url=lambda d: url_for("webhooks.send_again", delivery_id=d.id),
        signature_key=webhook_signature_key(),
    ), status


@bp.get("/settings/webhooks")
@login_required
def show() -> Any:
    return _page()


@bp.post("/settings/webhooks")
@login_required
def add() -> Any:
    form = WebhookForm(EVENTS)
    if form.validate_on_submit():
        try:
            hook = create_webhook(viewer().id, form.url.data, form.events.data or [])
            db_session.commit()
        except Problem as problem:
            db_session.rollback()
            form.show(problem)
        else:
            flash(f"Webhook to {hook.url} added.", "success")
            return redirect(url_for("webhooks.show"))
    return _page(form, 400)


@bp.route("/settings/webhooks/<int:webhook_id>/delete", methods=["GET", "POST"])
@login_required
def remove(webhook_id: int) -> Any:
    hook = db_session.scalar(
        sa.select(Webhook).where(Webhook.id == webhook_id, Webhook.owner_id == viewer().id)
    )
    if hook is None:
        abort(404, f"You have no webhook {webhook_id}.")
    question = confirm(
        f"Remove the webhook to {hook.url}?",
        "It is told nothing more of your projects. Its delivery log stays.",
        cancel=url_for("webhooks.show"),
        button="Remove",
    )
    if question is not None:
        return question
    db_session.delete(hook)
    db_session.commit()
    flash(f"Webhook to {hook.url} removed.", "success")
    return redirect(url_for("webhooks.show"))


@bp.post("/settings/deliveries/<int:delivery_id>/redeliver")
@login_required
def send_again(delivery_id: int) -> Any:
    try:
        redeliver(delivery_id, session=db_session, subscription=subscription_key(viewer().id))
    except LookupError:
        abort(404, f"You have no delivery {delivery_id}.")
    db_session.commit()
    flash(f"Delivery {delivery_id} queued again.", "success")
    return redirect(url_for("webhooks.show") + f"#delivery-{delivery_id}")
