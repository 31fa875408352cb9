"""Scheduled backups without hosts: the ``[backup]`` section's checks, the
units the deploy writes, and the archive's life at a destination folder
(encrypted, read back, found damaged, pruned). The same steps on real
test hosts, fired by the timer's service, are in ``test_backup.py``."""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyrage
import pytest

from srht_core import ConfigError
from srht_core.config import dump_ini
from srht_core.keys import generate_keys
from srht_core.schema import Calendar

TESTS = Path(__file__).parents[1]
sys.path.insert(0, str(TESTS))

from support.smtp_sink import SmtpSink  # noqa: E402 - after the path is set


def write_config(
    folder: Path, backup: dict[str, Any] | None, mail: dict[str, Any] | None = None
) -> Path:
    keys = generate_keys()
    (folder / "deploy-key").write_text("a key\n")
    data: dict[str, dict[str, Any]] = {
        "srht": {
            "global-domain": "example.test",
            "service-key": keys.service_key,
            "network-key": keys.network_key,
            "site-owner-email": "owner@example.test",
            "internal-networks": "127.0.0.0/8, 192.0.2.0/24",
        },
        "webhooks": {"private-key": keys.webhook_private_key},
        "deploy": {
            "hosts": "alpha=root@192.0.2.10, beta=root@192.0.2.11, gamma=root@192.0.2.12",
            "postgresql-host": "alpha",
            "ssh-key": "deploy-key",
            "ssh-host-key-checking": "no",
            "ssh-known-hosts": "/dev/null",
        },
        "meta": {"origin": "https://meta.example.test", "hosts": "alpha"},
        "paste": {"origin": "https://paste.example.test", "hosts": "beta"},
    }
    if backup is not None:
        data["backup"] = backup
    if mail is not None:
        data["mail"] = mail
    path = folder / "config.ini"
    path.write_text(dump_ini(data))
    return path


def site_of(path: Path) -> Any:
    from srht_deploy import Site

    return Site.from_config(path)


RECIPIENT = str(pyrage.x25519.Identity.generate().to_public())


@pytest.mark.parametrize(
    "expression",
    ["daily", "hourly", "*-*-* 03:00", "Mon..Fri 02:30", "Sat *-*-01 04:00:00 UTC", "weekly UTC"],
)
def test_systemd_calendar_expressions_are_accepted(expression: str) -> None:
    assert Calendar().parse(expression) == expression


@pytest.mark.parametrize("expression", ["every day", "3am", "daily daily", "Mon..", "25:00 x"])
def test_a_wrong_schedule_says_what_to_write(expression: str) -> None:
    with pytest.raises(ValueError, match="not a systemd calendar expression.*'\\*-\\*-\\* 03:00'"):
        Calendar().parse(expression)


