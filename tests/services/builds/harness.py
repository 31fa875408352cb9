"""What the tests of jobs running for real share (``test_runner.py``,
``test_runner_limits.py``): ``srht builds runner`` as a process of its own,
the site it serves (meta, git and builds under gunicorn, with their
workers) and ways to wait for a job and read what its owner sees.

:func:`runner_site` starts one such site with the ``[builds]`` (and other)
settings a module needs; each module starts one, for all its tests.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from srht_core.config import dump_ini
from srht_core.testing import free_port, serve_service, site_config

from .conftest import BuildsSite

#: The test hosts' slot: each has its own shared images (:func:`runner_folder`).
SLOT = os.environ.get("SRHT_TESTHOSTS_SLOT", "0")

#: How long a job of these tests may take to end, setup included (the
#: first one unpacks the image): a bound on waiting, not a measurement.
PATIENCE = 300


class Runner:
    """A running ``srht builds runner``, stopped by its PID."""

    def __init__(self, config: Path, folder: Path, name: str):
        self.config, self.folder, self.name = config, folder, name
        self.log = config.parent / f"runner-{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        handle = open(self.log, "ab")  # noqa: SIM115 - the runner's for its life
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "srht_core.cli",
                "--config",
                str(self.config),
                "builds",
                "runner",
                "--name",
                self.name,
                "--jobs",
                "2",
                "--dir",
                str(self.folder),
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        handle.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class RunnerSite(BuildsSite):
    """The builds app in this process (to submit and read), the same site
    served by gunicorn (what the runner talks to) and the runner."""

    def __init__(self, app: Any, runner: Runner, config: Path):
        super().__init__(app)
        self.runner, self.config = runner, config

    def user(self, username: str, user_id: int | None = None) -> Any:
        """A mirrored user: meta's (with its id) or one of builds' own
        (ids from 10000, clear of meta's)."""
        import sqlalchemy as sa

        from srht_plugins.builds.models import User

        with self.session() as session:
            if user_id is None:
                user_id = max(session.scalar(sa.select(sa.func.max(User.id))) or 0, 9999) + 1
            user = User(id=user_id, username=username, email=f"{username}@example.org")
            session.add(user)
        return user

    def wait(
        self,
        job_id: int,
        statuses: tuple[str, ...] = ("success", "failed", "timeout", "cancelled"),
        *,
        runner_down: bool = False,
    ) -> Any:
        """The job once its status is one of ``statuses``; a runner that
        stops meanwhile fails the test, unless ``runner_down``."""
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            job = self.get_job(job_id)
            if job.status in statuses:
                return job
            process = self.runner.process
            if process is not None and process.poll() is not None and not runner_down:
                pytest.fail("the runner stopped:\n" + self.runner.output()[-4000:])
            time.sleep(0.5)
        pytest.fail(
            f"job {job_id} is still {self.get_job(job_id).status}:\n" + self.runner.output()[-4000:]
        )

    def log(self, owner: Any, job_id: int, task: str | None = None) -> str:
        path = f"/~{owner.username}/job/{job_id}/log" + (f"/{task}" if task else "")
        answer = self.browser(owner).get(path)
        assert answer.status_code == 200, path
        return answer.get_data(as_text=True)

    def tasks(self, job_id: int) -> list[tuple[str, str]]:
        import sqlalchemy as sa

        from srht_plugins.builds.models import Task

        with self.session() as session:
            rows = session.execute(
                sa.select(Task.name, Task.status)
                .where(Task.job_id == job_id)
                .order_by(Task.position)
            )
            return [(name, status) for name, status in rows]


def leftovers(name: str) -> list[str]:
    """What jobs of runner ``name`` could have left on this machine:
    mounts, network namespaces, nspawn processes."""
    found = [
        line.split()[1]
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if "srht-builds" in line.split()[0] or f"/{name}/jobs/" in line.split()[1]
    ]
    netns = Path("/run/netns")
    if netns.exists():
        found += [p.name for p in netns.iterdir() if p.name.startswith(f"srht-builds-{name}-")]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if ("systemd-nspawn" in command and f"/{name}/jobs/" in command) or (
                "slirp4netns" in command and f"srht-builds-{name}-" in command
            ):
                found.append(f"pid {proc.name}: {command[:120]}")
    return found


class Worker:
    """``srht worker SERVICE``, stopped by its PID."""

    def __init__(self, config: Path, service: str, log: Path):
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "srht_core.cli", "--config", str(config), "worker", service],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def wait_for_task(site: RunnerSite, job_id: int, task: str) -> None:
    """Until ``task`` of the job runs (the runner said so)."""
    deadline = time.monotonic() + PATIENCE
    while (task, "running") not in site.tasks(job_id):
        job = site.get_job(job_id)
        if time.monotonic() > deadline or job.status not in ("queued", "running"):
            pytest.fail(
                f"task {task} of job {job_id} never ran: {site.tasks(job_id)}, job {job.status}"
                f" ({job.reason}):\n" + site.runner.output()[-3000:]
            )
        time.sleep(0.5)


