"""The app factory and what every service gets from it, through the real app
and Flask's test client: the shared layout, templates, CSRF, errors,
security headers, static files, Markdown, pagination, health and metrics,
and the refusals of ``create_app``."""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Blueprint, abort, jsonify, render_template_string
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import srht_core
from srht_core import (
    ApiError,
    ConfigError,
    DatabaseSchema,
    NavEntry,
    PluginError,
    ResourceType,
    ServiceInfo,
    __version__,
    api_blueprint,
    cursor_paginate,
    db_session,
    hookimpl,
    json_object,
    paginate,
    render_markdown,
    static_url,
)
from srht_core.schema import EXAMPLE_NETWORK_KEY, EXAMPLE_SERVICE_KEY


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "item"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(64))


PAGE = """{% extends "srht/base.html" %}{% block content %}
<h1>Web page</h1>
<form method="post" action="/things"><input type="hidden" name="csrf_token"
  value="{{ csrf_token() }}"><button>Go</button></form>
{% endblock %}"""

pages = Blueprint("web", __name__)
api = api_blueprint("web_api", __name__)


@pages.get("/")
def index():
    return render_template_string(PAGE)


@pages.route("/things", methods=["POST", "PUT", "DELETE"])
def things():
    return "changed"


@pages.get("/boom")
def boom():
    raise RuntimeError("secret detail 1234")


@pages.get("/gone")
def gone():
    abort(404)


@pages.get("/items")
def items():
    page = paginate(db_session, sa.select(Item).order_by(Item.id), per_page=10)
    return {
        "ids": [i.id for i in page.items],
        "number": page.number,
        "pages": page.pages,
        "has_prev": page.has_prev,
        "has_next": page.has_next,
    }


@api.post("/things")
def api_create():
    return {"created": True}, 201


@api.post("/echo")
def api_echo():
    return {"body": json_object()}


@api.post("/items")
def api_create_item():
    item = Item(title=json_object().get("title"))
    db_session.add(item)
    db_session.commit()
    return {"id": item.id}, 201


@api.get("/items")
def api_items():
    page = cursor_paginate(db_session, sa.select(Item), Item.id)
    return jsonify(results=[i.id for i in page.items], next=page.next)


@api.get("/invalid")
def api_invalid():
    raise ApiError(422, "must not be empty", field="title")


@api.get("/boom")
def api_boom():
    raise RuntimeError("secret detail 1234")


class Web:
    @hookimpl
    def service_info(self):
        return ServiceInfo("web", "Web", "The web service of the tests.")

    @hookimpl
    def blueprints(self, config):
        return [pages, api]

    @hookimpl
    def database_schema(self):
        return DatabaseSchema(Base.metadata)

    @hookimpl
    def nav_entries(self, config):
        return [NavEntry("Web", "/", order=20)]


class Other:
    def __init__(self, name: str, label: str, path: str, order: int):
        self.name, self.label, self.path, self.order = name, label, path, order

    @hookimpl
    def service_info(self):
        return ServiceInfo(self.name, self.label, "Another service.")

    @hookimpl
    def nav_entries(self, config):
        return [NavEntry(self.label, self.path, order=self.order)]


@pytest.fixture
def web(register_plugin):
    register_plugin(Web(), "web")


@pytest.fixture
def app(web, make_config, make_app):
    return make_app("web", make_config({"web": {}}))


@pytest.fixture
def client(app):
    return app.test_client()


def csrf_token(html: str) -> str:
    return re.search(r'name="csrf_token"\s+value="([^"]+)"', html).group(1)


# -- the shared layout ---------------------------------------------------------------------


