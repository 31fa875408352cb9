"""Jobs running for real on a second site, set up as a production site
would be and with small limits: ``[srht] broker`` (a real Redis), so jobs
reach the runner through its image's Celery queue and the runner is a
Celery worker; ``network = mirror`` through an apt-cacher-ng (the one the
test hosts use, here on a loopback address of this slot's own); 128 MiB of
memory, 256 of disk, 64 processes, 1 MiB of log and of artifacts; the site's
mail going to an SMTP sink. What each test checks is what the job's owner
sees: its status and reason, its tasks, its log, its artifacts, the mail and
webhooks its triggers send. (The polling runner, ``network = none`` and
the runner's other duties are in ``test_runner.py``.)

Marked ``deploy`` (root, nspawn, the cached image), as the test-host suites
are.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from srht_core.testing import free_port

from . import harness
from .harness import PATIENCE, RunnerSite, leftovers, wait_for_task

TESTS = Path(__file__).parents[2]
sys.path.insert(0, str(TESTS))

from support.ci import require, require_test_hosts  # noqa: E402 - after the path is set
from support.redis_server import RedisServer  # noqa: E402
from support.smtp_sink import SmtpSink  # noqa: E402
from support.webhook_receiver import WebhookReceiver  # noqa: E402

pytestmark = [pytest.mark.postgres, pytest.mark.deploy, pytest.mark.slow]

SLOT = os.environ.get("SRHT_TESTHOSTS_SLOT", "0")
MEMORY, DISK, PROCESSES = 128, 256, 64


class LimitsSite(RunnerSite):
    """The site, its mail and a webhook receiver."""

    mail: SmtpSink
    hooks: WebhookReceiver

    def artifacts(self, owner: Any, job_id: int) -> dict[str, int]:
        """The job's artifacts as the API lists them: ``{name: size}``."""
        answer = self.api(owner).get(f"/jobs/{job_id}/artifacts")
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return {item["name"]: item["size"] for item in answer.json["results"]}

    def tree_of_image(self) -> list[Path]:
        """The runner's trees of the image (ready or being made)."""
        return sorted((self.runner.folder / "images").glob("debian-bookworm-*"))


@pytest.fixture(scope="module")
def limits_site(
    srht_postgres: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LimitsSite]:
    """The second site (see the module's docstring), its Redis, apt proxy,
    SMTP sink and webhook receiver; one runner, ``slotNc``."""
    require_test_hosts()
    require(shutil.which("redis-server") is not None, "redis-server is not installed")
    from testhosts.proxy import AptProxy

    folder = tmp_path_factory.mktemp("builds-limits")
    redis = RedisServer(free_port())
    # The test hosts' proxy listens on their bridge; this one on a loopback
    # address of this slot's, with this slot's cache.
    proxy = AptProxy(f"127.0.{80 + int(SLOT)}.1", folder)
    with SmtpSink() as mail, WebhookReceiver() as hooks:
        redis.start()
        try:
            proxy.start()
            with harness.runner_site(
                srht_postgres,
                folder,
                f"slot{SLOT}c",
                {
                    "network": "mirror",
                    "package-proxy": proxy.url,
                    "time-limit": "120",
                    "runner-timeout": "20",
                    "memory": str(MEMORY),
                    "disk": str(DISK),
                    "processes": str(PROCESSES),
                    "log-limit": "1",
                    "artifact-limit": "1",
                },
                site_class=LimitsSite,
                srht={"broker": redis.url},
                mail={
                    "smtp-host": "127.0.0.1",
                    "smtp-port": str(mail.port),
                    "smtp-encryption": "none",
                    "smtp-from": "builds@example.org",
                },
            ) as site:
                assert isinstance(site, LimitsSite)
                site.mail, site.hooks = mail, hooks
                yield site
        finally:
            proxy.stop()
            redis.close()


def fails(site: RunnerSite, owner: Any, job_id: int) -> Any:
    job = site.wait(job_id)
    assert job.status == "failed", (job.status, job.reason, site.log(owner, job_id))
    return job


