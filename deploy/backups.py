"""The deploy of scheduled backups (``[backup]``, see
:mod:`srht_deploy.backupplan` for where they run and why): on the backup
host, the ``srht-backup`` account, its state folder, the destination
folder, the service and its timer; on every other host, none of them.
The secret files it needs go through the deploy's secret files
(:func:`srht_deploy.deploys._secret_files`).
"""

from __future__ import annotations

from io import StringIO

from pyinfra.context import host
from pyinfra.operations import files, server

from . import operations
from .backupplan import BACKUP_USER, SERVICE_UNIT, STATE_DIR, TIMER_UNIT, backup_units
from .facts import ManagedFiles
from .model import GROUP, VENV, Site

__all__ = ["activate_backups", "configure_backups"]


def _python(site: Site) -> str:
    from . import distro

    return "/usr/bin/python3" if distro.enabled(site) else f"{VENV}/bin/python"


def _wanted(site: Site) -> dict[str, str]:
    plan = site.backup
    if plan is None or host.name != plan.host:
        return {}
    writable = [] if plan.remote_destination else [plan.destination]
    outbox = f"{site.data_dir}/outbox"
    return backup_units(plan, _python(site), [*writable, outbox])


def configure_backups(site: Site) -> None:
    """The account, folders and units of the backup host."""
    plan = site.backup
    wanted = _wanted(site)
    if plan is not None and wanted:
        server.user(  # noqa: S604 - pyinfra's shell= is the account's login shell
            name=f"User {BACKUP_USER}",
            user=BACKUP_USER,
            system=True,
            home=STATE_DIR,
            shell="/usr/sbin/nologin",
            groups=[GROUP],
            create_home=False,
            ensure_home=False,
            comment="srht scheduled backups",
        )
        operations.directory(
            name="Backup state folder",
            path=STATE_DIR,
            user=BACKUP_USER,
            group=BACKUP_USER,
            mode="700",
        )
        if not plan.remote_destination:
            operations.directory(
                name=f"Backup destination {plan.destination}",
                path=plan.destination,
                user=BACKUP_USER,
                group=BACKUP_USER,
                mode="700",
            )
    for name in operations.each(sorted(wanted)):
        operations.put(
            name=f"Unit {name}",
            src=StringIO(wanted[name]),
            dest=f"/etc/systemd/system/{name}",
            user="root",
            group="root",
            mode="644",
        )


def activate_backups(site: Site) -> None:
    """Start the timer on the backup host (after a reload of its units);
    stop and remove it elsewhere (the archives and the state stay)."""
    from .deploys import fingerprint

    wanted = _wanted(site)
    if wanted:
        operations.converge(
            name="Start the backup timer",
            key="backup-timer",
            fingerprint=fingerprint(*(f"{k}\n{v}" for k, v in sorted(wanted.items()))),
            command=f"systemctl daemon-reload && systemctl enable --now {TIMER_UNIT}"
            f" && systemctl restart {TIMER_UNIT}",
        )
        return
    present = host.get_fact(ManagedFiles, pattern="/etc/systemd/system/srht-backup.*")
    if present:
        server.shell(
            name="Stop the backup timer (this host takes no backups)",
            commands=[f"systemctl disable --now {TIMER_UNIT} || true"],
        )
        for name in operations.each(sorted(present)):
            files.file(name=f"Remove {name}", path=f"/etc/systemd/system/{name}", present=False)
        server.shell(name="Forget the backup units", commands=["systemctl daemon-reload"])


#: Units of the backup that the deploy's daemon handling leaves alone.
BACKUP_UNITS = (SERVICE_UNIT, TIMER_UNIT)
