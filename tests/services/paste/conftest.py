"""Fixtures of paste's tests: the paste app on a real PostgreSQL, with meta
enabled beside it (for its login page), signed-in test clients and tokens.

- ``paste_site`` → a :class:`PasteSite` over a migrated paste app:
  ``user("alice")`` mirrors a user the way sign-on from meta would,
  ``browser(user)`` is a test client signed in as them (or anonymous),
  ``token(user, "paste/pastes:RW")`` a bearer token meta could have issued.
- ``paste_make_site(paste={...})`` → a site with other ``[paste]`` keys.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

import srht_core
from srht_core import state_of
from srht_core.identity import LOGIN_COOKIE, seal


def text(response: Any) -> str:
    """A response's body as a reader sees it (HTML entities decoded)."""
    return html.unescape(response.get_data(as_text=True))


class _Hidden(HTMLParser):
    """The hidden inputs of a page's forms."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "input" and values.get("type") == "hidden":
            self.hidden[values.get("name", "")] = values.get("value", "")


def hidden_inputs(page: str) -> dict[str, str]:
    """The hidden inputs of the forms on ``page`` (its CSRF token, a
    confirmation page's ``confirmed``)."""
    parser = _Hidden()
    parser.feed(page)
    assert "csrf_token" in parser.hidden, "no CSRF token on the page"
    return parser.hidden


def csrf_token(page: str) -> str:
    """The CSRF token of the forms on ``page``."""
    return hidden_inputs(page)["csrf_token"]


class Browser:
    """A test client that posts forms with the CSRF token of the page that
    shows them, as a browser would."""

    def __init__(self, client: FlaskClient):
        self.client = client

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.client.post(path, **kwargs)

    def submit(self, page: str, data: dict[str, Any], *, action: str | None = None) -> Any:
        """Open ``page`` and post ``data`` to ``action`` (default: the page)
        with the page's hidden inputs (its CSRF token, say)."""
        shown = self.client.get(page)
        assert shown.status_code == 200, f"GET {page} answered {shown.status_code}"
        hidden = hidden_inputs(shown.get_data(as_text=True))
        return self.client.post(action or page, data={**hidden, **data})

    def create(self, files: list[tuple[str, str]], visibility: str = "unlisted") -> Any:
        """Fill in the new-paste form with ``(filename, content)`` pairs."""
        data: dict[str, str] = {"visibility": visibility, "create": "1"}
        for index, (filename, content) in enumerate(files):
            data[f"files-{index}-filename"] = filename
            data[f"files-{index}-content"] = content
        return self.submit("/", data)


class PasteSite:
    """paste's app and what a test needs around it."""

    def __init__(self, app: Any):
        self.app = app
        self.state = app.extensions["srht"]
        self.db_extension = app.extensions["srht.db"]
        # Services ask meta which tokens were revoked; no meta runs here, so
        # this app answers that lookup itself: nothing is revoked.
        state_of(app).revoked = lambda kind, token_id: False
        self._ids = iter(range(1, 1_000_000))

    @contextmanager
    def db(self) -> Iterator[Session]:
        """A session on paste's database, committed at the end."""
        with self.state.db.session() as session:
            yield session

    def user(self, username: str, user_type: str = "active") -> int:
        """Mirror a user of meta into paste, as sign-on does on first sight."""
        from srht_plugins.paste.models import User

        user_id = next(self._ids)
        with self.db() as session:
            session.add(
                User(
                    id=user_id,
                    username=username,
                    email=f"{username}@example.org",
                    user_type=user_type,
                )
            )
        return user_id

    def browser(self, user_id: int | None = None) -> Browser:
        """A client signed in as ``user_id`` through meta's login cookie, or
        anonymous."""
        client = self.app.test_client()
        if user_id is not None:
            cookie = seal({"u": user_id, "s": 1, "t": int(time.time())}, self.state)
            client.set_cookie(LOGIN_COOKIE, cookie)
        return Browser(client)

    def token(self, user_id: int, *scopes: str, token_id: int = 1) -> str:
        """A bearer token for ``user_id`` with ``scopes``, as meta issues them."""
        grant = srht_core.TokenGrant("pat", token_id, user_id, frozenset(scopes), None)
        return srht_core.seal_grant(grant, self.state)

    def api(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.app.test_client().open(path, method=method, headers=headers, **kwargs)


@pytest.fixture
def paste_plugins(register_plugin: Callable[..., Any]) -> None:
    """paste, and meta beside it, on this test's plugin host."""
    import srht_plugins.meta as meta
    import srht_plugins.paste as paste

    for module, name in ((meta, "meta"), (paste, "paste")):
        record = register_plugin(module, name, distribution="srht")
        assert record.ok, record.reason


@pytest.fixture
def paste_make_site(
    paste_plugins: None,
    make_config: Callable[..., Any],
    make_app: Callable[..., Any],
    srht_database_url: str,
) -> Callable[..., PasteSite]:
    """``paste_make_site(paste={...})`` → a site whose ``[paste]`` has those keys."""

    def make(paste: dict[str, Any] | None = None) -> PasteSite:
        values: dict[str, Any] = {"connection-string": srht_database_url}
        values.update(paste or {})
        return PasteSite(make_app("paste", make_config({"meta": {}, "paste": values})))

    return make


@pytest.fixture
def paste_site(paste_make_site: Callable[..., PasteSite]) -> PasteSite:
    return paste_make_site()
