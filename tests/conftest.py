"""Fixtures shared by the whole suite, on top of the core's own harness
(``srht_core.testing``: ``srht_postgres``, ``srht_database_url``,
``make_config``, ``plugin_host``, ``register_plugin``, ``make_app``).

The suite tests the core with a small real service, ``chores``
(``tests/support/chores``, importable here as ``srht_test_chores``):

- ``chores_plugin`` registers it on this test's ``plugin_host``;
- ``chores_app`` builds its app on a fresh PostgreSQL database, migrated;
- ``support_venv`` (session) is a venv that sees this machine's packages
  (the srht under test first; see ``support/venvs.py``) and has the chores
  distribution *installed*, so subprocesses (``srht serve``, ``srht
  worker``, ``srht migrate``) find it through its ``srht.services`` entry
  point, exactly as they would a third-party service. Any test may reuse
  it: run ``support_venv.srht(...)`` or pass ``support_venv.python`` to
  :func:`srht_core.testing.serve_service`.

And real peers: ``redis_server`` (a ``redis-server`` process) and
``smtp_sink`` (an SMTP server in a thread). Everything listens on loopback
only and is stopped by PID. A missing program skips the test, except under
``CI=true``, where it fails: CI installs everything (``scripts/test``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from srht_core.testing import free_port

SUPPORT = Path(__file__).parent / "support"
CHORES_DIST = SUPPORT / "chores"
# In-process tests import the chores service straight from its source tree;
# only subprocesses need it installed (see support_venv).
sys.path.insert(0, str(CHORES_DIST))

from support.ci import in_ci, require  # noqa: E402, F401 - re-exported to tests
from support.redis_server import RedisServer  # noqa: E402 - after the path is set
from support.smtp_sink import SmtpSink  # noqa: E402
from support.venvs import make_venv  # noqa: E402

# -- the chores service ----------------------------------------------------------


@pytest.fixture
def chores_plugin(register_plugin: Callable[..., Any]) -> Any:
    """The chores service, registered on this test's ``plugin_host``."""
    import srht_test_chores

    record = register_plugin(
        srht_test_chores, "chores", distribution="srht-test-chores", version="0.1.0"
    )
    assert record.ok, record.reason
    return srht_test_chores


@pytest.fixture
def chores_config(
    make_config: Callable[..., Any], srht_database_url: str, tmp_path: Path
) -> Callable[..., Any]:
    """``chores_config(srht={...}, mail={...})`` → a config enabling chores on
    this test's PostgreSQL database (written to ``tmp_path/config.ini``)."""

    def make(chores: dict[str, Any] | None = None, **sections: dict[str, Any]) -> Any:
        values = {"connection-string": srht_database_url, "hold-dir": str(tmp_path / "hold")}
        values.update(chores or {})
        (tmp_path / "hold").mkdir(exist_ok=True)
        return make_config({"chores": values}, **sections)

    return make


@pytest.fixture
def chores_app(
    chores_plugin: Any, chores_config: Callable[..., Any], make_app: Callable[..., Any]
) -> Any:
    """The chores app on a fresh PostgreSQL database, migrated."""
    return make_app("chores", chores_config())


# -- a venv with the chores distribution installed -------------------------------


@dataclass(frozen=True)
class SupportVenv:
    """A venv over this machine's site-packages with ``srht-test-chores``
    installed (so it has the ``chores`` entry point; the system does not)."""

    path: Path
    python: str

    def srht(
        self,
        *args: str,
        config: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 120,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``srht ARGS`` with this venv's interpreter and return what it did."""
        command = [self.python, "-m", "srht_core.cli"]
        if config is not None:
            command += ["--config", str(config)]
        return subprocess.run(
            [*command, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )

    def popen(
        self,
        *args: str,
        config: str | os.PathLike[str],
        log: Path,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``srht ARGS`` in the background, output to ``log``."""
        with open(log, "ab") as out:
            return subprocess.Popen(
                [self.python, "-m", "srht_core.cli", "--config", str(config), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
            )


@pytest.fixture(scope="session")
def support_venv(tmp_path_factory: pytest.TempPathFactory) -> SupportVenv:
    """Build the venv once per session: ``python -m venv
    --system-site-packages`` and an offline, no-dependency ``pip install`` of
    a copy of ``tests/support/chores`` (a copy, so the build leaves nothing
    in the source tree)."""
    root = tmp_path_factory.mktemp("support-venv")
    venv = root / "venv"
    python = make_venv(venv, with_pip=False)
    source = root / "chores"
    shutil.copytree(
        CHORES_DIST, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    )
    # The venv sees the machine's pip through --system-site-packages and
    # installs into its own site-packages.
    result = subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--quiet",
            str(source),
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"could not install srht-test-chores into {venv}:\n{result.stdout}{result.stderr}"
        )
    return SupportVenv(venv, python)


# -- real peers -------------------------------------------------------------------


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A ``redis-server`` on a free loopback port, started; ``stop()`` and
    ``start()`` take it away and bring it back on the same port."""
    require(shutil.which("redis-server") is not None, "redis-server is not installed")
    server = RedisServer(free_port())
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """An SMTP server on loopback that keeps what it receives."""
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def process_log(tmp_path: Path) -> Callable[[str], Path]:
    """``process_log("worker")`` → a fresh log file path in ``tmp_path``."""

    def make(name: str) -> Path:
        fd, path = tempfile.mkstemp(prefix=f"{name}-", suffix=".log", dir=tmp_path)
        os.close(fd)
        return Path(path)

    return make
