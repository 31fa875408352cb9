"""Every service's API keeps the kit's promises, checked from the same
declarations that write their OpenAPI documents (issue 14): each write
refuses a body that breaks its schema with a 400 naming the field and
stores nothing; each list pages the same way; an unknown query parameter
is a 400 naming it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import sqlalchemy as sa
from hypothesis import strategies as st

from srht_core import Operation, TokenGrant, declared_apis, seal_grant, state_of

pytestmark = [pytest.mark.postgres]

#: The built-in services; each must declare its API with srht_core.Api.
SERVICES = ("meta", "todo", "git", "paste", "lists", "hub", "builds")
WRONG = {
    "string": 12345,
    "integer": "twelve",
    "number": "twelve",
    "boolean": "yes",
    "array": "not a list",
    "object": "not an object",
}


class Service:
    """One service's app on its own PostgreSQL database, with a user and a
    token carrying every scope of the service (read and write)."""

    def __init__(self, name: str, app: Any):
        self.name, self.app = name, app
        self.state = state_of(app)
        apis = declared_apis(app)
        assert len(apis) == 1, f"{name} must declare its API with srht_core.Api, once"
        self.api = apis[0]
        with app.app_context():
            self.user_id = self._user()
            scopes = self.state.plugins.oauth_scopes([name])
            grant = TokenGrant("pat", 1, self.user_id, frozenset(f"{s}:RW" for s in scopes), None)
            self.token = seal_grant(grant, self.state)
        if name != "meta":
            self.state.revoked = lambda kind, ident: False  # no meta to ask here
        self.real: dict[str, Any] = OBJECTS.get(name, lambda _service: {})(self)

    def _user(self) -> int:
        from srht_core import db_session, mirror_user

        if self.name == "meta":
            from srht_plugins.meta.accounts import create_user
            from srht_plugins.meta.models import LoginSession, PersonalAccessToken

            user = create_user("alice", "alice@example.org", "a long enough password")
            # meta answers revocations from its own tables: the token's and session's rows.
            db_session.add(PersonalAccessToken(id=1, user_id=user.id, scopes="", token_hash="kit"))
            db_session.add(LoginSession(id=1, user_id=user.id))  # sign_in's session
        else:
            user = mirror_user({"id": 1, "username": "alice", "email": "alice@example.org"})
        db_session.commit()
        return int(user.id)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        return self.app.test_client().open("/api" + path, method=method, headers=headers, **kwargs)

    def path(self, op: Operation) -> str:
        """The operation's path on real objects (made by :data:`OBJECTS`), so
        that a body that passes the checks reaches the view and the database."""
        out = op.path
        for name in op.path_parameters:
            schema = self.api.parameters[name]["schema"]
            value = self.real.get(name, "1" if schema.get("type") == "integer" else "alice")
            out = out.replace("{" + name + "}", str(value))
        return out

    def rows(self) -> dict[str, int]:
        """Rows of every table of the service, to see that nothing was stored."""
        assert self.state.schema is not None
        with self.state.db.engine.connect() as connection:
            return {
                table.name: connection.scalar(sa.select(sa.func.count()).select_from(table)) or 0
                for table in self.state.schema.metadata.sorted_tables
            }


def _todo_objects(service: Service) -> dict[str, Any]:
    api = "/trackers"
    assert service.call("post", api, json={"name": "bugs"}).status_code == 201
    label = service.call("post", api + "/alice/bugs/labels", json={"name": "l", "color": "#aabbcc"})
    hook = service.call(
        "post",
        api + "/alice/bugs/webhooks",
        json={"url": "http://127.0.0.1:9/", "events": ["ticket:create"]},
    )
    ticket = service.call("post", api + "/alice/bugs/tickets", json={"title": "A ticket"})
    assert ticket.status_code == 201, ticket.json
    return {
        "owner": "alice",
        "username": "alice",
        "tracker": "bugs",
        "number": ticket.json["number"],
        "label_id": label.json["id"],
        "webhook_id": hook.json["id"],
    }


def _meta_objects(service: Service) -> dict[str, Any]:
    from .meta.test_keys import ED25519, PGP_ALICE

    ssh = service.call("post", "/ssh-keys", json={"key": ED25519})
    assert ssh.status_code == 201, ssh.json
    pgp = service.call("post", "/pgp-keys", json={"key": PGP_ALICE})
    assert pgp.status_code == 201, pgp.json
    # /ssh-keys/{key_id} and /pgp-keys/{key_id} both name a real key.
    assert ssh.json["id"] == pgp.json["id"]
    return {"key_id": ssh.json["id"]}


def _git_objects(service: Service) -> dict[str, Any]:
    created = service.call("post", "/repos", json={"name": "proj"})
    assert created.status_code == 201, created.json
    hook = service.call(
        "post",
        "/~alice/repos/proj/webhooks",
        json={"url": "http://127.0.0.1:9/"},
    )
    assert hook.status_code == 201, hook.json
    return {"username": "alice", "name": "proj", "grantee": "alice", "webhook_id": hook.json["id"]}


def _paste_objects(service: Service) -> dict[str, Any]:
    created = service.call(
        "post", "/pastes", json={"files": [{"filename": "a.txt", "content": "hi"}]}
    )
    assert created.status_code == 201, created.json
    return {"id": created.json["id"]}


PATCH = """\
From: Alice <alice@example.org>
To: {to}
Subject: [PATCH] Say hello
Message-ID: <kit-patch@example.org>
Date: Sat, 05 Dec 2026 10:00:00 +0000