def test_a_job_reaches_the_runner_through_the_broker_and_installs_packages_through_the_mirror(
    limits_site: LimitsSite,
) -> None:
    """The runner is a Celery worker on the image's queue (it asks the
    service for no work); the job's packages come through the apt proxy,
    the only thing it can reach."""
    site = limits_site
    owner = site.user("celia")
    service_port = site.app.extensions["srht"].origin.rsplit(":", 1)[1]
    job_id = site.job(
        owner,
        "image: debian/bookworm\n"
        "packages: [hello]\n"
        "tasks:\n"
        "  - greet: hello\n"
        "  - look: |\n"
        f"      ! timeout 5 bash -c 'echo > /dev/tcp/127.0.0.1/{service_port}'"
        " && echo no-service\n"
        "      ! timeout 5 bash -c 'echo > /dev/tcp/deb.debian.org/80' && echo no-internet\n"
        "      grep -q 3142 /etc/apt/apt.conf.d/01srht-builds-proxy && echo through-the-proxy\n",
    )
    job = site.wait(job_id)
    setup = site.log(owner, job_id)
    assert job.status == "success", (job.reason, setup)
    assert "Installing packages: hello" in setup
    assert "Hello, world!" in site.log(owner, job_id, "greet")
    look = site.log(owner, job_id, "look")
    for seen in ("no-service", "no-internet", "through-the-proxy"):
        assert f"\n{seen}\n" in look, (seen, look)
    # It came through the broker: the worker received the task for this job.
    output = site.runner.output()
    assert "Task srht.builds.run[" in output and "] received" in output, output[-3000:]
    assert leftovers(site.runner.name) == []


def test_a_job_over_its_memory_is_stopped_and_told_it_ran_out(limits_site: LimitsSite) -> None:
    site = limits_site
    owner = site.user("mona")
    job_id = site.job(
        owner,
        "image: debian/bookworm\n"
        "tasks:\n"
        "  - eat: |\n"
        "      echo eating\n"
        "      big=$(head -c 600M /dev/zero | tr '\\0' x)\n"
        "      echo ate ${#big}\n"
        "  - after: echo after\n",
    )
    job = fails(site, owner, job_id)
    assert job.reason.startswith("Task eat failed (exit "), job.reason
    assert job.reason.endswith(
        f" It ran out of memory ({MEMORY} MiB, and its disk's {DISK} MiB): the kernel stopped "
        "a process of it."
    ), job.reason
    assert site.tasks(job_id) == [("eat", "failed"), ("after", "skipped")]
    eat = site.log(owner, job_id, "eat")
    assert "eating" in eat and "\nate " not in eat
    assert leftovers(site.runner.name) == []


def test_a_fork_bomb_is_held_by_the_processes_limit_and_the_job_fails(
    limits_site: LimitsSite,
) -> None:
    site = limits_site
    owner = site.user("fiona")
    job_id = site.job(
        owner,
        "image: debian/bookworm\n"
        "tasks:\n"
        "  - bomb: |\n"
        # Every process forks for ever, its children too; one that cannot
        # fork gives up, saying why.
        "      perl -e 'while (1) { defined(fork) or die \"fork: $!\\n\" }'\n"
        "      echo the bomb did not hold\n"
        "  - after: echo after\n",
    )
    job = fails(site, owner, job_id)
    assert job.reason.startswith("Task bomb failed (exit "), job.reason
    assert job.reason.endswith(
        f" It reached its limit of {PROCESSES} processes: starting more failed."
    ), job.reason
    assert site.tasks(job_id) == [("bomb", "failed"), ("after", "skipped")]
    bomb = site.log(owner, job_id, "bomb")
    assert "Resource temporarily unavailable" in bomb, bomb[-2000:]
    assert "\nthe bomb did not hold" not in bomb
    # The runner is free: the next job runs.
    after = site.job(owner, "image: debian/bookworm\ntasks:\n  - calm: echo calm\n")
    assert site.wait(after).status == "success"
    assert leftovers(site.runner.name) == []


def test_a_job_writing_past_its_disk_fails_saying_its_disk_is_full(
    limits_site: LimitsSite,
) -> None:
    site = limits_site
    owner = site.user("dora")
    job_id = site.job(
        owner,
        "image: debian/bookworm\n"
        "tasks:\n"
        f"  - fill: head -c {DISK * 2}M /dev/zero > ~/big\n"
        "  - after: echo after\n",
    )
    job = fails(site, owner, job_id)
    assert job.reason == "Task fill failed (exit 1).", job.reason
    fill = site.log(owner, job_id, "fill")
    assert "No space left on device" in fill, fill
    assert f"The job's disk is full: it may write {DISK} MiB ([builds] disk)." in fill, fill
    assert site.tasks(job_id) == [("fill", "failed"), ("after", "skipped")]


