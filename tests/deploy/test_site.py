"""A site deployed to two real hosts, as a self-hoster would see it.

The issue's scenario: alpha runs PostgreSQL, Redis, nginx and meta; beta runs
todo and paste, each host behind its own nginx (``BASE_LAYOUT``). Neither host
resolves the site's names by itself: the deploy writes them into each
host's ``/etc/hosts`` (or, told not to, fails naming the host that cannot
reach meta). Each test
states the layout it needs and deploys it (:meth:`Site.layout`, then
:meth:`Site.converge`), so any test runs alone (``-k token``) or after any
other; the module shares the hosts, and a deploy of a layout the hosts
already have changes nothing and takes seconds.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pebble_server import Pebble
from srht_deploy.operations import HOSTS_BEGIN
from testhosts.srhtsite import BASE_LAYOUT, DOMAIN, NAMES, Site, changed, changed_on, planned

from srht_core.identity import META_PROBE_FAILED_TTL

# A cold first run builds the hosts' image and fetches every package and
# wheel once: more than pytest's default per-test bound.
pytestmark = [pytest.mark.deploy, pytest.mark.slow, pytest.mark.timeout(1500)]

PASSWORD = "a long enough password"
CHROMIUM = "/usr/bin/chromium"
ON_BETA = ("todo", "paste")


def body_and_status(result: Any) -> tuple[str, int]:
    body, _, status = result.stdout.rpartition("\n")
    return body, int(status or 0)


def base(site: Site, **changes: dict[str, Any]) -> dict[str, Any]:
    """Deploy the issue's layout (with ``changes`` to services) and return the report."""
    return site.layout({**BASE_LAYOUT, **changes}).converge()


def started_answer(site: Site, name: str, path: str) -> tuple[str, int]:
    """What ``name`` answers at ``path`` once it has started again (nginx
    says 502 until its gunicorn listens)."""
    deadline = time.monotonic() + 60
    while True:
        body, status = body_and_status(site.curl(name, path))
        if status != 502 or time.monotonic() > deadline:
            return body, status
        time.sleep(0.5)


def user(site: Site, name: str = "alice") -> str:
    """``name``'s account on meta, created unless it exists."""
    created = site.hosts["alpha"].ssh(
        f"runuser -u srht-meta -- srht meta create-user {name} --email {name}@{DOMAIN} "
        "--password-stdin",
        input=PASSWORD + "\n",
        check=False,
    )
    output = created.stdout + created.stderr
    assert created.returncode == 0 or "taken" in output or "exists" in output, output
    return name


def token(site: Site, scopes: str, name: str = "alice") -> str:
    """A personal access token of ``name`` issued by meta on alpha."""
    made = site.hosts["alpha"].ssh(
        f"runuser -u srht-meta -- srht meta token {user(site, name)} --scopes '{scopes}'"
    )
    return made.stdout.strip().splitlines()[-1].split()[-1]


def started(site: Site, host: str, units: list[str]) -> dict[str, str]:
    """``{unit: when it last started}`` (unchanged unless it was restarted)."""
    shown = (
        site.hosts[host]
        .ssh(
            "for u in " + " ".join(units) + "; do "
            "systemctl show -p ActiveEnterTimestampMonotonic --value $u; done"
        )
        .stdout.split()
    )
    return dict(zip(units, shown, strict=True))