def test_the_layout_has_the_nav_of_every_enabled_service_in_order(
    register_plugin, web, make_config, make_app
):
    register_plugin(Other("docs", "Docs", "/manual", 10), "docs")
    register_plugin(Other("zz", "Last", "/", 30), "zz")
    register_plugin(Other("hidden", "Hidden", "/", 1), "hidden")
    config = make_config(
        {"web": {}, "docs": {}, "zz": {}},
        srht={
            "site-name": "Forge <&>",
            "site-owner-name": "Jane",
            "site-owner-email": "jane@example.org",
        },
    )
    app = make_app("web", config)
    page = app.test_client().get("/")
    assert page.status_code == 200
    nav = re.findall(r'<li><a href="([^"]+)"( aria-current="page")?>([^<]+)</a></li>', page.text)
    origin = {
        name: config["docs" if name == "docs" else name]["origin"] for name in ("web", "docs", "zz")
    }
    assert nav == [
        (origin["docs"] + "/manual", "", "Docs"),
        (origin["web"] + "/", ' aria-current="page"', "Web"),
        (origin["zz"] + "/", "", "Last"),
    ]
    assert "Hidden" not in page.text
    assert "<title>Web · Forge &lt;&amp;&gt;</title>" in page.text
    # One stylesheet, and the icon inline: a first visit costs two requests.
    assert re.findall(r'<link rel="stylesheet" href="([^"]+)">', page.text) == [
        re.search(r"/style\.css\?v=[0-9a-f]{12}", page.text).group(0)
    ]
    assert '<link rel="icon" href="data:image/svg+xml,%3Csvg ' in page.text
    assert '<footer class="site">' in page.text
    assert 'run by <a href="mailto:jane@example.org">Jane</a>' in page.text


def test_templates_dir_overrides_the_plugin_which_overrides_the_core(
    plugin_package, register_plugin, make_config, make_app, tmp_path
):
    module = plugin_package(
        """
        from flask import Blueprint, render_template
        from srht_core import ServiceInfo, hookimpl

        bp = Blueprint("themed", __name__)

        @bp.get("/")
        def index():
            return render_template("themed/page.html")

        @bp.get("/other")
        def other():
            return render_template("themed/other.html")

        @hookimpl
        def service_info():
            return ServiceInfo("themed", "Themed", "Has templates.")

        @hookimpl
        def blueprints(config):
            return [bp]
    """,
        {
            "templates/themed/page.html": "plugin page",
            "templates/themed/other.html": (
                "{% extends 'srht/base.html' %}{% block content %}plugin other{% endblock %}"
            ),
            "templates/srht/error.html": "plugin error page {{ status }}",
        },
    )
    site_templates = tmp_path / "data" / "templates" / "themed"
    site_templates.mkdir(parents=True)
    (site_templates / "page.html").write_text("site page")
    register_plugin(module, "themed")
    client = make_app("themed", make_config({"themed": {}})).test_client()
    assert client.get("/").text == "site page"
    other = client.get("/other")
    assert "plugin other" in other.text and '<header class="site">' in other.text
    missing = client.get("/nowhere")
    assert (missing.status_code, missing.text) == (404, "plugin error page 404")


# -- CSRF --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_changing_a_page_needs_a_csrf_token(client, method):
    refused = client.open("/things", method=method)
    assert refused.status_code == 400
    assert "The CSRF token is missing." in refused.text
    assert refused.content_type.startswith("text/html")
    token = csrf_token(client.get("/").text)
    if method == "POST":
        accepted = client.post("/things", data={"csrf_token": token})
    else:
        accepted = client.open("/things", method=method, headers={"X-CSRFToken": token})
    assert (accepted.status_code, accepted.text) == (200, "changed")


def test_a_csrf_token_of_another_session_is_refused(app):
    token = csrf_token(app.test_client().get("/").text)
    stranger = app.test_client()
    stranger.get("/")
    refused = stranger.post("/things", data={"csrf_token": token})
    assert refused.status_code == 400
    assert "The CSRF tokens do not match." in refused.text


def test_an_api_blueprint_is_exempt_from_csrf(client):
    created = client.post("/api/things", json={})
    assert (created.status_code, created.json) == (201, {"created": True})


# -- errors ------------------------------------------------------------------------------


