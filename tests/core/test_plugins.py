"""The plugin host: loading and validating services one by one, recording
failures by distribution and version, and calling hooks in isolation."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase

from srht_core import (
    Config,
    DatabaseSchema,
    EventType,
    Key,
    MirroredUserMixin,
    NavEntry,
    PluginError,
    PluginHost,
    Scope,
    Section,
    ServiceInfo,
    Text,
    __version__,
    hookimpl,
)


class Service:
    """A hand-built plugin: ``service_info`` for ``name``; subclasses add hooks."""

    core_requires = ""

    def __init__(self, name: str, *, info_name: str | None = None):
        self.name = name
        self.info_name = info_name or name

    @hookimpl
    def service_info(self) -> ServiceInfo:
        return ServiceInfo(
            self.info_name,
            self.name.title(),
            "A service of the tests.",
            core_requires=self.core_requires,
        )


class WithNav(Service):
    def __init__(self, name: str, label: str, order: int = 100):
        super().__init__(name)
        self.label, self.order = label, order

    @hookimpl
    def nav_entries(self, config):
        return [NavEntry(self.label, "/", order=self.order)]


class Exploding(Service):
    @hookimpl
    def nav_entries(self, config):
        raise RuntimeError("the nav of this plugin is broken")


# -- validation ------------------------------------------------------------------------


def test_a_valid_plugin_is_loaded_with_its_hooks(plugin_host, register_plugin):
    record = register_plugin(
        WithNav("todo", "Tickets"), "todo", distribution="srht-todo", version="1.4"
    )
    assert (record.status, record.reason) == ("loaded", "")
    assert record.label == "srht-todo 1.4"
    assert record.hooks == ["nav_entries", "service_info"]
    assert [r.name for r in plugin_host.services()] == ["todo"]


def test_an_unknown_hook_fails_the_plugin_with_a_suggestion(plugin_host, register_plugin):
    class Misspelled(Service):
        @hookimpl
        def nav_entry(self, config):
            return []

        @hookimpl
        def blueprint(self, config):
            return []

    record = register_plugin(Misspelled("typo"), "typo", distribution="srht-typo", version="2.0")
    assert record.status == "failed"
    assert record.reason == (
        "implements unknown hook(s) blueprint (did you mean blueprints?), "
        "nav_entry (did you mean nav_entries?)"
    )
    assert plugin_host.get("typo") is record
    assert plugin_host.services() == []
    assert not plugin_host.pm.has_plugin("typo")


def test_a_wrong_argument_name_fails_the_plugin(plugin_host, register_plugin):
    class WrongArgument(Service):
        @hookimpl
        def nav_entries(self, cfg):
            return []

    record = register_plugin(WrongArgument("wrongarg"), "wrongarg")
    assert record.status == "failed"
    assert record.reason.startswith("invalid hook: Plugin 'wrongarg' for hook 'nav_entries'; ")
    assert (
        "Argument(s) {'cfg'} are declared in the hookimpl but can not be found in the "
        "hookspec" in record.reason
    )
    assert plugin_host.services() == []


def test_a_plugin_without_service_info_fails(register_plugin):
    class Nameless:
        @hookimpl
        def nav_entries(self, config):
            return []

    record = register_plugin(Nameless(), "nameless")
    assert (record.status, record.reason) == (
        "failed",
        "does not implement the required hook service_info",
    )


def test_service_info_must_name_the_entry_point(register_plugin):
    record = register_plugin(Service("mine", info_name="other"), "mine")
    assert (record.status, record.reason) == (
        "failed",
        "service_info names the service 'other' but its entry point is 'mine'",
    )


def test_service_info_raising_or_returning_junk_fails(register_plugin):
    class Raising(Service):
        @hookimpl
        def service_info(self):
            raise KeyError("title")

    class Junk(Service):
        @hookimpl
        def service_info(self):
            return {"name": "junk"}

    assert (
        register_plugin(Raising("raising"), "raising").reason
        == "service_info raised KeyError: 'title'"
    )
    assert (
        register_plugin(Junk("junk"), "junk").reason
        == "service_info returned dict, not a ServiceInfo"
    )


def test_a_service_name_must_be_lower_case(register_plugin):
    record = register_plugin(Service("Big_Name"), "Big_Name")
    assert record.reason == "service name 'Big_Name' must be lower-case letters, digits and dashes"


def test_a_duplicate_service_name_fails_naming_the_other(plugin_host, register_plugin):
    first = WithNav("dup", "First")
    register_plugin(first, "dup", distribution="srht-first", version="1.0")
    record = register_plugin(
        WithNav("dup", "Second"), "dup", distribution="srht-second", version="3.1"
    )
    assert record.status == "failed"
    assert record.reason == "service name 'dup' is already provided by srht-first 1.0"
    assert record.label == "srht-second 3.1"
    assert [r.plugin for r in plugin_host.services()] == [first]


def test_a_core_version_mismatch_is_incompatible_with_a_sentence(register_plugin):
    class Future(Service):
        core_requires = ">=9.0"

    class Sloppy(Service):
        core_requires = "the latest"

    record = register_plugin(Future("future"), "future", distribution="srht-future", version="9.0")
    assert (record.status, record.reason) == (
        "incompatible",
        f"needs srht core >=9.0, this is {__version__}",
    )
    assert not record.ok
    assert (
        register_plugin(Sloppy("sloppy"), "sloppy").reason
        == "core_requires 'the latest' is not a version specifier"
    )


def test_a_matching_core_version_is_accepted(register_plugin):
    class Current(Service):
        core_requires = ">=0.1.0.dev0,<0.2"

    assert register_plugin(Current("current"), "current").ok


def test_strict_mode_raises_on_the_first_failure(monkeypatch):
    monkeypatch.setenv("SRHT_PLUGINS_STRICT", "1")
    host = PluginHost(discover=False)
    with pytest.raises(
        PluginError,
        match=r"^service mine \(srht-mine 1\.0\): service_info "
        r"names the service 'other'",
    ):
        host.register(
            Service("mine", info_name="other"), "mine", distribution="srht-mine", version="1.0"
        )
    monkeypatch.setenv("SRHT_PLUGINS_STRICT", "0")
    assert PluginHost(discover=False).register(Service("x", info_name="y"), "x").status == "failed"


def test_unregister_removes_a_plugin_and_its_hooks(plugin_host):
    plugin_host.register(WithNav("gone", "Gone"), "gone")
    plugin_host.unregister("gone")
    assert plugin_host.get("gone") is None
    assert plugin_host.call_one("nav_entries", "gone", config=None) is None


# -- discovery ---------------------------------------------------------------------------


def test_discovery_records_each_installed_service_on_its_own(install_service, write_config):
    install_service(
        "zeta",
        """
        from srht_core import ServiceInfo, hookimpl

        @hookimpl
        def service_info():
            return ServiceInfo("zeta", "Zeta", "Works.")
    """,
        distribution="srht-zeta",
        version="0.9",
    )
    install_service(
        "alpha",
        """
        import srht_missing_dependency
    """,
        distribution="srht-alpha",
        version="2.5",
    )
    install_service(
        "omega",
        """
        raise RuntimeError("configuration of the plugin itself is wrong\\nsecond line")
    """,
        distribution="srht-omega",
        version="1.0",
    )
    host = PluginHost(strict=False)
    alpha, omega, zeta = (host.get(n) for n in ("alpha", "omega", "zeta"))
    assert (alpha.status, alpha.label, alpha.reason) == (
        "failed",
        "srht-alpha 2.5",
        "import failed: ModuleNotFoundError: No module named 'srht_missing_dependency'",
    )
    assert (omega.status, omega.reason) == (
        "failed",
        "import failed: RuntimeError: configuration of the plugin itself is wrong",
    )
    assert zeta.ok and zeta.label == "srht-zeta 0.9"
    assert "zeta" in [r.name for r in host.services()]
    assert "alpha" not in [r.name for r in host.services()]

    config = Config.from_string(write_config({"zeta": {}}).read_text(), "config.ini")
    statuses = {r.name: (r.status, r.reason) for r in host.statuses(config)}
    assert statuses["zeta"] == ("enabled", "")
    assert statuses["alpha"][0] == "failed"
    bare = Config.from_string(write_config().read_text(), "site.ini")
    assert {r.name: (r.status, r.reason) for r in host.statuses(bare)}["zeta"] == (
        "disabled",
        "no [zeta] section in site.ini",
    )


def test_a_section_of_a_failed_service_names_the_failure(install_service, write_config):
    install_service(
        "alpha", "import srht_missing_dependency\n", distribution="srht-alpha", version="2.5"
    )
    host = PluginHost(strict=False)
    path = write_config({"alpha": {}})
    config = Config.from_string(path.read_text(), "config.ini")
    messages = [str(p) for p in host.check_config(config)]
    line = path.read_text().splitlines().index("[alpha]") + 1
    assert messages == [
        f"config.ini:{line} [alpha]: service alpha (srht-alpha 2.5) is failed: import failed: "
        "ModuleNotFoundError: No module named 'srht_missing_dependency'"
    ]


# -- config declarations ---------------------------------------------------------------


def test_a_plugin_may_only_declare_its_own_sections(plugin_host, register_plugin):
    class Greedy(Service):
        @hookimpl
        def config_schema(self):
            return [
                Section("greedy", keys=(Key("colour", Text()),)),
                Section("greedy::extra", keys=(Key("size", Text()),)),
                Section("mail", keys=(Key("takeover", Text()),)),
            ]

    register_plugin(Greedy("greedy"), "greedy", distribution="srht-greedy", version="1.0")
    schemas, problems = plugin_host.config_schemas()
    assert [str(p) for p in problems] == [
        "<plugins> [mail]: srht-greedy 1.0 declares [mail]; a service may only declare "
        "[greedy] and [greedy::...]"
    ]
    assert schemas["mail"].key("takeover") is None
    assert schemas["greedy::extra"].key("size") is not None
    assert [k.name for k in schemas["greedy"].keys][-1] == "colour"


def test_a_plugin_may_not_redeclare_a_core_key(plugin_host, register_plugin):
    class Redeclaring(Service):
        @hookimpl
        def config_schema(self):
            return [Section("redecl", keys=(Key("origin", Text()),))]

    register_plugin(Redeclaring("redecl"), "redecl")
    _schemas, problems = plugin_host.config_schemas()
    assert [str(p) for p in problems] == [
        "<plugins> [redecl] origin: redecl 0 redeclares core key 'origin'"
    ]


# -- calling hooks ---------------------------------------------------------------------


def test_call_each_isolates_a_raising_implementation(plugin_host, register_plugin):
    register_plugin(Exploding("boom"), "boom")
    register_plugin(WithNav("fine", "Fine"), "fine")
    results = list(plugin_host.call_each("nav_entries", ["boom", "fine"], config=None))
    (boom, result, error), (fine, entries, no_error) = results
    assert (boom, result) == ("boom", None)
    assert str(error) == (
        "nav_entries of service boom (boom 0) raised RuntimeError: the nav of this plugin is broken"
    )
    assert (fine, entries, no_error) == ("fine", [NavEntry("Fine", "/")], None)


def test_a_raising_nav_hook_leaves_the_others_in_the_page(register_plugin, make_config, make_app):
    register_plugin(Exploding("boom"), "boom")
    register_plugin(WithNav("fine", "Fine"), "fine")
    app = make_app("fine", make_config({"boom": {}, "fine": {}}))
    assert [link.label for link in app.extensions["srht"].nav] == ["Fine"]


def test_call_one_names_the_plugin_when_it_raises(plugin_host, register_plugin):
    register_plugin(Exploding("boom"), "boom", distribution="srht-boom", version="0.1")
    with pytest.raises(
        PluginError,
        match=r"^nav_entries of service boom \(srht-boom 0\.1\) "
        r"raised RuntimeError",
    ):
        plugin_host.call_one("nav_entries", "boom", config=None)


def test_two_apps_in_one_process_do_not_see_each_others_plugins(make_config, make_app):
    first, second = PluginHost(discover=False), PluginHost(discover=False)
    first.register(WithNav("one", "One"), "one")
    second.register(WithNav("two", "Two"), "two")
    app_one = make_app("one", make_config({"one": {}}), plugins=first)
    app_two = make_app("two", make_config({"two": {}}), plugins=second)
    assert app_one.extensions["srht"].plugins.get("two") is None
    assert app_two.extensions["srht"].plugins.get("one") is None
    assert [link.label for link in app_one.extensions["srht"].nav] == ["One"]
    assert [link.label for link in app_two.extensions["srht"].nav] == ["Two"]
    first.register(WithNav("three", "Three"), "three")
    assert second.get("three") is None
    assert "Two" not in app_one.test_client().get("/healthz").text


# -- identity events reach only the service they are for --------------------------------


class Base(DeclarativeBase):
    pass


class User(MirroredUserMixin, Base):
    __tablename__ = "user"


class Recording(Service):
    def __init__(self, name: str):
        super().__init__(name)
        self.updated: list[str] = []
        self.deleted: list[str] = []

    @hookimpl
    def database_schema(self):
        return DatabaseSchema(Base.metadata, user_model=User)

    @hookimpl
    def user_updated(self, user):
        self.updated.append(user.username)

    @hookimpl
    def user_deleted(self, user):
        self.deleted.append(user.username)


def _identity_event(app, event: str, data: dict) -> object:
    from srht_core.webhooks import signed_headers

    body = json.dumps({"event": event, "data": data}).encode()
    with app.app_context():
        headers = signed_headers(body)
    return app.test_client().post("/_srht/identity", data=body, headers=headers)


def test_user_updated_and_deleted_are_called_only_on_the_service(
    register_plugin, make_config, make_app
):
    mine, other = Recording("mine"), Recording("other")
    register_plugin(mine, "mine")
    register_plugin(other, "other")
    app = make_app("mine", make_config({"mine": {}, "other": {}}))
    profile = {"id": 7, "username": "ada", "email": "ada@example.org", "user_type": "active"}
    response = _identity_event(app, "user:update", profile)
    assert response.status_code == 200, response.text
    assert (mine.updated, other.updated) == (["ada"], [])
    response = _identity_event(app, "user:update", {**profile, "username": "ada2"})
    assert (mine.updated, other.updated) == (["ada", "ada2"], [])

    response = _identity_event(app, "user:delete", {"id": 7})
    assert response.status_code == 200, response.text
    assert (mine.deleted, other.deleted) == (["ada2"], [])
    with app.extensions["srht"].db.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


# -- site-wide names -------------------------------------------------------------------


class Declaring(Service):
    def __init__(self, name: str, scopes: list[str], events: list[str]):
        super().__init__(name)
        self.scopes, self.events = scopes, events

    @hookimpl
    def oauth_scopes(self):
        return [Scope(s, f"the {s}") for s in self.scopes]

    @hookimpl
    def webhook_events(self):
        return [EventType(e, f"when {e}") for e in self.events]


def test_oauth_scopes_and_webhook_events_are_named_after_their_service(
    plugin_host, register_plugin
):
    register_plugin(Declaring("todo", ["tickets", "trackers"], ["ticket:create"]), "todo")
    register_plugin(Declaring("paste", ["pastes"], ["paste:create"]), "paste")
    assert plugin_host.oauth_scopes(["todo", "paste"]) == {
        "todo/tickets": "the tickets",
        "todo/trackers": "the trackers",
        "paste/pastes": "the pastes",
    }
    assert plugin_host.webhook_events(["todo", "paste"]) == {
        "todo:ticket:create": "when ticket:create",
        "paste:paste:create": "when paste:create",
    }


def test_a_scope_or_event_declared_twice_is_an_error_naming_the_service(
    plugin_host, register_plugin
):
    register_plugin(Declaring("todo", ["tickets", "tickets"], ["a:b", "a:b"]), "todo")
    with pytest.raises(PluginError, match="service todo declares the scope todo/tickets twice"):
        plugin_host.oauth_scopes(["todo"])
    with pytest.raises(PluginError, match="declares the webhook event todo:a:b twice"):
        plugin_host.webhook_events(["todo"])


def test_a_malformed_scope_name_is_an_error(plugin_host, register_plugin):
    register_plugin(Declaring("todo", ["Tickets:RW"], []), "todo")
    with pytest.raises(PluginError, match="declares the scope 'Tickets:RW'; use lower-case"):
        plugin_host.oauth_scopes(["todo"])