def test_first_deploy_brings_up_every_service(site: Site) -> None:
    report = base(site)

    # Each step is one thing, named for the hosts it ran on: meta's user on
    # alpha, todo's on beta, never one step named for both.
    done = changed(report)
    assert done["srht install | User srht-meta"] == ["alpha"]
    assert done["srht install | User srht-todo"] == ["beta"]
    assert [op["names"] for op in report["results"]["operations"] if len(op["names"]) != 1] == []

    for name, host in (("meta", "alpha"), ("todo", "beta"), ("paste", "beta")):
        body, status = body_and_status(site.curl(name, "/healthz"))
        assert status == 200, body
        # The services that sign users in through meta report reaching it.
        assert json.loads(body) == {
            "service": name,
            "version": json.loads(body)["version"],
            "database": "ok",
            **({} if name == "meta" else {"meta": "ok"}),
        }
        assert site.hosts[host].ssh(
            f"systemctl is-active srht-{name} srht-{name}-worker"
        ).stdout.split() == ["active", "active"]
    body, status = body_and_status(site.curl("meta", "/login"))
    assert status == 200 and "password" in body.lower()
    # beta's services answer with their pages through beta's nginx: todo's
    # front page; paste's sends a visitor to sign in at meta first.
    body, status = body_and_status(site.curl("todo", "/"))
    assert status == 200 and "<html" in body.lower(), body[:500]
    # Pages go out compressed to a client that asks (nginx's gzip).
    headers = site.curl("todo", "/", args=("--compressed", "-o", "/dev/null", "-D", "-")).stdout
    assert "content-encoding: gzip" in headers.lower(), headers
    redirect = site.curl(
        "paste", "/", args=("-o", "/dev/null", "-w", "%{http_code}%{redirect_url}")
    )
    assert redirect.stdout.startswith(f"302https://meta.{DOMAIN}/login"), redirect.stdout
    # Static files come from nginx itself.
    assert body_and_status(site.curl("paste", "/static/srht/srht.css"))[1] == 200

    # beta reaches meta on alpha by the name the deploy put in its
    # /etc/hosts; nothing else there names it (the harness adds none).
    alpha, beta = site.hosts["alpha"], site.hosts["beta"]
    hosts_file = beta.ssh("cat /etc/hosts").stdout.splitlines()
    block = hosts_file[hosts_file.index(HOSTS_BEGIN) :]
    assert f"{site.hosts.address('alpha')} meta.{DOMAIN}" in block
    assert f"{site.hosts.address('beta')} paste.{DOMAIN}" in block
    assert not any(f"meta.{DOMAIN}" in line for line in hosts_file if line not in block)

    # Each host's config holds only what it needs, readable by the services' group only.
    for host in (alpha, beta):
        assert host.ssh("stat -c '%a %U %G' /etc/srht/config.ini").stdout.split() == [
            "640",
            "root",
            "srht",
        ]
    alpha_config = alpha.ssh("cat /etc/srht/config.ini").stdout
    beta_config = beta.ssh("cat /etc/srht/config.ini").stdout
    assert "[deploy]" not in alpha_config and "[deploy]" not in beta_config
    assert "srht_meta:" in alpha_config and "srht_meta:" not in beta_config
    for name in ON_BETA:
        assert f"srht_{name}:" in beta_config and f"srht_{name}:" not in alpha_config
    # Jobs go through Redis on alpha, from both hosts.
    assert f"@{site.hosts.address('alpha')}:6379/0" in beta_config
    assert "@127.0.0.1:6379/0" in alpha_config

    # Databases live on alpha, and beta reaches only its own.
    databases = alpha.ssh(
        "runuser -u postgres -- psql -XAtc 'SELECT datname FROM pg_database'"
    ).stdout.split()
    assert {"srht_meta", "srht_todo", "srht_paste"} <= set(databases)
    hba = alpha.ssh("cat /etc/postgresql/15/main/pg_hba.conf").stdout
    for name in ON_BETA:
        assert f"srht_{name:<10} srht_{name:<10} {site.hosts.address('beta')}/32" in hba
    assert "srht_meta" not in hba

    # No secret went through a command line or the log.
    log = (site.folder / "deploy.log").read_text() + json.dumps(report)
    for secret in (site.keys.service_key, site.keys.network_key):
        assert secret not in log


def test_a_second_run_changes_nothing(site: Site) -> None:
    base(site)
    report = site.converge()
    assert changed(report) == {}
    assert report["results"]["totals"]["error"] == 0


def test_dry_run_shows_the_plan_and_changes_nothing(site: Site) -> None:
    base(site)
    site.srht["site-name"] = "srht e2e (renamed)"
    code, report, stderr = site.deploy("--dry")
    assert code == 0, stderr
    assert planned(report)["srht configure | Config file"] == ["alpha", "beta"]
    assert report["results"] is None
    assert "renamed" not in site.hosts["alpha"].ssh("cat /etc/srht/config.ini").stdout


def test_a_user_created_on_alpha_signs_in_at_meta_and_on_beta(site: Site) -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium is required under CI=true (scripts/test installs it)")
        pytest.skip("chromium is not installed")
    base(site)
    user(site, "alice")

    from playwright.sync_api import sync_playwright

    rules = ", ".join(f"MAP {name} {site.hosts.address(host)}" for name, host in NAMES.items())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
                f"--host-resolver-rules={rules}",
            ],
        )
        try:
            page = browser.new_context(ignore_https_errors=True).new_page()
            paste = f"https://paste.{DOMAIN}"
            page.goto(paste + "/")
            page.click("header .account a")
            assert page.url.startswith(f"https://meta.{DOMAIN}/login")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            # Back on beta's service, signed in there too, and at todo on beta.
            assert page.url.rstrip("/") == paste
            assert "~alice" in page.locator("header .account").inner_text()
            page.goto(f"https://todo.{DOMAIN}/")
            assert "~alice" in page.locator("header .account").inner_text()
            page.goto(f"https://meta.{DOMAIN}/")
            assert page.locator("h1").inner_text() == "~alice"
        finally:
            browser.close()


