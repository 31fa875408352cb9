"""The chores service's background jobs. Each is small and observable from
outside the worker (a row or a file changes), so tests can tell it ran."""

from __future__ import annotations

import os
import time
from pathlib import Path

import sqlalchemy as sa

from srht_core import db_session

from .models import Chore


def remind(chore: int) -> None:
    """Mark a chore as reminded (a real service would send mail here)."""
    db_session.execute(sa.update(Chore).where(Chore.id == chore).values(reminded=True))


def stamp(path: str) -> None:
    """Write the id of the process running the job to ``path``."""
    Path(path).write_text(str(os.getpid()), encoding="utf-8")


def flaky(message: str) -> None:
    """Always fail, to show retries with backoff and the final failure."""
    raise RuntimeError(message)


def hold(path: str) -> None:
    """Run until ``path`` exists (up to a minute), to be caught mid-run."""
    Path(path + ".started").write_text(str(os.getpid()), encoding="utf-8")
    deadline = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)


def tidy() -> None:
    """Delete chores that are done (the timer's job)."""
    db_session.execute(sa.delete(Chore).where(Chore.done.is_(True)))
