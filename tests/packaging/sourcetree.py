"""The source tree the packaging tests build from, and clean copies of it
(a module of its own: test modules import it; conftest modules are not
meant to be imported)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[2]
TESTS = ROOT / "tests"


def clean_copy(target: Path) -> Path:
    """The source tree as git sees it (no build output, caches or ignored files)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / name.decode()
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree
        destination = target / name.decode()
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination, follow_symlinks=False)
    return target