def test_api_errors_are_json(client):
    missing = client.get("/api/nothing-here")
    assert missing.status_code == 404
    assert missing.content_type == "application/json"
    assert missing.json == {
        "errors": [
            {
                "reason": "The requested URL was not found on the "
                "server. If you entered the URL manually "
                "please check your spelling and try again."
            }
        ]
    }
    invalid = client.get("/api/invalid")
    assert (invalid.status_code, invalid.json) == (
        422,
        {"errors": [{"field": "title", "reason": "must not be empty"}]},
    )
    wrong_method = client.delete("/api/items")
    assert wrong_method.status_code == 405
    assert list(wrong_method.json) == ["errors"]


def test_page_errors_are_pages_in_the_layout(client):
    gone = client.get("/gone")
    assert gone.status_code == 404
    assert gone.content_type == "text/html; charset=utf-8"
    assert "<h1>404 Not Found</h1>" in gone.text
    assert '<header class="site">' in gone.text


def test_an_unexpected_error_is_a_500_without_traceback(client):
    page = client.get("/boom")
    assert page.status_code == 500
    assert "<h1>500 Internal Server Error</h1>" in page.text
    assert "Something went wrong on our side; it has been logged." in page.text
    assert "Traceback" not in page.text and "secret detail" not in page.text
    api_error = client.get("/api/boom")
    assert (api_error.status_code, api_error.json) == (
        500,
        {"errors": [{"reason": "Something went wrong on our side; it has been logged."}]},
    )


# -- security headers ----------------------------------------------------------------------


def test_security_headers(client, app):
    headers = client.get("/").headers
    policy = headers["Content-Security-Policy"]
    for rule in (
        "default-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        f"form-action 'self' {app.extensions['srht'].origin}",
    ):
        assert rule in policy
    assert "unsafe-inline" not in policy
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in headers
    assert headers["Set-Cookie"].startswith("srht-web-session=")
    assert "HttpOnly" in headers["Set-Cookie"] and "Secure" not in headers["Set-Cookie"]


def test_hsts_and_secure_cookies_only_for_an_https_origin(web, make_config, make_app):
    app = make_app("web", make_config({"web": {"origin": "https://web.example.org"}}))
    response = app.test_client().get("/", base_url="https://web.example.org")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "Secure" in response.headers["Set-Cookie"]


# -- static files ----------------------------------------------------------------------------


