"""The suite's one rule for what a test needs: skip when it is missing,
except under ``CI=true``, where CI has installed everything (scripts/test)
and a missing program is a failure, never a silent skip."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip when ``condition`` is false, or fail under ``CI=true``."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"required under CI=true: {reason}")
    pytest.skip(reason)


#: What booting test hosts (tests/testhosts) needs on this machine.
TEST_HOST_PROGRAMS = (
    "mmdebstrap",
    "systemd-nspawn",
    "unshare",
    "ssh",
    "ssh-keygen",
    "zstd",
    "curl",
)


def require_test_hosts(*also: str) -> None:
    """Skip (or fail under ``CI=true``) unless this machine can boot test
    hosts: root, :data:`TEST_HOST_PROGRAMS`, apt-cacher-ng, and the
    programs ``also`` names."""
    import shutil
    from pathlib import Path

    missing = [p for p in (*TEST_HOST_PROGRAMS, *also) if shutil.which(p) is None]
    missing += [] if Path("/usr/sbin/apt-cacher-ng").exists() else ["apt-cacher-ng"]
    require(not missing, f"test hosts need {', '.join(missing)} (scripts/test installs them)")
    require(os.geteuid() == 0, "test hosts need root (namespaces, mounts, nspawn)")
