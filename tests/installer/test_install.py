"""The installer on two real hosts, as a self-hoster meets it.

gamma runs PostgreSQL, Redis, nginx and meta; delta runs paste behind its
own nginx. Neither resolves the site's names by itself: the deploy writes
them into their /etc/hosts. The tests run in order on one site, each a step
of its life: bad answers files refused before any host is touched, the
interactive questions at a real terminal refusing wrong answers, a dry run
showing each host its own steps and writing nothing, an install from an
answers file, status all green (its names in a test DNS server, a mail
relay taking a test message), then red for a service that cannot reach
meta, for a wrong DNS answer, a disk below the threshold, a relay that
does not answer and a stray replication slot, for an expired certificate
(which a re-run replaces, reloading nginx) and for a closed port, the admin signing in
over HTTP, a change not confirmed leaving the config as it was, a second
run planning nothing, an upgrade (paste's
database a migration behind: the plan naming it, a failed backup and a
migration failing on the copy each stopping it with nothing changed, then
the upgrade done), adding and removing a service, and a host that cannot
be reached.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import pexpect
import pytest
from diagnosesite import DnsServer, expired_certificate, relay_in_config, unused_port
from installsite import ADMIN_PASSWORD, DOMAIN, NAMES, Installer, answers_toml
from srht_deploy.operations import HOSTS_BEGIN
from support.smtp_sink import SmtpSink

if TYPE_CHECKING:  # the class itself would be collected as a test class
    from testhosts import TestHosts

# A cold first run fetches every package and builds the wheelhouse once:
# more than pytest's default per-test bound.
pytestmark = [pytest.mark.installer, pytest.mark.slow, pytest.mark.timeout(1500)]


def table_rows(output: str) -> list[list[str]]:
    """The rows of the tables in ``output`` (rich's), each cell whole: a
    row's folded continuation lines joined to it."""
    rows: list[list[str]] = []
    for line in output.splitlines():
        if not line.startswith("│"):
            continue
        cells = [cell.strip() for cell in line.strip("│").split("│")]
        if rows and not cells[0] and len(cells) == len(rows[-1]):
            rows[-1] = [" ".join(filter(None, pair)) for pair in zip(rows[-1], cells, strict=True)]
        else:
            rows.append(cells)
    return rows


def plan_steps(output: str) -> dict[str, list[str]]:
    """``{host: [step, ...]}`` of the plan table in ``output``."""
    steps: dict[str, list[str]] = {}
    host = ""
    for line in output.splitlines():
        if not line.startswith("│"):
            continue
        cells = [cell.strip() for cell in line.strip("│").split("│")]
        host = cells[0] or host
        if cells[-1]:
            steps.setdefault(host, []).append(cells[-1])
    return steps


def untouched(hosts: TestHosts) -> None:
    """Neither host has anything of srht on it."""
    for name in ("gamma", "delta"):
        found = (
            hosts[name]
            .ssh("ls -d /etc/srht /opt/srht /var/lib/srht-deploy 2>/dev/null; true")
            .stdout.split()
        )
        assert found == [], f"{name} was touched: {found}"


@pytest.mark.parametrize(
    ("override", "key", "reason"),
    [
        ({"services": '["meta", "wiki"]'}, "services", "unknown service 'wiki'"),
        ({"hosts": "UNUSED"}, "hosts", "nothing answers on"),
        ({"domain": '"my site"'}, "domain", "not a domain name"),
        ({"admin-email": None}, "admin-email", "required"),
    ],
    ids=["unknown-service", "unreachable-host", "malformed-domain", "missing-admin-email"],
)
def test_a_bad_answers_file_names_the_key_and_touches_no_host(
    test_hosts: TestHosts,
    workdir: Path,
    srht_install: Installer,
    override: dict[str, str | None],
    key: str,
    reason: str,
) -> None:
    if "hosts" in override:
        # An address of this slot's test network that no host has.
        unused = test_hosts.address("gamma").rsplit(".", 1)[0] + ".99"
        override = {"hosts": f'["gamma=root@{unused}"]'}
    folder = workdir / f"bad-{key}"
    folder.mkdir()
    (folder / "admin-password").write_text(ADMIN_PASSWORD + "\n")
    (folder / "answers.toml").write_text(answers_toml(test_hosts, **override))

    result = srht_install("--answers", "answers.toml", "--yes", cwd=folder)

    assert result.returncode == 2, result.stdout + result.stderr
    assert f"answers.toml: key `{key}`: " in result.stderr
    line = next(x for x in result.stderr.splitlines() if f"key `{key}`" in x)
    assert reason in line
    assert "no host was touched" in result.stderr
    assert not (folder / "config.ini").exists()
    untouched(test_hosts)


def test_the_questions_refuse_wrong_answers_and_ask_again(
    test_hosts: TestHosts, workdir: Path
) -> None:
    folder = workdir / "interactive"
    folder.mkdir()
    gamma = test_hosts.address("gamma")
    unused = gamma.rsplit(".", 1)[0] + ".99"
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "120", "LINES": "40"}
    env.pop("SRHT_CONFIG", None)
    # The SSH settings come as flags; everything else is asked.
    child = pexpect.spawn(
        sys.executable,
        [
            "-m",
            "srht_installer.cli",
            "--services",
            "meta,paste",
            "--ssh-key",
            str(test_hosts.key),
            "--ssh-known-hosts",
            "/dev/null",
            "--ssh-host-key-checking",
            "no",
        ],
        cwd=str(folder),
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 120),
    )
    child.logfile_read = open(folder / "terminal.log", "w")  # noqa: SIM115 - closed below
    try:

        def answer(prompt: str, text: str, *, clear: bool = False) -> None:
            child.expect_exact(prompt)
            child.send(("\x15" if clear else "") + text + "\r")

        def refused(reason: str) -> None:
            child.expect(r"✗ [^\r\n]*" + re.escape(reason))

        answer("Domain of the site", "not a domain")
        refused("not a domain name")
        answer("Domain of the site", DOMAIN, clear=True)
        answer("Name of the site", "")
        answer("Who runs the site", "")
        answer("Contact email of the site's owner", "owner-at-example", clear=True)
        refused("not an email address")
        answer("Contact email of the site's owner", f"owner@{DOMAIN}", clear=True)
        answer("Hosts", f"gamma=root@{unused}", clear=True)
        refused(f"host gamma: nothing answers on {unused}:22")
        answer("Hosts", f"gamma=root@{gamma}", clear=True)
        answer("Host that runs Redis", "")  # the select's default: gamma
        answer("SMTP server", "")
        answer("TLS certificates", "")
        answer("Registration", "")
        answer("Username of the first admin", "Not Valid!", clear=True)
        refused("lower-case letters")
        answer("Username of the first admin", "alice", clear=True)
        answer("Email of the first admin", "", clear=False)
        child.expect_exact("Show the plan for these answers")
        child.send("n")
        child.expect_exact("Nothing was written.")
        child.expect(pexpect.EOF)
    finally:
        child.close()
        child.logfile_read.close()
    assert child.exitstatus == 0, (folder / "terminal.log").read_text()[-3000:]
    assert not (folder / "config.ini").exists()
    untouched(test_hosts)