def test_static_urls_change_when_the_file_does(
    plugin_package, register_plugin, make_config, make_app
):
    module = plugin_package(
        """
        from srht_core import ServiceInfo, hookimpl

        @hookimpl
        def service_info():
            return ServiceInfo("styled", "Styled", "Has a style sheet.")
    """,
        {"static/styled.css": "body { color: black; }"},
    )
    register_plugin(module, "styled")
    config = make_config({"styled": {}})
    production = make_app("styled", config)
    # In debug mode (development) an edited file gets a new URL at once...
    app = make_app("styled", make_config({"styled": {"debug": True}}))
    css = os.path.join(os.path.dirname(module.__file__), "static", "styled.css")
    with production.test_request_context():
        cached = static_url("styled.css", "styled")
    with app.test_request_context():
        first = static_url("styled.css", "styled")
        core = static_url("srht.css")
        missing = static_url("nope.css", "styled")
    assert re.fullmatch(r"/static/styled/styled\.css\?v=[0-9a-f]{12}", first)
    assert re.fullmatch(r"/static/srht/srht\.css\?v=[0-9a-f]{12}", core)
    assert missing == "/static/styled/nope.css?v=missing"

    with open(css, "w") as handle:
        handle.write("body { color: navy; }")
    stat = os.stat(css)
    # An edit a second later, as a person makes it (the clock ticks coarser than a test).
    os.utime(css, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with app.test_request_context():
        second = static_url("styled.css", "styled")
    assert second != first
    # ...while a production app works each URL out once: files change on
    # upgrade, which restarts it.
    with production.test_request_context():
        assert static_url("styled.css", "styled") == cached == first

    client = app.test_client()
    with client.get(second) as versioned:
        assert versioned.status_code == 200
        assert versioned.text == "body { color: navy; }"
        assert "max-age=31536000" in versioned.headers["Cache-Control"]
    with client.get("/static/styled/styled.css") as plain:
        assert "max-age=300" in plain.headers["Cache-Control"]
    assert client.get("/static/elsewhere/styled.css").status_code == 404
    assert client.get("/static/styled/../../__init__.py").status_code == 404


def test_a_page_links_one_stylesheet_the_cores_then_the_services(
    plugin_package, register_plugin, make_config, make_app
):
    module = plugin_package(
        """
        from flask import Blueprint, render_template_string
        from srht_core import ServiceInfo, hookimpl

        bp = Blueprint("dressed", __name__)

        @bp.get("/")
        def index():
            return render_template_string(
                "{% extends 'srht/base.html' %}{% block content %}hi{% endblock %}"
            )

        @hookimpl
        def service_info():
            return ServiceInfo("dressed", "Dressed", "Has a style sheet.")

        @hookimpl
        def blueprints(config):
            return [bp]
    """,
        {"static/dressed.css": ".dressed { color: teal; }"},
    )
    register_plugin(module, "dressed")
    app = make_app("dressed", make_config({"dressed": {}}))
    client = app.test_client()
    page = client.get("/").text
    links = re.findall(r'<link rel="stylesheet" href="([^"]+)">', page)
    assert len(links) == 1 and links[0].startswith("/style.css?v="), links
    core = (Path(srht_core.__file__).parent / "static" / "srht.css").read_text()

    with client.get(links[0]) as sheet:
        assert sheet.status_code == 200
        assert sheet.mimetype == "text/css"
        # The service's rules after the core's, as two <link>s would cascade.
        assert sheet.text == core + "\n.dressed { color: teal; }"
        # Cached for a year: a revisit fetches the page alone.
        assert sheet.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        etag = sheet.headers["ETag"]
    assert client.get(links[0], headers={"If-None-Match": etag}).status_code == 304
    # Without its version (or with an old one) it is kept for minutes only.
    with client.get("/style.css?v=0ld") as old:
        assert old.headers["Cache-Control"] == "public, max-age=300"


# -- Markdown --------------------------------------------------------------------------------


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        '<img src="x" onerror="alert(1)">',
        '![x](/a.png" onerror="alert(1))',
        "<a href='javascript:alert(1)'>x</a>",
        "<iframe src='https://evil.example'></iframe>",
        '<div style="background:url(javascript:alert(1))">x</div>',
    ],
)
def test_markdown_cannot_run_script(text):
    html = str(render_markdown(text))
    for tag, attrs in _tags(html):
        assert tag not in ("script", "iframe", "style", "object", "embed")
        for name, value in attrs.items():
            assert not name.startswith("on") and name != "style"
            assert "javascript:" not in (value or "").lower()


def test_markdown_renders_and_highlights():
    html = str(
        render_markdown(
            "# Title\n\n**bold** [link](https://example.org)\n\n"
            "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
            "```python\ndef f():\n    return 1\n```\n"
        )
    )
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html
    assert '<a href="https://example.org" rel="nofollow noopener">link</a>' in html
    assert "<table>" in html and "<td>1</td>" in html
    assert 'class="highlight"' in html
    assert '<span class="k">def</span>' in html
    assert render_markdown(None) == ""


def test_markdown_is_a_template_filter(app):
    with app.test_request_context():
        out = render_template_string("{{ text | markdown }}", text="*hi* <b>there</b>")
    assert out.strip() == "<p><em>hi</em> &lt;b&gt;there&lt;/b&gt;</p>"


# -- pagination ----------------------------------------------------------------------------


@pytest.fixture
def with_items(app):
    with app.extensions["srht"].db.session() as session:
        session.add_all(Item(id=n, title=f"item {n}") for n in range(1, 31))
    return app