Say hello.
---
diff --git a/hello b/hello
--- a/hello
+++ b/hello
@@ -1 +1 @@
-hi
+hello
"""


def _lists_objects(service: Service) -> dict[str, Any]:
    from srht_plugins.lists.addresses import posting_domain
    from srht_plugins.lists.inbound import receive

    made = service.call("post", "/lists", json={"name": "devel"})
    assert made.status_code == 201, made.json
    base = "/lists/alice/devel"
    hook = service.call(
        "post",
        base + "/webhooks",
        json={"url": "http://127.0.0.1:9/", "events": ["email:received"]},
    )
    assert hook.status_code == 201, hook.json
    subscription = service.call("put", base + "/subscription")
    assert subscription.status_code == 200, subscription.json
    with service.app.app_context():
        to = f"~alice/devel@{posting_domain()}"
        reply = receive(to, "alice@example.org", PATCH.format(to=to).encode())
    assert reply.ok, str(reply)
    [thread] = service.call("get", base + "/threads").json["results"]
    [message] = service.call("get", base + "/messages").json["results"]
    [patchset] = service.call("get", base + "/patchsets").json["results"]
    [delivery] = service.call("get", base + "/webhook-deliveries").json["results"]
    return {
        "owner": "alice",
        "username": "alice",
        "list": "devel",
        "thread_id": thread["id"],
        "email_id": message["id"],
        "patchset_id": patchset["id"],
        "subscription_id": subscription.json["id"],
        "webhook_id": hook.json["id"],
        "delivery_id": delivery["id"],
    }


def _hub_objects(service: Service) -> dict[str, Any]:
    made = service.call("post", "/projects", json={"name": "hello", "readme": "# Hi"})
    assert made.status_code == 201, made.json
    hook = service.call(
        "post",
        "/user/webhooks",
        json={"url": "http://127.0.0.1:9/", "events": ["project:update"]},
    )
    assert hook.status_code == 201, hook.json
    return {"owner": "alice", "username": "alice", "name": "hello", "webhook_id": hook.json["id"]}


def _builds_objects(service: Service) -> dict[str, Any]:
    import base64

    from srht_core import db_session
    from srht_plugins.builds import submit
    from srht_plugins.builds.models import JobGroup, User

    manifest = "image: debian/bookworm\ntasks:\n  - build: echo building\n"
    made = service.call("post", "/jobs", json={"manifest": manifest})
    assert made.status_code == 201, made.json
    secret = service.call(
        "post",
        "/secrets",
        json={"kind": "file", "content": base64.b64encode(b"s").decode(), "path": "~/.netrc"},
    )
    assert secret.status_code == 201, secret.json
    with service.app.app_context():
        # Groups come from pushes; one made as a push makes it.
        group = JobGroup(owner_id=service.user_id, note="a push")
        owner = db_session.get(User, service.user_id)
        submit.submit(owner, manifest, group=group)
        db_session.commit()
        group_id = group.id
    return {"job_id": made.json["id"], "group_id": group_id, "secret_id": secret.json["id"]}


#: For each service, the real objects its operations' paths name.
OBJECTS: dict[str, Any] = {
    "meta": _meta_objects,
    "todo": _todo_objects,
    "git": _git_objects,
    "paste": _paste_objects,
    "lists": _lists_objects,
    "hub": _hub_objects,
    "builds": _builds_objects,
}


@pytest.fixture(scope="module")
def services(srht_postgres: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``services[name]``: the service built on first use, shared by the module."""
    from importlib import import_module

    from srht_core import Config, PluginHost, create_app
    from srht_core.config import dump_ini
    from srht_core.migrate import upgrade
    from srht_core.testing import site_config

    plugins = PluginHost(discover=False)
    for name in ("meta", *SERVICES):
        if plugins.get(name) is None:
            assert plugins.register(import_module(f"srht_plugins.{name}"), name).ok
    folder = tmp_path_factory.mktemp("kit")
    data = site_config(
        folder / "data",
        {
            name: {"connection-string": srht_postgres.create_database()}
            for name in {"meta", *SERVICES}
        },
    )
    path = folder / "config.ini"
    path.write_text(dump_ini(data), encoding="utf-8")
    config = Config.from_string(path.read_text(), str(path))
    built: dict[str, Service] = {}

    class Built(dict[str, Service]):
        def __missing__(self, name: str) -> Service:
            app = create_app(name, config, plugins=plugins)
            state = state_of(app)
            upgrade(state.db, name, state.schema)
            built[name] = self[name] = Service(name, app)
            return built[name]

    yield Built()
    for service in built.values():
        service.state.db.dispose()


