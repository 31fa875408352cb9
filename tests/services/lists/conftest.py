"""Fixtures of lists' tests: the lists app on a real PostgreSQL, users
signed in the way meta signs them in, tokens sealed the way meta issues
them, the real mail listeners (``srht lists smtp`` and ``srht lists lmtp``
as processes of their own), and an SMTP server catching what the list
sends on (the core's mail goes there).

- ``lists_app`` → the app, migrated; ``site`` → a :class:`ListsSite` over it;
- ``listener`` → a running ``srht lists smtp`` on the site's database
  (``site.listen("lmtp")`` for the LMTP one).
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

import srht_plugins.lists as lists_plugin
import srht_plugins.meta as meta_plugin
from srht_core import TokenGrant, seal_grant, state_of
from srht_core.jobs import run_until_idle
from srht_core.testing import FormBrowser, free_port, sign_in

ALL_SCOPES = frozenset({"lists/lists:RW", "lists/emails:RW", "lists/tools:RW"})
DOMAIN = "lists.example.org"


class Api:
    """The test client with a bearer token (or none)."""

    def __init__(self, client: Any, token: str | None):
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.client.open(
            "/api" + path,
            method=method,
            headers={**self.headers, **kwargs.pop("headers", {})},
            **kwargs,
        )

    def get(self, path: str, **kwargs: Any) -> Any:
        return self._call("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self._call("POST", path, json=json, **kwargs)

    def patch(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self._call("PATCH", path, json=json, **kwargs)

    def put(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self._call("PUT", path, json=json, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self._call("DELETE", path, **kwargs)


@dataclass
class Listener:
    """A running ``srht lists smtp`` or ``srht lists lmtp``."""

    kind: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def smtp(self) -> smtplib.SMTP:
        if self.kind == "lmtp":
            return smtplib.LMTP("127.0.0.1", self.port, timeout=60)
        return smtplib.SMTP("127.0.0.1", self.port, timeout=60)

    def send(
        self, message: EmailMessage | bytes, to: list[str] | None = None, sender: str = ""
    ) -> Any:
        """Send over a fresh connection; returns what ``sendmail`` returns
        (the refused recipients) or raises smtplib's exception."""
        # On the wire, lines end in CRLF (as every mail client sends them).
        data = message if isinstance(message, bytes) else message.as_bytes()
        data = re.sub(rb"\r?\n", b"\r\n", data)
        if to is None:
            assert isinstance(message, EmailMessage)
            to = [str(message["To"])]
        if not sender:
            sender = "sender@example.org"
        with self.smtp() as client:
            return client.sendmail(sender, to, data)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the listener exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listened on {port} within {timeout}s:\n{log.read_text()}")


