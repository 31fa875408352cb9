"""Fixtures of hub's tests: the hub app on a real PostgreSQL, users signed
in the way meta signs them in, tokens sealed the way meta issues them.

Other services are not running here: what hub does with them over HTTP is
tested in ``tests/e2e/test_hub.py``. A resource is attached here as hub
would have recorded it (``attach_source``), and its events arrive as its
service would post them, signed with the site's key (``deliver``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

import srht_plugins.hub as hub_plugin
from srht_core import TokenGrant, seal_grant, state_of
from srht_core.testing import FormBrowser, sign_in
from srht_core.webhooks import signed_headers
from srht_plugins.hub.models import Attachment, Project, Source, User

ALL_SCOPES = frozenset({"hub/projects:RW"})


@pytest.fixture
def app(register_plugin: Any, make_config: Any, make_app: Any, srht_database_url: str) -> Flask:
    register_plugin(hub_plugin, "hub")
    config = make_config(
        {
            "hub": {
                "connection-string": srht_database_url,
                "site-description": "Where *Example* people share their work.",
            }
        }
    )
    app = make_app("hub", config)
    state_of(app).revoked = lambda kind, ident: False  # no meta to ask here
    return app


@pytest.fixture
def make_user(app: Flask) -> Callable[[str], User]:
    made: list[str] = []

    def make(username: str) -> User:
        made.append(username)
        user = User(id=len(made), username=username, email=f"{username}@example.org")
        with state_of(app).db.session() as session:
            session.add(user)
        return user

    return make


@pytest.fixture
def browser(app: Flask) -> Callable[[User | None], FormBrowser]:
    def make(user: User | None) -> FormBrowser:
        client = app.test_client()
        if user is not None:
            sign_in(client, user.id)
        return FormBrowser(client)

    return make


@pytest.fixture
def token(app: Flask) -> Callable[..., dict[str, str]]:
    def make(user: User, *scopes: str) -> dict[str, str]:
        grant = TokenGrant("pat", user.id, user.id, frozenset(scopes or ALL_SCOPES), None)
        return {"Authorization": f"Bearer {seal_grant(grant, state_of(app))}"}

    return make


@pytest.fixture
def attach_source(app: Flask) -> Callable[..., Source]:
    """``attach_source(project_id, "~alice/hello", visibility="private")``:
    a repository of the project's owner attached as hub records one."""

    def attach(project_id: int, title: str, visibility: str = "public") -> Source:
        with state_of(app).db.session() as session:
            project = session.get(Project, project_id)
            assert project is not None
            source = Source(
                owner_id=project.owner_id,
                service="git",
                kind="repository",
                item=f"/api/{title.split('/')[0]}/repos/{title.split('/')[1]}",
                title=title,
                url=f"https://git.example.org/{title}",
                visibility=visibility,
                hook_key=f"key-{title.replace('/', '-')}",
            )
            session.add(source)
            session.flush()
            session.add(Attachment(project_id=project.id, source_id=source.id))
            session.expunge(source)
        return source

    return attach


@pytest.fixture
def deliver(app: Flask) -> Callable[..., Any]:
    """``deliver(source, "repo:push", data)``: a signed delivery, as the
    source's service posts it to hub."""

    def post(source: Source, event: str, data: dict[str, Any], key: str | None = None) -> Any:
        body = json.dumps({"event": event, "data": data}).encode()
        with app.app_context():
            headers = signed_headers(body)
        return app.test_client().post(
            f"/webhooks/{source.id}/{key or source.hook_key}", data=body, headers=headers
        )

    return post
