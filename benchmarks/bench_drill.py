"""A restore drill's time to a working site ÷ a fresh install's time.

    python benchmarks/bench_drill.py        # as root, with scripts/test's packages

Boots four test hosts (``tests/testhosts``): ``alpha`` and ``beta`` for the
site of the backup suite (PostgreSQL, Redis, meta and todo on alpha; paste
and git on beta; each behind nginx) and ``drilla``/``drillb`` for the
drill. Builds the wheelhouse once (not timed: cached on the deploying
machine), times the fresh deploy of the site (``srht deploy``, what
``srht-install`` runs), fills it through its interfaces (two users, a
tracker with three tickets, three pastes, a repository pushed over HTTPS:
the backup suite's first step), takes a backup (timed, reported apart),
then runs ``srht-install drill`` onto the drill hosts and reads its time to
a working site (verification, restore and smoke checks; the teardown is
reported apart). Prints the times, the ratio and the load average.

With ``--machines``, a second drill of the same archive with no drill hosts
but ``[drill] machine-host`` = drilla: it boots its own systemd-nspawn
machines inside drilla (``installer/drill_machines.py``; the image build is
reported in the boot time of a first run) and restores onto them through
it; its time to a working site, boot time and ratio are printed too.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "tests" / "installer"))

import test_backup  # noqa: E402 - after the path is set: the suite's site and its steps
from testhosts import TestHosts  # noqa: E402
from testhosts.srhtsite import HOSTS, Control, Site  # noqa: E402

from srht_core.keys import generate_keys  # noqa: E402


def run(machines: bool = False) -> dict[str, Any]:
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="srht-bench-drill-") as tmp:
        folder = Path(tmp)
        control = Control(sys.executable, {**os.environ, "PYINFRA_PROGRESS": "off"})
        names = HOSTS + list(test_backup.DRILL_HOSTS.values())
        net_admin = [test_backup.MACHINE_HOST] if machines else []
        with TestHosts(names, folder / "hosts", net_admin_hosts=net_admin) as hosts:
            (folder / "site").mkdir()
            site = Site(control, hosts, folder / "site", generate_keys())
            site.services = {name: {"hosts": host} for name, host in test_backup.PLACES.items()}
            built = control.srht(site.write(), "deploy", "wheelhouse")
            assert built.returncode == 0, built.stderr
            site.wheelhouse = built.stdout.strip()
            control.env["SRHT_DEPLOY_WHEELHOUSE"] = site.wheelhouse

            started = time.perf_counter()
            site.converge()
            fresh = time.perf_counter() - started

            state: dict[str, Any] = {}
            test_backup.test_a_site_with_users_tickets_pastes_and_a_repository(site, state)
            started = time.perf_counter()
            made = test_backup.srht_install(
                site, "backup", "--output", str(site.folder / "backups")
            )
            backup = time.perf_counter() - started
            assert made.returncode == 0, made.stderr[-3000:]
            password = site.folder / "alice-password"
            password.write_text(test_backup.PASSWORD + "\n")
            with open(site.config, "a") as config:
                config.write(
                    f"\n[drill]\nbackup-folder = {site.folder / 'backups'}\nadmin = alice\n"
                    f"admin-password-file = {password}\n"
                )
            started = time.perf_counter()
            drilled = test_backup.srht_install(site, "drill", *test_backup.drill_args(site))
            wall = time.perf_counter() - started
            assert drilled.returncode == 0, (drilled.stdout + drilled.stderr)[-6000:]
            record = json.loads((site.folder / "config.ini.drill.json").read_text())
            on_machines = None
            if machines:
                address = site.hosts.address(test_backup.MACHINE_HOST)
                with open(site.config, "a") as config:
                    config.write(f"machine-host = root@{address}\n")
                started = time.perf_counter()
                drilled_on_machines = test_backup.srht_install(site, "drill")
                machine_wall = time.perf_counter() - started
                assert drilled_on_machines.returncode == 0, (
                    drilled_on_machines.stdout + drilled_on_machines.stderr
                )[-6000:]
                on_machines = json.loads((site.folder / "config.ini.drill.json").read_text())
                on_machines["wall_s"] = round(machine_wall, 1)
    working = float(record["working_s"])
    found = re.search(r"Restored in (\d+)s", drilled.stderr)
    return {
        "fresh_deploy_s": round(fresh, 1),
        "backup_s": round(backup, 1),
        "drill_working_s": working,
        "drill_verify_s": record["verify_s"],
        "drill_restore_s": record["restore_s"],
        "drill_teardown_s": record["teardown_s"],
        "drill_wall_s": round(wall, 1),
        "ratio": round(working / fresh, 2),
        "restore_printed_s": int(found[1]) if found else None,
        "machines": None
        if on_machines is None
        else {
            "working_s": on_machines["working_s"],
            "boot_s": on_machines["boot_s"],
            "restore_s": on_machines["restore_s"],
            "teardown_s": on_machines["teardown_s"],
            "wall_s": on_machines["wall_s"],
            "ratio": round(float(on_machines["working_s"]) / fresh, 2),
        },
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    result = run(machines="--machines" in sys.argv[1:])
    print(f"fresh deploy of the site:      {result['fresh_deploy_s']} s")
    print(f"backup (reported apart):       {result['backup_s']} s")
    print(f"drill, time to a working site: {result['drill_working_s']} s")
    print(f"ratio drill / fresh:           {result['ratio']}")
    if result["machines"]:
        m = result["machines"]
        print(f"drill on machines of drilla:   {m['working_s']} s (booted in {m['boot_s']} s)")
        print(f"ratio machines drill / fresh:  {m['ratio']}")
    print(f"load average at the end:       {result['loadavg']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
