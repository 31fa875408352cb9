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
