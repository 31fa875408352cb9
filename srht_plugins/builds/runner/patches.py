"""Applying a patchset to a cloned source, on the runner host, before the
container starts: ``git am -3`` of the series (an mbox the service handed
out with the job), as the jobs' unprivileged user, in the clone the job
gets. Nothing of the job runs yet: only git reads the patches.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

__all__ = ["failed_patch", "git_am"]

_FAILED = re.compile(r"^Patch failed at (\d+) (.*)$", re.M)
#: Who commits the patches in the job's clone (their authors stay theirs).
COMMITTER = {"GIT_COMMITTER_NAME": "builds", "GIT_COMMITTER_EMAIL": "builds@localhost"}


def failed_patch(output: str) -> tuple[int, str] | None:
    """``(number, subject)`` of the patch ``git am`` stopped at, from its
    output (``Patch failed at 0002 Say goodbye``)."""
    match = _FAILED.search(output)
    return (int(match[1]), match[2].strip()) if match else None


def git_am(
    clone: Path, mbox: bytes, *, user: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[bytes]:
    """Apply ``mbox`` to ``clone`` with ``git am -3``, run through
    ``user`` (``setpriv ...``) with ``env``; its result (output merged)."""
    return subprocess.run(
        [*user, "git", "-C", str(clone), "am", "-3", "--patch-format=mboxrd", "--no-gpg-sign"],
        input=mbox,
        env={**env, **COMMITTER},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        check=False,
    )
