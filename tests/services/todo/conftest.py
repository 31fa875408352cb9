"""Fixtures of todo's tests: the todo app on a real PostgreSQL, users
signed in the way meta signs them in (the sealed ``srht-login`` cookie),
personal access tokens sealed the way meta issues them, a browser that
submits the forms pages show (so CSRF tokens come from the pages), and the
mail and jobs the service leaves behind.

- ``todo_app`` → the app, migrated; ``site`` → a :class:`TodoSite` over it.
"""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

import srht_plugins.todo as todo_plugin
from srht_core import TokenGrant, seal_grant, state_of
from srht_core.identity import seal
from srht_core.jobs import run_until_idle
from srht_core.testing import FormBrowser

ALL_SCOPES = frozenset({"todo/trackers:RW", "todo/tickets:RW"})


class Browser(FormBrowser):
    """The core's form browser (todo's pages need nothing more)."""


class Api:
    """The test client with a bearer token (or none)."""

    def __init__(self, client: FlaskClient, token: str | None):
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


class TodoSite:
    """The todo app and what a test needs around it."""

    def __init__(self, app: Any):
        self.app = app
        self.state = app.extensions["srht"]
        self.db = app.extensions["srht.db"]
        self._token_ids = iter(range(1, 1_000_000))

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session on todo's database, committed at the end."""
        with self.db.session() as session:
            yield session

    def user(self, username: str, *, user_id: int | None = None, user_type: str = "active") -> Any:
        """A mirrored user, as if meta had sent the profile."""
        from srht_plugins.todo.models import User

        with self.session() as session:
            next_id = user_id or (session.scalar(sa.select(sa.func.max(User.id))) or 0) + 1
            user = User(
                id=next_id, username=username, email=f"{username}@example.org", user_type=user_type
            )
            session.add(user)
        return user

    def browser(self, user: Any = None) -> Browser:
        client = self.app.test_client()
        if user is not None:
            cookie = seal({"u": user.id, "s": 1, "t": int(time.time())}, self.state)
            client.set_cookie("srht-login", cookie)
        return Browser(client)

    def token(self, user: Any, scopes: frozenset[str] = ALL_SCOPES) -> str:
        return seal_grant(
            TokenGrant("pat", next(self._token_ids), user.id, frozenset(scopes), None), self.state
        )

    def api(self, user: Any = None, scopes: frozenset[str] = ALL_SCOPES) -> Api:
        token = self.token(user, scopes) if user is not None else None
        return Api(self.app.test_client(), token)

    @contextmanager
    def context(self) -> Iterator[None]:
        """An app context, for calling the service's own functions."""
        with self.app.app_context():
            yield

    def tracker(self, owner: Any, name: str = "bugs", **settings: Any) -> Any:
        """A tracker made the way the pages and API make one."""
        from srht_core import db_session
        from srht_plugins.todo import trackers
        from srht_plugins.todo.access import find_tracker

        with self.context():
            owner_row = db_session.merge(owner)
            tracker = trackers.create_tracker(
                owner_row,
                name,
                settings.pop("description", ""),
                settings.pop("visibility", "public"),
            )
            if settings:
                trackers.update_tracker(
                    find_tracker(owner_row.username, name, owner_row), **settings
                )
            db_session.commit()
            return tracker

    def grant(self, tracker: Any, user: Any, *names: str) -> None:
        from srht_plugins.todo.models import TrackerAccess, access_mask

        with self.session() as session:
            session.add(
                TrackerAccess(
                    tracker_id=tracker.id, user_id=user.id, access=access_mask(list(names))
                )
            )

    def ticket(
        self, owner: Any, tracker_name: str, title: str, description: str = "", actor: Any = None
    ) -> Any:
        from srht_core import db_session
        from srht_plugins.todo import tickets
        from srht_plugins.todo.access import find_tracker

        with self.context():
            actor_row = db_session.merge(actor or owner)
            access = find_tracker(owner.username, tracker_name, actor_row)
            ticket = tickets.submit_ticket(access, actor_row, title, description)
            db_session.commit()
            return ticket

    def run_jobs(self) -> None:
        run_until_idle(self.app)

    def jobs(self, name: str | None = None) -> list[Any]:
        from srht_core.jobs import job_table

        with self.db.engine.connect() as connection:
            stmt = sa.select(job_table).order_by(job_table.c.id)
            if name is not None:
                stmt = stmt.where(job_table.c.name == name)
            return list(connection.execute(stmt))

    def outbox(self) -> list[EmailMessage]:
        folder = Path(self.state.config["mail"]["outbox-dir"])
        if not folder.exists():
            return []
        messages = []
        for path in sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            messages.append(message)
        return messages

    def mail_to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.outbox() if m["To"] == address]


@pytest.fixture
def todo_config(make_config: Callable[..., Any], srht_database_url: str) -> Callable[..., Any]:
    """``todo_config(todo={...}, **sections)`` → a config enabling todo on
    this test's PostgreSQL database."""

    def make(todo: dict[str, Any] | None = None, **sections: dict[str, Any]) -> Any:
        values = {"connection-string": srht_database_url, "notify-from": "todo@example.org"}
        values.update(todo or {})
        return make_config({"todo": values}, **sections)

    return make


@pytest.fixture
def todo_app(
    register_plugin: Callable[..., Any],
    todo_config: Callable[..., Any],
    make_app: Callable[..., Any],
) -> Any:
    record = register_plugin(todo_plugin, "todo", distribution="srht", version="0.1.0.dev0")
    assert record.ok, record.reason
    app = make_app("todo", todo_config())
    # Services ask meta which tokens were revoked; there is no meta here, and
    # these tests issue tokens themselves, none of them revoked.
    state_of(app).revoked = lambda kind, token_id: False
    return app


@pytest.fixture
def site(todo_app: Any) -> TodoSite:
    return TodoSite(todo_app)
