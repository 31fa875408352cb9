"""What ``srht-install drill`` decides on the deploying machine, before any
host: which archive, which drill hosts (never the site's own), the copy of
the config it restores with, and the status line of the last drill.

The drills themselves, on test hosts, are steps of ``test_backup.py``
(they restore that suite's backups onto hosts booted with its site's).
"""

from __future__ import annotations

import configparser
import email
import email.policy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest

from srht_core.config import dump_ini
from srht_core.keys import generate_keys
from srht_core.schema import HostEntry, SshTarget

pytestmark = [pytest.mark.installer]

DOMAIN = "srht.test"


def write_config(path: Path, **drill: str) -> Path:
    keys = generate_keys()
    data = {
        "srht": {
            "global-domain": DOMAIN,
            "service-key": keys.service_key,
            "network-key": keys.network_key,
            "site-owner-email": f"admin@{DOMAIN}",
            "internal-networks": "127.0.0.0/8, 192.0.2.0/24",
        },
        "mail": {"smtp-host": "mail.example.org", "smtp-from": f"srht@{DOMAIN}"},
        "webhooks": {"private-key": keys.webhook_private_key},
        "deploy": {
            "hosts": "alpha=root@192.0.2.10, beta=root@192.0.2.11",
            "postgresql-host": "alpha",
            "service-names": "dns",
            "certificates": "acme",
            "acme-email": f"admin@{DOMAIN}",
        },
        "meta": {"origin": f"https://meta.{DOMAIN}", "hosts": "alpha"},
        "paste": {"origin": f"https://paste.{DOMAIN}", "hosts": "beta"},
    }
    if drill:
        data["drill"] = dict(drill)
    path.write_text(dump_ini(data))
    path.chmod(0o600)
    return path


def targets(*raw: str) -> list:
    return [HostEntry().parse(r) for r in raw]


def test_the_copy_of_the_config_points_at_the_drill_hosts_and_away_from_the_site(
    tmp_path: Path,
) -> None:
    from srht_installer.drill import drill_config, drill_targets

    archived = write_config(tmp_path / "archived.ini", **{"max-age": "3"}).read_bytes()
    # An archive of the scheduled backups holds the site's [backup].
    archived += b"\n[backup]\nschedule = *-*-* 03:00\ndestination = ssh://keeper@203.0.113.7/srv\n"
    mapping = drill_targets(
        targets("alpha=root@192.0.2.10", "beta=root@192.0.2.11"),
        targets("alpha=root@198.51.100.5", "beta=admin@198.51.100.6:2222"),
        {"192.0.2.10", "192.0.2.11"},
    )
    folder = tmp_path / "drill"
    folder.mkdir()
    path = drill_config(archived, mapping, folder, Path("/keys/drill"))
    assert path.stat().st_mode & 0o777 == 0o600
    copy, original = configparser.ConfigParser(), configparser.ConfigParser()
    copy.read(path)
    original.read_string(archived.decode())
    deploy = copy["deploy"]
    assert deploy["hosts"] == "alpha=root@198.51.100.5, beta=admin@198.51.100.6:2222"
    assert deploy["ssh-key"] == "/keys/drill"
    assert deploy["service-names"] == "hosts-file"  # never the real site's DNS
    assert deploy["certificates"] == "self-signed" and "acme-email" not in deploy
    assert deploy["ssh-known-hosts"] == str(folder / "known_hosts")
    assert copy["mail"]["smtp-host"] == ""  # the copy mails nobody
    assert "drill" not in copy
    # No scheduled backups from the copy: they would go to the real destination.
    assert "backup" in original and "backup" not in copy
    for section, key in (("srht", "service-key"), ("srht", "network-key")):
        assert copy[section][key] == original[section][key]
    assert copy["webhooks"]["private-key"] == original["webhooks"]["private-key"]


def test_a_drill_host_at_an_address_of_the_site_or_a_missing_one_is_refused() -> None:
    from srht_installer.drill import HostsProblem, drill_targets

    archived = targets("alpha=root@192.0.2.10", "beta=root@192.0.2.11")
    with pytest.raises(HostsProblem, match=r"beta is at an address of the site itself"):
        drill_targets(
            archived,
            targets("alpha=root@198.51.100.5", "beta=root@192.0.2.11"),
            {"192.0.2.10", "192.0.2.11"},
        )
    with pytest.raises(HostsProblem, match=r"no drill host for beta; gamma is not a host"):
        drill_targets(
            archived, targets("alpha=root@198.51.100.5", "gamma=root@198.51.100.6"), set()
        )


