"""builds: what a job costs over booting the same container by hand.

``srht serve builds`` (gunicorn) and ``srht builds runner`` (polling, no
broker) on a throwaway PostgreSQL, the image unpacked from the test hosts'
cached tarball (``tests/testhosts``; built first if missing). After one
warm-up job:

- **job**: a job of one task (``true``) submitted as the API submits it,
  until the service records it finished: the runner's poll (up to a
  second), claim, the job's folder, tmpfs, cgroups and network namespace,
  the overlay, ``systemd-nspawn`` running the driver (it makes the user
  ``build``), the log and state sent back, the clean-up. Split into submit
  to started (``Job.started``, the claim) and started to finished;
- the **baseline**: the same container booted by hand, ``--jobs`` times,
  alternating with the jobs: a private mount namespace, a tmpfs, the
  overlay on the same image tree, ``systemd-nspawn`` with the same user
  range and a private network running ``/bin/true``, and the unmount.

Printed as medians and as the ratio of a job to the baseline, with the load
average (the machine is shared). Needs root.

    python benchmarks/bench_builds.py [--jobs N]

With ``--scale``: jobs per minute with one runner, then with two (each
``--jobs 1``, its own folder, image ready before the clock starts), for
``--jobs`` jobs of one task (``sleep 5``: a job that waits, as tests and
builds waiting on I/O do, so the machine's 2 cores are not what is
measured) submitted at once; the figure is the ratio (target >= 1.8).
Both runners are on this machine: what it shows is that the service hands
jobs to every runner as it asks, not that hardware was added.

    python benchmarks/bench_builds.py --scale [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "tests"))

from testhosts.image import cache_dir, ensure_image  # noqa: E402 - after the path is set

from srht_core import create_app, db_session, state_of  # noqa: E402
from srht_core.config import dump_ini  # noqa: E402
from srht_core.testing import (  # noqa: E402
    free_port,
    serve_service,
    site_config,
    throwaway_postgres,
)

MANIFEST = "image: debian/bookworm\ntasks:\n  - nothing: 'true'\n"


def by_hand(tree: Path, uid_base: int, work: Path) -> float:
    """Seconds to boot ``tree`` as a job's container runs ``/bin/true``."""
    root = work / "fs"
    root.mkdir(parents=True, exist_ok=True)
    script = " && ".join(
        [
            "mkdir -p /run/systemd/nspawn",
            "mount -t tmpfs tmpfs /run/systemd/nspawn",
            f"mount -t tmpfs -o size=512m,mode=0755 bench {root}",
            f"mkdir {root}/upper {root}/work {root}/root",
            f"chown {uid_base}:{uid_base} {root}/upper",
            f"mount -t overlay overlay -o lowerdir={tree},upperdir={root}/upper,"
            f"workdir={root}/work {root}/root",
            f"systemd-nspawn --quiet --register=no --keep-unit --directory={root}/root "
            f"--private-users={uid_base}:65536 --private-users-ownership=off "
            "--private-network --as-pid2 --resolv-conf=off --timezone=off "
            "--link-journal=no --console=pipe /bin/true",
        ]
    )
    started = time.perf_counter()
    subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    return time.perf_counter() - started


