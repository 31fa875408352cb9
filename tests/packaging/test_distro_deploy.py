"""``[srht] install-method = distro`` on a real host: the .debs built from
a clean copy, published by the deploy as a local apt repository, meta,
todo and builds running from them (PostgreSQL on the same host), reached
through nginx, and a build job run by the packaged runner; then
``srht-install upgrade`` to a newer, broken release rolls the host's
packages back to those it kept."""

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
# srht-install upgrade, with install-method = distro, to a newer release
# whose meta answers 503 to every request: before the deploy the .deb files
# of the installed srht packages are kept on the host; the deploy installs
# the newer ones, meta fails its health check, and the rollback installs
# the kept ones again. The newer release is the same .debs at a higher
# version (and srht-core dependency), meta's with a broken module and a
# dependency on a package the host never had (:data:`ADDED`), which the
# rollback removes (purges: dpkg did not know it) with the downgrade.

NEWER = "+upgrade1"
#: The newer release's new package, which its srht-meta depends on; its
#: config file, :data:`ADDED_CONFIG`, goes with it when it is purged.
ADDED = "srht-test-added"
ADDED_CONFIG = "/etc/srht-test-added.conf"
#: What the newer release's meta gets: every request, /healthz too, answers 503.
BROKEN_META = """


def _broken(original):
    from flask import Blueprint as _Blueprint

    @hookimpl
    def blueprints(config):
        broken = _Blueprint("broken_release", __name__)
        broken.before_app_request(lambda: ({"error": "this release of meta is broken"}, 503))
        return [*original(config), broken]

    return blueprints


blueprints = _broken(blueprints)
"""


def newer_debs(debs: Path, out: Path) -> Path:
    """``debs``'s .debs at their version + :data:`NEWER`, in ``out``, meta's broken."""
    out.mkdir()
    for deb in sorted(debs.glob("*.deb")):
        tree = out / deb.stem
        subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
        control = tree / "DEBIAN" / "control"
        text = control.read_text()
        version = re.search(r"^Version: (\S+)$", text, re.M)[1]  # type: ignore[index]
        text = text.replace(f"Version: {version}\n", f"Version: {version}{NEWER}\n")
        text = text.replace(f"(= {version})", f"(= {version}{NEWER})")
        meta = tree / "usr/lib/srht/python/srht_plugins/meta/__init__.py"
        if meta.exists():
            meta.write_text(meta.read_text() + BROKEN_META)
            text = text.replace("\nDepends: ", f"\nDepends: {ADDED} (= {version}{NEWER}), ")
            added_deb(out, f"{version}{NEWER}")
        control.write_text(text)
        name = deb.name.replace(f"_{version}_", f"_{version}{NEWER}_")
        subprocess.run(
            ["dpkg-deb", "-Zgzip", "-z1", "--build", str(tree), str(out / name)],
            check=True,
            capture_output=True,
        )
        shutil.rmtree(tree)
    return out


def added_deb(out: Path, version: str) -> None:
    """:data:`ADDED` at ``version`` in ``out``: a config file, nothing else."""
    tree = out / ADDED
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {ADDED}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: srht tests <tests@srht.test>\n"
        "Description: a package the newer release adds\n"
    )
    (tree / "DEBIAN" / "conffiles").write_text(ADDED_CONFIG + "\n")
    config = tree / ADDED_CONFIG.lstrip("/")
    config.parent.mkdir(parents=True)
    config.write_text("# installed by the newer release\n")
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", str(tree)]
        + [str(out / f"{ADDED}_{version}_all.deb")],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(tree)


def test_a_failed_upgrade_puts_the_kept_packages_back(
    host: testhosts.TestHosts, debs: Path, tmp_path: Path
) -> None:
    from srht_installer.rollback import PENDING, PREVIOUS_PACKAGES

    alpha = host[HOST]
    config = tmp_path / "config.ini"
    data = site_data(host, debs, ("meta",))
    config.write_text(dump_ini(data))
    config.chmod(0o600)
    deploy_site(config)
    query = "dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n' 'srht-*'"

    def installed() -> dict[str, str]:
        lines = alpha.ssh(query).stdout.splitlines()
        return {line.split()[0]: line.split()[1] for line in lines if line.split()[2] == "ii"}

    before = installed()
    assert {"srht-core", "srht-python-deps", "srht-meta"} <= set(before)
    data["deploy"]["apt-packages"] = str(newer_debs(debs, tmp_path / "newer"))
    config.write_text(dump_ini(data))

    result = subprocess.run(
        [sys.executable, "-m", "srht_installer.cli", "--config", str(config)]
        + ["upgrade", "--yes", "--no-backup"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "COLUMNS": "200", "PYINFRA_PROGRESS": "off"},
        stdin=subprocess.DEVNULL,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-6000:]
    assert "meta: its health check failed on alpha:" in result.stderr, output[-6000:]
    assert "this release of meta is broken" in result.stderr
    version = before["srht-meta"]
    assert (
        f"Rolled back meta: its code (srht-meta {version}, with the host's other srht "
        f"packages; removed, as the upgrade installed them: {ADDED} {version}{NEWER}) "
        "on alpha." in result.stderr
    ), output[-6000:]
    assert "meta answers again on its previous code." in result.stderr
    # Every srht package is back at its version of before, kept on the host,
    # and the one the upgrade added is gone, its config file too.
    assert installed() == before
    state = alpha.ssh(f"dpkg-query -W -f '${{db:Status-Abbrev}}' {ADDED} 2>/dev/null; true")
    assert state.stdout[1:2] in ("", "n"), state.stdout  # not installed, no config files
    assert alpha.ssh(f"test -e {ADDED_CONFIG} || echo gone").stdout == "gone\n"
    kept = alpha.ssh(f"ls {PREVIOUS_PACKAGES}/*.deb").stdout.split()
    assert sorted(deb.rsplit("/", 1)[1].split("_")[:2] for deb in kept) == sorted(
        map(list, before.items())
    )
    assert alpha.ssh(f"test -e {PREVIOUS_PACKAGES}/{PENDING} || echo over").stdout == "over\n"
    answer = alpha.ssh(
        "curl -sk --resolve meta.srht.test:443:127.0.0.1 https://meta.srht.test/healthz"
    )
    assert json.loads(answer.stdout)["database"] == "ok", answer.stdout