def test_backup_section_problems_are_named_with_their_lines(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        {
            "schedule": "at three",
            "host": "zeta",
            "destination": "omega:/srv/backups",
            "recipient": "AGE-SECRET-KEY-1QQQ",
        },
    )
    with pytest.raises(ConfigError) as raised:
        site_of(path)
    text = "\n".join(str(p) for p in raised.value.problems)
    assert "[backup] schedule: not a systemd calendar expression: 'at three'" in text
    assert "[backup] recipient: not an age public key (age1...): that is the private key" in text
    # Each problem at its line of the file.
    assert all(":" in str(p).split(" ", 1)[0] for p in raised.value.problems), text

    path = write_config(
        tmp_path, {"host": "zeta", "destination": "omega:/srv/backups", "recipient": RECIPIENT}
    )
    with pytest.raises(ConfigError) as raised:
        site_of(path)
    text = "\n".join(str(p) for p in raised.value.problems)
    assert "[backup] host: 'zeta' is not in [deploy] hosts (alpha, beta, gamma)" in text
    assert "[backup] destination: 'omega' is not in [deploy] hosts" in text

    for backup, message in (
        ({}, "give recipient (an age public key) or passphrase-file"),
        ({"recipient": RECIPIENT, "passphrase-file": "p"}, "not both"),
        ({"recipient": RECIPIENT, "host": "gamma"}, "gamma runs no srht service"),
        ({"recipient": RECIPIENT, "destination": "backups"}, "write /PATH"),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            site_of(write_config(tmp_path, backup))


def test_the_backup_host_gets_units_and_secrets_and_no_host_config_has_the_section(
    tmp_path: Path,
) -> None:
    from srht_deploy.backupplan import backup_secrets, backup_units

    path = write_config(
        tmp_path, {"recipient": RECIPIENT, "schedule": "*-*-* 03:00", "destination": "beta:/srv/b"}
    )
    site = site_of(path)
    plan = site.backup
    assert (plan.host, plan.destination_host, plan.destination) == ("alpha", "beta", "/srv/b")
    assert plan.mail_to == "owner@example.test" and (plan.keep_count, plan.keep_days) == (7, 30)
    units = backup_units(plan, "/opt/srht/venv/bin/python", [])
    assert "OnCalendar=*-*-* 03:00\nPersistent=yes" in units["srht-backup.timer"]
    service = units["srht-backup.service"]
    assert "User=srht-backup" in service and "Type=oneshot" in service
    assert "--config /etc/srht-secrets/backup-config.ini" in service
    secrets = {s.name: s for s in backup_secrets(site.config, plan, "alpha")}
    assert set(secrets) == {"backup-config.ini", "backup-ssh-key"}
    assert {s.owner for s in secrets.values()} == {"srht-backup"}
    assert secrets["backup-config.ini"].text == path.read_text()
    assert backup_secrets(site.config, plan, "beta") == []
    for host in ("alpha", "beta"):
        text = site.host_config(host)
        assert "[backup]" not in text and "[deploy]" not in text


# -- an archive's life at the destination -----------------------------------------------------


def make_archive(folder: Path, when: datetime, identity: Any) -> str:
    """One encrypted archive with its index in ``folder``, as a run leaves it."""
    from srht_installer.scheduled import Destination, encrypt

    name = f"srht-backup-{when:%Y%m%dT%H%M%SZ}.tar.age"
    plain = folder.parent / "plain.tar"
    plain.write_bytes(os.urandom(50_000))
    encrypted = folder.parent / name
    size, sha256 = encrypt(plain, encrypted, recipient=str(identity.to_public()), passphrase=None)
    destination = Destination(str(folder))
    destination.put(name, encrypted)
    destination.put_text(name + ".json", json.dumps({"size": size, "sha256": sha256}))
    encrypted.unlink()
    plain.unlink()
    return name


def test_archives_are_verified_and_pruned_never_the_newest_good_one(tmp_path: Path) -> None:
    from srht_installer.scheduled import Destination, decrypt_archive, retention, verify_all

    folder = tmp_path / "backups"
    folder.mkdir()
    identity = pyrage.x25519.Identity.generate()
    now = datetime(2026, 6, 10, 3, 0, tzinfo=UTC)
    names = [make_archive(folder, now.replace(day=day), identity) for day in (1, 6, 7, 8, 9, 10)]
    destination = Destination(str(folder))
    good, damaged = verify_all(destination)
    assert (good, damaged) == (names, [])
    assert all(os.stat(folder / n).st_mode & 0o777 == 0o600 for n in names)

    # The admin's key opens one; another key does not.
    key = tmp_path / "key.txt"
    key.write_text(f"# created: now\n{identity}\n")
    decrypt_archive(folder / names[0], tmp_path / "out.tar", identity=key)
    assert (tmp_path / "out.tar").stat().st_size == 50_000
    other = tmp_path / "other.txt"
    other.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    with pytest.raises(ValueError, match="does not open with that key"):
        decrypt_archive(folder / names[0], tmp_path / "out2.tar", identity=other)
    assert not (tmp_path / "out2.tar").exists()

    # One byte flipped in the newest: found, by name.
    with open(folder / names[-1], "r+b") as data:
        data.seek(1000)
        byte = data.read(1)
        data.seek(1000)
        data.write(bytes([byte[0] ^ 1]))
    good, damaged = verify_all(destination)
    assert good == names[:-1]
    assert len(damaged) == 1 and damaged[0].startswith(f"{names[-1]}: damaged: 50")

    # keep-count 3 (the damaged newest counts), keep-days 5: the 7th and the
    # 6th go by count, the 1st by both.
    removed = retention(destination, good, 3, 5, now.timestamp())
    assert removed == [names[2], names[1], names[0]]
    left = [names[3], names[4], names[5]]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        n for name in left for n in (name, name + ".json")
    )
    # Even when every limit says go, the newest good archive (the 9th) stays.
    removed = retention(destination, [names[3], names[4]], 1, 1, now.timestamp() + 400 * 86400)
    assert removed == [names[5], names[3]]
    assert sorted(p.name for p in folder.iterdir()) == [names[4], names[4] + ".json"]