def test_a_token_from_meta_works_against_beta(site: Site) -> None:
    base(site)
    bearer = token(site, "paste/pastes:RW todo/trackers:RW")
    auth = ("-H", f"Authorization: Bearer {bearer}")
    created = site.curl(
        "paste",
        "/api/pastes",
        args=(
            "-X",
            "POST",
            *auth,
            "-H",
            "Content-Type: application/json",
            "--data",
            json.dumps({"files": [{"filename": "hi.txt", "content": "hello"}]}),
        ),
    )
    body, status = body_and_status(created)
    assert status == 201, body
    listed, status = body_and_status(site.curl("paste", "/api/pastes", args=auth))
    assert status == 200 and "hi.txt" in listed

    tracker = f"deployed-{secrets.token_hex(3)}"
    body, status = body_and_status(
        site.curl(
            "todo",
            "/api/trackers",
            args=(
                "-X",
                "POST",
                *auth,
                "-H",
                "Content-Type: application/json",
                "--data",
                json.dumps({"name": tracker, "description": "made through beta's nginx"}),
            ),
        )
    )
    assert status == 201, body
    listed, status = body_and_status(site.curl("todo", "/api/trackers", args=auth))
    assert status == 200 and tracker in listed, listed

    for name, path in (("paste", "/api/pastes"), ("todo", "/api/trackers")):
        denied = site.curl(name, path, args=("-H", "Authorization: Bearer nonsense"))
        assert body_and_status(denied)[1] == 401


def test_a_host_that_cannot_reach_meta_is_named_and_its_visitors_told(site: Site) -> None:
    """beta without meta's name (told to leave names to DNS, which has none
    for it): the deploy fails naming beta and meta's URL; paste's health
    check fails naming meta; a signed-in visitor of paste is told meta
    cannot be reached, not sent to sign in at meta and back forever."""
    base(site)
    beta = site.hosts["beta"]
    site.layout(deploy={"service-names": "dns"})
    code, report, stderr = site.deploy()

    assert code != 0
    assert report["results"]["failed_hosts"] == ["beta"]
    meta = f"https://meta.{DOMAIN}:443/healthz"
    assert (
        f"beta cannot reach meta at {meta}: it did not answer "
        f"((6) Could not resolve host: meta.{DOMAIN})"
    ) in stderr
    assert f"make meta.{DOMAIN} resolve on beta to an nginx host that serves meta" in stderr
    assert HOSTS_BEGIN not in beta.ssh("cat /etc/hosts").stdout

    beta.ssh("systemctl restart srht-paste")  # as after a reboot: nothing remembered
    body, status = started_answer(site, "paste", "/healthz")
    assert status == 503, body
    # The resolver's own words follow ("Temporary failure in name resolution").
    meta_health = json.loads(body)["meta"]
    assert meta_health.startswith(
        f"error: cannot reach meta at https://meta.{DOMAIN}/internal/tokens/revoked: "
    )
    assert "name" in meta_health.lower(), meta_health
    login = Fernet(site.keys.network_key).encrypt(
        json.dumps({"u": 1, "s": 1, "t": int(time.time())}).encode()
    )
    page, status = body_and_status(
        site.curl("paste", "/", args=("-b", f"srht-login={login.decode()}"))
    )
    assert status == 503, page[:2000]
    told = f"paste cannot reach meta, the site&#39;s identity service, at https://meta.{DOMAIN}"
    assert told in page

    # With the names back, everything answers again (paste's processes ask
    # meta again once their last answer is META_PROBE_FAILED_TTL s old).
    base(site)
    deadline = time.monotonic() + 3 * META_PROBE_FAILED_TTL
    while (answer := body_and_status(site.curl("paste", "/healthz")))[1] != 200:
        assert time.monotonic() < deadline, answer
        time.sleep(0.5)


#: What adding a service may change on its host besides the operations
#: named after it: the host's config gains its section, its /etc/hosts its
#: name, the virtualenv its wheels, systemd and nginx learn its unit and site
#: (a reload, not a restart).
SHARED_STEPS = {
    "srht install | Install the software",
    "srht configure | Config file",
    "srht configure | Service names in /etc/hosts",
    "srht activate | Reload systemd units",
    "srht activate | Check nginx's config and reload it",
}


