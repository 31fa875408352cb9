"""Webhooks as the core sends them: recorded with the caller's transaction,
signed with Ed25519 over timestamp, nonce and body, delivered by the
worker, and never sent into the site's own network when a user chose the
URL."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from srht_core import db_session, send_webhook
from srht_core.jobs import run_until_idle
from srht_core.webhooks import delivery_table, verify

pytestmark = pytest.mark.postgres


class Receiver(HTTPServer):
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((dict(self.headers), body))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def status_of(app: Any, delivery: int) -> Any:
    with app.extensions["srht"].db.engine.connect() as connection:
        return connection.execute(
            sa.select(delivery_table).where(delivery_table.c.id == delivery)
        ).one()


def test_a_webhook_is_signed_and_delivered(
    chores_plugin: Any, chores_config: Any, make_app: Any, receiver: Receiver
) -> None:
    app = make_app("chores", chores_config())
    with app.app_context():
        delivery = send_webhook(receiver.url, "chore:create", {"id": 7}, subscription="chores:1")
        db_session.commit()
    run_until_idle(app)
    assert status_of(app, delivery).status == "delivered"
    [(headers, body)] = receiver.received
    assert json.loads(body) == {"event": "chore:create", "data": {"id": 7}}
    private = app.extensions["srht"].config["webhooks"]["private-key"]
    public = Ed25519PrivateKey.from_private_bytes(base64.b64decode(private)).public_key()
    verify(
        body,
        headers["X-Srht-Nonce"],
        int(headers["X-Srht-Timestamp"]),
        headers["X-Srht-Signature"],
        public,
    )


def test_a_rolled_back_webhook_is_never_sent(
    chores_plugin: Any, chores_config: Any, make_app: Any, receiver: Receiver
) -> None:
    app = make_app("chores", chores_config())
    with app.app_context():
        send_webhook(receiver.url, "chore:create", {"id": 7})
        db_session.rollback()
    run_until_idle(app)
    assert receiver.received == []


def test_user_chosen_urls_may_not_reach_private_addresses_in_production(
    chores_plugin: Any, chores_config: Any, make_app: Any, receiver: Receiver
) -> None:
    app = make_app("chores", chores_config(srht={"environment": "production"}))
    with app.app_context():
        chosen = send_webhook(receiver.url, "chore:create", {"id": 1})
        ours = send_webhook(receiver.url, "user:update", {"id": 1}, internal=True)
        db_session.commit()
    run_until_idle(app)
    refused = status_of(app, chosen)
    assert refused.status == "refused"
    assert refused.response_body == (
        "refused: 127.0.0.1 resolves to 127.0.0.1, which is not a public address "
        "(see [webhooks] allow-private-targets)"
    )
    assert status_of(app, ours).status == "delivered"
    assert [json.loads(body)["event"] for _headers, body in receiver.received] == ["user:update"]


def test_private_targets_can_be_allowed(
    chores_plugin: Any, chores_config: Any, make_app: Any, receiver: Receiver
) -> None:
    app = make_app(
        "chores",
        chores_config(srht={"environment": "production"}, webhooks={"allow-private-targets": True}),
    )
    with app.app_context():
        delivery = send_webhook(receiver.url, "chore:create", {"id": 1})
        db_session.commit()
    run_until_idle(app)
    assert status_of(app, delivery).status == "delivered"
