"""Fixtures of meta's tests: the meta app on a real PostgreSQL, a browser
that fills in meta's forms the way a person does (so CSRF tokens come from
the pages), and the mail meta sends, read from the outbox.

- ``meta_plugin`` registers meta on this test's plugin host, with a second
  service, ``listener``, enabled beside it so that identity broadcasts have
  somewhere to go (nothing answers there; the deliveries are recorded).
- ``meta_config(meta={...}, **sections)`` → a config for them.
- ``meta_app`` → meta's app, migrated; ``meta_site`` → a :class:`MetaSite`
  over it: ``browser()``, ``create_user()``, ``mail_to()``, ``db()``.
"""

from __future__ import annotations

import email
import email.policy
import html
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy.orm import Session

from srht_core import ServiceInfo, hookimpl
from srht_core.testing import FormBrowser

#: The password of users made by ``MetaSite.create_user``.
PASSWORD = "correct horse battery"


class ListenerService:
    """A service that does nothing but be enabled next to meta."""

    @hookimpl
    def service_info(self) -> ServiceInfo:
        return ServiceInfo("listener", "Listener", "Hears meta's identity events in tests.")


def text(response: Any) -> str:
    """A response's body as a reader sees it (HTML entities decoded)."""
    return html.unescape(response.get_data(as_text=True))


def signed_out(browser: Any) -> bool:
    """Whether ``browser`` is signed out: meta's home shows the welcome page
    (what the site is, Log in, Register) rather than an account."""
    page = browser.get("/")
    return page.status_code == 200 and 'class="welcome"' in page.get_data(as_text=True)


# -- forms as a browser sees them ------------------------------------------------


class Browser(FormBrowser):
    """The core's form browser, with meta's login."""

    def csrf_token(self, page: str = "/logout") -> str:
        """A CSRF token valid for this browser's session."""
        return super().csrf_token(page)

    def login(self, username: str, password: str = PASSWORD, **extra: str) -> Any:
        return self.submit("/login", {"username": username, "password": password, **extra})

    def cookie(self, name: str = "srht-login") -> str | None:
        found = self.client.get_cookie(name)
        return found.value if found is not None else None


# -- the site ------------------------------------------------------------------------


class MetaSite:
    """meta's app and what a test needs around it."""

    def __init__(self, app: Any):
        self.app = app
        self.state = app.extensions["srht"]

    def browser(self, address: str = "127.0.0.1") -> Browser:
        client = self.app.test_client()
        client.environ_base["REMOTE_ADDR"] = address
        return Browser(client)

    @contextmanager
    def db(self) -> Iterator[Session]:
        """A session on meta's database, committed at the end."""
        with self.state.db.session() as session:
            yield session

    def create_user(
        self,
        username: str,
        *,
        password: str = PASSWORD,
        email_address: str | None = None,
        user_type: str = "active",
    ) -> int:
        """A confirmed account, made the way ``srht meta create-user`` does."""
        from srht_core import db_session
        from srht_plugins.meta.accounts import create_user

        with self.app.app_context():
            user = create_user(
                username, email_address or f"{username}@example.org", password, user_type=user_type
            )
            db_session.commit()
            return user.id

    def broadcasts(self, event: str | None = None) -> list[dict[str, Any]]:
        """The identity events meta recorded for other services, oldest first:
        ``{"service", "event", "data"}``."""
        import sqlalchemy as sa

        with self.db() as session:
            rows = session.execute(
                sa.text(
                    "SELECT subscription, event, payload FROM srht_webhook_delivery ORDER BY id"
                )
            )
            found = [
                {
                    "service": row.subscription.removeprefix("identity:"),
                    "event": row.event,
                    "data": json.loads(row.payload)["data"],
                }
                for row in rows
                if (row.subscription or "").startswith("identity:")
            ]
        return [f for f in found if event is None or f["event"] == event]

    def run_jobs(self) -> None:
        from srht_core.jobs import run_until_idle

        run_until_idle(self.app)

    @property
    def outbox(self) -> Path:
        return Path(self.state.config["mail"]["outbox-dir"])

    def mail_to(self, address: str) -> list[EmailMessage]:
        """Every message sent to ``address`` so far, oldest first (jobs are
        run first, so queued mail is delivered)."""
        self.run_jobs()
        if not self.outbox.exists():
            return []
        files = sorted(self.outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
        messages = [
            email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in files
        ]
        return [m for m in messages if m["To"] == address]  # type: ignore[misc]

    def last_link(self, address: str, path_prefix: str) -> str:
        """The path of the newest link to ``path_prefix`` mailed to ``address``."""
        for message in reversed(self.mail_to(address)):
            body = message.get_content()  # type: ignore[attr-defined]
            for url in re.findall(r"https?://\S+", body):
                path = urlsplit(url).path
                if path.startswith(path_prefix):
                    return path
        raise AssertionError(f"no link to {path_prefix} mailed to {address}")


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture
def meta_plugin(register_plugin: Callable[..., Any]) -> Any:
    """meta, and the listener service beside it, on this test's plugin host."""
    import srht_plugins.meta as meta

    record = register_plugin(meta, "meta", distribution="srht")
    assert record.ok, record.reason
    listener = register_plugin(ListenerService(), "listener", distribution="srht-test-listener")
    assert listener.ok, listener.reason
    return meta


@pytest.fixture
def meta_config(
    meta_plugin: Any, make_config: Callable[..., Any], srht_database_url: str
) -> Callable[..., Any]:
    """``meta_config(meta={...}, **{"meta::settings": {...}})`` → a config
    enabling meta (on this test's PostgreSQL database) and the listener."""

    def make(meta: dict[str, Any] | None = None, **sections: dict[str, Any]) -> Any:
        values: dict[str, Any] = {"connection-string": srht_database_url}
        values.update(meta or {})
        return make_config({"meta": values, "listener": {}}, **sections)

    return make


@pytest.fixture
def meta_app(meta_config: Callable[..., Any], make_app: Callable[..., Any]) -> Any:
    """meta's app with the default settings, its database migrated."""
    return make_app("meta", meta_config())


@pytest.fixture
def meta_site(meta_app: Any) -> MetaSite:
    return MetaSite(meta_app)


@pytest.fixture
def meta_make_site(
    meta_config: Callable[..., Any], make_app: Callable[..., Any]
) -> Callable[..., MetaSite]:
    """``meta_make_site(meta={...}, **sections)`` → a site with that config."""

    def make(meta: dict[str, Any] | None = None, **sections: dict[str, Any]) -> MetaSite:
        return MetaSite(make_app("meta", meta_config(meta, **sections)))

    return make
