"""The plugin host: finds services, checks them, and calls their hooks.

Services are Python distributions with an entry point in the group
``srht.services``. Each is loaded, registered and validated on its own; one
that fails is recorded with its distribution, version and reason and left
out, and the others carry on. ``SRHT_PLUGINS_STRICT=1`` makes any failure
fatal, for plugin development.

A host belongs to one app (or one CLI run): it is never a module global, so
two apps built in one process see only their own plugins.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from . import hookspecs
from .config import Config, ConfigProblem, Section
from .hookspecs import hookimpl
from .schema import CORE_SECTIONS, service_base_keys
from .service import ServiceInfo
from .version import __version__

__all__ = ["ENTRY_POINT_GROUP", "PluginError", "PluginHost", "PluginRecord", "hookimpl"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "srht.services"
#: The core's own behaviour, plugged in through the same hooks as services
#: (loaded by name, as datasette loads its default plugins).
DEFAULT_PLUGINS = ("srht_core.builtin",)

ENABLED, DISABLED, FAILED, INCOMPATIBLE = "enabled", "disabled", "failed", "incompatible"
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


class PluginError(Exception):
    """A plugin could not be loaded, validated or called."""


@dataclass
class PluginRecord:
    """What the host knows of one installed service.

    ``status`` is ``loaded`` until a config decides ``enabled`` or
    ``disabled`` (see :meth:`PluginHost.statuses`), or ``failed`` /
    ``incompatible`` with a ``reason``.
    """

    name: str
    distribution: str
    version: str
    status: str
    reason: str = ""
    plugin: Any = None
    info: ServiceInfo | None = None
    hooks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status not in (FAILED, INCOMPATIBLE)

    @property
    def label(self) -> str:
        return f"{self.distribution} {self.version}"


def core_version() -> str:
    return __version__


class PluginHost:
    """Loads services and calls their hooks.

    :param discover: load the ``srht.services`` entry points now.
    :param strict: raise on the first plugin failure instead of recording
        it; defaults to ``$SRHT_PLUGINS_STRICT``.
    """

    def __init__(self, *, discover: bool = True, strict: bool | None = None):
        self.pm = pluggy.PluginManager("srht")
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        if strict is None:
            strict = os.environ.get("SRHT_PLUGINS_STRICT", "") not in ("", "0", "no")
        self.strict = strict
        for name in DEFAULT_PLUGINS:
            self.pm.register(importlib.import_module(name), name="srht-core")
        if discover:
            self.discover()

    # -- loading ---------------------------------------------------------

    def discover(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Load every entry point of ``group``, sorted by name."""
        for entry_point in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
            dist = entry_point.dist
            distribution = dist.name if dist is not None else "?"
            version = dist.version if dist is not None else "?"
            if entry_point.name in self.records:
                other = self.records[entry_point.name]
                self._fail(
                    PluginRecord(entry_point.name, distribution, version, FAILED),
                    f"service name {entry_point.name!r} is already provided by {other.label}",
                    store=False,
                )
                continue
            try:
                plugin = entry_point.load()
            except Exception as error:  # noqa: BLE001 - any import failure is the plugin's
                record = PluginRecord(entry_point.name, distribution, version, FAILED)
                self._fail(record, f"import failed: {_describe(error)}", error=error)
                continue
            self.register(plugin, entry_point.name, distribution=distribution, version=version)

    def register(
        self,
        plugin: ModuleType | object,
        name: str,
        *,
        distribution: str | None = None,
        version: str = "0",
    ) -> PluginRecord:
        """Register ``plugin`` as service ``name`` and validate it.

        Used by discovery, and by tests to add a plugin that is not
        installed (see :func:`srht_core.testing.register_plugin`).
        """
        record = PluginRecord(name, distribution or name, version, "loaded", plugin=plugin)
        if name in self.records:
            other = self.records[name]
            return self._fail(
                record, f"service name {name!r} is already provided by {other.label}", store=False
            )
        self.records[name] = record
        try:
            self.pm.register(plugin, name=name)
        except ValueError as error:
            return self._fail(record, f"could not be registered: {error}")
        except pluggy.PluginValidationError as error:
            # pluggy's first line names only the hook; the next ones say what is wrong.
            return self._fail(record, "invalid hook: " + "; ".join(str(error).splitlines()))
        record.hooks = sorted(impl_hook for impl_hook in self._hook_names(plugin))
        unknown = [h for h in record.hooks if not self._is_spec(h)]
        if unknown:
            return self._fail(
                record,
                "implements unknown hook(s) "
                + ", ".join(hook + _did_you_mean(hook, self.spec_names()) for hook in unknown),
            )
        if "service_info" not in record.hooks:
            return self._fail(record, "does not implement the required hook service_info")
        try:
            info = self._impl("service_info", name).function()
        except Exception as error:  # noqa: BLE001
            return self._fail(record, f"service_info raised {_describe(error)}", error=error)
        if not isinstance(info, ServiceInfo):
            return self._fail(
                record, f"service_info returned {type(info).__name__}, not a ServiceInfo"
            )
        if info.name != name:
            return self._fail(
                record,
                f"service_info names the service {info.name!r} but its entry point is {name!r}",
            )
        if not _NAME.match(name):
            return self._fail(
                record, f"service name {name!r} must be lower-case letters, digits and dashes"
            )
        record.info = info
        if info.core_requires:
            try:
                spec = SpecifierSet(info.core_requires)
            except InvalidSpecifier:
                return self._fail(
                    record, f"core_requires {info.core_requires!r} is not a version specifier"
                )
            if not spec.contains(Version(core_version()), prereleases=True):
                return self._fail(
                    record,
                    f"needs srht core {info.core_requires}, this is {core_version()}",
                    status=INCOMPATIBLE,
                )
        return record

    def unregister(self, name: str) -> None:
        """Remove a service (registered or failed) from this host."""
        record = self.records.pop(name, None)
        if record is not None and self.pm.has_plugin(name):
            self.pm.unregister(name=name)

    def _fail(
        self,
        record: PluginRecord,
        reason: str,
        *,
        status: str = FAILED,
        error: BaseException | None = None,
        store: bool = True,
    ) -> PluginRecord:
        record.status, record.reason = status, reason
        if store and self.pm.has_plugin(record.name):
            self.pm.unregister(name=record.name)
        if store:
            self.records[record.name] = record
        if error is not None:
            log.debug(
                "plugin %s failed:\n%s", record.name, "".join(traceback.format_exception(error))
            )
        log.warning("service %s (%s): %s: %s", record.name, record.label, status, reason)
        if self.strict:
            raise PluginError(f"service {record.name} ({record.label}): {reason}") from error
        return record

    def _hook_names(self, plugin: object) -> Iterator[str]:
        for attr in dir(plugin):
            if self.pm.parse_hookimpl_opts(plugin, attr) is not None:
                yield attr

    def _is_spec(self, hook: str) -> bool:
        caller = getattr(self.pm.hook, hook, None)
        return caller is not None and caller.spec is not None

    @staticmethod
    def spec_names() -> list[str]:
        return sorted(n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "srht_spec"))

    # -- what is installed ------------------------------------------------

    def services(self) -> list[PluginRecord]:
        """Every service that loaded and validated, sorted by name."""
        return [r for name, r in sorted(self.records.items()) if r.ok]

    def get(self, name: str) -> PluginRecord | None:
        return self.records.get(name)

    def statuses(self, config: Config | None) -> list[PluginRecord]:
        """Every installed service, with ``enabled``/``disabled`` decided by
        ``config`` (a service is enabled when its section is present)."""
        out = []
        for name, record in sorted(self.records.items()):
            if record.ok:
                if config is not None and config.has_section(name):
                    record = _replace(record, status=ENABLED, reason="")
                else:
                    where = config.path if config is not None else "the config"
                    record = _replace(
                        record, status=DISABLED, reason=f"no [{name}] section in {where}"
                    )
            out.append(record)
        return out

    def enabled(self, config: Config) -> list[PluginRecord]:
        """Services that are installed, valid and configured."""
        return [r for r in self.services() if config.has_section(r.name)]

    # -- config -----------------------------------------------------------

    def config_schemas(self) -> tuple[dict[str, Section], list[ConfigProblem]]:
        """The schema of every section: the core's, and each valid plugin's
        with the base service keys in front. Problems with the declarations
        themselves (a plugin declaring another's section) are returned too."""
        schemas: dict[str, Section] = {s.name: s for s in CORE_SECTIONS}
        problems: list[ConfigProblem] = []
        for record in self.services():
            assert record.info is not None
            declared: list[Section] = []
            try:
                declared = list(self.call_one("config_schema", record.name) or [])
            except PluginError as error:
                problems.append(ConfigProblem("<plugins>", None, record.name, None, str(error)))
            own = next((s for s in declared if s.name == record.name), Section(record.name))
            base = service_base_keys(
                record.name, record.info.default_port, record.info.request_timeout
            )
            clashes = [k.name for k in own.keys if any(b.name == k.name for b in base)]
            if clashes:
                problems.append(
                    ConfigProblem(
                        "<plugins>",
                        None,
                        record.name,
                        clashes[0],
                        f"{record.label} redeclares core key {clashes[0]!r}",
                    )
                )
            schemas[record.name] = Section(
                record.name,
                base + tuple(k for k in own.keys if k.name not in clashes),
                own.description or record.info.description,
            )
            for section in declared:
                if section.name == record.name:
                    continue
                if not section.name.startswith(record.name + "::"):
                    problems.append(
                        ConfigProblem(
                            "<plugins>",
                            None,
                            section.name,
                            None,
                            f"{record.label} declares [{section.name}]; a service may only "
                            f"declare [{record.name}] and [{record.name}::...]",
                        )
                    )
                    continue
                schemas[section.name] = section
        return schemas, problems

    def check_config(self, config: Config) -> list[ConfigProblem]:
        """Bind ``config`` to every schema and return all problems, including
        sections that belong to services which failed to load."""
        schemas, problems = self.config_schemas()
        for record in self.records.values():
            if record.ok:
                continue
            for name in list(config.raw):
                if name == record.name or name.startswith(record.name + "::"):
                    schemas[name] = Section(
                        name, tuple(_permissive_key(k) for k in config.raw[name].values)
                    )
                    problems.append(
                        ConfigProblem(
                            config.path,
                            config.raw[name].line,
                            name,
                            None,
                            f"service {record.name} ({record.label}) is {record.status}: "
                            f"{record.reason}",
                        )
                    )
        return problems + config.bind(schemas)

    def check_site(self, config: Config) -> list[ConfigProblem]:
        """:meth:`check_config`, and the problems between sections that make
        the config unusable as a whole site: a service that signs users in
        (it mirrors meta's users) without a ``[meta]``. ``srht config check``
        and the deploy use this; commands that run one part of a site
        (``srht migrate``, ``srht serve paste``) need only
        :meth:`check_config`."""
        return self.check_config(config) + self._references(config)

    def _references(self, config: Config) -> list[ConfigProblem]:
        """Problems between sections: a service that signs users in (it
        mirrors meta's users) on a site without ``[meta]``, the identity
        provider every such service reads its users from."""
        if config.has_section("meta") or "meta" not in self.records:
            return []
        out = []
        for record in self.enabled(config):
            if record.name == "meta":
                continue
            try:
                schema = self.call_one("database_schema", record.name)
            except PluginError:
                continue  # reported where it is loaded
            if schema is not None and schema.user_model is not None:
                out.append(
                    ConfigProblem(
                        config.path,
                        config.raw[record.name].line if record.name in config.raw else None,
                        record.name,
                        None,
                        f"{record.name} signs users in through meta, but there is no [meta] "
                        "section: add it (meta is the site's accounts and sign-on)",
                    )
                )
        return out

    # -- calling hooks ----------------------------------------------------

    def _impl(self, hook: str, name: str) -> pluggy.HookImpl:
        caller: pluggy.HookCaller = getattr(self.pm.hook, hook)
        for impl in caller.get_hookimpls():
            if impl.plugin_name == name:
                return impl
        raise LookupError(name)

    def call_one(self, hook: str, name: str, **kwargs: Any) -> Any:
        """Call ``hook`` on service ``name`` only; ``None`` if it does not
        implement it.

        :raises PluginError: naming the plugin, when the hook raises.
        """
        try:
            impl = self._impl(hook, name)
        except LookupError:
            return None
        args = {arg: kwargs[arg] for arg in impl.argnames}
        try:
            return impl.function(**args)
        except Exception as error:
            record = self.records.get(name)
            label = record.label if record else name
            raise PluginError(
                f"{hook} of service {name} ({label}) raised {_describe(error)}"
            ) from error

    def hook_function(self, hook: str, name: str) -> Any:
        """Service ``name``'s implementation of ``hook`` as a plain function
        (to keep and call often without pluggy in between), or ``None``."""
        try:
            return self._impl(hook, name).function
        except LookupError:
            return None

    def call_core(self, hook: str, **kwargs: Any) -> Any:
        """Call the core's own implementation of ``hook`` (built-in behaviour
        goes through the same hooks as services')."""
        return self.call_one(hook, "srht-core", **kwargs)

    def oauth_scopes(self, names: list[str]) -> dict[str, str]:
        """``{"todo/tickets": description}`` for the services ``names``.

        :raises PluginError: when a service declares a scope twice or one
            that is not a lower-case word.
        """
        return self._named("oauth_scopes", names, "/", "scope")

    def webhook_events(self, names: list[str]) -> dict[str, str]:
        """``{"todo:ticket:create": description}`` for the services ``names``.

        :raises PluginError: when a service declares an event twice.
        """
        return self._named("webhook_events", names, ":", "webhook event")

    def _named(self, hook: str, names: list[str], separator: str, what: str) -> dict[str, str]:
        found: dict[str, str] = {}
        for name in names:
            for item in self.call_one(hook, name) or ():
                full = f"{name}{separator}{item.name}"
                if not re.match(r"^[a-z][a-z0-9-]*(:[a-z][a-z0-9-]*)*$", item.name):
                    raise PluginError(
                        f"service {name} declares the {what} {item.name!r}; use lower-case words"
                    )
                if full in found:
                    raise PluginError(f"service {name} declares the {what} {full} twice")
                found[full] = item.description
        return found

    def call_each(
        self, hook: str, names: list[str], **kwargs: Any
    ) -> Iterator[tuple[str, Any, PluginError | None]]:
        """Call ``hook`` on each of the services ``names``, in that order,
        each in isolation: yields ``(name, result, error)``, where one
        implementation raising does not stop the others."""
        for name in names:
            try:
                yield name, self.call_one(hook, name, **kwargs), None
            except PluginError as error:
                log.error("%s", error)
                yield name, None, error


def _replace(record: PluginRecord, **changes: Any) -> PluginRecord:
    from dataclasses import replace

    return replace(record, **changes)


def _permissive_key(name: str) -> Any:
    from .config import Key

    return Key(name)


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def _did_you_mean(word: str, choices: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]}?)" if close else ""