def test_adding_the_example_external_service(site: Site) -> None:
    base(site)
    others = {
        "alpha": ["srht-meta.service", "srht-meta-worker.service"],
        "beta": [f"srht-{n}{part}.service" for n in ON_BETA for part in ("", "-worker")],
    }
    before = {host: started(site, host, units) for host, units in others.items()}
    site.services["hello"] = {"hosts": "beta"}
    code, plan, stderr = site.deploy("--dry")
    assert code == 0, stderr
    assert planned(plan)["srht configure | Unit srht-hello.service"] == ["beta"]

    report = site.converge()
    # Only hello's operations ran: nothing on alpha (no database, no config
    # change: hello keeps no data and is not installed there), and on beta
    # only the steps named after hello and the shared ones above.
    assert changed_on(report, "alpha") == []
    for op in report["results"]["operations"]:
        if "beta" in op["success"]:
            assert any("hello" in name or name in SHARED_STEPS for name in op["names"]), op
    done = changed(report)
    assert done["srht configure | nginx site srht-hello.conf"] == ["beta"]
    assert done["srht activate | Restart srht-hello.service"] == ["beta"]
    assert "srht install | Install system packages" not in done
    # No other daemon restarted, on either host.
    assert {host: started(site, host, units) for host, units in others.items()} == before
    # beta's virtualenv got hello's wheel and nothing else new.
    record = site.hosts["beta"].ssh("cat /opt/srht/venv/.srht-wheels").stdout
    assert "srht_hello-" in record
    assert "srht_hello-" not in site.hosts["alpha"].ssh("cat /opt/srht/venv/.srht-wheels").stdout

    body, status = body_and_status(site.curl("hello", "/"))
    assert status == 200 and "Hello" in body
    for name in ("meta", *ON_BETA):
        assert body_and_status(site.curl(name, "/healthz"))[1] == 200
    assert changed(site.converge()) == {}


def test_an_existing_postgresql_only_gets_roles_and_databases(site: Site) -> None:
    """PostgreSQL on alpha stands for the self-hoster's own server: with
    ``postgresql-existing``, the deploy creates the roles and databases it
    needs there and touches nothing else of it (its settings and access
    rules are its administrator's, as is restarting it)."""
    base(site)
    alpha, beta = site.hosts["alpha"], site.hosts["beta"]
    password = secrets.token_urlsafe(12)
    # The administrator grants beta the database they set aside for todo.
    hba = "/etc/postgresql/15/main/pg_hba.conf"
    alpha.ssh(
        f"echo 'host todo_own todo_own {site.hosts.address('beta')}/32 scram-sha-256 "
        f"# by the admin' >> {hba} && systemctl reload postgresql"
    )
    query = "runuser -u postgres -- psql -XAtc 'SELECT pg_postmaster_start_time()'"
    up_since = alpha.ssh(query).stdout
    url = f"postgresql://todo_own:{password}@{site.hosts.address('alpha')}:5432/todo_own"
    site.layout(
        {**BASE_LAYOUT, "todo": {"hosts": "beta", "connection-string": url}},
        deploy={"postgresql-existing": "yes"},
    )
    report = site.converge()

    assert changed_on(report, "alpha") == [
        "srht configure | PostgreSQL database todo_own",
        "srht configure | PostgreSQL role todo_own",
    ]
    assert "# by the admin" in alpha.ssh(f"cat {hba}").stdout
    assert alpha.ssh(query).stdout == up_since
    assert "srht activate | Migrate the database of todo" in changed_on(report, "beta")
    body, status = body_and_status(site.curl("todo", "/healthz"))
    assert status == 200 and json.loads(body)["database"] == "ok", body
    owner = alpha.ssh(
        'runuser -u postgres -- psql -XAtc "SELECT pg_get_userbyid(datdba) '
        "FROM pg_database WHERE datname = 'todo_own'\""
    ).stdout.strip()
    assert owner == "todo_own"
    assert "todo_own" in beta.ssh("cat /etc/srht/config.ini").stdout
    assert changed(site.converge()) == {}


