"""Fixtures of the packaging suite: a clean copy of the source tree (the
files git knows, tracked or new, as a packager's tarball would hold), the
vendored wheels (fetched once per session: the only network step) and the
.debs built from the copy.

A missing tool (dpkg-buildpackage, lintian, help2man, the test hosts'
programs) skips these tests, except under ``CI=true``, where it fails them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sourcetree import ROOT, TESTS

sys.path.insert(0, str(TESTS))

from support.ci import require  # noqa: E402 - after the path is set

BUILD_TOOLS = ("dpkg-buildpackage", "dpkg-scanpackages", "lintian", "help2man", "dh", "dh_python3")


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The vendored wheels of packaging/vendor.txt, cached across runs."""
    cache = Path(os.environ.get("SRHT_E2E_CACHE", "/var/cache/srht-e2e")) / "vendor-wheels"
    cache.mkdir(parents=True, exist_ok=True)
    fetched = subprocess.run(
        [sys.executable, str(ROOT / "packaging/deps.py"), "fetch", str(cache)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert fetched.returncode == 0, fetched.stderr[-3000:]
    return cache


@pytest.fixture(scope="session")
def debs(tmp_path_factory: pytest.TempPathFactory, wheels: Path) -> Path:
    """srht's .debs, built by packaging/build-debs from a clean copy."""
    missing = [tool for tool in BUILD_TOOLS if shutil.which(tool) is None]
    require(not missing, f"building .debs needs {', '.join(missing)} (scripts/test installs them)")
    out = tmp_path_factory.mktemp("debs")
    built = subprocess.run(
        [str(ROOT / "packaging/build-debs"), str(out), str(wheels)],
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert built.returncode == 0, f"{built.stdout[-3000:]}\n{built.stderr[-5000:]}"
    return out
