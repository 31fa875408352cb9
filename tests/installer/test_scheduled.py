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