def test_status_reads_the_schedule_period() -> None:
    from srht_installer.scheduled import _period

    text = (
        "  Original form: daily\nNormalized form: *-*-* 00:00:00\n"
        "    Next elapse: Mon 2026-12-07 00:00:00 UTC\n       From now: 11h left\n"
        "       Iter. #2: Tue 2026-12-08 00:00:00 UTC\n"
    )
    assert _period(text) == 86400
    assert _period("nothing") is None


def test_status_is_red_for_a_missed_or_failed_backup_and_green_otherwise(tmp_path: Path) -> None:
    from srht_installer.scheduled import judge

    plan = site_of(write_config(tmp_path, {"recipient": RECIPIENT})).backup
    daily = (
        "    Next elapse: Mon 2026-12-07 00:00:00 UTC\n"
        "       Iter. #2: Tue 2026-12-08 00:00:00 UTC\n"
    )
    now = 1_800_000_000.0
    timer = ["active", "5000000", "200000.0", "90000.0"]  # started 199995 s ago
    good = {"archive": "srht-backup-x.tar.age", "finished": now - 3600, "size": 10}
    ok = {"ok": True, "last-good": good}

    check = judge(plan, now, timer, daily, ok)
    assert check.state == "green" and "srht-backup-x.tar.age" in check.detail
    # A day and a quarter later, with no new backup: missed.
    check = judge(plan, now + 30 * 3600, timer, daily, ok)
    assert check.state == "red" and check.detail.startswith("missed: the last good backup")
    assert "every 24 hours" in check.detail
    failed = {"ok": False, "finished": now, "error": "pg_dump failed", "last-good": good}
    check = judge(plan, now, timer, daily, failed)
    assert check.state == "red" and "failed: pg_dump failed" in check.detail
    assert "systemctl start srht-backup` on alpha" in check.detail
    # Before the first run: yellow, until the schedule is overdue.
    assert judge(plan, now, ["active", "99000000000", "100000.0"], daily, None).state == "yellow"
    check = judge(plan, now, timer, daily, None)
    assert check.state == "red" and check.detail.startswith("missed: no backup yet")
    check = judge(plan, now, ["inactive", "0", "1.0"], daily, ok)
    assert check.state == "red" and "srht-backup.timer is inactive" in check.detail


def test_a_failed_run_is_mailed_to_the_admin_through_smtp(tmp_path: Path) -> None:
    from srht_installer.scheduled import Outcome, _mail_admin

    with SmtpSink() as sink:
        mail = {
            "smtp-host": "127.0.0.1",
            "smtp-port": str(sink.port),
            "smtp-encryption": "none",
            "smtp-from": "srht@example.test",
        }
        backup = {"recipient": RECIPIENT, "mail-to": "ops@example.test"}
        site = site_of(write_config(tmp_path, backup, mail))
        last = {"archive": "srht-backup-20260601T030000Z.tar.age", "finished": 1780282800}
        outcome = Outcome(started=0, error="pg_dump failed on alpha", last_good=last)
        _mail_admin(site, site.backup, outcome)
        (received,) = sink.wait_for(1)
    assert received.recipients == ["ops@example.test"]
    message = received.message
    assert message["Subject"] == "[srht] backup FAILED"
    body = message.get_content()
    assert "pg_dump failed on alpha" in body
    assert "Last good backup: srht-backup-20260601T030000Z.tar.age (2026-06-01 03:00 UTC)" in body
    assert "systemctl start srht-backup` on alpha" in body


