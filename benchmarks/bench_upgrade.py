"""The upgrade's overhead: a no-change ``srht-install upgrade`` against a
plain re-run of ``srht-install``, and the backup an upgrade starts with.

    python benchmarks/bench_upgrade.py [--rounds N]   # as root; boots two test hosts

Boots the installer suite's two test hosts (``gamma``, ``delta``; set
``SRHT_TESTHOSTS_SLOT``), installs its site with the installer (meta on
gamma with PostgreSQL and Redis, paste on delta), then, ``--rounds`` times
each (the best is reported): ``srht-install --yes`` (a plain re-run: nothing
to change), ``srht-install upgrade --yes`` (the same software: the plan's
reads of versions and migrations, the deploy's dry run, nothing applied, so
no backup either), and ``srht-install backup`` (the archive an upgrade with
changes takes first, the site stopped while it runs). Prints the times and
the ratio upgrade / re-run (target: ≤ 1.5, the backup on top). See
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "tests" / "installer"))

from installsite import ADMIN_PASSWORD, HOSTS, answers_toml  # noqa: E402
from testhosts import TestHosts  # noqa: E402 - after the path is set


def installer(folder: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """``srht-install ARGS`` in ``folder``, timed."""
    env = {**os.environ, "COLUMNS": "200", "PYINFRA_PROGRESS": "off"}
    env.pop("SRHT_CONFIG", None)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "srht_installer.cli", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"srht-install {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return seconds, result


def run(rounds: int) -> dict[str, object]:
    times: dict[str, list[float]] = {"rerun": [], "upgrade": [], "backup": []}
    with tempfile.TemporaryDirectory(prefix="srht-bench-upgrade-") as tmp:
        folder = Path(tmp) / "site"
        folder.mkdir()
        with TestHosts(HOSTS, Path(tmp) / "hosts") as hosts:
            (folder / "answers.toml").write_text(answers_toml(hosts))
            password = folder / "admin-password"
            password.write_text(ADMIN_PASSWORD + "\n")
            password.chmod(0o600)
            install, _ = installer(folder, "--answers", "answers.toml", "--yes")
            for _ in range(rounds):
                seconds, result = installer(folder, "--yes")
                assert "Nothing to change" in result.stdout, result.stdout[-2000:]
                times["rerun"].append(seconds)
                seconds, result = installer(folder, "upgrade", "--yes")
                assert "Nothing to change" in result.stdout, result.stdout[-2000:]
                times["upgrade"].append(seconds)
                seconds, _ = installer(folder, "backup", "-o", "backups")
                times["backup"].append(seconds)
    best = {name: min(values) for name, values in times.items()}
    return {
        "install_s": round(install, 1),
        "rerun_s": round(best["rerun"], 1),
        "upgrade_s": round(best["upgrade"], 1),
        "backup_s": round(best["backup"], 1),
        "ratio": round(best["upgrade"] / best["rerun"], 2),
        "rounds": rounds,
        "all_s": {name: [round(t, 1) for t in values] for name, values in times.items()},
        "load": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="runs of each (the best counts)")
    args = parser.parse_args()
    result = run(args.rounds)
    print(f"plain re-run of srht-install:  {result['rerun_s']} s")
    print(f"no-change srht-install upgrade: {result['upgrade_s']} s")
    print(f"ratio upgrade / re-run:         {result['ratio']} (target <= 1.5)")
    print(f"srht-install backup:            {result['backup_s']} s (on top, with changes)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