def _body_schema(service: Service, op: Operation) -> dict[str, Any]:
    schema = op.body if isinstance(op.body, dict) else service.api.schemas[op.body]
    assert schema.get("additionalProperties") is False, (
        f"{service.name} {op.name}: a request body must refuse unknown keys"
    )
    return schema


def _operations(kind: str) -> list[Any]:
    return [pytest.param(name, id=f"{name}-{kind}") for name in SERVICES]


@pytest.mark.parametrize("name", _operations("writes"))
def test_every_write_refuses_a_body_that_breaks_its_schema(services: Any, name: str) -> None:
    service = services[name]
    writes = [op for op in service.api.operations if op.body is not None]
    assert writes, f"{name} declares no write with a body"
    before = service.rows()
    for op in writes:
        schema = _body_schema(service, op)
        path = service.path(op)
        unknown = service.call(op.method, path, json={"no_such_field": 1})
        assert unknown.status_code == 400, (op.name, unknown.json)
        fields = [error.get("field") for error in unknown.json["errors"]]
        assert "no_such_field" in fields, (op.name, unknown.json)
        for key in schema.get("required", []):
            missing = service.call(op.method, path, json={})
            assert missing.status_code == 400, (op.name, missing.json)
            assert {"field": key, "reason": "is required"} in missing.json["errors"], op.name
        for key, prop in schema.get("properties", {}).items():
            kinds = prop.get("type", [])
            kinds = kinds if isinstance(kinds, list) else [kinds]
            wrong = next((WRONG[k] for k in kinds if k in WRONG), None)
            if wrong is None or any(isinstance(wrong, _python(k)) for k in kinds):
                continue
            answer = service.call(op.method, path, json={key: wrong})
            assert answer.status_code == 400, (op.name, key, answer.json)
            fields = [error.get("field") for error in answer.json["errors"]]
            assert key in fields, (op.name, key, answer.json)
    assert service.rows() == before, f"{name}: a refused body stored something"


def _python(kind: str) -> type | tuple[type, ...]:
    return {
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "array": list,
        "object": dict,
        "null": type(None),
    }[kind]