def test_a_dry_run_shows_each_host_its_own_steps_and_writes_nothing(
    test_hosts: TestHosts, workdir: Path, srht_install: Installer
) -> None:
    folder = workdir / "dry-run"
    folder.mkdir()
    (folder / "admin-password").write_text(ADMIN_PASSWORD + "\n")
    (folder / "answers.toml").write_text(answers_toml(test_hosts))

    result = srht_install("--answers", "answers.toml", "--dry-run", cwd=folder)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "Dry run: nothing was changed on any host" in output
    assert f"Nothing was written: {folder / 'config.ini'} does not exist yet." in output
    # No config (a later run reads the answers again), no state: only
    # pyinfra's log of the plan.
    assert sorted(p.name for p in folder.iterdir()) == [
        "admin-password",
        "answers.toml",
        "config.ini.install.log",
    ]
    untouched(test_hosts)
    # Each host's plan lists its own steps: meta's user on gamma, paste's on delta.
    steps = plan_steps(result.stdout)
    assert "+ srht install | User srht-meta" in steps["gamma"], steps
    assert "+ srht install | User srht-paste" in steps["delta"], steps
    assert not any("srht-paste" in step for step in steps["gamma"])
    assert not any("srht-meta" in step for step in steps["delta"])


def test_an_answers_file_installs_the_site(
    test_hosts: TestHosts, workdir: Path, srht_install: Installer
) -> None:
    (workdir / "answers.toml").write_text(answers_toml(test_hosts))

    result = srht_install("--answers", "answers.toml", "--yes")

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    config = workdir / "config.ini"
    assert config.stat().st_mode & 0o777 == 0o600
    assert f"https://meta.{DOMAIN}" in output and f"https://paste.{DOMAIN}" in output
    assert f"sign in at https://meta.{DOMAIN}/login as alice" in output
    for name, host in NAMES.items():
        if not name.startswith("todo."):
            assert f"{name}.  IN A     {test_hosts.address(host)}" in output
    assert "Admin: created admin ~alice" in output
    # The progress names each host's own steps.
    assert "srht install | User srht-meta: gamma changed" in result.stdout
    assert "srht install | User srht-paste: delta changed" in result.stdout
    # No secret on the screen or in the log.
    text = config.read_text()
    secrets = re.findall(r"^(?:service-key|network-key|private-key) = (.+)$", text, re.M)
    assert len(secrets) == 3
    log = (workdir / "config.ini.install.log").read_text()
    for secret in [*secrets, ADMIN_PASSWORD]:
        assert secret not in output and secret not in log


