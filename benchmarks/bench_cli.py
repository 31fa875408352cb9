"""What starting ``srht`` costs: ``srht --help``, ``srht config check`` and
``import srht_core``, each ÷ ``python -c pass``, in fresh interpreters.

Cases run in rotating order, each ``--runs`` times; the ratio is taken per
round against that round's ``python -c pass`` and the median printed, with
the load average before and after. ``--compare DIR`` runs the same cases
with another checkout's virtualenv (``DIR/.venv/bin``) in the same rounds,
for a before/after on one machine at one load.

    python benchmarks/bench_cli.py [--runs N] [--compare /work/main]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def wall(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        argv,
        env=env,
        cwd=env["BENCH_CWD"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return time.perf_counter() - start


def cases(bin_dir: Path, config: Path) -> dict[str, list[str]]:
    python = str(bin_dir / "python")
    srht = str(bin_dir / "srht")
    return {
        "python -c pass": [python, "-c", "pass"],
        "import srht_core": [python, "-c", "import srht_core"],
        "srht --help": [srht, "--help"],
        "srht config check": [srht, "--config", str(config), "config", "check"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--compare", metavar="DIR", help="another checkout with a .venv")
    args = parser.parse_args()
    trees = {"this tree": Path(sys.executable).parent}
    if args.compare:
        trees["compare"] = Path(args.compare) / ".venv" / "bin"
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        config = Path(tmp) / "config.ini"
        env = {**os.environ, "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache"), "BENCH_CWD": tmp}
        # Measured as installed code runs: its bytecode compiled once and
        # kept (pip and Debian's packages compile it at install). With
        # PYTHONDONTWRITEBYTECODE inherited (some shells and sandboxes set
        # it) every start would compile everything again: 0.2 s here for
        # `python -c pass` alone, which made every ratio look small.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run(
            [str(trees["this tree"] / "srht"), "config", "init", "--dev", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            check=True,
        )
        for bin_dir in trees.values():  # compile and keep the bytecode (not timed)
            for argv in cases(bin_dir, config).values():
                wall(argv, env)
        print("load before:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
        times: dict[tuple[str, str], list[float]] = {}
        ratios: dict[tuple[str, str], list[float]] = {}
        for run in range(args.runs):
            for tree, bin_dir in trees.items():
                all_cases = list(cases(bin_dir, config).items())
                shift = run % len(all_cases)
                measured = {}
                for name, argv in all_cases[shift:] + all_cases[:shift]:
                    measured[name] = wall(argv, env)
                    times.setdefault((tree, name), []).append(measured[name])
                for name, seconds in measured.items():
                    ratios.setdefault((tree, name), []).append(seconds / measured["python -c pass"])
        print("load after: ", " ".join(f"{x:.2f}" for x in os.getloadavg()))
        print(f"\n{'tree':<10} {'case':<20} {'median ms':>10} {'÷ python -c pass':>18}")
        for (tree, name), values in times.items():
            ratio = statistics.median(ratios[(tree, name)])
            print(f"{tree:<10} {name:<20} {statistics.median(values) * 1000:>10.0f} {ratio:>18.1f}")


if __name__ == "__main__":
    main()