def test_paginate_numbers_pages(with_items):
    client = with_items.test_client()
    assert client.get("/items").json == {
        "ids": list(range(1, 11)),
        "number": 1,
        "pages": 3,
        "has_prev": False,
        "has_next": True,
    }
    second = client.get("/items?page=2").json
    assert (second["ids"], second["has_prev"], second["has_next"]) == (
        list(range(11, 21)),
        True,
        True,
    )
    assert client.get("/items?page=3").json["has_next"] is False
    assert client.get("/items?page=junk").json["number"] == 1
    assert client.get("/items?page=99").json["ids"] == []


def test_cursor_paginate_walks_the_list_and_refuses_bad_cursors(with_items):
    client = with_items.test_client()
    seen, url = [], "/api/items?limit=12"
    while url:
        page = client.get(url).json
        seen += page["results"]
        url = f"/api/items?limit=12&cursor={page['next']}" if page["next"] else None
    assert seen == list(range(30, 0, -1))

    for cursor in ("!!!", "bm90LWEtbnVtYmVy"):
        bad = client.get(f"/api/items?cursor={cursor}")
        assert (bad.status_code, bad.json) == (
            400,
            {"errors": [{"field": "cursor", "reason": "not a cursor this API gave out"}]},
        )
    for limit in ("0", "101", "ten"):
        bad = client.get(f"/api/items?limit={limit}")
        assert (bad.status_code, bad.json) == (
            400,
            {"errors": [{"field": "limit", "reason": "must be a number from 1 to 100"}]},
        )


# -- health and metrics --------------------------------------------------------------------


def test_healthz(client):
    health = client.get("/healthz")
    assert (health.status_code, health.json) == (
        200,
        {"service": "web", "version": __version__, "database": "ok"},
    )


def test_metrics_are_for_internal_networks_only(client):
    client.get("/")
    scraped = client.get("/metrics")
    assert scraped.status_code == 200
    assert (
        'srht_requests_total{endpoint="web.index",method="GET",service="web",'
        'status="200"} 1.0' in scraped.text
    )
    assert 'srht_jobs_queued{service="web"} 0.0' in scraped.text
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics", environ_base=outside).status_code == 404
    # A proxy on loopback (nginx) relaying an outside client: still outside.
    relayed = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert relayed.status_code == 404
    # An outside client claiming to be relayed from loopback: the header is ignored.
    forged = client.get("/metrics", environ_base=outside, headers={"X-Forwarded-For": "127.0.0.1"})
    assert forged.status_code == 404


def test_configured_internal_networks_replace_loopback(web, make_config, make_app):
    app = make_app("web", make_config({"web": {}}, srht={"internal-networks": "10.0.0.0/8"}))
    client = app.test_client()
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
    proxied = client.get(
        "/metrics",
        environ_base={"REMOTE_ADDR": "10.0.0.5"},
        headers={"X-Forwarded-For": "198.51.100.7, 10.9.9.9"},
    )
    assert proxied.status_code == 200
    proxied = client.get(
        "/metrics",
        environ_base={"REMOTE_ADDR": "10.0.0.5"},
        headers={"X-Forwarded-For": "10.9.9.9, 198.51.100.7"},
    )
    assert proxied.status_code == 404


# -- what create_app refuses -----------------------------------------------------------------


def test_create_app_refuses_example_secrets_in_production(web, make_config, make_app):
    config = make_config(
        {"web": {}},
        srht={
            "environment": "production",
            "service-key": EXAMPLE_SERVICE_KEY,
            "network-key": EXAMPLE_NETWORK_KEY,
        },
    )
    with pytest.raises(ConfigError) as raised:
        make_app("web", config)
    messages = [str(p) for p in raised.value.problems]
    assert len(messages) == 2
    assert all(
        m.endswith(": is the published example value; generate your own with `srht keygen`")
        for m in messages
    )
    assert "[srht] service-key" in messages[0] and "[srht] network-key" in messages[1]


def test_example_secrets_are_allowed_in_development(web, make_config, make_app):
    config = make_config({"web": {}}, srht={"service-key": EXAMPLE_SERVICE_KEY})
    assert make_app("web", config).test_client().get("/healthz").status_code == 200