@pytest.fixture(scope="module")
def dns_server(test_hosts: TestHosts) -> Iterator[DnsServer]:
    """The site's DNS, right: each name to the host whose nginx serves it."""
    with DnsServer({name: [test_hosts.address(host)] for name, host in NAMES.items()}) as server:
        yield server


def test_status_is_all_green(srht_install: Installer, workdir: Path, dns_server: DnsServer) -> None:
    """The healthy site, its names in DNS and a mail relay in its config:
    every check green, and a test message through the relay."""
    with (
        SmtpSink() as relay,
        relay_in_config(workdir / "config.ini", relay.host, relay.port),
    ):
        result = srht_install(
            "status", "--dns-server", dns_server.address, "--send-test-mail", f"bob@{DOMAIN}"
        )
        (sent,) = relay.wait_for(1)

    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    # A new site has had no restore drill: that line alone is yellow, and says so.
    drill = [row for row in rows if "restore drill" in row]
    assert len(drill) == 1 and "soon" in drill[0] and "no restore drill ever ran" in drill[0]
    rows = [row for row in rows if row not in drill]
    assert rows and not any("FAIL" in row or "soon" in row for row in rows)
    kinds = {row[0] for row in table_rows(result.stdout)}
    assert {"dns", "port", "mail", "disk", "postgresql", "redis"} <= kinds, kinds
    assert sent.recipients == [f"bob@{DOMAIN}"]
    assert sent.message["Subject"] == "srht-install: test message"
    for what in (
        "srht-meta",
        "srht-meta-worker",
        "srht-paste",
        "srht-paste-worker",
        "postgresql",
        "redis-server",
        "nginx",
        f"meta.{DOMAIN}",
        f"paste.{DOMAIN}",
    ):
        assert any(what in row for row in rows), what
    assert "All checks passed." in result.stdout


