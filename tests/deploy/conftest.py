"""Fixtures of the deploy suite: real test hosts and a deploying machine.

- ``test_hosts`` (module) boots ``alpha`` and ``beta`` (see
  ``tests/testhosts``), beta with writable control groups, for builds'
  runner; neither resolves the test domain's names by itself
  (there is no DNS for them, as on servers whose DNS is not set up yet):
  the deploy makes the hosts find each other's services, or says it cannot.
  Module-scoped, so another suite's hosts (the installer's) can take the
  slot after this one;
- ``control`` (session) is the deploying machine: a venv over this
  machine's packages (the srht under test first, see ``support/venvs.py``)
  with the example external service (``srht-hello``) installed, so it
  deploys exactly as a third-party service would, and one wheelhouse built
  for the whole session;
- ``Site`` writes configs for a layout and runs ``srht deploy`` on them;
- ``acme_server`` (module) is pebble, a private ACME server, on the hosts'
  bridge.

A missing program (mmdebstrap, systemd-nspawn, apt-cacher-ng, ...) skips
these tests, except under ``CI=true``, where it fails them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from srht_core.keys import generate_keys

TESTS = Path(__file__).parents[1]
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(Path(__file__).parent))

from pebble_server import Pebble, pebble  # noqa: E402 - after the path is set
from support.ci import require, require_test_hosts  # noqa: E402 - after the path is set
from support.venvs import make_venv  # noqa: E402
from testhosts import GATEWAY, TestHosts  # noqa: E402 - after the path is set
from testhosts.srhtsite import HOSTS, NAMES, RUNNER_HOST, Control, Site  # noqa: E402

HELLO_SOURCE = TESTS.parent / "examples" / "hello-service"


@pytest.fixture(scope="module")
def test_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestHosts]:
    require_test_hosts()
    with TestHosts(
        HOSTS, tmp_path_factory.mktemp("testhosts"), cgroup_hosts=[RUNNER_HOST]
    ) as hosts:
        yield hosts


@pytest.fixture(scope="session")
def control(tmp_path_factory: pytest.TempPathFactory) -> Control:
    root = tmp_path_factory.mktemp("control")
    python = make_venv(root / "venv", with_pip=False)
    # A copy, so the build leaves nothing in the source tree.
    source = root / "hello-service"
    shutil.copytree(
        HELLO_SOURCE, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    )
    installed = subprocess.run(
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
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    return Control(python, {**os.environ, "PYINFRA_PROGRESS": "off"})


@pytest.fixture(scope="module")
def acme_server(
    test_hosts: TestHosts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pebble]:
    """A private ACME server on the hosts' bridge, whose DNS gives the
    site's names the hosts' addresses (see ``pebble_server.py``)."""
    missing = [p for p in ("pebble", "pebble-challtestsrv") if shutil.which(p) is None]
    require(not missing, "the ACME test needs Debian's pebble (scripts/test installs it)")
    names = {name: test_hosts.address(host) for name, host in NAMES.items()}
    with pebble(tmp_path_factory.mktemp("pebble"), GATEWAY, names) as server:
        yield server


@pytest.fixture(scope="module")
def site(test_hosts: TestHosts, control: Control, tmp_path_factory: pytest.TempPathFactory) -> Site:
    return Site(control, test_hosts, tmp_path_factory.mktemp("site"), generate_keys())