@pytest.mark.parametrize("name", _operations("lists"))
def test_every_list_pages_the_same_way(services: Any, name: str) -> None:
    service = services[name]
    document = service.api.openapi_document("http://localhost")
    for op in service.api.operations:
        entry = document["paths"]["/api" + op.path][op.method]
        schema = entry["responses"][str(op.status)].get("content", {})
        body = schema.get("application/json", {}).get("schema", {})
        lists_something = "results" in body.get("properties", {}) or body.get("type") == "array"
        assert op.paged == lists_something, f"{name} {op.name}: a list must be declared paged"
        if op.paged:
            assert body["required"] == ["results", "next"], op.name
            names = {p["name"] for p in entry["parameters"] if p["in"] == "query"}
            assert {"cursor", "limit"} <= names, op.name
            if op.method == "get":
                refused = service.call("get", service.path(op) + "?limit=0")
                assert refused.status_code == 400, (op.name, refused.json)
                assert refused.json["errors"][0]["field"] == "limit", op.name


@pytest.mark.parametrize("name", _operations("queries"))
def test_an_unknown_query_parameter_is_named(services: Any, name: str) -> None:
    service = services[name]
    for op in (op for op in service.api.operations if op.method == "get"):
        answer = service.call("get", service.path(op) + "?no_such_parameter=1")
        assert answer.status_code == 400, (op.name, answer.json)
        assert answer.json["errors"][0] == {
            "field": "no_such_parameter",
            "reason": "is not a query parameter of this operation",
        }, op.name


# -- hostile input, generated (issue 15) -------------------------------------------------

HOSTILE_TEXT = st.one_of(
    st.text(st.characters(codec=None), max_size=40),  # any code point, lone surrogates too
    st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Mn"]), max_size=40),
    st.builds(lambda s: s + "\x00" + s, st.text(max_size=5)),
    st.sampled_from(["x" * 70_000, "\u202e" * 500, "a\ud800b", "../../etc/passwd", "' OR 1=1"]),
)


def _nested(inner: Any) -> Any:
    return st.one_of(st.lists(inner, max_size=4), st.dictionaries(HOSTILE_TEXT, inner, max_size=4))


HOSTILE = st.recursive(
    st.one_of(HOSTILE_TEXT, st.integers(), st.floats(allow_nan=False), st.booleans(), st.none()),
    _nested,
    max_leaves=12,
)
CONTENT_TYPES = [
    "application/json",
    "application/merge-patch+json",
    "application/json; charset=utf-16",
    "text/plain",
    "application/x-www-form-urlencoded",
]


@pytest.mark.parametrize("name", _operations("hostile"))
def test_hostile_bodies_never_break_a_write(services: Any, name: str) -> None:
    """For every write with a body: hostile values in each field (huge,
    nested, NUL, lone surrogates, control characters, odd Unicode), whole
    hostile bodies, and odd content types. Never a 5xx; a refusal (4xx)
    names a field or says what is wrong with the body; and whatever is
    refused stores nothing."""
    service = services[name]
    writes = [op for op in service.api.operations if op.body is not None]

    for op in writes:
        _hostile_bodies(service, op)


