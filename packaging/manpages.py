"""Man pages for srht's commands, made from their ``--help`` by help2man at
package build time (not committed: they follow the code with no staleness
to check, and help2man is in every distribution).

    python3 packaging/manpages.py ROOT VERSION

For each console script ROOT ships (``ROOT/usr/bin/<name>``, written by
``packaging/split.py core``), runs it from ROOT -- its private folders
redirected into ROOT -- and writes ``ROOT/usr/share/man/man1/<name>.1``:
``srht.1`` (srht-core) and ``srht-install.1`` (srht-installer). Each page
names the other under SEE ALSO.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from split import INSTALLER_VENDOR, PRIVATE, VENDOR

SUMMARIES = {
    "srht": "run and administer the services of an srht site",
    "srht-install": "install or upgrade an srht site on your servers",
}
SEE_ALSO = {
    "srht": "srht-install(1), /usr/share/doc/srht-core/README.packaging.md",
    "srht-install": "srht(1), /usr/share/doc/srht-core/README.packaging.md",
}


def main() -> int:
    root, version = Path(sys.argv[1]).resolve(), sys.argv[2]
    out = root / "usr/share/man/man1"
    out.mkdir(parents=True, exist_ok=True)
    for program in sorted((root / "usr/bin").iterdir()):
        text = program.read_text()
        # Run the wrapper against the build tree, not the (absent) installed paths.
        local = text
        for folder in (PRIVATE, VENDOR, INSTALLER_VENDOR):
            local = local.replace(f'"/{folder}"', f'"{root / folder}"')
        with tempfile.TemporaryDirectory() as tmp:
            runnable = Path(tmp) / program.name
            include = Path(tmp) / "include.h2m"
            include.write_text(f"[SEE ALSO]\n{SEE_ALSO.get(program.name, 'srht(1)')}\n")
            runnable.write_text(local.replace("#!/usr/bin/python3", f"#!{sys.executable}", 1))
            runnable.chmod(0o755)
            env = {
                **os.environ,
                "PYTHONDONTWRITEBYTECODE": "1",
                "COLUMNS": "80",
                # No config is read for --help; make sure none is found either.
                "SRHT_CONFIG": "/nonexistent/config.ini",
            }
            subprocess.run(
                [
                    "help2man",
                    "--no-info",
                    "--version-string",
                    version,
                    "--name",
                    SUMMARIES.get(program.name, f"{program.name} of srht"),
                    "--include",
                    str(include),
                    "--output",
                    str(out / f"{program.name}.1"),
                    str(runnable),
                ],
                check=True,
                env=env,
                stdin=subprocess.DEVNULL,
                timeout=120,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