def test_without_an_archive_the_newest_backup_is_drilled(tmp_path: Path) -> None:
    from srht_installer.drill import newest_archive

    with pytest.raises(click.ClickException, match="no archive"):
        newest_archive(tmp_path)
    for stamp in ("20260101T000000Z", "20261205T120000Z", "20260630T235959Z"):
        (tmp_path / f"srht-backup-{stamp}.tar").write_bytes(b"")
    assert newest_archive(tmp_path).name == "srht-backup-20261205T120000Z.tar"
    # An archive of the scheduled backups, copied here, counts too (by its date).
    (tmp_path / "srht-backup-20261206T030000Z.tar.age").write_bytes(b"")
    assert newest_archive(tmp_path).name == "srht-backup-20261206T030000Z.tar.age"


def test_the_result_goes_to_drill_then_backup_mail_to_then_the_site_owner(
    tmp_path: Path,
) -> None:
    from srht_deploy import Site
    from srht_installer.drill import mail_to

    def recipient(**sections: dict[str, str]) -> str | None:
        config = write_config(tmp_path / "config.ini")
        data = configparser.ConfigParser(interpolation=None)
        data.read(config)
        content = {s: dict(data[s]) for s in data.sections()} | sections
        content["deploy"]["ssh-key"] = str(tmp_path / "id_ed25519")  # [backup] wants one
        config.write_text(dump_ini(content))
        return mail_to(Site.from_config(config).config)

    assert recipient() == f"admin@{DOMAIN}"
    backup = {"recipient": str(_age_key().to_public()), "mail-to": "ops@example.org"}
    assert recipient(backup=backup) == "ops@example.org"
    assert recipient(backup=backup, drill={"mail-to": "drills@example.org"}) == "drills@example.org"


def test_the_mail_of_a_drill_says_each_check_and_the_time_to_a_working_site() -> None:
    from srht_installer.drill import result_mail

    record = {
        "archive": "/b/srht-backup-20261206T030000Z.tar",
        "hosts": {"alpha": "alpha=root@198.51.100.5"},
        "ok": True,
        "finished": "2026-12-06T03:20:00+00:00",
        "verify_s": 3.2,
        "restore_s": 250.0,
        "working_s": 301.4,
        "checks": [
            {"name": "row counts", "state": "pass", "detail": "12 tables match the manifest"},
            {"name": "ticket reads back", "state": "skip", "detail": "todo holds no ticket"},
        ],
        "left": {},
    }
    subject, body = result_mail("Example", record)
    assert subject == "[Example] restore drill passed"
    assert "srht-backup-20261206T030000Z.tar restored to a working site in 301s" in body
    assert "  pass row counts: 12 tables match the manifest" in body
    assert "  skip ticket reads back: todo holds no ticket" in body
    assert "alpha=root@198.51.100.5" in body
    failed = {**record, "ok": False, "failed": "paste reads back: 404", "left": {"alpha": ["x"]}}
    subject, body = result_mail("Example", failed)
    assert subject == "[Example] restore drill FAILED"
    assert "FAILED: paste reads back: 404" in body and "alpha: x" in body


def _age_key():  # type: ignore[no-untyped-def]
    import pyrage

    return pyrage.x25519.Identity.generate()


