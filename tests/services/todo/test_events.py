"""What the outside hears: mail to subscribers (recorded with the change,
sent by the worker) and signed webhooks that reach a receiver even when it
was down for the first deliveries."""

from __future__ import annotations

import base64
import html
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from srht_core.db import utcnow
from srht_core.jobs import job_table
from srht_core.testing import free_port
from srht_core.webhooks import verify

pytestmark = pytest.mark.postgres


def test_subscribers_get_mail_about_what_they_may_see(site: Any) -> None:
    alice, bob, carol = site.user("alice"), site.user("bob"), site.user("carol")
    site.tracker(alice, "bugs")  # its owner is subscribed to it
    bob_browser = site.browser(bob)
    assert bob_browser.submit("/~alice/bugs", action="/~alice/bugs/subscribe").status_code == 302

    carol_api = site.api(carol)
    assert (
        carol_api.post(
            "/trackers/alice/bugs/tickets", {"title": "Crash", "description": "It crashes on start"}
        ).status_code
        == 201
    )
    # Recorded with the ticket, not sent yet.
    assert site.outbox() == []
    assert [job.name for job in site.jobs()] == ["notify"]
    site.run_jobs()
    assert {m["To"] for m in site.outbox()} == {"alice@example.org", "bob@example.org"}
    message = site.mail_to("bob@example.org")[0]
    assert message["Subject"] == "~alice/bugs#1: Crash"
    assert message["From"] == "srht test <todo@example.org>"
    body = message.get_content()
    assert "~carol opened ~alice/bugs#1: Crash" in body
    assert "It crashes on start" in body
    assert "/~alice/bugs/1" in body

    # carol, the submitter, follows the ticket; bob comments and follows it too.
    assert (
        site.api(bob)
        .post("/trackers/alice/bugs/tickets/1/comments", {"text": "Me too"})
        .status_code
        == 201
    )
    site.run_jobs()
    comment_mail = [m for m in site.outbox() if "Me too" in m.get_content()]
    assert {m["To"] for m in comment_mail} == {"alice@example.org", "carol@example.org"}

    # bob leaves the tracker's list but still follows the ticket he commented on.
    assert bob_browser.submit("/~alice/bugs", action="/~alice/bugs/unsubscribe").status_code == 302
    assert (
        bob_browser.submit("/~alice/bugs/1", action="/~alice/bugs/1/unsubscribe").status_code == 302
    )
    # Made private: carol is no longer allowed to read it, so she hears nothing.
    site.api(alice).patch("/trackers/alice/bugs", {"visibility": "private"})
    site.api(alice).patch(
        "/trackers/alice/bugs/tickets/1", {"status": "closed", "comment": "Fixed in 1.1"}
    )
    site.run_jobs()
    assert [m for m in site.outbox() if "Fixed in 1.1" in m.get_content()] == []
    site.api(alice).put("/trackers/alice/bugs/access/carol", {"access": ["browse"]})
    site.api(alice).patch("/trackers/alice/bugs/tickets/1", {"status": "open"})
    site.run_jobs()
    reopened = [m for m in site.outbox() if "reopened" in m.get_content()]
    assert [m["To"] for m in reopened] == ["carol@example.org"]


class Receiver:
    """A webhook receiver on loopback: nothing listens on its port until
    :meth:`start`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.thread is not None:
            self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    try:
        yield found
    finally:
        found.stop()


def retry_now(site: Any) -> None:
    """Make the retries waiting for their backoff due now."""
    with site.db.engine.begin() as connection:
        connection.execute(
            job_table.update().where(job_table.c.status == "queued").values(run_after=utcnow())
        )


def test_a_receiver_down_at_first_gets_every_event_signed(site: Any, receiver: Receiver) -> None:
    alice, bob = site.user("alice"), site.user("bob")
    site.tracker(alice, "bugs")
    browser = site.browser(alice)
    added = browser.submit(
        "/~alice/bugs/settings/webhooks",
        {
            "url": receiver.url,
            "events": ["ticket:create", "ticket:update", "comment:create", "label:create"],
        },
    )
    assert added.status_code == 302

    api = site.api(alice)
    api.post("/trackers/alice/bugs/labels", {"name": "bug", "color": "#d73a4a"})
    site.api(bob).post("/trackers/alice/bugs/tickets", {"title": "Crash"})
    site.api(bob).post("/trackers/alice/bugs/tickets/1/comments", {"text": "Still"})
    api.patch("/trackers/alice/bugs/tickets/1", {"labels": ["bug"], "status": "closed"})
    api.patch("/trackers/alice/bugs", {"description": "not subscribed to tracker:update"})

    site.run_jobs()  # the receiver is down: every delivery fails and waits to retry
    assert receiver.received == []
    log = html.unescape(browser.get("/~alice/bugs/settings/webhooks").get_data(as_text=True))
    assert log.count(">failing<") == 4
    assert "Connection refused" in log

    receiver.start()
    retry_now(site)
    site.run_jobs()
    events = [json.loads(body)["event"] for _headers, body in receiver.received]
    assert sorted(events) == ["comment:create", "label:create", "ticket:create", "ticket:update"]
    key = base64.b64decode(site.state.config["webhooks"]["private-key"])
    public_key = Ed25519PrivateKey.from_private_bytes(key).public_key()
    for headers, body in receiver.received:
        verify(
            body,
            headers["X-Srht-Nonce"],
            int(headers["X-Srht-Timestamp"]),
            headers["X-Srht-Signature"],
            public_key,
        )
    created = next(
        json.loads(b)["data"]
        for _h, b in receiver.received
        if json.loads(b)["event"] == "ticket:create"
    )
    assert created["ticket"]["ref"] == "~alice/bugs#1"
    assert created["actor"] == "~bob"
    assert created["tracker"]["ref"] == "~alice/bugs"
    log = html.unescape(browser.get("/~alice/bugs/settings/webhooks").get_data(as_text=True))
    assert log.count(">delivered<") == 4

    # The log's redeliver button sends one again, signed afresh.
    first = api.get("/trackers/alice/bugs/webhook-deliveries").json["results"][-1]
    again = browser.submit(
        "/~alice/bugs/settings/webhooks",
        action=f"/~alice/bugs/settings/deliveries/{first['id']}/redeliver",
    )
    assert again.status_code == 302
    site.run_jobs()
    assert len(receiver.received) == 5
    (h1, b1), (h5, b5) = [
        r for r in receiver.received if json.loads(r[1])["event"] == first["event"]
    ]
    assert b1 == b5 and h1["X-Srht-Nonce"] != h5["X-Srht-Nonce"]
    # Someone else's delivery cannot be redelivered from this tracker.
    site.tracker(bob, "other")
    bob_browser = site.browser(bob)
    assert (
        bob_browser.post(
            f"/~bob/other/settings/deliveries/{first['id']}/redeliver",
            data={"csrf_token": bob_browser.csrf_token("/~bob/other")},
        ).status_code
        == 404
    )
    with site.db.engine.connect() as connection:
        statuses = set(connection.scalars(sa.select(job_table.c.status)))
    assert statuses == {"done"}
