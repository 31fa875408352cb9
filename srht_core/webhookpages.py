"""The views of a webhook settings page: list a subject's webhooks with
their recent deliveries, add one, remove one (after a confirmation), send a
delivery again.

A service describes one page (a tracker's webhooks, a list's, a user's own)
as a :class:`WebhookSettings` built per request, after its own access
check, and each of its four routes calls one method. The page itself is the
service's template around ``m.webhook_settings``; what differs between
services is which rows are the subject's, how one is made, and the words.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flask import abort, flash, redirect

from .confirmation import confirm
from .db import db_session
from .errors import Problem
from .forms import WebhookForm
from .service import EventType
from .webhooks import deliveries, redeliver, webhook_signature_key

__all__ = ["WebhookSettings"]


@dataclass
class WebhookSettings:
    """One subject's webhook settings page (see the module's docstring).

    :param events: the events the form offers.
    :param subscription: the key the subject's deliveries are recorded
        under (what the service passes to ``deliver``).
    :param hooks: the subject's webhooks, in the order to list them.
    :param find: one of the subject's webhooks by id, or ``None`` (404):
        a webhook of another subject must give ``None``.
    :param create: add a webhook to ``url`` for ``events`` to the session
        (not committed), or raise :class:`~srht_core.Problem` naming the
        field; returns it.
    :param render: draw the page: called with the HTTP status and the
        keywords ``hooks``, ``deliveries``, ``form``, ``remove_url``,
        ``redeliver_url`` and ``signature_key``, which the template hands
        to ``m.webhook_settings``.
    :param url: the page's URL.
    :param remove_url: a webhook's removal URL.
    :param redeliver_url: a delivery's URL to send it again.
    :param subject: what the webhooks are told of, in a sentence: ``"~alice/bugs"``,
        ``"your projects"``.
    :param owner: who has them, to start a sentence: ``"~alice/bugs has"``,
        ``"You have"`` (a 404 says "``owner`` no webhook 3.").
    :param log_length: how many recent deliveries the page shows.

    .. versionadded:: 0.1
    """

    events: Sequence[EventType]
    subscription: str
    hooks: Callable[[], Sequence[Any]]
    find: Callable[[int], Any | None]
    create: Callable[[str, list[str]], Any]
    render: Callable[..., Any]
    url: str
    remove_url: Callable[[Any], str]
    redeliver_url: Callable[[Any], str]
    subject: str
    owner: str
    log_length: int = 50

    def page(self, form: WebhookForm | None = None, status: int = 200) -> Any:
        """The page: the webhooks, the form to add one, the recent deliveries."""
        return self.render(
            status,
            hooks=self.hooks(),
            deliveries=deliveries(self.subscription, limit=self.log_length, session=db_session),
            form=form or WebhookForm(self.events, formdata=None),
            remove_url=self.remove_url,
            redeliver_url=self.redeliver_url,
            signature_key=webhook_signature_key(),
        )

    def add(self) -> Any:
        """The form's POST: the webhook added (and back to the page), or the
        page again with what is wrong (400), nothing stored."""
        form = WebhookForm(self.events)
        if form.validate_on_submit():
            try:
                hook = self.create(form.url.data, form.events.data or [])
                db_session.commit()
            except Problem as problem:
                db_session.rollback()
                form.show(problem)
            else:
                flash(f"Webhook to {hook.url} added.", "success")
                return redirect(self.url)
        return self.page(form, 400)

    def remove(self, webhook_id: int) -> Any:
        """Remove webhook ``webhook_id`` once confirmed; its deliveries stay
        in the log."""
        hook = self.find(webhook_id)
        if hook is None:
            abort(404, f"{self.owner} no webhook {webhook_id}.")
        question = confirm(
            f"Remove the webhook to {hook.url}?",
            f"It is told nothing more of {self.subject}. Its delivery log stays.",
            cancel=self.url,
            button="Remove",
        )
        if question is not None:
            return question
        db_session.delete(hook)
        db_session.commit()
        flash(f"Webhook to {hook.url} removed.", "success")
        return redirect(self.url)

    def redeliver(self, delivery_id: int) -> Any:
        """Queue delivery ``delivery_id`` again, if it is one of this page's."""
        try:
            redeliver(delivery_id, session=db_session, subscription=self.subscription)
        except LookupError:
            abort(404, f"{self.owner} no delivery {delivery_id}.")
        db_session.commit()
        flash(f"Delivery {delivery_id} queued again.", "success")
        return redirect(f"{self.url}#delivery-{delivery_id}")