def test_a_log_over_its_limit_is_cut_with_a_note(limits_site: LimitsSite) -> None:
    site = limits_site
    owner = site.user("lola")
    job_id = site.job(
        owner,
        "image: debian/bookworm\n"
        "tasks:\n"
        "  - talk: |\n"
        "      set +x\n"
        '      for i in $(seq 1 60000); do echo "line $i of a long log"; done\n'
        "      echo done talking\n",
    )
    job = site.wait(job_id)
    assert job.status == "success", job.reason
    assert site.tasks(job_id) == [("talk", "success")]
    whole = site.log(owner, job_id)
    note = "[The log reached its limit of 1 MiB: what the job wrote after this is not kept.]"
    assert note in whole
    assert whole.count(note) == 1
    talk = site.log(owner, job_id, "talk")
    assert "line 1 of a long log" in talk and "done talking" not in talk
    assert len(whole.encode()) < 1024 * 1024 + 4096


def test_artifacts_kept_on_success_refused_past_the_limit_and_never_through_a_link(
    limits_site: LimitsSite,
) -> None:
    site = limits_site
    owner = site.user("ada")
    manifest = (
        "image: debian/bookworm\n"
        "tasks:\n"
        "  - make: |\n"
        "      echo 'the artifact body' > report.txt\n"
        "      head -c 2000000 /dev/urandom > big.bin\n"
        "      ln -s /etc/shadow shadow\n"
        "      ln -s /etc etc-link\n"
        "      {last}\n"
        "artifacts: [report.txt, big.bin, shadow, etc-link/passwd]\n"
    )
    job_id = site.job(owner, manifest.format(last="true"))
    job = site.wait(job_id)
    assert job.status == "success", job.reason
    assert site.artifacts(owner, job_id) == {"report.txt": 18}
    # Downloaded from the job's page (the API lists that URL).
    listed = site.api(owner).get(f"/jobs/{job_id}/artifacts").json["results"]
    assert listed[0]["url"].endswith(f"/~ada/job/{job_id}/artifacts/report.txt")
    page = site.browser(owner).get(f"/~ada/job/{job_id}")
    assert "report.txt" in page.get_data(as_text=True)
    download = site.browser(owner).get(f"/~ada/job/{job_id}/artifacts/report.txt")
    assert download.status_code == 200
    assert download.get_data() == b"the artifact body\n"
    log = site.log(owner, job_id)
    assert "Kept artifact report.txt (18 bytes)." in log
    assert (
        "Artifact big.bin not kept: it has 2000000 bytes, and the job's artifacts are limited "
        "to 1 MiB in all ([builds] artifact-limit)." in log
    ), log
    assert "artifact shadow: not kept, it is (or is in) a symbolic link" in log, log
    assert "artifact etc-link/passwd: not kept, it is (or is in) a symbolic link" in log, log
    assert "root:" not in log
    for missing in ("big.bin", "shadow", "passwd"):
        assert site.browser(owner).get(f"/~ada/job/{job_id}/artifacts/{missing}").status_code == 404

    # A task failed: nothing is kept.
    failed = site.job(owner, manifest.format(last="false"))
    fails(site, owner, failed)
    assert site.artifacts(owner, failed) == {}
    assert "Kept artifact" not in site.log(owner, failed)


def _hooks_for(site: LimitsSite, job_id: int) -> list[dict[str, Any]]:
    found = []
    for body in site.hooks.bodies():
        payload = json.loads(body)
        if payload["data"]["id"] == job_id:
            found.append(payload)
    return found


def test_triggers_post_a_webhook_and_send_mail_when_the_job_ends(
    limits_site: LimitsSite,
) -> None:
    site = limits_site
    owner = site.user("tess")
    triggers = (
        "triggers:\n"
        f"  - {{action: webhook, condition: always, url: '{site.hooks.url}'}}\n"
        "  - {action: email, condition: failure, to: team@example.org}\n"
    )
    passed = site.job(owner, "image: debian/bookworm\ntasks:\n  - ok: 'true'\n" + triggers)
    failed = site.job(owner, "image: debian/bookworm\ntasks:\n  - broken: 'false'\n" + triggers)
    assert site.wait(passed).status == "success"
    fails(site, owner, failed)
    deadline = time.monotonic() + PATIENCE
    while not (_hooks_for(site, passed) and _hooks_for(site, failed)):
        assert time.monotonic() < deadline, site.hooks.bodies()
        time.sleep(0.5)
    [passed_hook] = _hooks_for(site, passed)
    [failed_hook] = _hooks_for(site, failed)
    assert passed_hook["event"] == "job:finish"
    assert passed_hook["data"]["status"] == "success"
    assert failed_hook["data"]["status"] == "failed"
    assert failed_hook["data"]["reason"] == "Task broken failed (exit 1)."
    # Mail on failure only: one message, to the address the manifest gives.
    [message] = site.mail.wait_for(1, timeout=PATIENCE)
    assert message.recipients == ["team@example.org"]
    mail = message.message
    assert mail["Subject"].startswith(f"[#{failed}] failed")
    assert mail["X-Srht-Job"] == str(failed)
    body = mail.get_content()
    assert "Task broken failed (exit 1)." in body and "broken: failed" in body
    assert f"/~tess/job/{failed}" in body
    # Nothing for the success: its triggers ran (its webhook came), and
    # queued one mail in all, the failure's.
    assert len(site.jobs("srht.send-mail")) == 1
    assert len(site.mail.messages) == 1