def test_certificates_from_an_acme_server(site: Site, acme_server: Pebble) -> None:
    """``certificates = acme`` against a private ACME server (pebble) that
    validates each name over HTTP through the hosts' nginx, as Let's
    Encrypt would: every origin serves HTTPS from the first run (a stand-in
    certificate until certbot has the real one, in the same run), the
    hosts trust the server's authorities, and a re-run changes nothing."""
    base(site)
    site.layout(
        deploy={
            "certificates": "acme",
            "acme-server": acme_server.directory,
            "acme-ca-file": str(acme_server.ca_file),
            "acme-email": f"admin@{DOMAIN}",
        }
    )
    report = site.converge()

    done = changed(report)
    for name in ("meta", *ON_BETA):
        host = NAMES[f"{name}.{DOMAIN}"]
        assert host in done[f"srht activate | Certificate for {name}.{DOMAIN} from the ACME server"]
    # Served with the certificates pebble issued: trusting only its
    # authorities (not the site's, which signed the stand-ins), curl agrees.
    for name in ("meta", *ON_BETA):
        body, status = body_and_status(site.curl(name, "/healthz", ca=acme_server.ca_file))
        assert status == 200, (name, body)
    # The hosts trust them too: todo on beta, seeing a user for the first
    # time, asks meta on alpha for the profile over HTTPS.
    bearer = token(site, "todo/trackers:RO", name="carol")
    listed = site.curl(
        "todo",
        "/api/trackers",
        ca=acme_server.ca_file,
        args=("-H", f"Authorization: Bearer {bearer}"),
    )
    assert body_and_status(listed)[1] == 200, listed.stdout
    assert changed(site.converge()) == {}


def git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"git {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout.strip()


