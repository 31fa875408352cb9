"""What the suite's tests share besides fixtures: a small real service
(``chores/``, an installable distribution) and real peers to talk to (an
SMTP sink, a Redis server started on demand). Fixtures wrapping them live
in ``tests/conftest.py``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], *, timeout: float = 60.0, what: str = "it") -> T:
    """Poll ``check`` until it returns something true and return that; fail
    naming ``what`` after ``timeout`` seconds. The timeout only bounds a
    hang: nothing is asserted about how long it took."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout}s")
        time.sleep(0.05)