def test_a_stale_image_is_made_again_while_a_job_runs_on_the_old_one(
    limits_site: LimitsSite,
) -> None:
    """The image is older than ``image-refresh`` (its tree is dated back):
    the runner makes it again in the background when the next job starts;
    that job keeps its tree to the end, and only then is the old tree
    removed. The next job runs on the new one."""
    site = limits_site
    owner = site.user("ivy")
    [old] = [tree for tree in site.tree_of_image() if not tree.name.endswith(".part")]
    ready = old / ".srht-ready"
    long_ago = time.time() - 30 * 86400
    os.utime(ready, (long_ago, long_ago))
    job_id = site.job(
        owner,
        "image: debian/bookworm\n"
        "tasks:\n"
        "  - hold: while [ ! -e /srht/in/go ]; do sleep 0.2; done\n"
        "  - use: cat /etc/debian_version && ls /usr/bin | wc -l && apt-get --version\n",
    )
    wait_for_task(site, job_id, "hold")
    deadline = time.monotonic() + PATIENCE
    while True:
        trees = [t for t in site.tree_of_image() if (t / ".srht-ready").exists()]
        if len(trees) == 2:
            break
        job = site.get_job(job_id)
        assert job.status == "running", (job.status, job.reason, site.runner.output()[-3000:])
        assert time.monotonic() < deadline, site.runner.output()[-3000:]
        time.sleep(0.5)
    [new] = [tree for tree in trees if tree != old]
    assert old.exists()  # the job still runs on it
    (site.runner.folder / "jobs" / str(job_id) / "io" / "in" / "go").write_text("")
    job = site.wait(job_id)
    assert job.status == "success", (job.reason, site.log(owner, job_id))
    assert "apt " in site.log(owner, job_id, "use")
    deadline = time.monotonic() + PATIENCE
    while old.exists():
        assert time.monotonic() < deadline, "the old tree was never removed"
        time.sleep(0.5)
    assert new.exists()
    later = site.job(owner, "image: debian/bookworm\ntasks:\n  - again: cat /etc/debian_version\n")
    assert site.wait(later).status == "success"
    assert leftovers(site.runner.name) == []


def test_stopping_the_runner_mid_job_tells_the_service(limits_site: LimitsSite) -> None:
    """SIGTERM to the runner (a deploy restarting it) while one job runs a
    task and another is still being set up: it stops both containers and
    tells the service, which fails the first, saying so, and queues the
    second again; started again, the runner takes that one from its queue
    and runs it. Nothing is left behind. (Restarts the runner.)"""
    site = limits_site
    owner = site.user("stan")
    began = site.job(
        owner, "image: debian/bookworm\ntasks:\n  - long: exec sleep 4545\n  - after: echo after\n"
    )
    wait_for_task(site, began, "long")
    # Its setup installs a package through the mirror: seconds to stop it in.
    setting_up = site.job(
        owner, "image: debian/bookworm\npackages: [hello]\ntasks:\n  - greet: hello\n"
    )
    deadline = time.monotonic() + PATIENCE
    while "Installing packages: hello" not in site.log(owner, setting_up):
        assert time.monotonic() < deadline, site.runner.output()[-3000:]
        time.sleep(0.2)
    runner = site.runner
    assert runner.process is not None
    runner.stop(signal.SIGTERM)
    assert runner.process.returncode is not None
    job = site.wait(began, runner_down=True)
    assert job.status == "failed", job.reason
    assert job.reason == f"the runner {runner.name} was stopped during task long"
    assert site.tasks(began)[1] == ("after", "skipped")
    queued = site.get_job(setting_up)
    assert queued.status == "queued", (queued.status, queued.reason)
    assert queued.reason == (
        f"the runner {runner.name} was stopped before the job began; queued again"
    )
    assert leftovers(runner.name) == []
    # Started again, it takes the queued job from its queue.
    runner.start()
    job = site.wait(setting_up)
    assert job.status == "success", (job.reason, site.log(owner, setting_up))
    assert "Hello, world!" in site.log(owner, setting_up, "greet")


