"""A site deployed to two real hosts, as a self-hoster would see it.

alpha runs PostgreSQL, Redis, nginx and meta; beta runs paste (and later the
example external service, hello), each behind its own nginx. The tests run
in order on one site, each a step of its life: first deploy, re-run, sign-on
across hosts, a token across hosts, adding a third-party service, removing
a service, and a host that cannot be reached.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from testhosts.srhtsite import DOMAIN, NAMES, Site, changed, planned

# A cold first run builds the hosts' image and fetches every package and
# wheel once: more than pytest's default per-test bound.
pytestmark = [pytest.mark.deploy, pytest.mark.slow, pytest.mark.timeout(1500)]

PASSWORD = "a long enough password"
CHROMIUM = "/usr/bin/chromium"


def body_and_status(result: Any) -> tuple[str, int]:
    body, _, status = result.stdout.rpartition("\n")
    return body, int(status or 0)


def test_first_deploy_brings_up_every_service(site: Site) -> None:
    site.services = {"meta": {"hosts": "alpha"}, "paste": {"hosts": "beta"}}
    report = site.converge()

    for name, host in (("meta", "alpha"), ("paste", "beta")):
        body, status = body_and_status(site.curl(name, "/healthz"))
        assert status == 200, body
        assert json.loads(body) == {"service": name, "version": json.loads(body)["version"],
                                    "database": "ok"}
        assert site.hosts[host].ssh(f"systemctl is-active srht-{name} srht-{name}-worker"
                                    ).stdout.split() == ["active", "active"]
    body, status = body_and_status(site.curl("meta", "/login"))
    assert status == 200 and "password" in body.lower()
    # Static files come from nginx itself.
    assert body_and_status(site.curl("paste", "/static/srht/srht.css"))[1] == 200

    # Each host's config holds only what it needs, readable by the services' group only.
    alpha, beta = site.hosts["alpha"], site.hosts["beta"]
    for host in (alpha, beta):
        assert host.ssh("stat -c '%a %U %G' /etc/srht/config.ini").stdout.split() == \
            ["640", "root", "srht"]
    alpha_config = alpha.ssh("cat /etc/srht/config.ini").stdout
    beta_config = beta.ssh("cat /etc/srht/config.ini").stdout
    assert "[deploy]" not in alpha_config and "[deploy]" not in beta_config
    assert "srht_meta:" in alpha_config and "srht_meta:" not in beta_config
    assert "srht_paste:" in beta_config and "srht_paste:" not in alpha_config
    # Jobs go through Redis on alpha, from both hosts.
    assert f"@{site.hosts.address('alpha')}:6379/0" in beta_config
    assert "@127.0.0.1:6379/0" in alpha_config

    # Databases live on alpha, and beta reaches only its own.
    databases = alpha.ssh("runuser -u postgres -- psql -XAtc 'SELECT datname FROM pg_database'"
                          ).stdout.split()
    assert {"srht_meta", "srht_paste"} <= set(databases)
    hba = alpha.ssh("cat /etc/postgresql/15/main/pg_hba.conf").stdout
    assert f"srht_paste      srht_paste      {site.hosts.address('beta')}/32" in hba
    assert "srht_meta" not in hba

    # No secret went through a command line or the log.
    log = (site.folder / "deploy.log").read_text() + json.dumps(report)
    for secret in (site.keys.service_key, site.keys.network_key):
        assert secret not in log


def test_a_second_run_changes_nothing(site: Site) -> None:
    report = site.converge()
    assert changed(report) == {}
    assert report["results"]["totals"]["error"] == 0


def test_dry_run_shows_the_plan_and_changes_nothing(site: Site) -> None:
    site.srht["site-name"] = "srht e2e (renamed)"
    code, report, stderr = site.deploy("--dry")
    assert code == 0, stderr
    assert planned(report)["srht configure | Config file"] == ["alpha", "beta"]
    assert report["results"] is None
    assert "renamed" not in site.hosts["alpha"].ssh("cat /etc/srht/config.ini").stdout
    site.srht.pop("site-name")


def test_a_user_created_on_alpha_signs_in_at_meta_and_on_beta(site: Site) -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium is required under CI=true (scripts/test installs it)")
        pytest.skip("chromium is not installed")
    created = site.hosts["alpha"].ssh(
        "runuser -u srht-meta -- srht meta create-user alice --email alice@srht.test "
        "--password-stdin", input=PASSWORD + "\n")
    assert "alice" in created.stdout + created.stderr

    from playwright.sync_api import sync_playwright

    rules = ", ".join(f"MAP {name} {site.hosts.address(host)}" for name, host in NAMES.items())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run",
            "--disable-quic", f"--host-resolver-rules={rules}"])
        try:
            page = browser.new_context(ignore_https_errors=True).new_page()
            paste = f"https://paste.{DOMAIN}"
            page.goto(paste + "/")
            page.click("header .account a")
            assert page.url.startswith(f"https://meta.{DOMAIN}/login")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            # Back on beta's service, signed in there too.
            assert page.url.rstrip("/") == paste
            assert "~alice" in page.locator("header .account").inner_text()
            page.goto(f"https://meta.{DOMAIN}/")
            assert page.locator("h1").inner_text() == "~alice"
        finally:
            browser.close()


def test_a_token_from_meta_works_against_beta(site: Site) -> None:
    made = site.hosts["alpha"].ssh(
        "runuser -u srht-meta -- srht meta token alice --scopes paste/pastes:RW")
    token = made.stdout.strip().splitlines()[-1].split()[-1]
    created = site.curl("paste", "/api/pastes", args=(
        "-X", "POST", "-H", f"Authorization: Bearer {token}",
        "-H", "Content-Type: application/json",
        "--data", json.dumps({"files": [{"filename": "hi.txt", "content": "hello"}]})))
    body, status = body_and_status(created)
    assert status == 201, body
    listed, status = body_and_status(site.curl(
        "paste", "/api/pastes", args=("-H", f"Authorization: Bearer {token}")))
    assert status == 200 and "hi.txt" in listed
    denied = body_and_status(site.curl("paste", "/api/pastes",
                                       args=("-H", "Authorization: Bearer nonsense")))
    assert denied[1] == 401


def test_adding_the_example_external_service(site: Site) -> None:
    site.services["hello"] = {"hosts": "beta"}
    code, plan, stderr = site.deploy("--dry")
    assert code == 0, stderr
    assert planned(plan)["srht configure | Unit srht-hello.service"] == ["beta"]

    report = site.converge()
    done = changed(report)
    assert done["srht configure | nginx site srht-hello.conf"] == ["beta"]
    assert "srht install | Install system packages" not in done
    body, status = body_and_status(site.curl("hello", "/"))
    assert status == 200 and "Hello" in body
    for name in ("meta", "paste"):
        assert body_and_status(site.curl(name, "/healthz"))[1] == 200
    assert changed(site.converge()) == {}


def test_removing_a_service_removes_its_daemons_and_site_and_keeps_its_data(
        site: Site) -> None:
    del site.services["paste"]
    site.converge()
    beta, alpha = site.hosts["beta"], site.hosts["alpha"]
    units = beta.ssh("ls /etc/systemd/system/ | grep '^srht-' || true").stdout.split()
    assert units == ["srht-hello-worker.service", "srht-hello.service"]
    assert beta.ssh("systemctl is-active srht-paste", check=False).stdout.strip() != "active"
    sites = beta.ssh("ls /etc/nginx/sites-enabled/").stdout.split()
    assert "srht-paste.conf" not in sites and "srht-hello.conf" in sites
    assert "srht_paste" in alpha.ssh(
        "runuser -u postgres -- psql -XAtc 'SELECT datname FROM pg_database'").stdout
    assert beta.ssh("test -d /var/lib/srht/paste && echo kept").stdout.strip() == "kept"
    pastes = alpha.ssh("runuser -u postgres -- psql -XAt srht_paste -c "
                       "'SELECT count(*) FROM paste'", check=False)
    assert pastes.stdout.strip() == "1", pastes.stderr
    assert changed(site.converge()) == {}


def test_an_unreachable_host_is_named_and_the_other_converges(site: Site) -> None:
    beta = site.hosts["beta"]
    site.srht["site-name"] = "srht e2e, second edition"
    beta.disconnect()
    try:
        code, report, stderr = site.deploy()
    finally:
        beta.reconnect()
    assert code != 0
    assert report["results"]["failed_hosts"] == ["beta"]
    assert "beta" in stderr
    assert "second edition" in site.hosts["alpha"].ssh("cat /etc/srht/config.ini").stdout
    assert "second edition" not in beta.ssh("cat /etc/srht/config.ini").stdout

    report = site.converge()
    assert "second edition" in beta.ssh("cat /etc/srht/config.ini").stdout
    assert set(changed(report)["srht configure | Config file"]) == {"beta"}
    assert changed(site.converge()) == {}