def test_a_failed_drill_with_mail_mails_the_admin_and_is_red_in_status(tmp_path: Path) -> None:
    """An archive of the scheduled backups that the key given does not
    open: the drill fails before any host is touched, records it, and
    mails the admin; status shows it red."""
    import pyrage
    from click.testing import CliRunner
    from srht_deploy import Site
    from srht_installer.drill import drill_command, last_drill, record_path

    config = write_config(tmp_path / "config.ini", hosts="alpha=root@198.51.100.5")
    data = configparser.ConfigParser(interpolation=None)
    data.read(config)
    content = {s: dict(data[s]) for s in data.sections()}
    outbox = tmp_path / "outbox"
    content["mail"] = {"smtp-from": f"srht@{DOMAIN}", "outbox-dir": str(outbox)}
    content["drill"]["mail-to"] = "drills@example.org"
    config.write_text(dump_ini(content))
    archive = tmp_path / "srht-backup-20261206T030000Z.tar.age"
    archive.write_bytes(pyrage.encrypt(b"not the admin's", [_age_key().to_public()]))
    wrong = tmp_path / "wrong-key.txt"
    wrong.write_text(f"{_age_key()}\n")

    result = CliRunner().invoke(
        drill_command,
        [str(archive), "--config", str(config), "--identity", str(wrong), "--mail"],
    )
    assert result.exit_code == 1, result.output
    assert "does not open with that key" in result.output
    assert "The drill failed before anything was installed." in result.output
    assert not list(tmp_path.glob("srht-drill-*")) and not (tmp_path / "config.ini.drills").exists()
    record = json.loads(record_path(config).read_text())
    assert record["ok"] is False and "does not open with that key" in record["failed"]
    (mail,) = outbox.glob("*.eml")
    message = email.message_from_bytes(mail.read_bytes(), policy=email.policy.default)
    assert message["To"] == "drills@example.org"
    assert message["Subject"] == "[srht] restore drill FAILED"
    text = message.get_content()
    assert "does not open with that key" in text and archive.name in text
    check = last_drill(config, Site.from_config(config))
    assert check.state == "red" and "does not open with that key" in check.detail, check

    # Without a key at all: said, recorded, mailed too.
    result = CliRunner().invoke(drill_command, [str(archive), "--config", str(config), "--mail"])
    assert result.exit_code == 1 and "is encrypted: give --identity KEYFILE" in result.output
    assert len(list(outbox.glob("*.eml"))) == 2

    # --scheduled with no [backup] to take the archive from: the same.
    result = CliRunner().invoke(drill_command, ["--scheduled", "--config", str(config), "--mail"])
    assert result.exit_code == 1 and "has no [backup] section" in result.output
    record = json.loads(record_path(config).read_text())
    assert record["ok"] is False and "scheduled backups' newest archive" in record["failed"]
    assert len(list(outbox.glob("*.eml"))) == 3


@pytest.mark.parametrize(
    ("record", "state", "words"),
    [
        (None, "yellow", "no restore drill ever ran"),
        ({"ok": True, "days": 1, "working_s": 312.4}, "green", "passed 1 days ago"),
        ({"ok": True, "days": 9}, "yellow", "older than [drill] max-age (7 days)"),
        ({"ok": False, "days": 0, "failed": "paste reads back: 404"}, "red", "paste reads back"),
    ],
)
def test_status_shows_the_last_drill_and_its_age(
    tmp_path: Path, record: dict | None, state: str, words: str
) -> None:
    from srht_deploy import Site
    from srht_installer.drill import last_drill, record_path

    config = write_config(tmp_path / "config.ini", **{"max-age": "7"})
    site = Site.from_config(config)
    if record is not None:
        finished = datetime.now(UTC) - timedelta(days=record.pop("days"), minutes=5)
        record_path(config).write_text(
            json.dumps(
                {"archive": "/b/srht-backup-x.tar", "finished": finished.isoformat(), **record}
            )
        )
    check = last_drill(config, site)
    assert check.state == state and words in check.detail, check


def test_no_host_gets_the_drill_section(tmp_path: Path) -> None:
    """Only the deploying machine reads ``[drill]``: its paths are of that
    machine, and the hosts' ``srht`` has no use for them."""
    from srht_deploy import Site

    config = write_config(
        tmp_path / "config.ini", hosts="alpha=root@198.51.100.5", **{"mail-to": "d@example.org"}
    )
    site = Site.from_config(config)
    for host in ("alpha", "beta"):
        text = site.host_config(host)
        assert "[drill]" not in text and "d@example.org" not in text


# -- machines on [drill] machine-host ------------------------------------------------------


