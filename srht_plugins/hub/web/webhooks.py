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
from flask import Blueprint, render_template, url_for

from srht_core import WebhookSettings, db_session, login_required, viewer

from ..events import EVENTS, create_webhook, subscription_key
from ..models import Webhook

bp = Blueprint("webhooks", __name__)


def _settings() -> WebhookSettings:
    """The signed-in user's project webhooks (the core's views)."""
    user_id = viewer().id
    return WebhookSettings(
        events=EVENTS,
        subscription=subscription_key(user_id),
        hooks=lambda: db_session.scalars(
            sa.select(Webhook).where(Webhook.owner_id == user_id).order_by(Webhook.id)
        ).all(),
        find=lambda webhook_id: db_session.scalar(
            sa.select(Webhook).where(Webhook.id == webhook_id, Webhook.owner_id == user_id)
        ),
        create=lambda url, names: create_webhook(user_id, url, names),
        render=lambda status, **context: (render_template("hub/webhooks.html", **context), status),
        url=url_for("webhooks.show"),
        remove_url=lambda hook: url_for("webhooks.remove", webhook_id=hook.id),
        redeliver_url=lambda d: url_for("webhooks.send_again", delivery_id=d.id),
        subject="your projects",
        owner="You have",
    )


@bp.get("/settings/webhooks")
@login_required
def show() -> Any:
    return _settings().page()


@bp.post("/settings/webhooks")
@login_required
def add() -> Any:
    return _settings().add()


@bp.route("/settings/webhooks/<int:webhook_id>/delete", methods=["GET", "POST"])
@login_required
def remove(webhook_id: int) -> Any:
    return _settings().remove(webhook_id)


@bp.post("/settings/deliveries/<int:delivery_id>/redeliver")
@login_required
def send_again(delivery_id: int) -> Any:
    return _settings().redeliver(delivery_id)
