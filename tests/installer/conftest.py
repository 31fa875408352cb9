"""Fixtures of the installer suite: two real test hosts and the installer
run as a self-hoster runs it.

- ``test_hosts`` (module) boots ``gamma`` and ``delta`` (see
  ``tests/testhosts``), which do not resolve the test domain's names by
  themselves: the deploy the installer runs makes them find each other's
  services. Module-scoped like the deploy suite's, so suites take the slot
  one after the other;
- ``workdir`` (module) is the self-hoster's folder: the answers file, the
  admin's password file, and the config the installer writes;
- ``srht_install`` runs ``srht-install`` there, without a terminal.

A missing program (mmdebstrap, systemd-nspawn, apt-cacher-ng, ...) skips
these tests, except under ``CI=true``, where it fails them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).parents[1]
sys.path.insert(0, str(TESTS))

from installsite import ADMIN_PASSWORD, HOSTS, Installer  # noqa: E402
from support.ci import require_test_hosts  # noqa: E402
from testhosts import TestHosts  # noqa: E402 - after the path is set


@pytest.fixture(scope="module")
def test_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestHosts]:
    require_test_hosts()
    with TestHosts(HOSTS, tmp_path_factory.mktemp("testhosts")) as hosts:
        yield hosts


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    password = folder / "admin-password"
    password.write_text(ADMIN_PASSWORD + "\n")
    password.chmod(0o600)
    return folder


@pytest.fixture
def srht_install(workdir: Path) -> Installer:
    """``srht-install ARGS`` in the self-hoster's folder, no terminal."""

    def run(
        *args: str, timeout: float = 1200, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "COLUMNS": "200", "PYINFRA_PROGRESS": "off"}
        env.pop("SRHT_CONFIG", None)
        result = subprocess.run(
            [sys.executable, "-m", "srht_installer.cli", *args],
            cwd=cwd or workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        with open(workdir / "installer-output.log", "a") as log:
            log.write(
                f"\n$ srht-install {' '.join(args)}  (exit {result.returncode})\n"
                f"{result.stdout}{result.stderr}"
            )
        return result

    return run