def test_the_machine_host_keys_are_checked(tmp_path: Path) -> None:
    from srht_core.config import load_config
    from srht_core.schema import DRILL, SshTarget

    config = write_config(
        tmp_path / "config.ini", **{"machine-host": "admin@spare.example.org:2222"}
    )
    loaded = load_config(config)
    assert [p for p in loaded.bind({"drill": DRILL}) if p.section == "drill"] == []
    drill = loaded["drill"]
    assert drill.get("machine-host") == SshTarget("host", "admin", "spare.example.org", 2222)
    assert drill.get("machine-network") == "10.213.77.0/24"
    assert drill.get("machine-boot-timeout") == 120
    for key, value, words in (
        ("machine-host", "spare example", "not [USER@]ADDRESS[:PORT]"),
        ("machine-network", "10.1.0.0/16", "not a private IPv4 /24"),
        ("machine-network", "8.8.8.0/24", "not a private IPv4 /24"),
        ("machine-network", "fd00::/64", "not an IPv4 network"),
    ):
        bad = write_config(tmp_path / f"{key}.ini", **{key: value})
        problems = [p for p in load_config(bad).bind({"drill": DRILL}) if p.section == "drill"]
        assert len(problems) == 1 and words in problems[0].message, problems


def test_a_proxy_command_reaches_the_hosts_through_the_jump_host(tmp_path: Path) -> None:
    """``[deploy] ssh-proxy-command``: the installer's ssh gets it as
    ProxyCommand, pyinfra an ssh_config that paramiko reads the same way."""
    import paramiko
    from srht_deploy import Site
    from srht_deploy.inventory_data import host_data
    from srht_installer.drill_machines import proxy_command
    from srht_installer.hosts import ssh_argv, ssh_settings

    jump = SshTarget("host", "root", "203.0.113.9", 2200)
    base = ssh_settings(write_config(tmp_path / "plain.ini"))
    assert not any(o.startswith("ProxyCommand=") for o in base.options())
    command = proxy_command(base, jump)
    assert command.startswith("ssh -o BatchMode=yes") and "LogLevel=ERROR" in command
    assert command.endswith("-p 2200 -W %h:%p root@203.0.113.9")

    config = write_config(tmp_path / "config.ini")
    data = configparser.ConfigParser(interpolation=None)
    data.read(config)
    content = {s: dict(data[s]) for s in data.sections()}
    content["deploy"]["ssh-proxy-command"] = command
    config.write_text(dump_ini(content))
    settings = ssh_settings(config)
    argv = ssh_argv(settings, settings.targets["alpha"], ["true"])
    assert argv[argv.index(f"ProxyCommand={command}") - 1] == "-o"

    data_alpha = host_data(Site.from_config(config), "alpha")
    ssh_config = Path(data_alpha["ssh_config_file"])
    assert ssh_config.stat().st_mode & 0o777 == 0o600
    assert ssh_config.parent.stat().st_mode & 0o777 == 0o700
    parsed = paramiko.SSHConfig.from_path(str(ssh_config)).lookup("192.0.2.10")
    assert parsed["proxycommand"] == command.replace("%h:%p", "192.0.2.10:22")


def test_the_copy_of_the_config_for_machines_goes_through_the_machine_host(
    tmp_path: Path,
) -> None:
    from srht_installer.drill import drill_config

    archived = write_config(tmp_path / "archived.ini").read_bytes()
    machines = {"alpha": SshTarget("alpha", "root", "10.213.77.2", 22)}
    path = drill_config(
        archived, machines, tmp_path, tmp_path / "machine-key", "ssh -W %h:%p j", "10.213.77.0/24"
    )
    copy = configparser.ConfigParser(interpolation=None)
    copy.read(path)
    assert copy["deploy"]["hosts"] == "alpha=root@10.213.77.2"
    assert copy["deploy"]["ssh-proxy-command"] == "ssh -W %h:%p j"
    assert copy["deploy"]["ssh-key"] == str(tmp_path / "machine-key")
    # The machines' services call each other's internal APIs on their network.
    networks = copy["srht"]["internal-networks"]
    assert networks == "127.0.0.0/8, 192.0.2.0/24, 10.213.77.0/24"