def test_status_names_a_service_that_cannot_reach_meta(
    test_hosts: TestHosts, srht_install: Installer
) -> None:
    """delta loses meta's name (its /etc/hosts rewritten by something else,
    then a reboot): status says which service cannot reach meta and what
    to do, and running srht-install again repairs it."""
    delta = test_hosts["delta"]
    delta.ssh("sed -i '/^# BEGIN srht/,/^# END srht$/d' /etc/hosts")
    # Restarted (it remembers nothing), and answering again (paste's default port).
    delta.ssh(
        "systemctl restart srht-paste && timeout 60 sh -c "
        "'until curl -so /dev/null http://127.0.0.1:5011/healthz; do sleep 0.5; done'"
    )

    status = srht_install("status")

    assert status.returncode == 1, status.stdout
    (row,) = [r for r in table_rows(status.stdout) if r[:2] == ["service", "paste"]]
    assert row[3] == "FAIL"
    # Then the resolver's own words ("Temporary failure in name resolution").
    assert row[4].startswith(
        f"https://paste.{DOMAIN}/healthz: 503; paste: cannot reach meta at "
        f"https://meta.{DOMAIN}/internal/tokens/revoked: "
    ), row[4]
    assert row[4].endswith(
        f" What to do: paste's users cannot sign in until meta.{DOMAIN} resolves, on delta, "
        f"to gamma ({test_hosts.address('gamma')}) and meta answers there (in DNS or "
        "/etc/hosts; running srht-install again writes it into /etc/hosts)."
    ), row[4]

    repaired = srht_install("--yes")
    assert repaired.returncode == 0, (repaired.stdout + repaired.stderr)[-4000:]
    assert HOSTS_BEGIN in delta.ssh("cat /etc/hosts").stdout
    assert srht_install("status").returncode == 0


def status_row(output: str, kind: str, what: str, host: str) -> list[str]:
    """The one row of ``srht-install status``'s table for ``kind``, ``what`` and ``host``."""
    (row,) = [r for r in table_rows(output) if r[:3] == [kind, what, host]]
    return row


def test_status_diagnoses_dns_disk_mail_and_replication_with_what_to_do(
    test_hosts: TestHosts, workdir: Path, srht_install: Installer, dns_server: DnsServer
) -> None:
    """A wrong DNS answer, a disk below the threshold, a relay that does not
    answer and a replication slot nobody reads: each a red line saying what
    to do, in one run."""
    paste, gamma = f"paste.{DOMAIN}", test_hosts.address("gamma")
    dns_server.answers[paste] = [gamma]
    postgres = "runuser -u postgres -- psql -XAtc"
    test_hosts["gamma"].ssh(f"{postgres} \"SELECT pg_create_physical_replication_slot('stray')\"")
    try:
        with relay_in_config(workdir / "config.ini", "127.0.0.1", unused_port()):
            status = srht_install(
                "status", "--dns-server", dns_server.address, "--min-free", "100%"
            )
    finally:
        dns_server.answers[paste] = [test_hosts.address("delta")]
        test_hosts["gamma"].ssh(f"{postgres} \"SELECT pg_drop_replication_slot('stray')\"")

    assert status.returncode == 1, status.stdout + status.stderr
    row = status_row(status.stdout, "dns", paste, "delta")
    assert row[3] == "FAIL"
    assert row[4] == (
        f"resolves to {gamma}: {gamma} is none of the hosts whose nginx serves it, and "
        f"visitors sent there do not reach paste. What to do: make the records "
        f"`{paste}. IN A {test_hosts.address('delta')}`, and no other."
    )
    assert status_row(status.stdout, "dns", f"meta.{DOMAIN}", "gamma")[3] == "ok"
    for host in ("gamma", "delta"):
        row = status_row(status.stdout, "disk", "/", host)
        assert row[3] == "FAIL" and "free of" in row[4], row
        assert f"below 100%. What to do: free space on {host}" in row[4]
    (relay,) = [r for r in table_rows(status.stdout) if r[:2] == ["mail", "relay"]]
    assert relay[3] == "FAIL"
    assert (
        "does not answer SMTP (Connection refused). What to do: check [mail] smtp-host"
        in (relay[4])
    )
    row = status_row(status.stdout, "postgresql", "replication", "gamma")
    assert row[3] == "FAIL"
    assert row[4].startswith("replication slot stray (physical, unused): WAL is kept for it")
    assert "pg_drop_replication_slot('stray')" in row[4]
    assert status_row(status.stdout, "redis", "replication", "gamma")[3] == "ok"


