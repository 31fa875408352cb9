"""The wheel builds offline with only the declared build dependencies
(Debian's python3-setuptools and python3-wheel), and byte for byte the same
twice."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from sourcetree import ROOT, clean_copy
from support.ci import require

pytestmark = [pytest.mark.packaging]

#: bookworm's own Python, with only python3-build, -setuptools and -wheel.
SYSTEM_PYTHON = "/usr/bin/python3"


def build(source: Path, out: Path) -> Path:
    offline = ["unshare", "--net"] if os.geteuid() == 0 and shutil.which("unshare") else []
    env = {
        "PATH": "/usr/bin:/bin",
        "SOURCE_DATE_EPOCH": "1700000000",
        "HOME": str(out),
        "LC_ALL": "C.UTF-8",
    }
    result = subprocess.run(
        [
            *offline,
            SYSTEM_PYTHON,
            "-m",
            "build",
            "--no-isolation",
            "--wheel",
            "--outdir",
            str(out),
            str(source),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    (wheel,) = out.glob("*.whl")
    return wheel


def test_wheel_is_reproducible_and_built_offline(tmp_path: Path) -> None:
    has_build = (
        subprocess.run(
            [SYSTEM_PYTHON, "-c", "import build, setuptools, wheel"],
            capture_output=True,
            timeout=60,
        ).returncode
        == 0
    )
    require(has_build, "python3-build, python3-setuptools and python3-wheel are needed")
    # Two copies in different folders, built at different times.
    first = build(clean_copy(tmp_path / "one" / "srht"), tmp_path / "out1")
    second = build(clean_copy(tmp_path / "two" / "src"), tmp_path / "out2")
    digests = {hashlib.sha256(path.read_bytes()).hexdigest() for path in (first, second)}
    assert len(digests) == 1, f"the two wheels differ: {digests}"
    print(f"wheel {first.name} sha256 {digests.pop()}")
    # What `srht dev new-service` writes from is package data: it must ship.
    skeleton = ROOT / "srht_core" / "skeleton"
    wanted = {str(p.relative_to(ROOT)) for p in skeleton.rglob("*.tmpl")}
    with zipfile.ZipFile(first) as wheel:
        assert wanted and wanted <= set(wheel.namelist())
