"""Install wheels into one folder, offline, without pip: the vendored
distributions of ``srht-python-deps`` (``packaging/vendor.txt``), or of
``srht-installer`` (``packaging/vendor-installer.txt``).

    python3 packaging/install_wheels.py WHEELS_DIR TARGET [PACKAGE]

``PACKAGE`` (default ``srht-python-deps``) is recorded as each
distribution's ``INSTALLER``.

Uses ``installer`` (python3-installer, which pybuild's pyproject plugin
needs anyway). Console scripts and C headers of the vendored wheels are not
shipped: srht calls them as libraries. Bytecode is left to the package's
postinst (``py3compile``), as Debian does for every Python package.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile

from installer import install


def main() -> int:
    wheels, target = Path(sys.argv[1]), Path(sys.argv[2])
    package = sys.argv[3] if len(sys.argv) > 3 else "srht-python-deps"
    found = sorted(wheels.glob("*.whl"))
    if not found:
        print(
            f"no wheels in {wheels}: run `python3 packaging/deps.py fetch {wheels}` "
            "(the one step that needs the network)",
            file=sys.stderr,
        )
        return 1
    target.mkdir(parents=True, exist_ok=True)
    unwanted = target / ".unshipped"
    destination = SchemeDictionaryDestination(
        {
            "purelib": str(target),
            "platlib": str(target),
            "headers": str(unwanted / "headers"),
            "scripts": str(unwanted / "scripts"),
            "data": str(unwanted / "data"),
        },
        interpreter="/usr/bin/python3",
        script_kind="posix",
        bytecode_optimization_levels=(),
    )
    for wheel in found:
        with WheelFile.open(wheel) as source:
            install(source, destination, {"INSTALLER": f"{package}\n".encode()})
    data = unwanted / "data"
    if data.exists() and any(data.iterdir()):
        print(
            f"a vendored wheel installs data files ({sorted(data.iterdir())}); "
            "decide where they go",
            file=sys.stderr,
        )
        return 1
    shutil.rmtree(unwanted, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