def test_a_passphrase_encrypts_in_age_scrypt_mode(tmp_path: Path) -> None:
    from srht_installer.scheduled import decrypt_archive, encrypt

    plain = tmp_path / "site.tar"
    plain.write_bytes(os.urandom(20_000))
    encrypted = tmp_path / "site.tar.age"
    size, _sha256 = encrypt(plain, encrypted, recipient=None, passphrase="correct horse")
    assert encrypted.read_bytes().startswith(b"age-encryption.org/v1\n-> scrypt ")
    assert size == encrypted.stat().st_size and encrypted.stat().st_mode & 0o777 == 0o600
    decrypt_archive(encrypted, tmp_path / "back.tar", passphrase="correct horse")
    assert (tmp_path / "back.tar").read_bytes() == plain.read_bytes()
    with pytest.raises(ValueError, match="does not open with that key"):
        decrypt_archive(encrypted, tmp_path / "wrong.tar", passphrase="wrong horse")


# -- a destination outside the site (ssh://) ------------------------------------------------


def host_key() -> str:
    """A real ed25519 public key, as ``ssh-keyscan`` prints one (with the address)."""
    import base64

    blob = b"\0\0\0\x0bssh-ed25519\0\0\0\x20" + os.urandom(32)
    return f"203.0.113.7 ssh-ed25519 {base64.b64encode(blob).decode()}"


def test_an_offsite_destination_is_parsed_and_its_problems_named_at_their_lines(
    tmp_path: Path,
) -> None:
    key = host_key()
    backup = {
        "recipient": RECIPIENT,
        "destination": "ssh://keeper@203.0.113.7:2222/home/keeper/srht/",
        "destination-host-key": key,
    }
    plan = site_of(write_config(tmp_path, backup)).backup
    offsite = plan.offsite
    assert (offsite.user, offsite.address, offsite.port) == ("keeper", "203.0.113.7", 2222)
    assert offsite.host_key == key.split(" ", 1)[1] and offsite.ssh_key is None
    assert plan.destination == "/home/keeper/srht" and plan.remote_destination
    assert plan.where == "ssh://keeper@203.0.113.7:2222/home/keeper/srht"
    assert offsite.known_hosts() == f"[203.0.113.7]:2222 {offsite.host_key}\n"
    # An IPv6 address in brackets; root and port 22 unless given.
    backup["destination"] = "ssh://[2001:db8::7]/srv/srht"
    plan = site_of(write_config(tmp_path, backup)).backup
    assert (plan.offsite.user, plan.offsite.address, plan.offsite.port) == (
        "root",
        "2001:db8::7",
        22,
    )
    assert plan.where == "ssh://root@[2001:db8::7]/srv/srht"
    assert plan.offsite.known_hosts().startswith("2001:db8::7 ssh-ed25519 ")

    def problems(backup: dict[str, Any], checking: str = "yes") -> str:
        path = write_config(tmp_path, {"recipient": RECIPIENT, **backup})
        path.write_text(
            path.read_text().replace(
                "ssh-host-key-checking = no", f"ssh-host-key-checking = {checking}"
            )
        )
        with pytest.raises(ConfigError) as raised:
            site_of(path)
        lines = path.read_text().splitlines()
        for problem in raised.value.problems:  # each at the line of its key
            if problem.key == "destination-host-key" and "missing" in problem.message:
                assert lines[problem.line - 1].startswith("destination = "), problem
            elif problem.key:
                assert lines[problem.line - 1].startswith(problem.key + " ="), problem
            assert str(problem).startswith(f"{path}:"), problem
        return "\n".join(str(p) for p in raised.value.problems)

    # No host key, with host keys checked: nothing is trusted on first use.
    text = problems({"destination": "ssh://keeper@203.0.113.7/home/keeper/srht"})
    assert "[backup] destination-host-key: missing: the backup host must know the host key" in text
    assert "ssh-keyscan -t ed25519 ADDRESS" in text
    # With checking off ([deploy] ssh-host-key-checking = no), it may be left out.
    plan = site_of(
        write_config(tmp_path, {"recipient": RECIPIENT, "destination": "ssh://k@203.0.113.7/b"})
    ).backup
    assert plan.offsite.host_key is None and plan.offsite.known_hosts() == ""
    for destination, message in (
        ("ssh://keeper@203.0.113.7", "names no folder: add its absolute path"),
        ("ssh://keeper@203.0.113.7/", "names no folder"),
        ("ssh://keeper@203.0.113.7:99999/b", "port 99999 out of range"),
        ("ssh://keeper@203.0.113.7:/b", "not ssh://[USER@]ADDRESS[:PORT]/PATH"),
        ("ssh://keeper@203.0.113.7/etc", "/etc is a system folder"),
        ("keeper@203.0.113.7/b", "ssh://[USER@]ADDRESS[:PORT]/PATH (a host outside the site)"),
    ):
        text = problems({"destination": destination, "destination-host-key": key})
        assert f"[backup] destination: {message}" in text or message in text, text
    for wrong, message in (
        ("AAAAC3NzaC1lZDI1NTE5", "not an SSH host key (TYPE BASE64)"),
        ("ssh-ed25519 AAAA$$", "the ssh-ed25519 key is not base64"),
        (f"ssh-rsa {key.split()[2]}", "the key's data is not a ssh-rsa key"),
    ):
        text = problems(
            {"destination": "ssh://k@203.0.113.7/b", "destination-host-key": wrong}, "no"
        )
        assert f"[backup] destination-host-key: {message}" in text, text
    # Off-site keys with a destination of the site: said, not ignored.
    text = problems({"destination": "beta:/srv/b", "destination-host-key": key}, "no")
    assert "[backup] destination-host-key: only an ssh:// destination" in text