def test_status_names_an_expired_certificate_and_what_replaces_it(
    test_hosts: TestHosts, workdir: Path, srht_install: Installer
) -> None:
    from srht_installer.siteconfig import load_site

    delta, paste = test_hosts["delta"], f"paste.{DOMAIN}"
    path = f"/etc/srht/tls/{paste}.crt"
    authority = load_site(workdir / "config.ini").authority()
    expired = expired_certificate(delta.ssh(f"cat {path}").stdout, authority.cert, authority.key)
    delta.ssh(f"cat > {path} && systemctl reload nginx", input=expired)

    status = srht_install("status")

    assert status.returncode == 1, status.stdout + status.stderr
    row = status_row(status.stdout, "certificate", paste, "delta")
    assert row[3] == "FAIL"
    assert row[4].startswith("not trusted: certificate has expired; it expired on "), row[4]
    assert row[4].endswith(
        "What to do: run srht-install again: it puts back the certificates of the site's "
        "authority on delta and reloads nginx there."
    ), row[4]
    assert status_row(status.stdout, "certificate", f"meta.{DOMAIN}", "gamma")[3] == "ok"

    # What the line says: the deploy puts the file back and, as it was
    # changed behind its back, reloads nginx even though nothing it applies
    # changed (nginx held the expired one until then).
    repaired = srht_install("--yes")
    output = repaired.stdout + repaired.stderr
    assert repaired.returncode == 0, output[-4000:]
    assert "TLS file paste.inst.test.crt: delta changed" in output, output[-4000:]
    assert delta.ssh(f"cat {path}").stdout != expired
    status = srht_install("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert status_row(status.stdout, "certificate", paste, "delta")[3] == "ok"


def test_status_names_a_closed_port(test_hosts: TestHosts, srht_install: Installer) -> None:
    delta = test_hosts["delta"]
    delta.ssh("systemctl stop nginx")
    try:
        status = srht_install("status")
    finally:
        delta.ssh("systemctl start nginx")

    assert status.returncode == 1
    address = test_hosts.address("delta")
    for port in (80, 443):
        row = status_row(status.stdout, "port", f"{port} (nginx)", "delta")
        assert row[3] == "FAIL"
        assert row[4] == (
            f"{address}:{port} cannot be reached from here (Connection refused). What to do: "
            f"check that nginx runs on delta (`systemctl status`) and that no firewall between "
            f"here and delta closes port {port}."
        )
    assert status_row(status.stdout, "port", "443 (nginx)", "gamma")[3] == "ok"


def test_the_admin_signs_in_over_http(test_hosts: TestHosts, workdir: Path) -> None:
    ca, jar = workdir / "site-ca.pem", workdir / "cookies.txt"
    assert ca.exists()
    meta = f"meta.{DOMAIN}"
    # A browser's request: its cookies, and the Referer CSRF checks over HTTPS.
    base = [
        "curl",
        "-sS",
        "--max-time",
        "30",
        "--cacert",
        str(ca),
        "-b",
        str(jar),
        "-c",
        str(jar),
        "--resolve",
        f"{meta}:443:{test_hosts.address('gamma')}",
        "--referer",
        f"https://{meta}/login",
    ]
    page = subprocess.run(
        [*base, f"https://{meta}/login"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token, page[:2000]
    signed_in = subprocess.run(
        [
            *base,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            "--data-urlencode",
            f"csrf_token={token.group(1)}",
            "--data-urlencode",
            "username=alice",
            "--data-urlencode",
            f"password={ADMIN_PASSWORD}",
            f"https://{meta}/login",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert signed_in.stdout.startswith("302 "), signed_in.stdout
    # The admin pages answer the signed-in admin.
    admin = subprocess.run(
        [*base, "-o", "/dev/null", "-w", "%{http_code}", f"https://{meta}/admin/users"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert admin.stdout == "200"


def test_an_admin_without_a_password_gets_a_one_time_link(
    test_hosts: TestHosts, workdir: Path
) -> None:
    """What a run with nobody at a terminal and no password file does: meta
    makes the account and prints a link where its owner sets the password."""
    from srht_installer.admin import create_admin
    from srht_installer.siteconfig import load_site

    config = workdir / "config.ini"
    made = create_admin(config, load_site(config), "carol", f"carol@{DOMAIN}", None)
    assert made.outcome == "created", made.message
    meta = f"meta.{DOMAIN}"
    assert made.link is not None and made.link.startswith(f"https://{meta}/reset/")
    jar = workdir / "carol-cookies.txt"
    base = [
        "curl",
        "-sS",
        "--max-time",
        "30",
        "--cacert",
        str(workdir / "site-ca.pem"),
        "-b",
        str(jar),
        "-c",
        str(jar),
        "--resolve",
        f"{meta}:443:{test_hosts.address('gamma')}",
        "--referer",
        made.link,
    ]
    page = subprocess.run(
        [*base, made.link], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token, page[:2000]
    set_password = subprocess.run(
        [
            *base,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--data-urlencode",
            f"csrf_token={token.group(1)}",
            "--data-urlencode",
            "password=carol's own passphrase",
            made.link,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert set_password.stdout == "302"


def test_a_change_not_confirmed_leaves_the_config_as_it_was(
    workdir: Path, srht_install: Installer
) -> None:
    """Without --yes and without a terminal there is nobody to confirm the
    plan: refused, and the config is as it was (the next test's run then
    finds nothing to change, paste included)."""
    config = workdir / "config.ini"
    before = config.read_bytes()

    removed = srht_install("remove", "paste")

    assert removed.returncode == 2, removed.stdout + removed.stderr
    assert "no terminal to confirm the plan on: pass --yes to apply it" in removed.stderr
    assert f"{config} is as it was." in removed.stderr
    assert config.read_bytes() == before
    assert not list(workdir.glob(".config.ini.*"))


def test_a_second_run_plans_zero_changes(srht_install: Installer, workdir: Path) -> None:
    result = srht_install("--answers", "answers.toml", "--yes")

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Nothing to change" in output
    assert "Applied" not in output
    assert "Admin: created" not in output  # created once, remembered


#: paste's database as the srht before core0004 left it (what an older site has).
PASTE_BEHIND = (
    "DROP TABLE srht_idempotency_key; UPDATE alembic_version_srht SET version_num = 'core0003'"
)


def paste_sql(hosts: TestHosts, sql: str) -> str:
    """``sql`` on paste's database (on gamma), as PostgreSQL's superuser."""
    return (
        hosts["gamma"]
        .ssh(f"runuser -u postgres -- psql -XAt -d srht_paste -c {shlex.quote(sql)}")
        .stdout.strip()
    )


def paste_behind(hosts: TestHosts) -> None:
    """paste's database a core migration behind, and delta not remembering
    that it migrated it, as after new code was copied onto this machine."""
    paste_sql(hosts, PASTE_BEHIND)
    hosts["delta"].ssh("rm -f /var/lib/srht-deploy/migrated-paste")


def test_an_upgrade_shows_versions_migrations_sql_and_restarts_and_changes_nothing(
    test_hosts: TestHosts, workdir: Path, srht_install: Installer
) -> None:
    paste_behind(test_hosts)

    result = srht_install("upgrade", "--dry-run", "--sql", "--no-backup")

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "WARNING: --no-backup: no backup is taken" in result.stderr
    rows = table_rows(result.stdout)
    # The same code before and after: the wheel the deploy recorded on each host.
    record = test_hosts["gamma"].ssh("cat /opt/srht/venv/.srht-wheels").stdout.splitlines()
    sha = next(line.split()[0] for line in record if line.split()[1].startswith("srht-"))
    build = f"{metadata.version('srht')} ({sha[:12]})"
    assert ["gamma", "srht", build, build] in rows
    assert ["delta", "srht", build, build] in rows
    # Both of the core's migrations since core0003, in one cell (table_rows joins its lines).
    [migrations] = [row[2] for row in rows if row[:2] == ["paste", "srht_paste on gamma"]]
    assert migrations == (
        "srht core0004: idempotency keys of API writes, with the answers they replay "
        "srht core0005: the core's own tables never reuse ids on SQLite"
    ), migrations
    assert ["meta", "srht_meta on gamma", "none (up to date)"] in rows
    assert "-- SQL of paste's migrations" in result.stdout
    assert "CREATE TABLE srht_idempotency_key" in result.stdout
    assert "UPDATE alembic_version_srht SET version_num='core0004'" in result.stdout
    assert "Migrate the database of paste" in result.stdout  # pyinfra's plan says so too
    assert "Dry run: nothing was changed" in result.stdout
    assert paste_sql(test_hosts, "SELECT version_num FROM alembic_version_srht") == "core0003"
    assert not (workdir / "backups").exists()


def test_an_upgrade_whose_backup_fails_changes_nothing(
    test_hosts: TestHosts, workdir: Path, srht_install: Installer
) -> None:
    (workdir / "not-a-folder").write_text("a file where the backups would go\n")

    result = srht_install("upgrade", "--yes", "--backup-dir", "not-a-folder/backups")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "the backup before the upgrade failed" in result.stderr
    assert "nothing was changed on any host" in result.stderr
    assert paste_sql(test_hosts, "SELECT version_num FROM alembic_version_srht") == "core0003"
    assert srht_install("status").returncode == 0


def test_a_migration_failing_on_the_copy_stops_the_upgrade_then_a_rerun_completes(
    test_hosts: TestHosts, workdir: Path, srht_install: Installer
) -> None:
    # Something of the admin's own holds the name the migration creates.
    paste_sql(test_hosts, "CREATE TABLE srht_idempotency_key (mine text)")

    failed = srht_install("upgrade", "--yes")

    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "paste: its migrations failed on a copy of its database" in failed.stderr
    assert 'relation "srht_idempotency_key" already exists' in failed.stderr
    assert "the upgrade stopped before changing any host" in failed.stderr
    assert paste_sql(test_hosts, "SELECT version_num FROM alembic_version_srht") == "core0003"
    assert paste_sql(test_hosts, "SELECT count(*) FROM srht_idempotency_key") == "0"
    archives = sorted((workdir / "backups").glob("srht-backup-*.tar"))
    assert len(archives) == 1 and archives[0].stat().st_mode & 0o777 == 0o600
    assert archives[0].name in failed.stderr
    assert srht_install("status").returncode == 0  # up again after the backup

    paste_sql(test_hosts, "DROP TABLE srht_idempotency_key")
    meta_users = 'SELECT username FROM "user" ORDER BY id'
    before = (
        test_hosts["gamma"]
        .ssh(f"runuser -u postgres -- psql -XAt -d srht_meta -c {shlex.quote(meta_users)}")
        .stdout
    )
    done = srht_install("upgrade", "--yes")

    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert re.search(r"paste: its migrations ran on a copy in \d+\.\ds", done.stdout)
    assert "paste: migrations applied: core0004, core0005" in done.stdout
    assert "Upgraded." in done.stdout
    assert paste_sql(test_hosts, "SELECT version_num FROM alembic_version_srht") == "core0005"
    assert paste_sql(test_hosts, "SELECT count(*) FROM srht_idempotency_key") == "0"
    assert "alice" in before
    assert (
        test_hosts["gamma"]
        .ssh(f"runuser -u postgres -- psql -XAt -d srht_meta -c {shlex.quote(meta_users)}")
        .stdout
        == before
    )
    databases = (
        test_hosts["gamma"]
        .ssh("runuser -u postgres -- psql -XAtc 'SELECT datname FROM pg_database'")
        .stdout
    )
    assert "rehearsal" not in databases  # the copies are gone
    assert len(list((workdir / "backups").glob("srht-backup-*.tar"))) == 2
    assert srht_install("status").returncode == 0


def test_adding_a_service_a_failed_step_and_a_resumed_run(
    test_hosts: TestHosts, workdir: Path, srht_install: Installer
) -> None:
    config = workdir / "config.ini"
    before = config.read_bytes()
    (workdir / "config.ini.before-add").write_bytes(before)
    delta = test_hosts["delta"]
    # Something of the admin's own breaks nginx's config on delta.
    delta.ssh("echo 'this is not nginx;' > /etc/nginx/sites-enabled/broken.conf")

    added = srht_install("add", "todo", "--host", "delta", "--yes")

    assert added.returncode == 1, added.stdout + added.stderr
    address = test_hosts.address("delta")
    assert (
        f"host delta (root@{address}:22) failed at step \"srht activate | Check nginx's "
        'config and reload it"'
    ) in added.stderr
    assert "broken.conf" in added.stderr  # nginx's own words
    assert "then run `srht-install` again" in added.stderr
    assert config.read_bytes().startswith(before) and b"[todo]" in config.read_bytes()

    delta.ssh("rm /etc/nginx/sites-enabled/broken.conf")
    resumed = srht_install("--yes")
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    status = srht_install("status")
    assert status.returncode == 0, status.stdout
    assert f"https://todo.{DOMAIN}/healthz: 200" in status.stdout


def test_removing_a_service_keeps_its_data_and_the_rest_of_the_config(
    test_hosts: TestHosts, workdir: Path, srht_install: Installer
) -> None:
    config = workdir / "config.ini"
    removed = srht_install("remove", "todo", "--yes")

    assert removed.returncode == 0, (removed.stdout + removed.stderr)[-4000:]
    assert "Its data stays" in removed.stdout
    # Byte for byte the config the install wrote (add appended, remove cut).
    assert b"[todo]" not in config.read_bytes()
    assert config.read_bytes() == (workdir / "config.ini.before-add").read_bytes()
    delta = test_hosts["delta"]
    assert delta.ssh("systemctl is-active srht-todo", check=False).stdout.strip() != "active"
    assert "srht-todo.conf" not in delta.ssh("ls /etc/nginx/sites-enabled/").stdout
    assert (
        "srht_todo"
        in test_hosts["gamma"]
        .ssh("runuser -u postgres -- psql -XAtc 'SELECT datname FROM pg_database'")
        .stdout
    )
    assert srht_install("--yes").stdout.count("Nothing to change") == 1


def test_an_unreachable_host_is_named_with_what_to_do(
    test_hosts: TestHosts, srht_install: Installer
) -> None:
    delta = test_hosts["delta"]
    delta.disconnect()
    try:
        result = srht_install("--yes")
        status = srht_install("status")
    finally:
        delta.reconnect()
    assert result.returncode == 1
    assert f"host delta (root@{test_hosts.address('delta')}:22)" in result.stderr
    assert "nothing was changed on any host" in result.stderr
    assert "run srht-install again" in result.stderr
    assert status.returncode == 1
    assert "FAIL" in status.stdout
