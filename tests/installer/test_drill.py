"""What ``srht-install drill`` decides on the deploying machine, before any
host: which archive, which drill hosts (never the site's own), the copy of
the config it restores with, and the status line of the last drill.

The drills themselves, on test hosts, are steps of ``test_backup.py``
(they restore that suite's backups onto hosts booted with its site's).
"""

from __future__ import annotations

import configparser
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest

from srht_core.config import dump_ini
from srht_core.keys import generate_keys
from srht_core.schema import HostEntry

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