def test_git_pushes_over_ssh_and_clones_over_https_on_a_deployed_host(
    site: Site, tmp_path: Path
) -> None:
    """git on beta, as its clone URLs say: a key registered at meta pushes
    as git@beta over SSH (sshd asks srht on beta for the key, srht asks
    meta), and an HTTPS clone through nginx sees the push."""
    base(site, git={"hosts": "beta"})
    name = user(site)
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "deploy-test", "-f", str(key)],
        check=True,
        timeout=30,
    )
    added = site.hosts["alpha"].ssh(
        f"runuser -u srht-meta -- srht meta add-ssh-key {name}",
        input=Path(f"{key}.pub").read_text(),
    )
    assert "added SHA256:" in added.stdout, added.stdout + added.stderr

    auth = ("-H", f"Authorization: Bearer {token(site, 'git/repos:RW')}")
    repo = f"deployed-{secrets.token_hex(3)}"
    body, status = body_and_status(
        site.curl(
            "git",
            "/api/repos",
            args=(
                "-X",
                "POST",
                *auth,
                "-H",
                "Content-Type: application/json",
                "--data",
                json.dumps({"name": repo}),
            ),
        )
    )
    assert status == 201, (
        body + site.hosts["beta"].ssh("journalctl -u srht-git -n 60 --no-pager", check=False).stdout
    )

    work = tmp_path / "work"
    git("init", "-q", "-b", "main", str(work))
    (work / "README").write_text("pushed over SSH to a deployed host\n")
    git("-c", "user.name=Alice", "-c", "user.email=alice@example.org", "add", "README", cwd=work)
    git(
        "-c",
        "user.name=Alice",
        "-c",
        "user.email=alice@example.org",
        "commit",
        "-q",
        "-m",
        "first",
        cwd=work,
    )
    head = git("rev-parse", "HEAD", cwd=work)
    ssh = (
        f"ssh -i {key} -o IdentitiesOnly=yes -o BatchMode=yes "
        "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
    )
    env = {**os.environ, "GIT_SSH_COMMAND": ssh}
    remote = f"git@{site.hosts.address('beta')}:~{name}/{repo}"
    git("push", "-q", remote, "main", cwd=work, env=env)

    over_ssh = tmp_path / "over-ssh"
    git("clone", "-q", remote, str(over_ssh), env=env)
    assert git("rev-parse", "HEAD", cwd=over_ssh) == head
    # A login without a command: git's greeting, and nothing from sshd about
    # the account (it has a home).
    hello = subprocess.run(
        [*shlex.split(ssh), "-T", f"git@{site.hosts.address('beta')}"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert hello.returncode == 1
    assert f"Hi ~{name}! You have authenticated" in hello.stderr, hello.stderr
    assert "Could not chdir" not in hello.stderr
    # sshd looks keys up as an account that can read nothing of the site nor
    # write the repositories, with a credential in a file of its own: never
    # on a command line, where any local user would see it in ps.
    beta = site.hosts["beta"]
    assert beta.ssh("stat -c '%a %U' /etc/ssh/sshd_config.d/srht-git.conf").stdout.split() == [
        "600",
        "root",
    ]
    snippet = beta.ssh("cat /etc/ssh/sshd_config.d/srht-git.conf").stdout
    assert "AuthorizedKeysCommandUser srht-git-keys" in snippet
    assert (
        "AuthorizedKeysCommand /usr/bin/curl --disable --config /etc/srht-secrets/git-ssh-keys"
        in snippet
    )
    assert beta.ssh(
        "stat -c '%a %U' /etc/srht-secrets /etc/srht-secrets/git-ssh-keys"
    ).stdout.split() == ["711", "root", "400", "srht-git-keys"]
    curl_config = beta.ssh("cat /etc/srht-secrets/git-ssh-keys").stdout
    lookup = curl_config.split('header = "X-Srht-Git-Ssh: ', 1)[1].split('"', 1)[0]
    assert len(lookup) == 64 and lookup not in snippet
    for attempt in (
        "cat /etc/srht/config.ini",
        f"touch /var/lib/srht/git/{json.loads(body)['id']}.git/objects/x",
    ):
        denied = beta.ssh(f"runuser -u srht-git-keys -- {attempt}", check=False)
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, attempt
    site.curl("git", "/")  # writes the site's authority beside the config
    over_https = tmp_path / "over-https"
    git(
        "-c",
        f"http.curloptResolve=git.{DOMAIN}:443:{site.hosts.address('beta')}",
        "clone",
        "-q",
        f"https://git.{DOMAIN}/~{name}/{repo}",
        str(over_https),
        env={**os.environ, "GIT_SSL_CAINFO": str(site.folder / "ca.pem")},
    )
    assert git("rev-parse", "HEAD", cwd=over_https) == head
    folder = f"/var/lib/srht/git/{json.loads(body)['id']}.git"
    fsck = site.hosts["beta"].ssh(f"git -c safe.directory='*' -C {folder} fsck --full", check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    # The shared folders and the SSH account are stable: a re-run changes nothing.
    assert changed(site.converge()) == {}


def test_mail_through_postfix_on_the_lists_host_reaches_the_archive(site: Site) -> None:
    """lists on beta: the deploy installs Postfix there and relays the
    posting domain (lists.DOMAIN, the origin's host name) over LMTP to
    ``srht lists lmtp``; a message handed to the host's ``sendmail`` is in
    the list's archive, read back through nginx."""
    base(site, lists={"hosts": "beta"})
    beta = site.hosts["beta"]
    auth = ("-H", f"Authorization: Bearer {token(site, 'lists/lists:RW lists/emails:RO')}")
    devel = f"devel-{secrets.token_hex(3)}"
    body, status = body_and_status(
        site.curl(
            "lists",
            "/api/lists",
            args=(
                "-X",
                "POST",
                *auth,
                "-H",
                "Content-Type: application/json",
                "--data",
                json.dumps({"name": devel}),
            ),
        )
    )
    assert status == 201, body
    to = f"~alice/{devel}@lists.{DOMAIN}"
    mail = (
        f"From: Bob <bob@example.org>\nTo: {to}\nSubject: Through Postfix\n"
        f"Message-ID: <{devel}@example.org>\n\nDelivered by the host's mail server.\n"
    )
    beta.ssh(f"sendmail -f bob@example.org '{to}'", input=mail)
    deadline = time.monotonic() + 90
    while True:
        body, status = body_and_status(
            site.curl("lists", f"/api/lists/alice/{devel}/messages", args=auth)
        )
        assert status == 200, body
        results = json.loads(body)["results"]
        if results or time.monotonic() > deadline:
            break
        time.sleep(1)
    queue = beta.ssh("postqueue -p; journalctl -u srht-lists-lmtp -n 30 --no-pager", check=False)
    assert [m["subject"] for m in results] == ["Through Postfix"], queue.stdout
    # From another host (outside Postfix's own network): an address that is
    # no list is refused while the sender is connected (after Postfix has
    # asked the listener; 450 while it asks), so no bounce ever goes to a
    # forged sender; a list's address is taken.
    probe = (
        "import smtplib,sys,time\n"
        "deadline = time.monotonic() + 60\n"
        "while True:\n"
        f"    s = smtplib.SMTP('{site.hosts['beta'].address}', 25, timeout=30)\n"
        "    s.ehlo('alpha.example'); s.mail('bob@example.org')\n"
        "    code = s.rcpt(sys.argv[1])[0]; s.quit()\n"
        "    if code != 450 or time.monotonic() > deadline: break\n"
        "    time.sleep(1)\n"
        "print(code)\n"
    )
    alpha = site.hosts["alpha"]
    nobody = f"~alice/no-such-list-{devel}@lists.{DOMAIN}"
    refused = alpha.ssh(f"python3 - {shlex.quote(nobody)}", input=probe)
    assert refused.stdout.strip() == "550", refused.stdout + refused.stderr
    taken = alpha.ssh(f"python3 - {shlex.quote(to)}", input=probe)
    assert taken.stdout.strip() == "250", taken.stdout + taken.stderr
    # The transport, the settings and the listener are stable.
    assert changed(site.converge()) == {}


def test_hub_on_alpha_groups_a_tracker_that_todo_serves_on_beta(site: Site) -> None:
    """hub on alpha beside meta, todo on beta: hub learns what todo offers
    from todo's own origin (``/api/resource-types`` on beta), reads alice's
    tracker with a token meta delegates for her, and shows it on her
    project's page; it reads nothing of todo's but its public API."""
    base(site, hub={"hosts": "alpha"})
    auth = ("-H", f"Authorization: Bearer {token(site, 'todo/trackers:RW hub/projects:RW')}")
    json_body = ("-H", "Content-Type: application/json", "--data")
    tracker, project = f"bugs-{secrets.token_hex(3)}", f"tools-{secrets.token_hex(3)}"

    def post(service: str, path: str, body: dict[str, Any]) -> tuple[str, int]:
        return body_and_status(
            site.curl(service, path, args=("-X", "POST", *auth, *json_body, json.dumps(body)))
        )

    body, status = post("todo", "/api/trackers", {"name": tracker})
    assert status == 201, body
    body, status = post("hub", "/api/projects", {"name": project, "description": "Our tools"})
    assert status == 201, body
    body, status = post(
        "hub",
        f"/api/projects/~alice/{project}/resources",
        {"service": "todo", "type": "tracker", "resource": f"~alice/{tracker}"},
    )
    assert status == 201, (
        body
        + site.hosts["alpha"].ssh("journalctl -u srht-hub -n 60 --no-pager", check=False).stdout
    )
    body, status = body_and_status(site.curl("hub", f"/~alice/{project}"))
    assert status == 200 and f'href="https://todo.{DOMAIN}/~alice/{tracker}"' in body, body
    body, status = body_and_status(site.curl("hub", "/explore"))
    assert status == 200 and project in body


def test_removing_a_service_removes_its_daemons_and_site_and_keeps_its_data(site: Site) -> None:
    base(site)
    beta, alpha = site.hosts["beta"], site.hosts["alpha"]
    bearer = token(site, "paste/pastes:RW")
    created = site.curl(
        "paste",
        "/api/pastes",
        args=(
            "-X",
            "POST",
            "-H",
            f"Authorization: Bearer {bearer}",
            "-H",
            "Content-Type: application/json",
            "--data",
            json.dumps({"files": [{"filename": "kept.txt", "content": "kept"}]}),
        ),
    )
    assert body_and_status(created)[1] == 201
    count = "runuser -u postgres -- psql -XAt srht_paste -c 'SELECT count(*) FROM paste'"
    pastes = alpha.ssh(count).stdout.strip()

    site.layout({name: values for name, values in BASE_LAYOUT.items() if name != "paste"})
    site.converge()
    units = beta.ssh("ls /etc/systemd/system/ | grep '^srht-' || true").stdout.split()
    assert units == ["srht-todo-worker.service", "srht-todo.service"]
    assert beta.ssh("systemctl is-active srht-paste", check=False).stdout.strip() != "active"
    sites = beta.ssh("ls /etc/nginx/sites-enabled/").stdout.split()
    assert "srht-paste.conf" not in sites and "srht-todo.conf" in sites
    assert body_and_status(site.curl("todo", "/healthz"))[1] == 200
    assert (
        "srht_paste"
        in alpha.ssh("runuser -u postgres -- psql -XAtc 'SELECT datname FROM pg_database'").stdout
    )
    assert beta.ssh("test -d /var/lib/srht/paste && echo kept").stdout.strip() == "kept"
    assert alpha.ssh(count).stdout.strip() == pastes
    assert changed(site.converge()) == {}

    # beta's last service goes: nothing of the site is served there (its
    # names do not answer 502) and it keeps no copy of the site's config.
    site.layout({"meta": {"hosts": "alpha"}})
    site.converge()
    assert beta.ssh("ls /etc/systemd/system/ | grep '^srht-' || true").stdout.split() == []
    sites = beta.ssh("ls /etc/nginx/sites-enabled/").stdout.split()
    assert not [name for name in sites if name.startswith("srht-")], sites
    assert "config.ini" not in beta.ssh("ls /etc/srht").stdout.split()
    # Nor the secret files of its services (git's key lookup credential, from
    # the SSH test above).
    assert beta.ssh("ls -A /etc/srht-secrets 2>/dev/null || true").stdout.split() == []
    tls = beta.ssh("ls /etc/srht/tls").stdout.split()
    assert not [name for name in tls if name.endswith((".crt", ".key"))], tls
    assert HOSTS_BEGIN not in beta.ssh("cat /etc/hosts").stdout
    answer = site.curl("todo", "/healthz")
    assert answer.returncode != 0 and body_and_status(answer)[1] == 0, answer.stdout
    assert beta.ssh("test -d /var/lib/srht/todo && echo kept").stdout.strip() == "kept"
    assert changed(site.converge()) == {}


def test_an_unreachable_host_is_named_and_the_other_converges(site: Site) -> None:
    base(site)
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


def test_a_build_job_runs_on_the_runner_host_end_to_end(site: Site) -> None:
    """builds on alpha, its runner on beta (one line of config): a job
    submitted through builds' REST API runs in a container on beta, and
    its log and success are read back. The runner unpacks the test hosts'
    own cached image (a tarball copied to beta) rather than building one."""
    from testhosts.image import cache_dir, ensure_image
    from testhosts.srhtsite import RUNNER_HOST

    ensure_image()
    [tarball] = sorted(cache_dir().glob("image-*.tar.zst"))[-1:]
    runner = site.hosts[RUNNER_HOST]
    on_runner = "/var/cache/srht-e2e-builds-image.tar.zst"
    copied = subprocess.run(
        ["scp", *runner.ssh_options, str(tarball), f"root@{runner.address}:{on_runner}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert copied.returncode == 0, copied.stderr
    images = "/etc/srht-e2e-builds-images.yml"
    site.hosts["alpha"].ssh(
        f"cat > {images} && chmod 644 {images}",
        input=f"debian/bookworm:\n  tarball: {on_runner}\n",
    )
    builds = {
        "hosts": "alpha",
        "runner-hosts": RUNNER_HOST,
        "images": images,
        "memory": "512",
        "disk": "512",
        "runner-jobs": "1",
    }
    base(site, builds=builds)

    unit = runner.ssh("systemctl cat srht-builds-runner").stdout
    assert "ExecStart=/opt/srht/venv/bin/srht builds runner" in unit and "Delegate=yes" in unit
    state = runner.ssh("systemctl is-active srht-builds-runner", check=False).stdout.strip()
    assert state == "active", runner.ssh(
        "journalctl -u srht-builds-runner -n 40", check=False
    ).stdout
    assert (
        "srht-builds-runner"
        not in site.hosts["alpha"].ssh("systemctl list-units --all 'srht-*' --no-legend").stdout
    )

    auth = ("-H", f"Authorization: Bearer {token(site, 'builds/jobs:RW')}")
    word = f"deployed-{secrets.token_hex(3)}"
    manifest = (
        "image: debian/bookworm\n"
        "tasks:\n"
        f"  - hello: echo {word} from $(hostname)\n"
        "  - limits: cat /sys/fs/cgroup/memory/memory.limit_in_bytes\n"
    )
    created = site.curl(
        "builds",
        "/api/jobs",
        args=(
            "-X",
            "POST",
            *auth,
            "-H",
            "Content-Type: application/json",
            "--data",
            json.dumps({"manifest": manifest, "note": "from the deploy test"}),
        ),
    )
    body, status = body_and_status(created)
    assert status == 201, body
    job = json.loads(body)
    # The first job unpacks the image on beta: a bound on waiting.
    deadline = time.monotonic() + 600
    while job["status"] in ("pending", "queued", "running") and time.monotonic() < deadline:
        time.sleep(2)
        body, status = body_and_status(site.curl("builds", f"/api/jobs/{job['id']}", args=auth))
        assert status == 200, body
        job = json.loads(body)
    journal = runner.ssh("journalctl -u srht-builds-runner -n 40 --no-pager", check=False).stdout
    assert job["status"] == "success", f"{job}\n{journal}"
    assert job["runner"] == RUNNER_HOST
    assert [task["status"] for task in job["tasks"]] == ["success", "success"]
    log_path = job["log_url"].removeprefix(f"https://builds.{DOMAIN}")
    log, status = body_and_status(site.curl("builds", log_path, args=auth))
    assert status == 200 and f"{word} from build" in log, log
    # The job's own control group limits its memory: [builds] memory and disk
    # (512 MiB each; its file system is a tmpfs, counted against memory too).
    assert f"\n{1024 * 1024 * 1024}\n" in log, log
    # Nothing of the job is left on the runner host.
    assert not runner.ssh("ls /var/lib/srht-builds/jobs").stdout.strip()
    # Deploying again changes nothing on either host: the runner keeps running.
    since = started(site, RUNNER_HOST, ["srht-builds-runner"])
    assert changed(site.converge()) == {}
    assert started(site, RUNNER_HOST, ["srht-builds-runner"]) == since
