"""Rolling back, by itself, a service that failed its upgrade.

Before ``srht-install upgrade`` deploys, :func:`keep_previous_code` copies
each host's virtualenv beside it (``/opt/srht/venv.previous``). The deploy
takes each service through its own steps (``srht_deploy.deploys.activate``):
a service whose migration or health check fails is marked failed on the
host with PostgreSQL's or the check's words
(:func:`srht_deploy.operations.failed`), its daemons are not restarted onto
the new code, and the other services go on.

Once the deploy is over, :func:`roll_back` reads those marks and, for each
failed service: stops its daemons; puts back its distribution's files from
the previous virtualenv on each of its hosts (``python -m
srht_deploy.onhost put-back``); restores its database from the archive
taken before the upgrade when it had migrations to run (its migrations are
run again by the next deploy, whose stamps it forgets); starts its daemons
and asks it whether it answers; then removes the marks. The report names
each service, what failed with its words, and what was put back. Putting a
distribution's files back puts back every service of it on those hosts
(``srht`` holds all the built-in ones), so those are rolled back with it.

With ``install-method = distro`` the previous packages are not kept: only
the database is put back, and the report says the code is not.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backup import MANIFEST, Target, _restore_database
from .remote_archive import ArchiveReader, Remote, RemoteError, remotes
from .ui import console, errors

__all__ = [
    "Failure",
    "RolledBack",
    "keep_previous_code",
    "read_failures",
    "roll_back",
    "upgrade_over",
]

#: Where the virtualenv of before the upgrade is kept, on each host.
PREVIOUS_SUFFIX = ".previous"
#: In that copy while its upgrade is not over.
PENDING = ".srht-upgrade-pending"


@dataclass(frozen=True)
class Failure:
    """A service's step that failed on a host during the deploy."""

    service: str
    host: str
    step: str  # "migration" or "health check"
    words: str


@dataclass
class RolledBack:
    """What was put back for one failed service."""

    service: str
    failures: list[Failure]
    restored: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    answers: bool = False
    #: The distribution it shares with a failed service (it did not fail itself).
    shares: str | None = None


def _venv() -> str:
    from srht_deploy.model import VENV

    return str(VENV)


def _distro(site: Any) -> bool:
    return bool(site.config.get("srht", "install-method") == "distro")


def keep_previous_code(site: Any) -> list[str]:
    """Copy the virtualenv of each host that runs srht beside it, so a
    failed service's code can be put back; the hosts where it was kept.
    Nothing is kept with ``install-method = distro`` (said once).

    The copy is marked pending until the upgrade is over
    (:func:`upgrade_over`): after an upgrade that was cut short, the
    virtualenv may hold the new code already, so the copy of before it is
    kept rather than taken again."""
    if _distro(site):
        console.print(
            "With install-method = distro the previous packages are not kept: a service "
            "that fails its upgrade gets its database back, not its code."
        )
        return []
    venv = _venv()
    previous = shlex.quote(venv + PREVIOUS_SUFFIX)
    hosts = remotes(site)
    kept = []
    for placement in site.topology.placements():
        if not placement.runs_srht:
            continue
        hosts[placement.name].run(
            f"[ -f {previous}/{PENDING} ] || {{ rm -rf {previous}; "
            f"if [ -f {venv}/.srht-wheels ]; then cp -a {venv} {previous} && "
            f"touch {previous}/{PENDING}; fi; }}",
            "keep the previous software",
        )
        kept.append(placement.name)
    return kept


def upgrade_over(site: Any, kept: list[str]) -> None:
    """The upgrade is over (applied, or its failed services rolled back):
    the next one keeps a new copy."""
    previous = shlex.quote(_venv() + PREVIOUS_SUFFIX)
    hosts = remotes(site)
    for name in kept:
        hosts[name].run(f"rm -f {previous}/{PENDING}", "mark the upgrade over")


def read_failures(site: Any) -> list[Failure]:
    """The marks of failed steps the deploy left on every host."""
    from srht_deploy.operations import STATE_DIR

    out = []
    for name, remote in remotes(site).items():
        if name not in site.topology.hosts:
            continue
        result = remote.run(
            f'for f in {STATE_DIR}/failed-*; do [ -f "$f" ] || continue; '
            'printf "@@%s\\n" "${f##*/failed-}"; cat "$f"; done',
            "read which services failed",
            check=False,
        )
        for block in result.stdout.split("@@")[1:]:
            service, _, rest = block.partition("\n")
            step, _, words = rest.partition("\n")
            out.append(Failure(service, name, step, words.strip() or "no message"))
    return out


def _service_hosts(site: Any, service: str) -> list[str]:
    topology = site.topology
    return list(topology.service_hosts[service] or topology.worker_hosts[service])


def _units(remote: Remote, service: str) -> list[str]:
    listed = remote.run(
        "systemctl list-units --all --plain --no-legend --type=service,timer "
        f"{shlex.quote(f'srht-{service}.service')} {shlex.quote(f'srht-{service}-*')}",
        f"list the units of {service}",
    ).stdout
    return [line.split()[0] for line in listed.splitlines() if line.strip()]


def _answers(site: Any, remote: Remote, service: str) -> bool:
    address, _, port = site.topology.binds[service].rpartition(":")
    if address in ("0.0.0.0", "::", "[::]"):  # noqa: S104 - reading a config value
        address = "127.0.0.1"
    url = shlex.quote(f"http://{address}:{port}/healthz")
    result = remote.run(
        f"for i in $(seq 60); do code=$(curl -s -o /dev/null -w '%{{http_code}}' {url}); "
        '[ "$code" = 200 ] && exit 0; sleep 1; done; exit 1',
        f"ask {service} whether it answers",
        check=False,
        timeout=120,
    )
    return result.returncode == 0