def _hostile_bodies(service: Service, op: Operation) -> None:
    schema = _body_schema(service, op)
    keys = sorted(schema.get("properties", {})) or ["no_such_field"]
    path = service.path(op)

    @hypothesis.given(
        body=st.one_of(st.dictionaries(st.sampled_from(keys), HOSTILE, max_size=3), HOSTILE),
        content_type=st.sampled_from(CONTENT_TYPES),
    )
    @hypothesis.settings(
        max_examples=15,
        deadline=None,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def run(body: Any, content_type: str) -> None:
        encoding = "utf-16" if "utf-16" in content_type else "utf-8"
        raw = json.dumps(body).encode(encoding, "surrogatepass")
        before = service.rows()
        answer = service.call(op.method, path, data=raw, content_type=content_type)
        assert answer.status_code < 500, (op.name, body, answer.get_data(as_text=True))
        if answer.status_code >= 400:
            errors = answer.json["errors"]
            assert errors and all(error["reason"] for error in errors), (op.name, errors)
            if answer.status_code == 400:
                assert service.rows() == before, (op.name, body)

    run()


# -- pages ------------------------------------------------------------------------

#: For each service, a page of each kind the kit draws, on the real objects
#: of :data:`OBJECTS` (``{id}`` and the like filled from them); ``form`` is
#: a form posted with a problem, as ``(page, fields)``.
PAGES: dict[str, dict[str, Any]] = {
    "meta": {
        "settings": "/profile",
        "list": "/keys",
        "404": "/tokens/9999/revoke",
        "form": ("/tokens", {"comment": "no scope chosen"}),
    },
    "todo": {
        "header": "/~alice/bugs",
        "settings": "/~alice/bugs/settings",
        "list": "/~alice",
        "404": "/~alice/no-such-tracker",
        "form": ("/trackers/create", {"name": "no spaces here!", "visibility": "public"}),
    },
    "git": {
        "header": "/~alice/proj",
        "settings": "/~alice/proj/settings",
        "list": "/~alice",
        "404": "/~alice/no-such-repository",
        "form": ("/create", {"name": "no spaces here!", "visibility": "public"}),
    },
    "paste": {
        "header": "/~alice/{id}",
        "list": "/~alice",
        "404": "/~alice/0123456789abcdef",
        "form": ("/", {"files-0-filename": "a.txt", "files-0-content": "", "visibility": "public"}),
    },
    "lists": {
        "header": "/~alice/devel",
        "settings": "/~alice/devel/settings",
        "list": "/~alice",
        "404": "/~alice/no-such-list",
        "form": ("/lists/create", {"name": "no spaces here!", "visibility": "public"}),
    },
    "hub": {
        "header": "/~alice/hello",
        "settings": "/~alice/hello/settings",
        "list": "/explore",
        "404": "/~alice/no-such-project",
        "form": ("/projects/create", {"name": "no spaces here!", "visibility": "public"}),
    },
    "builds": {
        "header": "/~alice/job/{job_id}",
        "settings": "/secrets",
        "list": "/~alice",
        "404": "/~alice/job/999999",
        "form": ("/submit", {"manifest": "image: nope\ntasks: []\n", "visibility": "public"}),
    },
}


def _pages() -> list[Any]:
    return [
        pytest.param(name, kind, id=f"{name}-{kind}")
        for name in SERVICES
        for kind in ("header", "settings", "list", "404", "form")
        if kind in PAGES[name]
    ]


@pytest.mark.parametrize(("name", "kind"), _pages())
def test_each_kind_of_page_has_the_same_structure_in_every_service(
    services: Any, name: str, kind: str
) -> None:
    """The page header, settings, lists, a form with a problem and a 404 are
    drawn by the kit's templates in every service (srht_core.testing's
    PAGE_KINDS says what each must contain)."""
    from srht_core.testing import FormBrowser, page_kind_problems, sign_in

    service = services[name]
    client = service.app.test_client()
    sign_in(client, service.user_id)
    target = PAGES[name][kind]
    if kind == "form":
        page, fields = target
        answer = FormBrowser(client).submit(page, fields)
        assert answer.status_code == 400, answer.get_data(as_text=True)[:2000]
        kind = "form-errors"
    else:
        answer = client.get(target.format(**service.real))
        assert answer.status_code == (404 if kind == "404" else 200), target
    html = answer.get_data(as_text=True)
    assert page_kind_problems(html, kind) == [], html[:3000]


# -- hostile forms ----------------------------------------------------------------

#: For each service, the pages whose forms are fed hostile values (on the
#: real objects of :data:`OBJECTS`). Forms that rename or delete what the
#: other examples stand on are left out; their confirmations carry no field.
FORM_PAGES: dict[str, tuple[str, ...]] = {
    "meta": ("/profile", "/keys", "/tokens", "/oauth2/clients/register"),
    "todo": (
        "/trackers/create",
        "/~alice/bugs",
        "/~alice/bugs/{number}",
        "/~alice/bugs/{number}/edit",
        "/~alice/bugs/labels",
        "/~alice/bugs/settings",
        "/~alice/bugs/settings/access",
        "/~alice/bugs/settings/webhooks",
    ),
    "git": ("/create", "/~alice/proj/settings", "/~alice/proj/settings/access"),
    "paste": ("/",),
    "lists": (
        "/lists/create",
        "/~alice/devel/settings",
        "/~alice/devel/settings/members",
        "/~alice/devel/settings/webhooks",
        "/~alice/devel/patches/{patchset_id}",
    ),
    "hub": ("/projects/create", "/~alice/hello/settings"),
    "builds": ("/submit", "/secrets", "/~alice/job/{job_id}", "/~alice/job/{job_id}/resubmit"),
}
SPARED = ("/delete", "/rename", "/remove", "/logout")

#: A form field's hostile values, as the bytes a browser (or not) would send:
#: huge, NUL, lone surrogates and invalid UTF-8, control characters, odd
#: Unicode, markup.
HOSTILE_FIELD = st.one_of(
    st.text(max_size=40).map(str.encode),
    st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Mn"]), max_size=40).map(str.encode),
    st.builds(lambda s: (s + "\x00" + s).encode(), st.text(max_size=5)),
    st.sampled_from(
        [
            b"x" * 300_000,
            b"\xed\xa0\x80",  # a lone surrogate, as CESU-8
            b"a\xffb",  # not UTF-8
            "\u202e".encode() * 500,
            b"<script>alert(1)</script>",
            b"../../etc/passwd",
            b"",
        ]
    ),
)
FORM_CONTENT_TYPES = (
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "text/plain",
    "application/json",
)


def _form_pages() -> list[Any]:
    return [pytest.param(name, id=f"{name}-forms") for name in SERVICES if name in FORM_PAGES]


@pytest.mark.parametrize("name", _form_pages())
def test_hostile_form_values_never_break_a_page(services: Any, name: str) -> None:
    """Every form of the service's pages, posted with hostile values in its
    fields and odd encodings: never a 5xx; a refusal shows what is wrong on
    the page; and whatever is refused stores nothing (issue 15)."""
    from srht_core.testing import page_forms, sign_in

    service = services[name]
    client = service.app.test_client()
    sign_in(client, service.user_id)
    forms = []
    for page in FORM_PAGES[name]:
        path = page.format(**service.real)
        shown = client.get(path)
        assert shown.status_code == 200, path
        for form in page_forms(shown.get_data(as_text=True)):
            action = form["action"] or path
            if form["method"] == "post" and form["fields"] and not action.endswith(SPARED):
                forms.append((action, form))
    assert forms, f"{name}: no form found on {FORM_PAGES[name]}"
    for action, form in forms:
        _hostile_form(service, client, action, form)


def _hostile_form(service: Service, client: Any, action: str, form: dict[str, Any]) -> None:
    from urllib.parse import quote, quote_from_bytes

    from werkzeug.test import encode_multipart

    fields: list[str] = form["fields"]

    @hypothesis.given(
        values=st.fixed_dictionaries({field: HOSTILE_FIELD for field in fields}),
        content_type=st.sampled_from(FORM_CONTENT_TYPES),
    )
    @hypothesis.settings(
        max_examples=12,
        deadline=None,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def run(values: dict[str, bytes], content_type: str) -> None:
        sent = {**{k: v.encode() for k, v in form["hidden"].items()}, **values}
        if content_type == "multipart/form-data":
            if any(b"\x00" in v or not _utf8(v) for v in sent.values()):
                return  # werkzeug cannot encode these as multipart fields
            # Encoded here, in memory: the test client spools a large body to
            # a temporary file that it leaves open.
            boundary, body = encode_multipart({k: v.decode() for k, v in sent.items()})
            kwargs: dict[str, Any] = {
                "data": body,
                "content_type": f"multipart/form-data; boundary={boundary}",
            }
        else:
            body = "&".join(f"{quote(k)}={quote_from_bytes(v)}" for k, v in sent.items())
            kwargs = {"data": body.encode(), "content_type": content_type}
        before = service.rows()
        answer = client.post(action, **kwargs)
        page = answer.get_data(as_text=True)
        assert answer.status_code < 500, (action, values, content_type, page[:2000])
        if 400 <= answer.status_code < 500:
            assert service.rows() == before, (action, values, content_type)
            if answer.status_code == 400 and answer.mimetype == "text/html":
                shown = ("form-problems", "invalid", 'role="alert"', "error-page")
                assert any(mark in page for mark in shown), (action, values, page[:3000])

    run()


def _utf8(value: bytes) -> bool:
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True
