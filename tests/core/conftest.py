"""Fixtures of the core's tests: plugins written as real files and installed
services, so that the plugin host, the app factory and the CLI are tested as
they run for users, through their real discovery and loading."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner, Result
from support.venvs import make_venv

from srht_core.cli import main
from srht_core.config import dump_ini
from srht_core.testing import site_config

ROOT = Path(__file__).resolve().parents[2]

#: A service with a key of each type, installed by ``installed_service``.
DEMO_SERVICE = """
from srht_core import (Boolean, Choice, Email, Integer, Key, NavEntry, Section, ServiceInfo,
                       Text, hookimpl)


@hookimpl
def service_info():
    return ServiceInfo("demo", "Demo", "A service for the tests.", default_port=5098)


@hookimpl
def config_schema():
    return [Section("demo", description="The demo service.", keys=(
        Key("motd", Text(), required=True, example="Welcome",
            description="Message of the day."),
        Key("max-items", Integer(min=1, max=1000), default=10, description="Items per page."),
        Key("notify", Email(), description="Who gets told."),
        Key("mode", Choice(("fast", "safe")), default="safe", description="How to run."),
        Key("public", Boolean(), default=True, description="Visible to everyone."),
        Key("api-token", Text(), secret=True, description="Token for the upstream API."),
    ))]


@hookimpl
def nav_entries(config):
    return [NavEntry("Demo", "/")]
"""


def _import_package(directory: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        directory.name, directory / "__init__.py", submodule_search_locations=[str(directory)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[directory.name] = module
    spec.loader.exec_module(module)
    return module


def _forget_modules(names: list[str]) -> None:
    for loaded in list(sys.modules):
        if any(loaded == name or loaded.startswith(name + ".") for name in names):
            del sys.modules[loaded]


@pytest.fixture
def plugin_package(tmp_path: Path) -> Iterator[Callable[..., ModuleType]]:
    """``plugin_package(source, {"templates/x.html": "..."})`` writes a
    package (its ``__init__.py`` and other files) under ``tmp_path`` and
    imports it under a fresh name: a plugin module with its own folder, for
    templates and static files. The module is forgotten after the test."""
    made: list[str] = []

    def make(source: str, files: dict[str, str] | None = None) -> ModuleType:
        name = f"srht_test_plugin_{uuid.uuid4().hex[:10]}"
        package = tmp_path / "plugins" / name
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(textwrap.dedent(source), encoding="utf-8")
        for relative, text in (files or {}).items():
            target = package / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        made.append(name)
        return _import_package(package)

    yield make
    _forget_modules(made)


@pytest.fixture
def install_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., str]]:
    """``install_service("demo", source, distribution="srht-demo",
    version="1.2")`` installs a service for this test the way pip lays one
    out (a package and its ``.dist-info`` with a ``srht.services`` entry
    point) in a folder put on ``sys.path``, so that ``PluginHost()`` and the
    ``srht`` command discover it. Returns the package's name."""
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    made: list[str] = []

    def install(
        service: str, source: str, *, distribution: str = "srht-demo", version: str = "1.2"
    ) -> str:
        package = f"srht_test_{service.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
        (site / package).mkdir()
        (site / package / "__init__.py").write_text(textwrap.dedent(source), encoding="utf-8")
        info = site / f"{distribution.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n", encoding="utf-8"
        )
        (info / "entry_points.txt").write_text(
            f"[srht.services]\n{service} = {package}\n", encoding="utf-8"
        )
        made.append(package)
        importlib.invalidate_caches()
        return package

    yield install
    _forget_modules(made)


@pytest.fixture
def demo_service(install_service: Callable[..., str]) -> str:
    """The ``demo`` service (distribution ``srht-demo`` 1.2) installed for
    this test; see :data:`DEMO_SERVICE`."""
    return install_service("demo", DEMO_SERVICE)


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """``write_config({"demo": {"motd": "hi"}}, name="config.ini")``: a
    working site config (fresh keys) written to ``tmp_path``; keyword
    arguments override whole core sections."""

    def write(
        services: dict[str, dict[str, object]] | None = None,
        *,
        name: str = "config.ini",
        **sections: dict[str, object],
    ) -> Path:
        path = tmp_path / name
        path.write_text(
            dump_ini(site_config(tmp_path / "data", services, **sections)), encoding="utf-8"
        )
        return path

    return write