def _roll_back_one(
    site: Any,
    service: str,
    failures: list[Failure],
    migrated: bool,
    archive: Path | None,
    kept: list[str],
) -> RolledBack:
    from srht_deploy.operations import STATE_DIR

    from .backup import _database, _marker

    hosts = remotes(site)
    venv = _venv()
    done = RolledBack(service, failures)
    where = _service_hosts(site, service)
    units = {host: _units(hosts[host], service) for host in where}
    for host in where:
        if units[host]:
            hosts[host].run("systemctl stop " + shlex.join(units[host]), f"stop {service}")
    distribution = site.distribution(service)
    for host in where:
        if host not in kept:
            done.missing.append(f"its code on {host} (the previous software was not kept)")
            continue
        version = (
            hosts[host]
            .run(
                f"{venv}/bin/python -m srht_deploy.onhost put-back {shlex.quote(distribution)} "
                f"{shlex.quote(venv + PREVIOUS_SUFFIX)}",
                f"put back the previous code of {service}",
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        done.restored.append(f"its code ({distribution} {version}) on {host}")
    place = _database(site, service) if migrated else None
    if place is not None and archive is None:
        done.missing.append("its database (no backup was taken: --no-backup)")
    elif place is not None and archive is not None:
        reader = ArchiveReader(archive)
        try:
            manifest = json.loads(reader.read_bytes(MANIFEST))
            part = next(
                p
                for p in manifest["parts"]
                if p.get("service") == service and p["kind"] == place.kind
            )
            target = Target(part, place.host, place=place, owner=f"srht-{service}")
            _restore_database(reader, hosts[place.host], target, manifest["id"])
            # Not a restore of the site: `srht-install restore` of this archive redoes it.
            hosts[place.host].run(f"rm -f {_marker(part)}", "forget the restore's mark")
        finally:
            reader.close()
        done.restored.append(f"its database ({place.name} on {place.host}, from {archive.name})")
    # The next deploy migrates it again and restarts its daemons onto the new code.
    stamps = [f"{STATE_DIR}/migrated-{service}"]
    for host in where:
        forget = stamps + [f"{STATE_DIR}/applied-{unit}" for unit in units[host]]
        hosts[host].run("rm -f " + shlex.join(forget), f"forget the stamps of {service}")
        if units[host]:
            hosts[host].run("systemctl start " + shlex.join(units[host]), f"start {service}")
    done.answers = all(_answers(site, hosts[host], service) for host in where if units[host])
    for name, remote in hosts.items():
        if name in site.topology.hosts:
            remote.run(f"rm -f {STATE_DIR}/failed-{shlex.quote(service)}", "forget the failure")
    return done


def roll_back(
    site: Any, failures: list[Failure], migrating: set[str], archive: Path | None, kept: list[str]
) -> list[RolledBack]:
    """Roll back each service of ``failures``: its code on its hosts, its
    database from ``archive`` when it is in ``migrating`` (it had
    migrations to run), then start it and ask whether it answers.

    :raises RemoteError: a host did not do what it was asked.
    """
    out = []
    for service in _with_shared_code(site, {f.service for f in failures}):
        mine = [f for f in failures if f.service == service]
        console.print(f"Rolling back {service}...")
        done = _roll_back_one(site, service, mine, service in migrating, archive, kept)
        if not mine:
            done.shares = site.distribution(service)
        out.append(done)
    return out


def _with_shared_code(site: Any, failed: set[str]) -> list[str]:
    """``failed`` and the services whose code is the same distribution as
    one of them on one of its hosts (putting its code back puts theirs
    back too), in the site's order."""
    topology = site.topology
    group = set(failed)
    while True:
        more = {
            other
            for service in group
            for other in topology.services
            if other not in group
            and site.distribution(other) == site.distribution(service)
            and set(_service_hosts(site, other)) & set(_service_hosts(site, service))
        }
        if not more:
            return [s for s in topology.services if s in group]
        group |= more


def report(rolled: list[RolledBack]) -> str:
    """Print what failed and what was put back; the closing note."""
    for done in rolled:
        if done.shares:
            errors.print(
                f"  {done.service} is rolled back too: its code is {done.shares}'s, put back "
                "on its hosts.",
                markup=False,
                highlight=False,
            )
        for failure in done.failures:
            errors.print(
                f"[red]✗[/red] {done.service}: its {failure.step} failed on {failure.host}:",
                markup=True,
                highlight=False,
            )
            for line in failure.words.splitlines()[-12:]:
                errors.print(f"    {line}", markup=False, highlight=False)
        put = "; ".join(done.restored) or "nothing"
        errors.print(f"  Rolled back {done.service}: {put}.", markup=False, highlight=False)
        for missing in done.missing:
            errors.print(f"  Not put back: {missing}.", markup=False, highlight=False)
        errors.print(
            f"  {done.service} "
            + ("answers again on its previous code." if done.answers else "does not answer yet."),
            markup=False,
            highlight=False,
        )
    names = ", ".join(d.service for d in rolled)
    return (
        f"The upgrade rolled back {names}; the other services are upgraded. Fix what failed "
        "(a newer version of the service), then run srht-install upgrade again."
    )


def after_failed_deploy(
    site: Any, migrating: set[str], archive: Path | None, kept: list[str]
) -> str:
    """Roll back the services the deploy marked failed and report; the
    note for the end of the failure's report ("" when none was marked)."""
    try:
        failures = read_failures(site)
        if not failures:
            return ""
        rolled = roll_back(site, failures, migrating, archive, kept)
        upgrade_over(site, kept)
    except RemoteError as error:
        return f"Rolling back the failed services did not finish: {error}"
    return report(rolled)