def test_the_backup_host_gets_the_offsite_host_key_and_key_as_its_own_secrets(
    tmp_path: Path,
) -> None:
    from srht_deploy.backupplan import backup_secrets, backup_units

    (tmp_path / "offsite-key").write_text("the off-site key\n")
    key = host_key()
    backup = {
        "recipient": RECIPIENT,
        "destination": "ssh://keeper@203.0.113.7/home/keeper/srht",
        "destination-host-key": key,
        "destination-ssh-key": "offsite-key",
    }
    site = site_of(write_config(tmp_path, backup))
    plan = site.backup
    secrets = {s.name: s for s in backup_secrets(site.config, plan, "alpha")}
    assert set(secrets) == {
        "backup-config.ini",
        "backup-ssh-key",
        "backup-offsite-known-hosts",
        "backup-offsite-ssh-key",
    }
    assert {s.owner for s in secrets.values()} == {"srht-backup"}
    assert (
        secrets["backup-offsite-known-hosts"].text == "203.0.113.7 " + key.split(" ", 1)[1] + "\n"
    )
    assert secrets["backup-offsite-ssh-key"].text == "the off-site key\n"
    assert secrets["backup-ssh-key"].text == "a key\n"  # the site's hosts: the deploy's key
    # The destination is not a folder of the backup host: the unit may not write there.
    service = backup_units(plan, "/usr/bin/python3", ["/var/lib/srht/outbox"])[
        "srht-backup.service"
    ]
    assert "/home/keeper" not in service
    # A key file that is not there is named.
    backup["destination-ssh-key"] = "missing-key"
    site = site_of(write_config(tmp_path, backup))
    with pytest.raises(ConfigError, match=r"\[backup\] destination-ssh-key: cannot read .*missing"):
        backup_secrets(site.config, site.backup, "alpha")