@pytest.fixture
def srht(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., Result]]:
    """``srht("config", "check")``: the ``srht`` command run in-process (click's
    runner) in ``tmp_path``, with no ``$SRHT_CONFIG`` unless the test sets one."""
    monkeypatch.delenv("SRHT_CONFIG", raising=False)
    monkeypatch.delenv("SRHT_PLUGINS_STRICT", raising=False)
    monkeypatch.chdir(tmp_path)
    # The command quiets the plugin host's logger; do not let that leak into
    # the tests that run after.
    loggers = [logging.getLogger(name) for name in ("srht.plugins", "srht_core.plugins")]
    levels = [logger.level for logger in loggers]

    def run(*args: str) -> Result:
        return CliRunner().invoke(main, list(args))

    yield run
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


# -- a virtualenv with third-party services installed by pip ------------------------------


@dataclass(frozen=True)
class Venv:
    """A virtualenv that sees the machine's srht (``--system-site-packages``)
    and has services installed by pip (from their folders in ``sources``)."""

    path: Path
    sources: Path

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    @property
    def srht(self) -> list[str]:
        # The venv's own `srht`. The core itself is installed outside the venv
        # (editable, from the machine's site-packages), so its console script
        # is not in the venv's bin/; this runs the same entry point with the
        # venv's interpreter, which is what that script would do.
        return [self.python, "-m", "srht_core.cli"]

    @property
    def env(self) -> dict[str, str]:
        """The environment of a user's shell: no config or strictness inherited."""
        return {
            k: v
            for k, v in os.environ.items()
            if k not in ("SRHT_CONFIG", "SRHT_PLUGINS_STRICT", "PYTHONPATH")
        }

    def run(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.srht, *args], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=120
        )


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _offline_venv(base: Path) -> Venv:
    """A fresh virtualenv (see ``support/venvs.py``) that can build and
    install a distribution offline; skips (fails under CI) when it cannot."""
    venv = Venv(base / "venv", base / "src")
    make_venv(venv.path)
    probe = subprocess.run(
        [
            venv.python,
            "-c",
            "import importlib.util, setuptools; "
            "assert importlib.util.find_spec('wheel') or "
            "importlib.util.find_spec('setuptools.command.bdist_wheel')",
        ],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        message = (
            "building a service offline needs setuptools and wheel importable in a "
            "venv of this Python (pip install setuptools wheel): " + probe.stderr
        )
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return venv


def _pip_install(venv: Venv, *folders: Path) -> None:
    """``pip install --no-deps --no-build-isolation --no-index`` (offline)."""
    installed = subprocess.run(
        [
            venv.python,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--quiet",
            *map(str, folders),
        ],
        capture_output=True,
        text=True,
        env=venv.env,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr


@pytest.fixture(scope="session")
def hello_venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """examples/hello-service and tests/fixtures/broken-plugin installed by
    pip (offline) into a fresh virtualenv, from copies so that builds leave
    the tree clean."""
    venv = _offline_venv(tmp_path_factory.mktemp("hello-venv"))
    ignore = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache")
    for source in (
        ROOT / "examples" / "hello-service",
        ROOT / "tests" / "fixtures" / "broken-plugin",
    ):
        shutil.copytree(source, venv.sources / source.name, ignore=ignore)
    _pip_install(venv, venv.sources / "hello-service", venv.sources / "broken-plugin")
    return venv


#: The service the tests have ``srht dev new-service`` write: with a dash, so
#: that its name (``field-notes``), package (``srht_field_notes``) and title
#: (``Field notes``) all differ.
NEW_SERVICE = "field-notes"


@pytest.fixture(scope="session")
def new_service_venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A virtualenv where ``srht dev new-service field-notes`` wrote
    ``sources/srht-field-notes``, then installed by pip (offline), as its
    author would: nothing in it is edited."""
    base = tmp_path_factory.mktemp("new-service")
    venv = _offline_venv(base)
    venv.sources.mkdir()
    written = venv.run("dev", "new-service", NEW_SERVICE, "--path", str(venv.sources), cwd=base)
    assert written.returncode == 0, written.stdout + written.stderr
    _pip_install(venv, venv.sources / f"srht-{NEW_SERVICE}")
    return venv
