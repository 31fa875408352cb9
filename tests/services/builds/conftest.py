"""Fixtures of builds' tests: the builds app on a real PostgreSQL, users
signed in the way meta signs them in (the sealed ``srht-login`` cookie),
personal access tokens sealed the way meta issues them, and a browser that
submits the forms pages show (CSRF tokens from the pages).

- ``builds_app`` → the app, migrated; ``site`` → a :class:`BuildsSite` over it.

The tests of jobs running for real (containers on a runner) are in
``tests/e2e/test_builds.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

import srht_plugins.builds as builds_plugin
from srht_core import TokenGrant, seal_grant, state_of
from srht_core.identity import seal
from srht_core.jobs import run_until_idle
from srht_core.testing import FormBrowser

ALL_SCOPES = frozenset({"builds/jobs:RW", "builds/secrets:RW"})
MANIFEST = """image: debian/bookworm
tasks:
  - build: echo building
  - test: echo testing
"""


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

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self._call("DELETE", path, **kwargs)


class BuildsSite:
    """The builds app and what a test needs around it."""

    def __init__(self, app: Any):
        self.app = app
        self.state = app.extensions["srht"]
        self.db = app.extensions["srht.db"]
        self._token_ids = iter(range(1, 1_000_000))

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.db.session() as session:
            yield session

    def user(self, username: str) -> Any:
        """A mirrored user, as if meta had sent the profile."""
        from srht_plugins.builds.models import User

        with self.session() as session:
            next_id = (session.scalar(sa.select(sa.func.max(User.id))) or 0) + 1
            user = User(id=next_id, username=username, email=f"{username}@example.org")
            session.add(user)
        return user

    def browser(self, user: Any = None) -> FormBrowser:
        client = self.app.test_client()
        if user is not None:
            cookie = seal({"u": user.id, "s": 1, "t": int(time.time())}, self.state)
            client.set_cookie("srht-login", cookie)
        return FormBrowser(client)

    def token(self, user: Any, scopes: frozenset[str] = ALL_SCOPES) -> str:
        return seal_grant(
            TokenGrant("pat", next(self._token_ids), user.id, frozenset(scopes), None), self.state
        )

    def api(self, user: Any = None, scopes: frozenset[str] = ALL_SCOPES) -> Api:
        return Api(self.app.test_client(), self.token(user, scopes) if user is not None else None)

    @contextmanager
    def context(self) -> Iterator[None]:
        with self.app.app_context():
            yield

    def job(self, owner: Any, manifest: str = MANIFEST, **kwargs: Any) -> int:
        """A job submitted as the API submits one; its id."""
        from srht_core import db_session
        from srht_plugins.builds import submit

        with self.context():
            found = submit.submit(db_session.merge(owner), manifest, **kwargs)
            db_session.commit()
            return int(found.id)

    def get_job(self, job_id: int) -> Any:
        from srht_plugins.builds.models import Job

        with self.session() as session:
            job = session.get(Job, job_id)
            assert job is not None
            session.expunge(job)
            return job

    def internal(self, path: str, body: dict[str, Any]) -> Any:
        """A call of the runners' internal API, with the credential a
        runner host sends."""
        credential = seal({"from": "builds", "to": "builds", "t": time.time()}, self.state)
        response = self.app.test_client().post(
            "/internal/builds" + path, json=body, headers={"X-Srht-Internal": credential}
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.json

    def run_jobs(self) -> None:
        run_until_idle(self.app)

    def jobs(self, name: str | None = None) -> list[Any]:
        from srht_core.jobs import job_table

        with self.db.engine.connect() as connection:
            stmt = sa.select(job_table).order_by(job_table.c.id)
            if name is not None:
                stmt = stmt.where(job_table.c.name == name)
            return list(connection.execute(stmt))


@pytest.fixture
def builds_config(make_config: Callable[..., Any], srht_database_url: str) -> Callable[..., Any]:
    """``builds_config(builds={...}, **sections)`` → a config enabling builds
    on this test's PostgreSQL database."""

    def make(builds: dict[str, Any] | None = None, **sections: dict[str, Any]) -> Any:
        values = {"connection-string": srht_database_url}
        values.update(builds or {})
        sections.setdefault("srht", {}).setdefault("internal-networks", "127.0.0.0/8")
        return make_config({"builds": values}, **sections)

    return make


@pytest.fixture
def builds_app(
    register_plugin: Callable[..., Any],
    builds_config: Callable[..., Any],
    make_app: Callable[..., Any],
) -> Any:
    record = register_plugin(builds_plugin, "builds", distribution="srht", version="0.1.0.dev0")
    assert record.ok, record.reason
    app = make_app("builds", builds_config())
    # Services ask meta which tokens were revoked; there is no meta here, and
    # these tests issue tokens themselves, none of them revoked.
    state_of(app).revoked = lambda kind, token_id: False
    return app


@pytest.fixture
def site(builds_app: Any) -> BuildsSite:
    return BuildsSite(builds_app)