def runner_folder(prefix: str, name: str) -> Path:
    """A new folder for runner ``name`` (``FOLDER/NAME``, returned: FOLDER),
    whose unpacked images are shared by every runner of the tests in this
    slot: unpacking the image and removing it again took about 30 s per
    test module. Remove FOLDER afterwards; the shared images stay (the
    runner builds a tree again when the cached image changes)."""
    from testhosts.image import cache_dir

    # The runner clones as the jobs' unprivileged user into its folder:
    # that user must be able to reach it (pytest's own folder is root's).
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o711)
    images = cache_dir() / f"builds-runner-images-slot{SLOT}"
    images.mkdir(parents=True, exist_ok=True)
    (folder / name).mkdir()
    (folder / name / "images").symlink_to(images, target_is_directory=True)
    return folder


@contextmanager
def runner_site(
    srht_postgres: Any,
    folder: Path,
    name: str,
    builds: dict[str, str],
    *,
    site_class: type[RunnerSite] | None = None,
    **sections: dict[str, Any],
) -> Iterator[RunnerSite]:
    """meta, git and builds under gunicorn with their workers, and a runner
    called ``name`` whose images are the test hosts' cached Debian image;
    builds also in this process, to submit and read. ``builds`` and
    ``sections`` are settings of the site's config; ``site_class`` a
    subclass of :class:`RunnerSite` to make."""
    from support.accounts import srht
    from testhosts.image import cache_dir, ensure_image

    from srht_core import Config, create_app, state_of

    ensure_image()
    [tarball] = sorted(cache_dir().glob("image-*.tar.zst"))[-1:]
    runner_dir = runner_folder("srht-builds-runner-", name)
    images = folder / "images.yml"
    images.write_text(f"debian/bookworm:\n  tarball: {tarball}\n")
    ports = {service: free_port() for service in ("meta", "git", "builds")}
    sections.setdefault("srht", {}).setdefault("internal-networks", "127.0.0.0/8")
    data = site_config(
        folder / "data",
        {
            "meta": {"connection-string": srht_postgres.create_database()},
            "git": {
                "connection-string": srht_postgres.create_database(),
                "repos": str(folder / "repos"),
                "ssh-user": getpass.getuser(),
            },
            "builds": {
                "connection-string": srht_postgres.create_database(),
                "images": str(images),
                **builds,
            },
        },
        **sections,
    )
    for service, port in ports.items():
        data[service]["origin"] = f"http://127.0.0.1:{port}"
    config_path = folder / "config.ini"
    config_path.write_text(dump_ini(data), encoding="utf-8")
    srht(config_path, "migrate")
    config = Config.from_string(config_path.read_text(), str(config_path))
    app = create_app("builds", config)
    state = state_of(app)
    state.revoked = lambda kind, token_id: False
    runner = Runner(config_path, runner_dir / name, name)
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, runner_dir, ignore_errors=True)
        stack.callback(state.db.dispose)
        stack.enter_context(serve_service("meta", config_path, port=ports["meta"]))
        stack.enter_context(serve_service("git", config_path, port=ports["git"], workers=2))
        stack.enter_context(serve_service("builds", config_path, port=ports["builds"], workers=2))
        for service in ("git", "builds"):
            worker = Worker(config_path, service, folder / f"worker-{service}.log")
            stack.callback(worker.stop)
        runner.start()
        stack.callback(runner.stop)
        yield (site_class or RunnerSite)(app, runner, config_path)
