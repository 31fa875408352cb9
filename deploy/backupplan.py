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

A destination outside the site (``ssh://[USER@]ADDRESS[:PORT]/PATH``: a
storage box, a NAS, a friend's server) is reached from the backup host as
an ordinary account that owns its folder: no sudo, no srht, no Python
there, only a POSIX shell, mkdir, cat, ls, mv, rm and sync. Its host key is
in the config (``destination-host-key``) and goes to the backup host as a
known-hosts file of its own, the only one ssh reads for it, so a changed
key fails the backup before anything is written; there is no
trust-on-first-use. Its key (``destination-ssh-key``, else the deploy's)
is a secret file like the others. The URL form, rather than scp's
``USER@HOST:/PATH``, because ``NAME:/PATH`` already names a host of the
site, and a URL carries a port and an IPv6 address without ambiguity
(as borg, restic and git write them).

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
OFFSITE_KEY_SECRET = "backup-offsite-ssh-key"  # noqa: S105
OFFSITE_KNOWN_HOSTS_SECRET = "backup-offsite-known-hosts"  # noqa: S105
_REMOTE = re.compile(r"^(?P<host>[a-z0-9][a-z0-9-]*):(?P<path>/.*)$")
_OFFSITE = re.compile(
    r"^ssh://(?:(?P<user>[^@/\s:]+)@)?"
    r"(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<address>[^:@/\s\[\]]+))"
    r"(?::(?P<port>\d+))?(?P<path>/.*)?$"
)


@dataclass(frozen=True)
class Offsite:
    """A destination outside the site: who to log in as, where, and the
    host key to expect (``None`` only with host key checking off)."""

    user: str
    address: str
    port: int
    host_key: str | None
    #: A key file of its own on the deploying machine (else the deploy's).
    ssh_key: str | None

    @property
    def url(self) -> str:
        address = f"[{self.address}]" if ":" in self.address else self.address
        port = f":{self.port}" if self.port != 22 else ""
        return f"ssh://{self.user}@{address}{port}"

    def known_hosts(self) -> str:
        """The known-hosts file of the backup host for this host alone."""
        if self.host_key is None:
            return ""
        name = self.address if self.port == 22 else f"[{self.address}]:{self.port}"
        return f"{name} {self.host_key}\n"


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
    #: A destination outside the site (``ssh://``); then ``destination_host`` is "".
    offsite: Offsite | None = None

    @property
    def remote_destination(self) -> bool:
        return self.offsite is not None or self.destination_host != self.host

    @property
    def where(self) -> str:
        if self.offsite is not None:
            return f"{self.offsite.url}{self.destination}"
        return f"{self.destination_host}:{self.destination}"


def backup_plan(config: Config, topology: Any) -> BackupPlan | None:
    """The plan of ``config`` (bound to its schemas), ``None`` without a
    ``[backup]`` section.

    :raises ConfigError: naming each problem (the backup host is unknown or
        runs no srht, the destination names an unknown host or is an
        ``ssh://`` URL without a path or a host key, no or two ways to
        encrypt, no SSH key to give the backup host).
    """
    if not config.has_section("backup"):
        return None
    section = config["backup"]
    problems: list[ConfigProblem] = []

    def problem(key: str | None, message: str, at: str | None = None) -> None:
        """A problem of ``key``, at the line of ``at`` (a key that is missing:
        the line of the key that needs it)."""
        raw = config.raw.get("backup")
        at = at or key
        line = raw.values[at].line if raw is not None and at in raw.values else None
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
    offsite = None
    if destination.startswith("ssh://"):
        destination_host, offsite, destination = (
            "",
            *_offsite(config, section, destination, problem),
        )
    elif remote:
        destination_host, destination = remote["host"], remote["path"]
        if destination_host not in topology.hosts:
            problem(
                "destination",
                f"{destination_host!r} is not in [deploy] hosts: write NAME:/PATH with a "
                "host of the site, or /PATH for a folder on the backup host",
            )
    elif not destination.startswith("/"):
        problem(
            "destination",
            "write /PATH (on the backup host), NAME:/PATH (another host of the site) or "
            "ssh://[USER@]ADDRESS[:PORT]/PATH (a host outside the site)",
        )
    if offsite is None:
        for key in ("destination-host-key", "destination-ssh-key"):
            if section.get(key):
                problem(key, "only an ssh:// destination (a host outside the site) uses it")
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
        offsite=offsite,
    )


def _offsite(config: Config, section: Any, url: str, problem: Any) -> tuple[Offsite | None, str]:
    """``(the off-site host, its folder)`` of an ``ssh://`` destination."""
    found = _OFFSITE.match(url)
    if not found:
        problem(
            "destination",
            f"not ssh://[USER@]ADDRESS[:PORT]/PATH: {url!r} (an IPv6 address goes in brackets)",
        )
        return None, "/-"
    path = found["path"] or ""
    if path.rstrip("/") == "":
        problem(
            "destination",
            f"{url} names no folder: add its absolute path (ssh://USER@ADDRESS/home/USER/srht); "
            "a path relative to the account's home is not supported",
        )
        path = "/-"
    port = int(found["port"] or 22)
    if not 0 < port < 65536:
        problem("destination", f"port {port} out of range in {url}")
    host_key = section.get("destination-host-key")
    if not host_key and config.get("deploy", "ssh-host-key-checking") != "no":
        problem(
            "destination-host-key",
            f"missing: the backup host must know the host key of {found['v6'] or found['address']} "
            "before it sends it a backup (nothing is trusted on first use); give it as "
            "`ssh-keyscan -t ed25519 ADDRESS` prints it, checked with the host's owner",
            at="destination",
        )
    return (
        Offsite(
            user=found["user"] or "root",
            address=found["v6"] or found["address"],
            port=port,
            host_key=host_key,
            ssh_key=section.get("destination-ssh-key"),
        ),
        path,
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
    deploy's SSH key and known hosts, the passphrase, and for an off-site
    destination its host key (as a known-hosts file) and its own SSH key,
    on the backup host only, each readable by :data:`BACKUP_USER` alone."""
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
    if plan.offsite is not None and plan.offsite.host_key:
        secrets.append(
            SecretFile(OFFSITE_KNOWN_HOSTS_SECRET, BACKUP_USER, plan.offsite.known_hosts())
        )
    if plan.offsite is not None and plan.offsite.ssh_key:
        secrets.append(
            SecretFile(
                OFFSITE_KEY_SECRET,
                BACKUP_USER,
                _read(config, plan.offsite.ssh_key, "backup", "destination-ssh-key"),
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
