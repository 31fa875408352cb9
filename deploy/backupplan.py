"""Scheduled backups, as the deploy and the backup host see them: the
``[backup]`` section read into a :class:`BackupPlan`, the systemd units,
and the secret files the backup host is given.

Where the backup runs, and why there: a complete backup needs SSH to
every host of the site (to stop the daemons, dump the databases as
``postgres`` and tar the data folders, as ``srht-install backup`` does),
and the hosts' copies of the config leave ``[deploy]`` out. So one host,
``[backup] host``, is given what the deploying machine has: the site's
config as written (``[deploy]`` included, which is also what the archive
holds), the deploy's SSH key and known hosts, each a
:class:`~srht_core.SecretFile` readable only by the ``srht-backup``
account its timer runs as. That host can reach every other host as root,
exactly as the deploying machine can; nothing else on it can read those
files. The alternative, each host writing its own parts and the archive
assembled at the destination, would stop no daemon consistently across
hosts and would give every host a way to write to the destination.

The archives are encrypted with age to a public key (``recipient``) so
the backup host, though it writes them, cannot read the old ones; with a
``passphrase-file`` instead, it can (the passphrase is on it).

Nothing here imports pyinfra: the backup host reads its plan with this
module too (``srht_installer.scheduled``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srht_core import Config, ConfigError, ConfigProblem, HostNeeds, SecretFile

__all__ = [
    "BACKUP_USER",
    "SERVICE_UNIT",
    "STATE_DIR",
    "TIMER_UNIT",
    "BackupPlan",
    "backup_plan",
    "backup_secrets",
    "backup_units",
]

BACKUP_USER = "srht-backup"
SERVICE_UNIT = "srht-backup.service"
TIMER_UNIT = "srht-backup.timer"
#: The backup account's home: its state (``last.json``) and the staging
#: folder where an archive is assembled before it is encrypted.
STATE_DIR = "/var/lib/srht-backup"
#: The names of the secret files on the backup host (names, not secrets).
CONFIG_SECRET = "backup-config.ini"  # noqa: S105
KEY_SECRET = "backup-ssh-key"  # noqa: S105
KNOWN_HOSTS_SECRET = "backup-known-hosts"  # noqa: S105
PASSPHRASE_SECRET = "backup-passphrase"  # noqa: S105
_REMOTE = re.compile(r"^(?P<host>[a-z0-9][a-z0-9-]*):(?P<path>/.*)$")


@dataclass(frozen=True)
class BackupPlan:
    """``[backup]``, checked against the topology."""

    host: str
    schedule: str
    #: The host holding the archives (``host`` itself for a local folder).
    destination_host: str
    destination: str
    keep_count: int
    keep_days: int
    recipient: str | None
    passphrase_file: str | None
    online: bool
    mail_to: str | None

    @property
    def remote_destination(self) -> bool:
        return self.destination_host != self.host

    @property
    def where(self) -> str:
        return f"{self.destination_host}:{self.destination}"


def backup_plan(config: Config, topology: Any) -> BackupPlan | None:
    """The plan of ``config`` (bound to its schemas), ``None`` without a
    ``[backup]`` section.

    :raises ConfigError: naming each problem (the backup host is unknown or
        runs no srht, the destination names an unknown host, no or two ways
        to encrypt, no SSH key to give the backup host).
    """
    if not config.has_section("backup"):
        return None
    section = config["backup"]
    problems: list[ConfigProblem] = []

    def problem(key: str | None, message: str) -> None:
        raw = config.raw.get("backup")
        line = raw.values[key].line if raw is not None and key in raw.values else None
        problems.append(ConfigProblem(config.path, line, "backup", key, message))

    runs_srht = [p.name for p in topology.placements() if p.runs_srht]
    host = section.get("host")
    if not host:
        pg = topology.postgresql_host
        host = pg if pg in runs_srht else (runs_srht[0] if runs_srht else None)
    if host is None:
        problem("host", "no host of the site runs srht, so none can take the backups")
    elif host not in topology.hosts:
        problem("host", f"{host!r} is not in [deploy] hosts ({', '.join(topology.hosts)})")
    elif host not in runs_srht:
        problem(
            "host",
            f"{host} runs no srht service, so it has no srht to take backups with; "
            f"name one of {', '.join(runs_srht)}",
        )
    destination = str(section.get("destination") or "/var/backups/srht")
    destination_host = host or ""
    remote = _REMOTE.match(destination)
    if remote:
        destination_host, destination = remote["host"], remote["path"]
        if destination_host not in topology.hosts:
            problem(
                "destination",
                f"{destination_host!r} is not in [deploy] hosts: write NAME:/PATH with a "
                "host of the site, or /PATH for a folder on the backup host",
            )
    elif not destination.startswith("/"):
        problem("destination", "write /PATH (on the backup host) or NAME:/PATH (another host)")
    if destination.rstrip("/") in ("", "/etc", "/var", "/usr", "/var/lib", "/root"):
        problem("destination", f"{destination} is a system folder: give a folder of its own")
    recipient, passphrase = section.get("recipient"), section.get("passphrase-file")
    if not recipient and not passphrase:
        problem(
            None,
            "give recipient (an age public key) or passphrase-file: a backup holds every "
            "secret of the site and is never written unencrypted",
        )
    elif recipient and passphrase:
        problem("passphrase-file", "give recipient or passphrase-file, not both")
    if not config.get("deploy", "ssh-key"):
        problem(
            None,
            "[deploy] ssh-key is empty: the backup host reaches every host with the "
            "deploy's key, so it must be a file (not the SSH agent)",
        )
    if problems:
        raise ConfigError(problems)
    assert host is not None
    return BackupPlan(
        host=host,
        schedule=str(section["schedule"]),
        destination_host=destination_host,
        destination=destination.rstrip("/") or "/",
        keep_count=int(section["keep-count"]),
        keep_days=int(section["keep-days"]),
        recipient=recipient,
        passphrase_file=passphrase,
        online=bool(section["online"]),
        mail_to=section.get("mail-to") or config.get("srht", "site-owner-email"),
    )


def _read(config: Config, path: str, section: str, key: str) -> str:
    found = Path(path).expanduser()
    if not found.is_absolute():
        found = config.directory / found
    try:
        return found.read_text()
    except OSError as error:
        problem = ConfigProblem(config.path, None, section, key, f"cannot read {found}: {error}")
        raise ConfigError([problem]) from None


def secret_path(name: str) -> str:
    return f"{HostNeeds.SECRETS_DIR}/{name}"


def backup_secrets(config: Config, plan: BackupPlan | None, host: str) -> list[SecretFile]:
    """The secret files ``host`` gets: the site's config as written, the
    deploy's SSH key and known hosts, and the passphrase, on the backup
    host only, each readable by :data:`BACKUP_USER` alone."""
    if plan is None or host != plan.host:
        return []
    text = Path(config.path).read_text()
    secrets = [
        SecretFile(CONFIG_SECRET, BACKUP_USER, text),
        SecretFile(
            KEY_SECRET, BACKUP_USER, _read(config, config["deploy"]["ssh-key"], "deploy", "ssh-key")
        ),
    ]
    known = config.get("deploy", "ssh-known-hosts") or "~/.ssh/known_hosts"
    if config.get("deploy", "ssh-host-key-checking") != "no" and known != "/dev/null":
        secrets.append(
            SecretFile(
                KNOWN_HOSTS_SECRET, BACKUP_USER, _read(config, known, "deploy", "ssh-known-hosts")
            )
        )
    if plan.passphrase_file:
        secrets.append(
            SecretFile(
                PASSPHRASE_SECRET,
                BACKUP_USER,
                _read(config, plan.passphrase_file, "backup", "passphrase-file"),
            )
        )
    return secrets


def backup_units(plan: BackupPlan, python: str, writable: list[str]) -> dict[str, str]:
    """``{unit name: text}``: the oneshot service taking one backup and the
    timer starting it on the schedule (``Persistent``: a run missed while
    the host was off is made up at boot)."""
    from .render import HARDENING, HEADER  # render imports the model, which imports this

    # "-": a missing folder does not stop the unit from starting, so the run
    # itself finds it missing, says so and mails the admin.
    paths = " ".join(f"-{path}" for path in dict.fromkeys([STATE_DIR, *writable]))
    service = "\n".join(
        [
            HEADER.rstrip(),
            "[Unit]",
            "Description=srht: a scheduled backup of the whole site",
            "After=network-online.target",
            "Wants=network-online.target",
            "",
            "[Service]",
            "Type=oneshot",
            f"User={BACKUP_USER}",
            f"Group={BACKUP_USER}",
            "SupplementaryGroups=srht",
            "Environment=PYTHONDONTWRITEBYTECODE=1",
            "Environment=PATH=/usr/local/bin:/usr/bin:/bin",
            f"WorkingDirectory={STATE_DIR}",
            f"ExecStart={python} -m srht_installer.scheduled run "
            f"--config {secret_path(CONFIG_SECRET)}",
            "Nice=10",
            "IOSchedulingClass=idle",
            "UMask=0077",
            *HARDENING,
            f"ReadWritePaths={paths}",
            "",
        ]
    )
    timer = "\n".join(
        [
            HEADER.rstrip(),
            "[Unit]",
            "Description=srht: scheduled backups of the whole site",
            "",
            "[Timer]",
            f"OnCalendar={plan.schedule}",
            "Persistent=yes",
            f"Unit={SERVICE_UNIT}",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ]
    )
    return {SERVICE_UNIT: service, TIMER_UNIT: timer}