def test_offsite_commands_run_as_the_account_with_the_configured_host_key_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shlex

    from srht_installer import scheduled

    (tmp_path / "offsite-key").write_text("the off-site key\n")
    key = host_key()
    backup = {
        "recipient": RECIPIENT,
        "destination": "ssh://keeper@203.0.113.7:2222/home/keeper/srht",
        "destination-host-key": key,
        "destination-ssh-key": "offsite-key",
    }
    path = write_config(tmp_path, backup)
    plan = site_of(path).backup
    # On the backup host: the secret files it was given.
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("backup-ssh-key", "backup-offsite-known-hosts", "backup-offsite-ssh-key"):
        (secrets / name).write_text("x\n")
    monkeypatch.setattr("srht_core.HostNeeds.SECRETS_DIR", str(secrets))
    remote = scheduled._destination(plan, path, {}).remote
    argv = remote.argv("ls -1A /home/keeper/srht")
    options = " ".join(argv[: argv.index("--")])
    assert f"-i {secrets}/backup-offsite-ssh-key" in options
    assert f"UserKnownHostsFile={secrets}/backup-offsite-known-hosts" in options
    assert "StrictHostKeyChecking=yes" in options and "GlobalKnownHostsFile=/dev/null" in options
    assert "LogLevel=INFO" in options  # a refused login says so ("Permission denied")
    assert argv[argv.index("--") - 1] == "keeper@203.0.113.7" and "-p 2222" in options
    assert shlex.split(argv[-1]) == ["sh", "-c", "ls -1A /home/keeper/srht"]  # no sudo
    destination = scheduled._destination(plan, path, {})
    assert destination.where == "ssh://keeper@203.0.113.7:2222/home/keeper/srht"

    # By hand on the deploying machine (no secrets): its own key file, and
    # the host key from the config, in a known-hosts file of its own.
    monkeypatch.setattr("srht_core.HostNeeds.SECRETS_DIR", str(tmp_path / "none"))
    argv = scheduled._destination(plan, path, {}).remote.argv("true")
    options = argv[: argv.index("--")]
    assert options[options.index("-i") + 1] == str(tmp_path / "offsite-key")
    (known,) = [o.split("=", 1)[1] for o in options if o.startswith("UserKnownHostsFile=")]
    assert Path(known).read_text() == plan.offsite.known_hosts()

    # A host of the site, reached as a user other than root, still goes through sudo.
    from srht_installer.hosts import SshSettings, ssh_argv

    from srht_core.schema import SshTarget

    argv = ssh_argv(SshSettings({}), SshTarget("beta", "ops", "192.0.2.11", 22), ["ls"])
    assert shlex.split(argv[-1]) == ["sudo", "-n", "--", "ls"]
    assert "LogLevel=ERROR" in argv


def test_a_changed_host_key_is_said_in_one_line_with_what_the_host_sent(tmp_path: Path) -> None:
    from srht_installer import scheduled

    backup = {
        "recipient": RECIPIENT,
        "destination": "ssh://keeper@203.0.113.7/home/keeper/srht",
        "destination-host-key": host_key(),
    }
    path = write_config(tmp_path, backup)
    remote = scheduled._destination(site_of(path).backup, path, {}).remote
    banner = (  # what OpenSSH prints (LogLevel=ERROR) for a key other than the known one
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
        "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
        "The fingerprint for the ED25519 key sent by the remote host is\n"
        "SHA256:n4TsSsvTwuyd1Ow4ZfkkqAVkVLl4b1k8P3UYzOrMXuA.\n"
        "Host key for 203.0.113.7 has changed and you have requested strict checking.\n"
        "Host key verification failed.\n"
    )
    message = str(remote._failed("make the backup folder", 255, banner))
    assert message.startswith(
        "could not reach the off-site host (keeper@203.0.113.7:22) over SSH to make the "
        "backup folder: its host key is not the one expected (it sent SHA256:n4TsSsvTwuyd1"
    )
    assert "nothing was written there" in message and "destination-host-key" in message
    assert "\n" not in message