def start_runner(config_path: Path, folder: Path, name: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "srht_core.cli",
                "--config",
                str(config_path),
                "builds",
                "runner",
                "--name",
                name,
                "--jobs",
                "1",
                "--dir",
                str(folder / name),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--scale", action="store_true", help="jobs per minute, 1 and 2 runners")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (namespaces, mounts, nspawn)", file=sys.stderr)
        return 2
    ensure_image()
    [tarball] = sorted(cache_dir().glob("image-*.tar.zst"))[-1:]
    folder = Path(tempfile.mkdtemp(prefix="srht-bench-builds-"))
    folder.chmod(0o711)
    runner_log = folder / "runner.log"
    try:
        with throwaway_postgres() as postgres:
            (folder / "images.yml").write_text(f"debian/bookworm:\n  tarball: {tarball}\n")
            port = free_port()
            data = site_config(
                folder / "data",
                {
                    "builds": {
                        "origin": f"http://127.0.0.1:{port}",
                        "connection-string": postgres.create_database(),
                        "images": str(folder / "images.yml"),
                        "memory": "512",
                        "disk": "512",
                    }
                },
                srht={"internal-networks": "127.0.0.0/8"},
            )
            config_path = folder / "config.ini"
            config_path.write_text(dump_ini(data), encoding="utf-8")
            app = create_app("builds", config_path_config(config_path))
            from srht_core.migrate import upgrade

            state = state_of(app)
            upgrade(state.db, "builds", state.schema)
            uid_base = int(state.section["uid-base"])
            with serve_service("builds", config_path, port=port, workers=2):
                if args.scale:
                    scale = measure_scale(app, config_path, folder, runner_log, args.jobs)
                    state.db.dispose()
                    report_scale(scale)
                    return 0
                runner = start_runner(config_path, folder, "runner", runner_log)
                try:
                    results = measure(app, folder, uid_base, args.jobs)
                finally:
                    runner.terminate()
                    runner.wait(60)
            state.db.dispose()
    except BaseException:
        if runner_log.exists():
            print(runner_log.read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    report(results)
    return 0


def config_path_config(path: Path) -> object:
    from srht_core import Config

    return Config.from_string(path.read_text(), str(path))


def run_job(app: object) -> tuple[float, float]:
    """``(submit to started, started to finished)`` of one job, seconds."""
    from srht_plugins.builds import submit
    from srht_plugins.builds.models import Job, User

    with app.app_context():  # type: ignore[attr-defined]
        owner = db_session.get(User, 1)
        started = time.perf_counter()
        job = submit.submit(owner, MANIFEST)
        db_session.commit()
        job_id = job.id
        claimed = None
        while True:
            db_session.expire_all()
            found = db_session.get(Job, job_id)
            assert found is not None
            if claimed is None and found.started is not None:
                claimed = time.perf_counter()
            if found.status not in ("queued", "running"):
                done = time.perf_counter()
                assert found.status == "success", (found.status, found.reason)
                break
            time.sleep(0.02)
            if time.perf_counter() - started > 300:
                raise RuntimeError(f"job {job_id} did not end")
        claimed = claimed or done
        return claimed - started, done - claimed


def measure(app: object, folder: Path, uid_base: int, jobs: int) -> dict[str, list[float]]:
    from srht_plugins.builds.models import User

    with app.app_context():  # type: ignore[attr-defined]
        db_session.add(User(id=1, username="bench", email="bench@example.org"))
        db_session.commit()
    run_job(app)  # warm-up: the runner unpacks the image first
    trees = [p for p in (folder / "runner" / "images").iterdir() if (p / ".srht-ready").exists()]
    tree = trees[0]
    out: dict[str, list[float]] = {"claim": [], "run": [], "job": [], "hand": []}
    for n in range(jobs):
        claim, run = run_job(app)
        out["claim"].append(claim)
        out["run"].append(run)
        out["job"].append(claim + run)
        out["hand"].append(by_hand(tree, uid_base, folder / f"hand-{n}"))
    return out


SLOW_MANIFEST = "image: debian/bookworm\ntasks:\n  - wait: sleep 5\n"


def _ready(folder: Path) -> bool:
    images = folder / "images"
    return images.is_dir() and any((p / ".srht-ready").exists() for p in images.iterdir())


def run_batch(app: object, jobs: int) -> float:
    """Seconds from submitting ``jobs`` jobs at once to the last one finished."""
    from srht_plugins.builds import submit
    from srht_plugins.builds.models import Job, User

    with app.app_context():  # type: ignore[attr-defined]
        owner = db_session.get(User, 1)
        started = time.perf_counter()
        ids = []
        for _ in range(jobs):
            ids.append(submit.submit(owner, SLOW_MANIFEST).id)
            db_session.commit()
        while True:
            db_session.expire_all()
            found = [db_session.get(Job, i) for i in ids]
            if all(j is not None and j.status not in ("queued", "running") for j in found):
                done = time.perf_counter()
                bad = [(j.id, j.status, j.reason) for j in found if j and j.status != "success"]
                assert not bad, bad
                return done - started
            time.sleep(0.1)
            if time.perf_counter() - started > 1800:
                raise RuntimeError("the jobs did not end")


def measure_scale(
    app: object, config_path: Path, folder: Path, log: Path, jobs: int
) -> dict[int, float]:
    """``{runners: jobs per minute}`` for one runner, then two."""
    from srht_plugins.builds.models import User

    with app.app_context():  # type: ignore[attr-defined]
        db_session.add(User(id=1, username="bench", email="bench@example.org"))
        db_session.commit()
    out: dict[int, float] = {}
    for count in (1, 2):
        names = [f"runner{n}" for n in range(count)]
        runners = [start_runner(config_path, folder, name, log) for name in names]
        try:
            deadline = time.monotonic() + 600
            while not all(_ready(folder / name) for name in names):
                if time.monotonic() > deadline or any(r.poll() is not None for r in runners):
                    raise RuntimeError("a runner did not get its image ready")
                time.sleep(0.5)
            out[count] = jobs / run_batch(app, jobs) * 60
        finally:
            for runner in runners:
                runner.terminate()
            for runner in runners:
                runner.wait(60)
    return out


def report_scale(per_minute: dict[int, float]) -> None:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average after: {load}")
    for count, rate in per_minute.items():
        print(f"  {count} runner(s): {rate:.1f} jobs per minute")
    print(f"  two runners / one                  {per_minute[2] / per_minute[1]:.2f}")


def report(results: dict[str, list[float]]) -> None:
    median = {k: statistics.median(v) for k, v in results.items()}
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"jobs: {len(results['job'])}, load average after: {load}")
    print(f"  submit to claimed (runner's poll)  {median['claim']:.2f} s")
    print(f"  claimed to finished                {median['run']:.2f} s")
    print(f"  job, submit to finished            {median['job']:.2f} s")
    print(f"  container by hand (/bin/true)      {median['hand']:.2f} s")
    print(f"  job / by hand                      {median['job'] / median['hand']:.1f}")
    print(f"  job after its claim / by hand      {median['run'] / median['hand']:.1f}")


if __name__ == "__main__":
    sys.exit(main())