def _shell_ok(script: str) -> None:
    import subprocess

    result = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_machines_scripts_name_only_the_drills_own_things() -> None:
    from srht_installer.drill_machines import (
        boot_script,
        cleanup_script,
        image_script,
        plan_machines,
        prepare_script,
        wait_script,
    )

    machines = plan_machines(["alpha", "beta"], "10.213.77.0/24")
    assert [(m.name, m.address, m.netns, m.veth) for m in machines] == [
        ("alpha", "10.213.77.2", "srht-drill-1", "srhtdrill-1"),
        ("beta", "10.213.77.3", "srht-drill-2", "srhtdrill-2"),
    ]
    boot = boot_script(machines, "10.213.77.0/24", "/var/cache/srht-drill/image-x", "ssh-ed25519 K")
    for script in (
        prepare_script(),
        image_script(),
        cleanup_script(),
        boot,
        wait_script(machines, 9),
    ):
        _shell_ok(script)
    assert "ip addr add 10.213.77.1/24 dev srhtdrill0" in boot
    assert "ip saddr 10.213.77.0/24 ip daddr != 10.213.77.0/24 masquerade" in boot
    assert "ip -n srht-drill-2 route add default via 10.213.77.1" in boot
    assert "key='ssh-ed25519 K'" in boot and "/root/.ssh/authorized_keys" in boot
    assert "-D /var/lib/srht-drill/machines/beta -M srht-drill-2 --hostname=beta" in boot
    assert 'echo "$! /var/lib/srht-drill/machines/alpha" >> "$state/pids"' in boot
    # Only the drill's names: never a pattern that could match another's.
    cleanup = cleanup_script()
    assert "grep '^srht-drill-'" in cleanup and "'^(srhtdrill-[0-9]+|srhtdrill0)$'" in cleanup
    assert "nft delete table ip srht_drill" in cleanup and "killall" not in cleanup
    assert "pkill" not in cleanup
    image = image_script()
    assert "--include=openssh-server,python3,sudo,systemd,systemd-sysv,dbus" in image
    assert "/var/cache/srht-drill" in image and "flock 9" in image


def test_a_machine_is_stopped_by_its_recorded_pid_only_while_it_runs_that_root(
    tmp_path: Path,
) -> None:
    """The cleanup's check before it signals a recorded PID: the process
    must still be the nspawn of that machine's root (a PID reused by
    another process after a crash is left alone)."""
    import subprocess
    import sys

    from srht_installer.drill_machines import _alive_check

    root = str(tmp_path / "machines/alpha")
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "-D", root, "-M", "x"]
    )
    try:
        check = _alive_check(str(process.pid), root)
        assert subprocess.run(["sh", "-c", check]).returncode == 0
        other = _alive_check(str(process.pid), root + "-other")
        assert subprocess.run(["sh", "-c", other]).returncode != 0
    finally:
        process.kill()
        process.wait()
    assert subprocess.run(["sh", "-c", check]).returncode != 0


def test_an_unreachable_machine_host_fails_naming_it_and_the_machine_host_is_never_the_site(
    tmp_path: Path,
) -> None:
    from srht_installer.drill import HostsProblem
    from srht_installer.drill_machines import MachineError, MachineSet

    from srht_core.config import load_config
    from srht_core.schema import DRILL

    config = write_config(tmp_path / "config.ini", **{"machine-host": "root@127.0.0.1:1"})
    loaded = load_config(config)
    loaded.bind({"drill": DRILL})
    target = loaded.get("drill", "machine-host")
    machines = MachineSet(config, target, None, loaded, tmp_path)
    with pytest.raises(MachineError, match=r"drill host machine-host \(root@127.0.0.1:1\) cannot"):
        machines.boot(["alpha"])
    with pytest.raises(HostsProblem, match=r"machine-host root@127.0.0.1:1 is at an address"):
        machines.refuse({"127.0.0.1"})
    machines.refuse({"192.0.2.10"})


def test_a_proxy_command_under_pyinfras_gevent_gets_every_byte() -> None:
    """pyinfra's CLI runs paramiko under gevent: the inventory's fix makes
    ProxyCommand write all of a large send (gevent's pipe takes part of it)
    and wait with gevent's select. In a process of its own, as pyinfra's."""
    import subprocess
    import sys

    script = """
import paramiko.proxy
from gevent import monkey
monkey.patch_all()
from srht_deploy.inventory_data import _cooperative_proxy
_cooperative_proxy()
proxy = paramiko.proxy.ProxyCommand("wc -c")
sent = proxy.send(b"x" * 20_000_000)
proxy.process.stdin.close()
print(sent, proxy.process.stdout.read().decode().strip())
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["20000000", "20000000"], result.stdout
