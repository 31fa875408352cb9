"""``[srht] install-method = distro`` on a real host: the .debs built from
a clean copy, published by the deploy as a local apt repository, meta,
todo and builds running from them (PostgreSQL on the same host), reached
through nginx, and a build job run by the packaged runner."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import testhosts
from support.ci import require_test_hosts

from srht_core.config import dump_ini
from srht_core.keys import generate_keys

pytestmark = [
    pytest.mark.packaging,
    pytest.mark.deploy,
    pytest.mark.slow,
    pytest.mark.timeout(2400),
]

DOMAIN = "srht.test"
HOST = "alpha"
SERVICES = ("meta", "todo", "builds")


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[testhosts.TestHosts]:
    require_test_hosts()
    names = {f"{s}.{DOMAIN}": HOST for s in SERVICES}
    run_dir = tmp_path_factory.mktemp("testhosts")
    # The host runs builds' runner: its control groups are made writable at boot.
    with testhosts.TestHosts([HOST], run_dir, etc_hosts=names, cgroup_hosts=[HOST]) as hosts:
        yield hosts


def site_data(host: testhosts.TestHosts, debs: Path, services: tuple[str, ...]) -> dict[str, Any]:
    """The config of a site of ``services`` on the host, from the .debs of ``debs``."""
    keys = generate_keys()
    address = host.address(HOST)
    return {
        "srht": {
            "site-name": "srht packages",
            "site-owner-email": f"admin@{DOMAIN}",
            "global-domain": DOMAIN,
            "service-key": keys.service_key,
            "network-key": keys.network_key,
            "install-method": "distro",
            "internal-networks": f"127.0.0.0/8, {address}/24",
        },
        "mail": {"smtp-from": f"srht@{DOMAIN}"},
        "webhooks": {"private-key": keys.webhook_private_key},
        "deploy": {
            "hosts": f"{HOST}=root@{address}",
            "postgresql-host": HOST,
            "apt-packages": str(debs),
            "ssh-key": str(host.key),
            "ssh-known-hosts": "/dev/null",
            "ssh-host-key-checking": "no",
        },
        **{s: {"origin": f"https://{s}.{DOMAIN}", "hosts": HOST} for s in services},
    }


def deploy_site(config: Path) -> dict[str, Any]:
    """``srht deploy`` of ``config``; its JSON report."""
    result = subprocess.run(
        [sys.executable, "-m", "srht_core.cli", "--config", str(config), "deploy", "--json"],
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "PYINFRA_PROGRESS": "off"},
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return json.loads(result.stdout)


def test_deploy_from_packages_serves_meta_todo_and_builds_with_its_runner(
    host: testhosts.TestHosts, debs: Path, tmp_path: Path
) -> None:
    from testhosts.image import cache_dir, ensure_image

    address = host.address(HOST)
    alpha = host[HOST]
    # The runner unpacks the test hosts' own cached image rather than building one.
    ensure_image()
    [tarball] = sorted(cache_dir().glob("image-*.tar.zst"))[-1:]
    on_host = "/var/cache/srht-e2e-builds-image.tar.zst"
    copied = subprocess.run(
        ["scp", *alpha.ssh_options, str(tarball), f"root@{address}:{on_host}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert copied.returncode == 0, copied.stderr
    images = "/etc/srht-e2e-builds-images.yml"
    alpha.ssh(
        f"cat > {images} && chmod 644 {images}", input=f"debian/bookworm:\n  tarball: {on_host}\n"
    )
    config = tmp_path / "config.ini"
    data = site_data(host, debs, SERVICES)
    data["builds"].update(
        {"runner-hosts": HOST, "images": images, "memory": "512", "disk": "512", "runner-jobs": "1"}
    )
    config.write_text(dump_ini(data))
    config.chmod(0o600)
    env = {**os.environ, "PYINFRA_PROGRESS": "off"}

    def deploy() -> dict:
        return deploy_site(config)

    deploy()
    # The software is the packages', not a virtualenv; the units are the
    # packaged ones with the deploy's drop-ins.
    installed = alpha.ssh("dpkg-query -W -f '${Package} ${Status}\\n' 'srht-*'").stdout
    for package in ("srht-core", "srht-python-deps", "srht-meta", "srht-todo", "srht-builds"):
        assert f"{package} install ok installed" in installed
    assert alpha.ssh("test -e /opt/srht || echo absent").stdout.strip() == "absent"
    # The deploying machine's package is not published to the hosts.
    published = alpha.ssh("ls /var/lib/srht-deploy/apt/*/").stdout
    assert "srht-core_" in published and "srht-installer" not in published
    assert alpha.ssh("ls /etc/systemd/system/srht-meta.service.d/").stdout.split() == [
        "srht-deploy.conf"
    ]
    assert "/usr/bin/srht serve meta" in alpha.ssh("systemctl show -p ExecStart srht-meta").stdout
    assert "ProtectSystem=strict" in alpha.ssh("systemctl show -p ProtectSystem srht-meta").stdout
    # The runner's unit is the package's too (srht-builds ships it disabled).
    runner = alpha.ssh("systemctl show -p ExecStart -p FragmentPath srht-builds-runner").stdout
    assert "/usr/bin/srht builds runner" in runner
    assert re.search(r"FragmentPath=(/usr)?/lib/systemd/system/srht-builds-runner\.service", runner)

    # From here on nothing may be written under the install prefix: restart
    # the daemons (start-up imports everything) and use them.
    alpha.ssh(
        "touch /run/srht-test-mark && systemctl restart srht-meta srht-meta-worker "
        "srht-todo srht-todo-worker srht-builds srht-builds-worker srht-builds-runner"
    )
    ca = tmp_path / "ca.pem"
    ca.write_text(
        subprocess.run(
            [sys.executable, "-m", "srht_core.cli", "--config", str(config), "deploy", "ca"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        ).stdout
    )

    def fetch(service: str, page: str, *args: str) -> tuple[str, str]:
        """``page`` of ``service`` through alpha's nginx: (body, status)."""
        result = subprocess.run(
            [
                "curl",
                "-sS",
                "--max-time",
                "30",
                "--retry",
                "30",
                "--retry-delay",
                "1",
                "--retry-connrefused",
                "--cacert",
                str(ca),
                "--resolve",
                f"{service}.{DOMAIN}:443:{address}",
                # a file, not /dev/null: a retry truncates the output first, which
                # /dev/null refuses (curl exits 23; curl/curl#17371)
                "-o",
                str(tmp_path / "body"),
                "-w",
                "%{http_code}",
                *args,
                f"https://{service}.{DOMAIN}{page}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, (service, page, result.stderr)
        return (tmp_path / "body").read_text(errors="replace"), result.stdout

    for service, page in (
        ("meta", "/login"),
        ("todo", "/"),
        ("builds", "/"),
        ("meta", "/healthz"),
        ("todo", "/healthz"),
        ("builds", "/healthz"),
    ):
        assert fetch(service, page)[1] == "200", (service, page)

    # A job submitted through builds' API runs in a container the packaged runner starts.
    alpha.ssh(
        f"runuser -u srht-meta -- srht meta create-user alice --email alice@{DOMAIN} "
        "--password-stdin",
        input="correct horse battery staple\n",
    )
    made = alpha.ssh("runuser -u srht-meta -- srht meta token alice --scopes builds/jobs:RW")
    auth = ("-H", f"Authorization: Bearer {made.stdout.strip().splitlines()[-1].split()[-1]}")
    word = f"packaged-{secrets.token_hex(3)}"
    body, status = fetch(
        "builds",
        "/api/jobs",
        "-X",
        "POST",
        *auth,
        "-H",
        "Content-Type: application/json",
        "--data",
        json.dumps({"manifest": f"image: debian/bookworm\ntasks:\n  - hello: echo {word}\n"}),
    )
    assert status == "201", body
    job = json.loads(body)
    deadline = time.monotonic() + 600  # the first job unpacks the image: a bound on waiting

    def journal() -> str:
        return alpha.ssh("journalctl -u srht-builds-runner -n 40 --no-pager", check=False).stdout

    while job["status"] in ("pending", "queued", "running") and time.monotonic() < deadline:
        time.sleep(2)
        state = alpha.ssh("systemctl is-active srht-builds-runner", check=False).stdout.strip()
        assert state == "active", f"the runner is {state}:\n{journal()}"
        body, status = fetch("builds", f"/api/jobs/{job['id']}", *auth)
        assert status == "200", body
        job = json.loads(body)
    assert job["status"] == "success", f"{job}\n{journal()}"
    log, status = fetch("builds", job["log_url"].removeprefix(f"https://builds.{DOMAIN}"), *auth)
    assert status == "200" and f"\n{word}\n" in log, log

    # Nothing was written under the install prefix at run time (bytecode
    # comes from the packages' postinst, before the mark).
    written = alpha.ssh(
        "find /usr/lib/srht /usr/share/srht /usr/bin -newer /run/srht-test-mark -print | head"
    ).stdout
    assert written == ""
    # A second run changes nothing.
    report = deploy()
    changed = [op["names"] for op in report["results"]["operations"] if op["success"]]
    assert changed == []

    # Taking todo off the host (its section gone, as `srht-install remove
    # todo` does) stops its units and removes its package; its data stays,
    # and meta goes on.
    alpha.ssh("touch /var/lib/srht/todo/kept-by-the-test")
    del data["todo"]
    config.write_text(dump_ini(data))
    deploy()
    installed = alpha.ssh("dpkg-query -W -f '${Package} ${Status}\\n' 'srht-*'").stdout
    assert "srht-meta install ok installed" in installed
    assert "srht-todo install ok installed" not in installed
    states = alpha.ssh("systemctl is-active srht-todo srht-todo-worker srht-meta; true").stdout
    assert states.split() == ["inactive", "inactive", "active"]
    assert (
        alpha.ssh("ls /etc/systemd/system/srht-todo.service.d/ 2>/dev/null; true").stdout.strip()
        == ""
    )
    assert "kept-by-the-test" in alpha.ssh("ls /var/lib/srht/todo/").stdout.split()
    report = deploy()
    assert [op["names"] for op in report["results"]["operations"] if op["success"]] == []


# -- an upgrade's rollback of the packages (srht-install upgrade) -----------------------
#
# What srht-install upgrade runs on a host with install-method = distro:
# before the deploy, the .deb files of the installed srht packages are kept
# (installer/rollback.py's keep_packages_command); after a service failed,
# they are installed again (put_back_packages_command). The newer version is
# the same .debs with a higher version (and srht-core dependency), so the
# deploy upgrades every package.

NEWER = "+upgrade1"


def newer_debs(debs: Path, out: Path) -> Path:
    """``debs``'s .debs at their version + :data:`NEWER`, in ``out``."""
    out.mkdir()
    for deb in sorted(debs.glob("*.deb")):
        tree = out / deb.stem
        subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
        control = tree / "DEBIAN" / "control"
        text = control.read_text()
        version = re.search(r"^Version: (\S+)$", text, re.M)[1]  # type: ignore[index]
        text = text.replace(f"Version: {version}\n", f"Version: {version}{NEWER}\n")
        control.write_text(text.replace(f"(= {version})", f"(= {version}{NEWER})"))
        name = deb.name.replace(f"_{version}_", f"_{version}{NEWER}_")
        subprocess.run(
            ["dpkg-deb", "-Zgzip", "-z1", "--build", str(tree), str(out / name)],
            check=True,
            capture_output=True,
        )
        shutil.rmtree(tree)
    return out


def test_a_failed_upgrade_puts_the_kept_packages_back(
    host: testhosts.TestHosts, debs: Path, tmp_path: Path
) -> None:
    from srht_installer.rollback import (
        PENDING,
        PREVIOUS_PACKAGES,
        keep_packages_command,
        put_back_packages_command,
    )

    alpha = host[HOST]
    config = tmp_path / "config.ini"
    data = site_data(host, debs, ("meta",))
    config.write_text(dump_ini(data))
    config.chmod(0o600)
    deploy_site(config)
    query = "dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n' 'srht-*'"
    before = {
        line.split()[0]: line.split()[1]
        for line in alpha.ssh(query).stdout.splitlines()
        if line.split()[2].startswith("ii")
    }
    assert {"srht-core", "srht-python-deps", "srht-meta"} <= set(before)

    kept = alpha.ssh(keep_packages_command())

    assert kept.stdout == ""  # none missing
    listed = alpha.ssh(
        f"for f in {PREVIOUS_PACKAGES}/*.deb; do "
        "dpkg-deb -W --showformat='${Package} ${Version}\\n' \"$f\"; done"
    ).stdout
    assert dict(line.split() for line in listed.splitlines()) == before
    alpha.ssh(f"test -f {PREVIOUS_PACKAGES}/{PENDING}")

    data["deploy"]["apt-packages"] = str(newer_debs(debs, tmp_path / "newer"))
    config.write_text(dump_ini(data))
    deploy_site(config)
    upgraded = alpha.ssh(query).stdout
    assert f"srht-meta {before['srht-meta']}{NEWER} ii" in upgraded, upgraded

    put = alpha.ssh(
        "systemctl stop srht-meta srht-meta-worker && " + put_back_packages_command("meta"),
        timeout=600,
    )

    assert put.stdout.strip().splitlines()[-1] == before["srht-meta"]
    after = {
        line.split()[0]: line.split()[1]
        for line in alpha.ssh(query).stdout.splitlines()
        if line.split()[2].startswith("ii")
    }
    assert after == before
    alpha.ssh("systemctl start srht-meta srht-meta-worker")
    answer = alpha.ssh(
        "for i in $(seq 60); do curl -skf --resolve meta.srht.test:443:127.0.0.1 "
        "https://meta.srht.test/healthz && exit 0; sleep 1; done; exit 1",
        check=False,
        timeout=120,
    )
    assert answer.returncode == 0, alpha.ssh("journalctl -u srht-meta -n 30", check=False).stdout