class ListsSite:
    """The lists app and what a test needs around it."""

    def __init__(self, app: Any, config_path: Path, tmp_path: Path):
        self.app = app
        self.state = state_of(app)
        self.db = self.state.db
        self.config_path = config_path
        self.tmp_path = tmp_path
        self._token_ids = iter(range(1, 1_000_000))
        self.listeners: list[Listener] = []

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.db.session() as session:
            yield session

    @contextmanager
    def context(self) -> Iterator[None]:
        with self.app.app_context():
            yield

    def user(self, username: str, *, email_address: str | None = None) -> Any:
        """A mirrored user, as if meta had sent the profile."""
        from srht_plugins.lists.models import User

        with self.session() as session:
            next_id = (session.scalar(sa.select(sa.func.max(User.id))) or 0) + 1
            user = User(
                id=next_id, username=username, email=email_address or f"{username}@example.org"
            )
            session.add(user)
        return user

    def browser(self, user: Any = None) -> FormBrowser:
        client = self.app.test_client()
        if user is not None:
            sign_in(client, user.id)
        return FormBrowser(client)

    def token(self, user: Any, scopes: frozenset[str] = ALL_SCOPES) -> str:
        return seal_grant(
            TokenGrant("pat", next(self._token_ids), user.id, frozenset(scopes), None), self.state
        )

    def api(self, user: Any = None, scopes: frozenset[str] = ALL_SCOPES) -> Api:
        return Api(self.app.test_client(), self.token(user, scopes) if user is not None else None)

    def mailing_list(self, owner: Any, name: str = "devel", **settings: Any) -> Any:
        """A list made the way the pages and the API make one."""
        from srht_core import db_session
        from srht_plugins.lists import lists
        from srht_plugins.lists.access import find_list

        with self.context():
            owner_row = db_session.merge(owner)
            made = lists.create_list(
                owner_row,
                name,
                settings.pop("description", ""),
                settings.pop("visibility", "public"),
            )
            if settings:
                lists.update_list(find_list(owner_row.username, name, owner_row), **settings)
            db_session.commit()
            return made

    def member(self, mailing_list: Any, user: Any) -> None:
        from srht_plugins.lists.models import ListMember

        with self.session() as session:
            session.add(ListMember(list_id=mailing_list.id, user_id=user.id))

    def subscribe(self, mailing_list: Any, address: str) -> None:
        from srht_plugins.lists.models import Subscription

        with self.session() as session:
            session.add(Subscription(list_id=mailing_list.id, address=address))

    def deliver(self, raw: bytes | EmailMessage, to: str, sender: str = "") -> str:
        """Hand ``raw`` to the list the way the listener does, in-process
        (for tests about what is stored, not about the wire); the reply."""
        from srht_plugins.lists.inbound import receive

        data = raw if isinstance(raw, bytes) else raw.as_bytes()
        with self.context():
            return str(receive(to, sender or "sender@example.org", data))

    def listen(self, kind: str = "smtp") -> Listener:
        port = free_port()
        log = self.tmp_path / f"{kind}-{port}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "srht_core.cli",
                    "--config",
                    str(self.config_path),
                    "lists",
                    kind,
                    "--bind",
                    f"127.0.0.1:{port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONWARNINGS": "error::DeprecationWarning"},
            )
        listener = Listener(kind, port, process, log)
        self.listeners.append(listener)
        wait_for_port(port, process, log)
        return listener

    def run_jobs(self) -> None:
        run_until_idle(self.app)

    def jobs(self, name: str | None = None) -> list[Any]:
        from srht_core.jobs import job_table

        with self.db.engine.connect() as connection:
            stmt = sa.select(job_table).order_by(job_table.c.id)
            if name is not None:
                stmt = stmt.where(job_table.c.name == name)
            return list(connection.execute(stmt))

    def deliveries(self) -> list[Any]:
        from srht_core.webhooks import delivery_table

        with self.db.engine.connect() as connection:
            return list(connection.execute(sa.select(delivery_table).order_by(delivery_table.c.id)))

    def emails(self) -> list[Any]:
        from srht_plugins.lists.models import Email

        with self.session() as session:
            rows = session.scalars(sa.select(Email).order_by(Email.id)).all()
            session.expunge_all()
            return list(rows)

    def outbox(self) -> list[EmailMessage]:
        """What the worker wrote to the outbox (no SMTP server configured)."""
        folder = Path(self.state.config["mail"]["outbox-dir"])
        out = []
        for path in sorted(folder.glob("*.eml"), key=lambda p: (p.stat().st_mtime_ns, p.name)):
            parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            out.append(parsed)
        return out

    def mail_for(self, address: str) -> list[EmailMessage]:
        """Mail in the outbox to ``address``: the core's (``To``) and the
        list's copies (``Delivered-To``)."""
        return [
            m for m in self.outbox() if address in (str(m["To"]), str(m.get("Delivered-To", "")))
        ]


@pytest.fixture
def lists_config(
    make_config: Callable[..., Any], srht_database_url: str, srht_postgres: Any
) -> Callable[..., Any]:
    """``lists_config(lists={...}, **sections)`` → a config enabling lists
    (and meta, its identity provider) on this test's PostgreSQL database."""

    def make(lists: dict[str, Any] | None = None, **sections: dict[str, Any]) -> Any:
        values = {"connection-string": srht_database_url, "posting-domain": DOMAIN}
        values.update(lists or {})
        meta = {"connection-string": srht_postgres.create_database()}
        return make_config({"lists": values, "meta": meta}, **sections)

    return make


@pytest.fixture
def lists_app(
    register_plugin: Callable[..., Any],
    lists_config: Callable[..., Any],
    make_app: Callable[..., Any],
    request: pytest.FixtureRequest,
) -> Any:
    for module, name in ((meta_plugin, "meta"), (lists_plugin, "lists")):
        record = register_plugin(module, name, distribution="srht", version="0.1.0.dev0")
        assert record.ok, record.reason
    marker = request.node.get_closest_marker("lists_config")
    config = lists_config(**(marker.kwargs if marker else {}))
    app = make_app("lists", config)
    # Services ask meta which tokens and sessions were revoked; there is no
    # meta here, and these tests issue their own, none revoked.
    state_of(app).revoked = lambda kind, ident: False
    return app


@pytest.fixture
def site(lists_app: Any, tmp_path: Path) -> Iterator[ListsSite]:
    built = ListsSite(lists_app, Path(state_of(lists_app).config.path), tmp_path)
    try:
        yield built
    finally:
        for listener in built.listeners:
            listener.stop()


@pytest.fixture
def listener(site: ListsSite) -> Listener:
    return site.listen("smtp")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "lists_config(**sections): the sections of the lists app's config"
    )


def message(
    subject: str = "Hello",
    body: str = "Hi there.\n",
    *,
    sender: str = "Bob <bob@example.org>",
    to: str = f"~alice/devel@{DOMAIN}",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    """A plain-text message as a mail client writes one."""
    out = EmailMessage()
    out["From"] = sender
    out["To"] = to
    out["Subject"] = subject
    out["Date"] = "Sat, 05 Dec 2026 10:00:00 +0000"
    out["Message-ID"] = f"<{message_id or os.urandom(8).hex()}@example.org>"
    if in_reply_to:
        out["In-Reply-To"] = f"<{in_reply_to}>"
        out["References"] = references or f"<{in_reply_to}>"
    for name, value in (headers or {}).items():
        out[name] = value
    out.set_content(body)
    return out
