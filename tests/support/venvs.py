"""Virtualenvs the suite installs services into, over the srht under test.

``python -m venv --system-site-packages`` sees the *base* interpreter's
packages. When the tests themselves run in a venv (a worktree's ``.venv``
with srht installed editable over the system's packages), a venv made that
way would skip it and run whatever srht the system has, not the tree under
test. :func:`make_venv` adds the running venv's own packages in front.
"""

from __future__ import annotations

import site
import subprocess
import sys
from pathlib import Path


def make_venv(path: Path, *, with_pip: bool = True) -> str:
    """Make a venv at ``path`` that sees the packages of the interpreter
    running the tests (the running venv's first, then the system's); return
    its ``python``."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "venv",
            "--system-site-packages",
            *([] if with_pip else ["--without-pip"]),
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    if sys.prefix != sys.base_prefix:
        own = [p for p in site.getsitepackages() if Path(p).is_relative_to(sys.prefix)]
        (packages,) = (path / "lib").glob("python*/site-packages")
        # Processed with the venv's own site-packages, before the system's:
        # the running venv's editable srht is found first.
        (packages / "_srht_tests_running_venv.pth").write_text(
            "".join(f"import site; site.addsitedir({p!r})\n" for p in own), encoding="utf-8"
        )
    return str(path / "bin" / "python")