def test_create_app_refuses_an_unknown_service(web, make_config, make_app):
    with pytest.raises(
        PluginError,
        match=r"^service 'nope' is not installed "
        r"\(installed: web\)$",
    ):
        make_app("nope", make_config({"web": {}}))


def test_create_app_refuses_a_disabled_service(web, make_config, make_app, tmp_path):
    with pytest.raises(PluginError) as raised:
        make_app("web", make_config())
    assert str(raised.value) == (
        f"service web is not enabled: no [web] section in {tmp_path / 'config.ini'}"
    )


def test_create_app_refuses_a_failed_service(register_plugin, make_config, make_app):
    class NoInfo:
        @hookimpl
        def nav_entries(self, config):
            return []

    register_plugin(NoInfo(), "noinfo", distribution="srht-noinfo", version="0.2")
    with pytest.raises(
        PluginError,
        match=r"^service noinfo \(srht-noinfo 0\.2\) is failed: "
        r"does not implement the required hook service_info",
    ):
        make_app("noinfo", make_config({"noinfo": {}}))


def test_create_app_refuses_a_config_with_problems_listing_all(web, make_config, make_app):
    config = make_config({"web": {"workers": "many", "colour": "blue"}}, mail={"smtp-port": "lots"})
    with pytest.raises(ConfigError) as raised:
        make_app("web", config)
    assert sorted(p.key for p in raised.value.problems) == ["colour", "smtp-port", "workers"]
    assert len(str(raised.value).splitlines()) == 3


# -- NUL characters ---------------------------------------------------------------------------


def test_nul_characters_are_refused_with_a_clear_400(client):
    url = client.get("/items?q=a%00b")
    assert url.status_code == 400
    assert "NUL characters are not accepted in URLs." in url.text
    api = client.post("/api/echo", data='{"name": "a\\u0000b"}', content_type="application/json")
    assert api.status_code == 400
    assert api.json == {"errors": [{"field": "name", "reason": "NUL characters are not accepted"}]}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"name": "a\\u0000b"}'.encode("utf-16"), "application/json"),
        (b'{"name": "a\\u0000b"}', "application/merge-patch+json"),
        ('{"name": "a\\u0000b"}'.encode("utf-32-le"), "application/json; charset=utf-32"),
    ],
)
def test_a_json_body_is_checked_in_any_json_type_and_encoding(client, body, content_type):
    """The NUL check used to look only at UTF-8 bodies sent as exactly
    application/json; it now runs on the parsed value, whatever came."""
    answer = client.post("/api/echo", data=body, content_type=content_type)
    assert answer.status_code == 400
    assert answer.json["errors"] == [{"field": "name", "reason": "NUL characters are not accepted"}]