# -- network = full ------------------------------------------------------------------------


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A web server on another machine, as far as the runner host can tell:
    in a network namespace of this test's, behind a veth pair, serving a
    random token. Yields its address and the token."""
    import secrets
    import subprocess

    namespace, outside, inside = f"srht-bt-peer{SLOT}", f"srhtbtp{SLOT}a", f"srhtbtp{SLOT}b"
    host_address, peer_address = f"10.{230 + int(SLOT)}.0.1", f"10.{230 + int(SLOT)}.0.2"
    token = secrets.token_hex(8)
    (tmp_path / "token").write_text(token + "\n")

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
    subprocess.run(["ip", "link", "del", outside], capture_output=True)
    server = None
    try:
        ip("netns", "add", namespace)
        ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        ip("link", "set", inside, "netns", namespace)
        ip("addr", "add", f"{host_address}/30", "dev", outside)
        ip("link", "set", outside, "up")
        ip("-n", namespace, "addr", "add", f"{peer_address}/30", "dev", inside)
        ip("-n", namespace, "link", "set", inside, "up")
        ip("-n", namespace, "link", "set", "lo", "up")
        server = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, "-m", "http.server"]
            + ["--bind", peer_address, "--directory", str(tmp_path), "8080"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            probe = subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    namespace,
                    "bash",
                    "-c",
                    f"echo > /dev/tcp/{peer_address}/8080",
                ],
                capture_output=True,
            )
            if probe.returncode == 0:
                break
            assert time.monotonic() < deadline, "the peer's web server did not start"
            time.sleep(0.1)
        yield peer_address, token
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        subprocess.run(["ip", "link", "del", outside], capture_output=True)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)


@pytest.fixture
def full_network(limits_site: LimitsSite) -> Iterator[LimitsSite]:
    """The site's network made ``full`` for the jobs of this test: the
    setting travels with each job from the service, so a second builds
    server (same database) runs with it, and the runner is started again
    talking to that one. The mirror runner is back afterwards."""
    import configparser

    from srht_core.testing import serve_service

    site = limits_site
    parser = configparser.RawConfigParser()
    parser.read(site.config)
    assert parser["builds"]["network"] == "mirror"
    port = free_port()
    parser["builds"]["network"] = "full"
    parser["builds"]["origin"] = f"http://127.0.0.1:{port}"
    config = site.config.with_name("config-full.ini")
    with open(config, "w", encoding="utf-8") as out:
        parser.write(out)
    config.chmod(0o600)
    mirror = site.runner
    mirror.stop()
    try:
        with serve_service("builds", config, port=port):
            site.runner = harness.Runner(config, mirror.folder, mirror.name)
            site.runner.start()
            try:
                yield site
            finally:
                site.runner.stop()
    finally:
        site.runner = mirror
        mirror.start()


def test_a_job_with_full_network_reaches_other_hosts_but_not_the_runners_loopback(
    full_network: LimitsSite, peer: tuple[str, str]
) -> None:
    """``network = full``: slirp4netns gives the job what the runner host
    reaches (a server on another network), never the host's own loopback
    (where the service and the apt proxy listen)."""
    site = full_network
    address, token = peer
    owner = site.user("fulton")
    service_port = site.app.extensions["srht"].origin.rsplit(":", 1)[1]
    job_id = site.job(
        owner,
        "image: debian/bookworm\n"
        "tasks:\n"
        "  - reach: |\n"
        f"      exec 3<>/dev/tcp/{address}/8080\n"
        "      printf 'GET /token HTTP/1.0\\r\\n\\r\\n' >&3\n"
        "      cat <&3\n"
        "  - look: |\n"
        f"      ! timeout 5 bash -c 'echo > /dev/tcp/10.0.2.2/{service_port}'"
        " && echo no-host-loopback\n",
    )
    job = site.wait(job_id)
    assert job.status == "success", (job.reason, site.log(owner, job_id))
    assert token in site.log(owner, job_id, "reach")
    assert "\nno-host-loopback\n" in site.log(owner, job_id, "look")
    assert leftovers(site.runner.name) == []
