"""srht_core.pagecache: pages kept for visitors without cookies, until the
version the view gives changes; never for anyone with a login or a session."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Response, flash, render_template_string

from srht_core import anonymous_page, db_session, state_of
from srht_core.cache import PageCache
from srht_core.identity import LOGIN_COOKIE, seal


@pytest.mark.postgres
def test_a_page_is_kept_for_visitors_without_cookies_until_its_version_changes(
    chores_app: Any,
) -> None:
    from srht_test_chores.models import User

    renders: list[str] = []
    version = [1]

    def render(what: str, template: str, status: int = 200) -> Any:
        def page() -> Any:
            renders.append(what)
            return render_template_string(template, version=version[0]), status

        return page

    @chores_app.get("/t/page")
    def page() -> Any:
        return anonymous_page(
            ("page", version[0]),
            render(
                "page",
                (
                    "v{{ version }} for {{ current_user.username if current_user else 'anyone' }}"
                    "{% for message in get_flashed_messages() %} [{{ message }}]{% endfor %}"
                ),
            ),
        )

    @chores_app.get("/t/form")
    def form() -> Any:
        return anonymous_page("form", render("form", "<input value='{{ csrf_token() }}'>"))

    @chores_app.get("/t/missing")
    def missing() -> Any:
        return anonymous_page("missing", render("missing", "not here", 404))

    @chores_app.get("/t/flash")
    def flash_then_page() -> Any:
        flash("Saved.")
        return "flashed"

    state_of(chores_app).revoked = lambda kind, token_id: False
    with chores_app.app_context():
        db_session.add(User(id=7, username="alice", email="alice@example.org"))
        db_session.commit()

    visitor = chores_app.test_client()
    answers = [visitor.get("/t/page") for _ in range(3)]
    assert [a.text for a in answers] == ["v1 for anyone"] * 3
    assert renders == ["page"]
    assert all(
        a.headers["X-Frame-Options"] == "DENY" and "Set-Cookie" not in a.headers for a in answers
    )  # headers added after the view are on every answer

    version[0] = 2
    assert visitor.get("/t/page").text == "v2 for anyone"
    assert visitor.get("/t/page?sort=new").text == "v2 for anyone"  # its own URL
    assert renders == ["page"] * 3

    alice = chores_app.test_client()
    alice.set_cookie(
        LOGIN_COOKIE, seal({"u": 7, "s": 1, "t": int(time.time())}, chores_app.extensions["srht"])
    )
    assert [alice.get("/t/page").text for _ in range(2)] == ["v2 for alice"] * 2
    assert renders == ["page"] * 5

    # A visitor with a session (here, a message to show) gets their own page.
    flashed = chores_app.test_client()
    flashed.get("/t/flash")
    assert flashed.get("/t/page").text == "v2 for anyone [Saved.]"
    assert visitor.get("/t/page").text == "v2 for anyone"
    assert renders == ["page"] * 6

    # A page that puts a CSRF token in the session, and an error, are never kept.
    first, second = chores_app.test_client().get("/t/form"), chores_app.test_client().get("/t/form")
    assert first.text != second.text and "Set-Cookie" in second.headers
    assert [visitor.get("/t/missing").status_code for _ in range(2)] == [404, 404]
    assert renders.count("form") == 2 and renders.count("missing") == 2


def test_the_cache_keeps_the_most_recently_used_pages_within_its_budget() -> None:
    cache = PageCache(budget=8 * 100)
    for name in "abcdefgh":
        cache.put(name, Response(name * 100))
    assert cache.get("a") is not None  # now the most recently used
    cache.put("i", Response("i" * 100))
    assert cache.get("b") is None and cache.get("a").get_data() == b"a" * 100
    assert cache.pages.weight == 800

    cache.put("huge", Response("x" * 101))  # over an eighth of the budget
    assert cache.get("huge") is None and cache.pages.weight == 800


def test_a_page_kept_with_a_max_age_is_not_served_after_it(monkeypatch: Any) -> None:
    now = [1000.0]
    monkeypatch.setattr("srht_core.cache.time.monotonic", lambda: now[0])
    cache = PageCache()
    cache.put("aged", Response("what another service said"), max_age=15)
    cache.put("kept", Response("rows only"))
    now[0] += 14.9
    assert cache.get("aged").get_data() == b"what another service said"
    now[0] += 0.1
    assert cache.get("aged") is None and "aged" not in cache.pages
    assert cache.get("kept").get_data() == b"rows only"