def test_hostile_json_bodies_are_a_400_naming_the_field(client):
    deep = client.post(
        "/api/echo", data="[" * 100_000 + "]" * 100_000, content_type="application/json"
    )
    assert deep.status_code == 400
    assert deep.json == {"errors": [{"reason": "the body nests too deeply"}]}
    nested = client.post(
        "/api/echo", json={"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}
    )
    assert nested.status_code == 400
    assert "nests deeper than 32 levels" in nested.json["errors"][0]["reason"]
    lone = client.post(
        "/api/echo", data='{"files": [{"title": "x\\ud800"}]}', content_type="application/json"
    )
    assert lone.status_code == 400
    assert lone.json == {
        "errors": [
            {"field": "files[0].title", "reason": "is not valid Unicode (it has a lone surrogate)"}
        ]
    }
    key = client.post("/api/echo", data='{"\\u0000": 1}', content_type="application/json")
    assert key.status_code == 400
    form = client.post("/api/echo", data={"name": "x"})
    assert form.status_code == 400
    assert "Content-Type: application/json" in form.json["errors"][0]["reason"]
    assert client.post("/api/echo", json={"name": "fine"}).json == {"body": {"name": "fine"}}


def test_text_no_column_can_store_is_refused_when_written(client, app):
    """Whatever way a value reaches a model, the session refuses to write
    text no column stores: a 400 naming the column, nothing saved."""
    too_long = client.post("/api/items", json={"title": "x" * 65})
    assert too_long.status_code == 400
    assert too_long.json == {
        "errors": [{"field": "item.title", "reason": "is longer than 64 characters"}]
    }
    assert client.post("/api/items", json={"title": "x" * 64}).status_code == 201
    with app.app_context():
        assert db_session.scalar(sa.select(sa.func.count()).select_from(Item)) == 1


def test_a_form_refuses_nul_characters_next_to_the_field(app):
    from wtforms import StringField

    from srht_core import Form

    class NameForm(Form):
        name = StringField("Name")

    with app.test_request_context(method="POST", data={"name": "a\x00b"}):
        form = NameForm(meta={"csrf": False})
        assert not form.validate()
        assert form.errors == {"name": ["NUL characters are not accepted."]}
        assert form.name.data == "a\x00b"  # what was typed comes back with the error


def test_a_forged_host_is_refused_before_any_redirect_is_built(client):
    """Werkzeug's redirects (a missing trailing slash, a login) are built
    from the Host header: the app answers only to its origin's and this
    machine's names (issue 15 item 12)."""
    forged = client.get("/", headers={"Host": "evil.example"})
    assert forged.status_code == 400
    assert "evil.example" not in forged.headers.get("Location", "")
    assert client.get("/", headers={"Host": "127.0.0.1:5098"}).status_code == 200
    assert client.get("/").status_code == 200  # the test client's localhost


def test_a_problem_names_a_field_of_a_list_of_sub_forms_as_the_api_does(app):
    """A form with a list of sub-forms (paste's files) shows a Problem named
    ``files[1].content`` next to that field, and the list of problems above
    the form names it "File 2: Contents" and links to it."""
    from wtforms import FieldList, FormField, StringField, TextAreaField
    from wtforms import Form as SubForm

    from srht_core import Form, Problem

    class FileForm(SubForm):
        filename = StringField("File name")
        content = TextAreaField("Contents")

    class FilesForm(Form):
        title = StringField("Title")
        files = FieldList(FormField(FileForm, "File"), "Files", min_entries=1)

    page = """{% import "srht/macros.html" as m %}{{ m.form_errors(form) }}
    {% for entry in form.files %}{{ m.field(entry.content) }}{% endfor %}"""
    data = {"files-0-content": "a", "files-1-content": "", "title": "x"}
    with app.test_request_context(method="POST", data=data):
        form = FilesForm(meta={"csrf": False})
        assert form.validate()
        for problem in (
            Problem("files[1].content", "A file needs contents."),
            Problem("files", "A paste may hold at most 50 files."),
            Problem("title", "Too plain."),
            # Nothing of the form: shown above it, not lost.
            Problem("files[7].content", "No such slot."),
            Problem("files[0]", "An entry, not a field."),
            Problem("files.content", "No index."),
            Problem("title[0]", "Not a list."),
        ):
            form.show(problem)
        assert form.files[1].content.errors == ["A file needs contents."]
        assert form.files[0].content.errors == []
        assert form.title.errors == ["Too plain."]
        assert form.form_errors == [
            "No such slot.",
            "An entry, not a field.",
            "No index.",
            "Not a list.",
        ]
        shown = render_template_string(page, form=form)
    problems = re.findall(r'<li><a href="#([^"]+)">([^<]+)</a>: ([^<]+)</li>', shown)
    assert problems == [
        ("title", "Title", "Too plain."),
        ("files", "Files", "A paste may hold at most 50 files."),
        ("files-1-content", "File 2: Contents", "A file needs contents."),
    ]
    for general in ("No such slot.", "An entry, not a field.", "No index.", "Not a list."):
        assert f"<li>{general}</li>" in shown
    # And next to the field itself.
    assert re.search(r'id="files-1-content".*A file needs contents\.', shown, re.DOTALL)


def test_page_kinds_tell_a_kit_page_from_another(client):
    """srht_core.testing.page_kind_problems, which services' tests use to
    check their pages against the kit's structure, names what is missing."""
    from srht_core.testing import page_kind_problems

    missing = client.get("/no-such-page")
    assert missing.status_code == 404
    html = missing.get_data(as_text=True)
    assert page_kind_problems(html, "404") == []
    assert page_kind_problems(html, "settings") == [
        "not a settings page of the kit: no div.settings > nav.settings-menu > a",
        "not a settings page of the kit: no div.settings > div.settings-page",
    ]
    assert page_kind_problems(html, "list") == ["not a list page of the kit: no div.empty > p"]
    bare = '<div class="field invalid"><ul class="errors"><li>x</li></ul></div>'
    assert page_kind_problems(bare, "form-errors") == [
        "not a form-errors page of the kit: no div.form-problems > li",
        "not a form-errors page of the kit: no form > fieldset.choices.invalid > ul.errors > li",
    ]


def test_markdown_links_bare_urls_written_with_their_scheme_only():
    html = str(render_markdown("See https://example.org/a_b. Not setup.py, a@b.org or `http://x`."))
    assert '<a href="https://example.org/a_b" rel="nofollow noopener">' in html
    assert "setup.py" in html and 'href="http://setup.py"' not in html
    assert "mailto:" not in html and "<code>http://x</code>" in html


# -- resource types ------------------------------------------------------------------------


class Offering(Web):
    def __init__(self, *names: str):
        self.names = names

    @hookimpl
    def resource_types(self, config):
        return [
            ResourceType(
                name,
                "Things",
                scope="things",
                mine="/api/things",
                item="/api/things/{id}",
                page="/things/{id}",
                title="{name}",
                webhooks="/api/things/{id}/webhooks",
                events=("thing:update",),
            )
            for name in self.names
        ]


def test_the_resource_types_a_service_offers_are_public(register_plugin, make_config, make_app):
    register_plugin(Offering("thing"), "web")
    config = make_config({"web": {"origin": "https://web.example.org"}})
    answer = make_app("web", config).test_client().get("/api/resource-types")
    assert answer.status_code == 200
    assert answer.json == {
        "service": "web",
        "origin": "https://web.example.org",
        "resource_types": [
            {
                "name": "thing",
                "label": "Things",
                "scope": "web/things",
                "mine": "/api/things",
                "item": "/api/things/{id}",
                "page": "/things/{id}",
                "title": "{name}",
                "listed": "",
                "webhooks": "/api/things/{id}/webhooks",
                "events": ["thing:update"],
                "choose_events": True,
            }
        ],
    }


def test_a_service_offering_nothing_answers_an_empty_list(client):
    assert client.get("/api/resource-types").json["resource_types"] == []


def test_a_resource_type_declared_twice_is_refused(register_plugin, make_config, make_app):
    register_plugin(Offering("thing", "thing"), "web")
    with pytest.raises(PluginError, match="resource type 'thing' twice"):
        make_app("web", make_config({"web": {}}))


def test_a_users_name_links_to_their_profile_on_hub_where_the_site_runs_hub(
    register_plugin, make_config, make_app
):
    class Hub:
        @hookimpl
        def service_info(self):
            return ServiceInfo("hub", "Hub", "A stand-in for the site's hub.")

    register_plugin(Web(), "web")
    register_plugin(Hub(), "hub")
    alone = make_app("web", make_config({"web": {}}))
    with alone.test_request_context():
        assert render_template_string("{{ profile_url('alice') }}") == "None"
    with_hub = make_config({"web": {}, "hub": {"origin": "https://hub.example.org"}})
    app = make_app("web", with_hub)
    with app.test_request_context():
        page = render_template_string(
            '{% import "srht/macros.html" as m %}'
            '{{ m.page_header([("~alice", profile_url("alice")), ("Things", None)]) }}'
        )
    assert '<a href="https://hub.example.org/~alice">~alice</a>' in page
