"""The deploy's wall time: a fresh two-host deploy and a no-op re-run.

    python benchmarks/bench_deploy.py           # as root, with scripts/test's packages

Boots two test hosts (``tests/testhosts``: systemd-nspawn machines in
network namespaces over the cached image, packages through the run's
apt-cacher-ng), builds the wheelhouse once (not timed: it is cached on the
deploying machine across runs), then times ``srht deploy`` of the issue's
scenario (meta, PostgreSQL and Redis on ``alpha``; todo and paste on
``beta``; each behind nginx) from fresh hosts; then a re-run that must
change nothing. Prints both times and
their ratio (target: re-run ≤ 0.15 × fresh). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from testhosts import TestHosts  # noqa: E402 - after the path is set
from testhosts.srhtsite import HOSTS, NAMES, Control, Site, changed  # noqa: E402

from srht_core.keys import generate_keys  # noqa: E402


def run(rounds: int) -> dict[str, object]:
    fresh_times, rerun_times = [], []
    with tempfile.TemporaryDirectory(prefix="srht-bench-deploy-") as tmp:
        control = Control(
            sys.executable, {"PYINFRA_PROGRESS": "off", **dict(__import__("os").environ)}
        )
        for round_ in range(rounds):
            run_dir = Path(tmp) / f"round-{round_}"
            with TestHosts(HOSTS, run_dir, etc_hosts=NAMES) as hosts:
                site = Site(control, hosts, run_dir, generate_keys()).layout()
                site.write()
                built = control.srht(site.config, "deploy", "wheelhouse")
                assert built.returncode == 0, built.stderr
                control.env["SRHT_DEPLOY_WHEELHOUSE"] = built.stdout.strip()
                site.wheelhouse = built.stdout.strip()
                started = time.perf_counter()
                site.converge()
                fresh_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                report = site.converge()
                rerun_times.append(time.perf_counter() - started)
                assert changed(report) == {}, changed(report)
    fresh, rerun = min(fresh_times), min(rerun_times)
    return {
        "fresh_s": round(fresh, 1),
        "rerun_s": round(rerun, 1),
        "ratio": round(rerun / fresh, 3),
        "rounds": rounds,
        "fresh_all_s": [round(t, 1) for t in fresh_times],
        "rerun_all_s": [round(t, 1) for t in rerun_times],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rounds", type=int, default=1, help="fresh hosts per measure (the best round is reported)"
    )
    args = parser.parse_args()
    result = run(args.rounds)
    print(f"fresh two-host deploy: {result['fresh_s']} s")
    print(f"no-op re-run:          {result['rerun_s']} s")
    print(f"ratio re-run / fresh:  {result['ratio']} (target <= 0.15)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
