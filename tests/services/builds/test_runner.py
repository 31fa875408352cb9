"""Jobs running for real: ``srht builds runner`` as its own process on this
machine, taking jobs from ``srht serve builds`` (real gunicorn) over the
internal API and running each in a systemd-nspawn container made from the
test hosts' cached Debian image (``tests/testhosts``; no image is built
here).

The runner runs on the test machine itself, not inside a test host. Tried
in a booted test host (bookworm, this machine's systemd-nspawn 252 copied
in): nspawn nests, with and without ``--private-users`` (a user namespace
inside the host works, so does a network namespace), but the job's
resource limits cannot be set there. This machine has the cgroup v1
layout (no systemd as PID 1; memory, cpu and pids each a v1 hierarchy),
and the outer nspawn mounts those hierarchies read-only in the test host
(``mkdir /sys/fs/cgroup/...``: "Read-only file system"); its cgroup2
mount is writable but has no controllers. The runner refuses to start
without them rather than run jobs unlimited. Root in the test host may
remount each of those bind mounts read-write (``mount -o
remount,bind,rw``; no user namespace locks them): the deploy suite boots
its runner host so (``TestHosts(cgroup_hosts=...)``) and runs a deployed
runner's job there (``tests/deploy/test_site.py``). These tests stay on
this machine, where they need no deploy.

Marked ``deploy`` (root, nspawn, the cached image), as the test-host suites
are.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import harness
from .harness import PATIENCE, RunnerSite, leftovers, wait_for_task

TESTS = Path(__file__).parents[2]
sys.path.insert(0, str(TESTS))

from support.ci import require, require_test_hosts  # noqa: E402 - after the path is set

pytestmark = [pytest.mark.postgres, pytest.mark.deploy, pytest.mark.slow]

SLOT = os.environ.get("SRHT_TESTHOSTS_SLOT", "0")
#: The site's time limit: long enough for the jobs that must succeed on a
#: busy machine (they take a few seconds), and for the time-limit test's
#: container to start and reach its task there (at a load of 10 a setup
#: once took over 30 s, so the limit fell before the task), short enough to
#: wait for.
TIME_LIMIT = 45


@pytest.fixture(scope="module")
def runner_site(
    srht_postgres: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunnerSite]:
    """meta, git and builds under gunicorn with their workers, and a
    runner; builds also in this process, to submit and read."""
    require_test_hosts()
    require(shutil.which("git") is not None, "git is not installed")
    with harness.runner_site(
        srht_postgres,
        tmp_path_factory.mktemp("builds-runner"),
        f"slot{SLOT}",
        {
            "network": "none",
            "time-limit": str(TIME_LIMIT),
            "runner-timeout": "20",
            "memory": "512",
            "disk": "512",
        },
    ) as site:
        yield site


def test_a_job_whose_tasks_succeed(runner_site: RunnerSite) -> None:
    site = runner_site
    alice = site.user("alice")
    job_id = site.job(
        alice,
        "image: debian/bookworm\n"
        "environment:\n  GREETING: hello from the job\n"
        "tasks:\n"
        '  - build: echo "$GREETING"; cat /etc/debian_version; id -un\n'
        "  - test: test -d /home/build && echo tested\n",
    )
    job = site.wait(job_id)
    assert job.status == "success", site.log(alice, job_id) + site.runner.output()[-3000:]
    assert site.tasks(job_id) == [("build", "success"), ("test", "success")]
    build = site.log(alice, job_id, "build")
    assert "hello from the job" in build and "build\n" in build
    assert "tested" in site.log(alice, job_id, "test")
    page = site.browser(alice).get(f"/~alice/job/{job_id}").get_data(as_text=True)
    assert "success" in page
    assert leftovers(site.runner.name) == []


def test_a_job_failing_at_task_2_skips_the_rest_and_keeps_its_log(runner_site: RunnerSite) -> None:
    site = runner_site
    alice = site.user("alice2")
    job_id = site.job(
        alice,
        "image: debian/bookworm\n"
        "tasks:\n"
        "  - first: echo first ran\n"
        "  - second: echo about to fail; false; echo never printed\n"
        "  - third: echo third ran\n",
    )
    job = site.wait(job_id)
    assert job.status == "failed"
    assert job.reason == "Task second failed (exit 1)."
    assert site.tasks(job_id) == [("first", "success"), ("second", "failed"), ("third", "skipped")]
    assert "first ran" in site.log(alice, job_id, "first")
    second = site.log(alice, job_id, "second")
    assert "about to fail" in second and "never printed" not in second.replace(
        "+ echo never printed", ""
    )
    assert "third ran" not in site.log(alice, job_id)
    assert leftovers(site.runner.name) == []


def test_a_job_over_its_time_limit_is_stopped_and_marked(runner_site: RunnerSite) -> None:
    site = runner_site
    alice = site.user("alice3")
    job_id = site.job(
        alice,
        "image: debian/bookworm\n"
        "tasks:\n"
        "  - slow: echo sleeping; sleep 600; echo woke\n"
        "  - after: echo after\n",
    )
    job = site.wait(job_id)
    assert job.status == "timeout"
    assert (
        job.reason
        == f"The job ran past its time limit of {TIME_LIMIT} s and was stopped during task slow."
    )
    assert site.tasks(job_id) == [("slow", "timeout"), ("after", "skipped")]
    log = site.log(alice, job_id, "slow")
    assert "sleeping" in log and f"The job ran past its time limit of {TIME_LIMIT} s." in log
    assert "woke" not in log.replace("echo woke", "")
    assert leftovers(site.runner.name) == []


def test_a_job_reaches_neither_the_host_nor_another_job_and_is_cancelled(
    runner_site: RunnerSite, tmp_path: Path
) -> None:
    """One job runs (marking its files and processes); a second looks for
    them, for the host's files and for the service it is next to, and finds
    nothing; then the first is cancelled by its owner while it runs."""
    site = runner_site
    alice, bob = site.user("carol"), site.user("dave")
    marker = tmp_path / "host-only"
    marker.write_text("the host's own file\n")
    running = site.job(
        alice,
        "image: debian/bookworm\n"
        "tasks:\n"
        "  - hold: echo other-job-secret > /tmp/other-job-file; exec sleep 4242\n"
        "  - never: echo never\n",
    )
    wait_for_task(site, running, "hold")
    service_port = site.app.extensions["srht"].origin.rsplit(":", 1)[1]
    prober = site.job(
        bob,
        "image: debian/bookworm\n"
        "tasks:\n"
        "  - look: |\n"
        "      ! pgrep -f 'sleep 4242' && echo no-other-processes\n"
        "      ! find / \\( -path /proc -o -path /sys \\) -prune -o \\( -name other-job-file"
        " -o -name host-only \\) -print 2>/dev/null | grep . && echo no-other-files\n"
        f"      ! timeout 5 bash -c 'echo > /dev/tcp/127.0.0.1/{service_port}'"
        " && echo no-service\n"
        "      ! ip -o -4 addr show scope global | grep . && echo no-addresses\n"
        "      awk 'NR == 1 && $2 != 0 {print \"root-is-mapped\"}' /proc/self/uid_map\n"
        "      ! sudo touch /proc/sysrq-trigger 2>/dev/null && echo no-sysrq\n",
    )
    job = site.wait(prober)
    look = site.log(bob, prober, "look")
    assert job.status == "success", look
    for seen in (
        "no-other-processes",
        "no-other-files",
        "no-service",
        "no-addresses",
        "root-is-mapped",
        "no-sysrq",
    ):
        assert f"\n{seen}\n" in look, (seen, look)
    assert site.get_job(running).status == "running"
    # The owner cancels the running job from its page.
    browser = site.browser(alice)
    answer = browser.submit(f"/~carol/job/{running}", {}, action=f"/~carol/job/{running}/cancel")
    assert answer.status_code in (302, 303), answer.get_data(as_text=True)[:2000]
    job = site.wait(running)
    assert job.status == "cancelled"
    assert site.tasks(running) == [("hold", "cancelled"), ("never", "skipped")]
    assert "Stopping the job: cancelled" in site.log(alice, running, "hold")
    assert leftovers(site.runner.name) == []


def test_a_secret_goes_to_its_owners_job_only(runner_site: RunnerSite) -> None:
    import base64

    site = runner_site
    erin = site.user("erin")
    made = site.api(erin).post(
        "/secrets",
        json={
            "kind": "file",
            "content": base64.b64encode(b"machine example.org password hunter2\n").decode(),
            "path": "~/.netrc",
            "mode": "600",
        },
    )
    assert made.status_code == 201, made.json
    uuid = made.json["id"]
    manifest = (
        "image: debian/bookworm\n"
        f"secrets: [{uuid}]\n"
        "tasks:\n"
        "  - use: |\n"
        "      set +x\n"
        "      if [ -e ~/.netrc ]; then\n"
        '        echo "netrc: $(stat -c %a ~/.netrc) $(cut -c1-19 ~/.netrc)"\n'
        "      else echo no-netrc; fi\n"
    )
    own = site.job(erin, manifest)
    # The same manifest from a push or patch of someone else's (a fork) runs
    # without it.
    foreign = site.job(erin, manifest, allow_secrets=False)
    assert site.wait(own).status == "success", site.log(erin, own)
    assert "netrc: 600 machine example.org" in site.log(erin, own, "use")
    assert site.wait(foreign).status == "success"
    assert "no-netrc" in site.log(erin, foreign, "use")
    assert "Secrets were not given to this job" in site.log(erin, foreign)
    # Another user cannot even name it.
    refused = site.api(site.user("frank")).post("/jobs", json={"manifest": manifest})
    assert refused.status_code == 400
    assert any(uuid in error["reason"] for error in refused.json["errors"]), refused.json


def test_a_push_with_a_build_manifest_starts_a_job_that_clones_the_private_source(
    runner_site: RunnerSite, tmp_path: Path
) -> None:
    """hana has builds watch her private repository (builds registers a
    webhook on git, acting for her); her push of a commit with
    ``.build.yml`` reaches builds as git's signed ``repo:push``, and the job
    it starts clones the repository with her access and runs at that
    commit."""
    import requests
    from support.accounts import create_user, srht

    site = runner_site
    hana_id = create_user(site.config, "hana")
    hana = site.user("hana", hana_id)
    token = srht(site.config, "meta", "token", "hana", "--scopes", "git/repos:RW")
    token = token.strip().splitlines()[-1]
    git = site.app.extensions["srht"].origins["git"]
    made = requests.post(
        git + "/api/repos",
        json={"name": "private-project", "visibility": "private"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert made.status_code == 201, made.text
    watched = site.browser(hana).submit("/repositories", {"repository": "private-project"})
    assert watched.status_code in (302, 303), watched.get_data(as_text=True)[-3000:]

    work = tmp_path / "work"
    work.mkdir()
    url = f"{git}/~hana/private-project"
    (work / "VERSION").write_text("private 1.0\n")
    (work / ".build.yml").write_text(
        "image: debian/bookworm\n"
        f"sources: [{url}]\n"
        "tasks:\n"
        "  - show: cat private-project/VERSION private-project/.git/HEAD\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Hana",
        "GIT_AUTHOR_EMAIL": "hana@example.org",
        "GIT_COMMITTER_NAME": "Hana",
        "GIT_COMMITTER_EMAIL": "hana@example.org",
    }

    def git_client(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=work, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    git_client("init", "-q", "-b", "main")
    git_client("add", ".")
    git_client("commit", "-q", "-m", "Build me")
    commit = git_client("rev-parse", "HEAD").strip()
    pushed = url.replace("http://", f"http://hana:{token}@")
    git_client("push", "-q", pushed, "main")

    import sqlalchemy as sa

    from srht_plugins.builds.models import Job

    deadline = time.monotonic() + PATIENCE
    job_id = None
    while job_id is None:
        assert time.monotonic() < deadline, "the push started no job"
        with site.session() as session:
            job_id = session.scalar(
                sa.select(Job.id).where(Job.repository == "~hana/private-project")
            )
        time.sleep(0.5)
    job = site.wait(job_id)
    log = site.log(hana, job_id)
    assert job.status == "success", log
    assert (job.commit, job.ref, job.submitter) == (commit, "refs/heads/main", "git")
    show = site.log(hana, job_id, "show")
    assert "private 1.0" in show and commit in show
    # Her token never reaches the job's log.
    assert token not in log


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic"]


@pytest.mark.browser
def test_the_job_page_shows_the_log_growing_then_the_final_status(
    runner_site: RunnerSite,
) -> None:
    """In Chromium, the page of a running job reloads itself (no
    JavaScript): each load shows more of the task's log, and the last one
    the job's success, after which it stops reloading."""
    require(Path(CHROMIUM).exists(), "chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    site = runner_site
    ida = site.user("ida")
    job_id = site.job(
        ida,
        "image: debian/bookworm\n"
        "tasks:\n"
        '  - count: for i in $(seq 1 12); do echo "line $i"; sleep 1; done\n',
    )
    url = f"{site.app.extensions['srht'].origin}/~ida/job/{job_id}"
    seen: list[tuple[str, int]] = []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = chromium.new_page()
            page.goto(url)
            deadline = time.monotonic() + PATIENCE
            while time.monotonic() < deadline:
                try:
                    status = page.inner_text(".job-status")
                    log = page.inner_text("#log-count")
                except Exception:  # noqa: BLE001 - the page is reloading itself
                    time.sleep(0.2)
                    continue
                lines = sum(1 for n in range(1, 13) if f"line {n}\n" in log + "\n")
                if not seen or seen[-1] != (status.split()[0], lines):
                    seen.append((status.split()[0], lines))
                if status.startswith("success"):
                    break
                time.sleep(0.3)
            final = page.content()
        finally:
            chromium.close()
    assert seen[-1] == ("success", 12), seen
    partial = [lines for status, lines in seen if status == "running" and 0 < lines < 12]
    assert partial, f"the log was never seen growing: {seen}"
    counts = [lines for _status, lines in seen]
    assert counts == sorted(counts), seen
    assert 'http-equiv="refresh"' not in final


def test_a_runner_killed_mid_job_leaves_nothing_and_the_job_is_failed(
    runner_site: RunnerSite,
) -> None:
    """kill -9 of the runner while a task runs: started again, it removes
    the container and what went with it, and the service marks the job
    failed saying why. (It restarts the runner.)"""
    site = runner_site
    gina = site.user("gina")
    job_id = site.job(
        gina,
        "image: debian/bookworm\ntasks:\n  - long: exec sleep 4343\n  - after: echo after\n",
    )
    wait_for_task(site, job_id, "long")
    runner = site.runner
    assert runner.process is not None
    os.kill(runner.process.pid, signal.SIGKILL)
    runner.process.wait(30)
    assert leftovers(runner.name) != []  # the container outlived its runner
    runner.start()
    job = site.wait(job_id)
    assert job.status == "failed"
    assert job.reason == f"the runner {runner.name} stopped and started again during task long"
    assert site.tasks(job_id)[1] == ("after", "skipped")
    assert leftovers(runner.name) == []


def test_a_runner_gone_silent_has_its_job_failed_by_the_service(runner_site: RunnerSite) -> None:
    """The runner killed and not started again: the service's watchdog
    (``srht worker builds``) fails its job once the runner has been silent
    for ``[builds] runner-timeout``, and says so. (Restarts the runner.)"""
    site = runner_site
    jack = site.user("jack")
    job_id = site.job(jack, "image: debian/bookworm\ntasks:\n  - long: exec sleep 4444\n")
    wait_for_task(site, job_id, "long")
    runner = site.runner
    assert runner.process is not None
    os.kill(runner.process.pid, signal.SIGKILL)
    runner.process.wait(30)
    job = site.wait(job_id, ("failed",), runner_down=True)
    assert job.reason.startswith(f"the runner {runner.name} stopped answering (")
    assert job.reason.endswith(" s without word) during task long"), job.reason
    # Started again, it removes the container it left.
    runner.start()
    deadline = time.monotonic() + PATIENCE
    while leftovers(runner.name) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert leftovers(runner.name) == []
