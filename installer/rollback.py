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

With ``install-method = distro`` the ``.deb`` files of the srht packages
installed on each host are kept instead (``/var/lib/srht-deploy/previous-
packages``), found where the host has them: the repository the last deploy
published to it, apt's cache, or else downloaded again from the site's
``apt-source`` (:func:`keep_packages_command`). Putting a failed service's
code back installs all of them again, downgrading (``apt-get install
--allow-downgrades``): every srht package depends on srht-core of its own
version, so the packages of a host go back together, and every service on
that host is rolled back with it. The srht packages dpkg knew before the
upgrade are listed with them (:data:`INSTALLED_LIST`): those the upgrade
installed for the first time are removed in the same apt transaction as
the downgrade, then purged when dpkg did not know them at all before, so
the host is as it was (:func:`put_back_packages_command`); the report
names them. No other package is removed: when apt would remove one,
nothing is changed and the rollback stops naming it.
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
#: With install-method = distro: the .deb files of the srht packages
#: installed before the upgrade, on each host.
PREVIOUS_PACKAGES = "/var/lib/srht-deploy/previous-packages"
#: Where a host may hold those .deb files: the repositories the deploy
#: published to it (the last one is still there before the next deploy) and
#: apt's cache (packages from an ``apt-source``).
PACKAGE_SOURCES = ("/var/lib/srht-deploy/apt/*/*.deb", "/var/cache/apt/archives/*.deb")
#: The srht packages installed on a host: ``name version status``.
INSTALLED = "dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n' 'srht-*'"
#: In that folder: the srht packages dpkg knew before the upgrade, ``name
#: version status`` (``ii`` installed, ``rc`` removed with its config files left).
INSTALLED_LIST = "installed.list"
#: What the packages the last deploy installed are recorded under (the
#: deploy's install step), forgotten when they are put back.
PACKAGES_STAMP = "applied-srht-packages"


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
    #: The hosts its package was removed from (``install-method = distro``):
    #: the upgrade installed it there for the first time.
    removed_from: list[str] = field(default_factory=list)
    #: Whether its daemons were started again on a host (not when its
    #: package was removed from every host where it has daemons).
    started: bool = True
    #: The distribution it shares with a failed service (it did not fail itself).
    shares: str | None = None


def _venv() -> str:
    from srht_deploy.model import VENV

    return str(VENV)


def _distro(site: Any) -> bool:
    return bool(site.config.get("srht", "install-method") == "distro")


def keep_packages_command(
    folder: str = PREVIOUS_PACKAGES,
    sources: tuple[str, ...] = PACKAGE_SOURCES,
    installed: str = INSTALLED,
) -> str:
    """The shell command that keeps, in ``folder``, the ``.deb`` file of
    each srht package ``installed`` lists as installed (``name version
    ii``), taken from the files of ``sources`` (globs) whose name and
    version match, else downloaded from the host's apt sources (``apt-get
    download name=version``). It prints ``missing NAME VERSION`` for each
    it could not keep. What ``installed`` listed (every srht package dpkg
    knows: ``name version status``) is kept beside them, in
    :data:`INSTALLED_LIST`, so that putting them back removes the packages
    the upgrade installed for the first time (:func:`put_back_packages_command`).

    The folder is replaced whole (built beside it, then renamed), unless it
    is marked pending: an upgrade was cut short after the packages were
    upgraded, so what it holds is what was installed before that one."""
    final = shlex.quote(folder)
    part = shlex.quote(folder + ".part")
    files = " ".join(sources)
    return (
        f"[ -f {final}/{PENDING} ] && exit 0; set -e; rm -rf {part}; mkdir -p {part}; "
        f'for f in {files}; do [ -f "$f" ] || continue; '
        "printf '%s %s\\n' \"$(dpkg-deb -W --showformat='${Package}=${Version}' \"$f\")\" "
        f'"$f"; done > {part}/.index; '
        # A package dpkg knows only by name (no version) was never installed.
        f"{installed} 2>/dev/null | while read -r name version status; do "
        'if [ -n "$status" ]; then printf \'%s %s %s\\n\' "$name" "$version" "$status"; fi; '
        f"done > {part}/{INSTALLED_LIST}; "
        "while read -r name version status; do "
        'case "$status" in ii*) ;; *) continue ;; esac; '
        f"deb=$(grep -m1 \"^$name=$version \" {part}/.index | cut -d' ' -f2-) || true; "
        f'if [ -n "$deb" ]; then cp "$deb" {part}/; '
        f'elif ! (cd {part} && apt-get download -qq "$name=$version" </dev/null >/dev/null 2>&1); '
        'then echo "missing $name $version"; fi; '
        f"done < {part}/{INSTALLED_LIST}; "
        f"rm -f {part}/.index; touch {part}/{PENDING}; rm -rf {final}; mv {part} {final}"
    )


def put_back_packages_command(
    service: str,
    folder: str = PREVIOUS_PACKAGES,
    installed: str = INSTALLED,
    apt: str = "apt-get",
    dpkg: str = "dpkg",
) -> str:
    """The shell command that installs the kept ``.deb`` files of ``folder``
    again, downgrading, and removes in the same apt transaction the srht
    packages ``installed`` lists now that the upgrade installed for the
    first time (not installed according to the folder's
    :data:`INSTALLED_LIST`); then it purges those of them dpkg did not know
    at all before (their config files too: the host is left as it was),
    while one whose config files were left before (removed, not purged)
    keeps them. It prints ``removed NAME VERSION`` for each, then
    ``version VERSION`` of ``srht-SERVICE`` (empty when it is not
    installed).

    What apt would do is asked first (``apt-get -s``): when it would remove
    any other package, nothing is changed and the command fails naming
    them. A folder kept without the list (by an older srht) removes
    nothing: apt stops rather than remove a package."""
    kept = shlex.quote(folder)
    listed = f"{kept}/{INSTALLED_LIST}"
    options = (
        "--allow-downgrades --no-install-recommends -o Dpkg::Options::=--force-confold "
        f"{kept}/*.deb"
    )
    return (
        f"set -e; export DEBIAN_FRONTEND=noninteractive; ls {kept}/*.deb >/dev/null; "
        "added=''; purge=''; "
        f"if [ -f {listed} ]; then "
        f"added=$({installed} 2>/dev/null | while read -r name version status; do "
        # on the host now (installed, or half-installed by the upgrade)...
        'case "$status" in ""|?[nc]*) continue ;; esac; '
        # ...and not before (unknown, or only its config files left)
        f"before=$(grep -m1 \"^$name \" {listed} | cut -d' ' -f3) || true; "
        'case "$before" in ""|?[nc]*) printf \'%s=%s=%s \' "$name" "$version" "$before" ;; '
        "esac; done); fi; "
        "remove=''; for p in $added; do name=${p%%=*}; remove=\"$remove $name-\"; "
        'case "${p##*=}" in ?c*) ;; *) purge="$purge $name" ;; esac; done; '
        f"plan=$({apt} -s -qq install {options}$remove); "
        "others=''; for p in "
        "$(printf '%s\\n' \"$plan\" | sed -n 's/^Remv \\([^ ]*\\).*/\\1/p'); do "
        'case " $remove " in *" ${p%%:*}- "*) ;; *) others="$others ${p%%:*}" ;; esac; done; '
        'if [ -n "$others" ]; then echo "apt would have to remove$others to put the previous srht '
        "packages back; only the srht packages the upgrade installed are removed, so nothing "
        'was changed" >&2; exit 1; fi; '
        'if [ -z "$remove" ]; then keep=--no-remove; else keep=; fi; '
        f"{apt} install -y -qq $keep {options}$remove >/dev/null; "
        f'if [ -n "$purge" ]; then {dpkg} --purge $purge >/dev/null; fi; '
        "for p in $added; do name=${p%%=*}; rest=${p#*=}; "
        'printf \'removed %s %s\\n\' "$name" "${rest%%=*}"; done; '
        "printf 'version %s\\n' \"$(dpkg-query -W -f '${db:Status-Abbrev} ${Version}' "
        f"{shlex.quote(f'srht-{service}')} 2>/dev/null | sed -n 's/^ii *//p')\""
    )


def _kept_folder(site: Any) -> str:
    return PREVIOUS_PACKAGES if _distro(site) else _venv() + PREVIOUS_SUFFIX


def keep_previous_code(site: Any) -> list[str]:
    """Keep the software of each host that runs srht, so a failed service's
    code can be put back; the hosts where it was kept. Its virtualenv is
    copied beside it; with ``install-method = distro``, the ``.deb`` files
    of its srht packages are kept (:func:`keep_packages_command`), and
    those it could not find are named.

    What is kept is marked pending until the upgrade is over
    (:func:`upgrade_over`): after an upgrade that was cut short, the host
    may hold the new code already, so what was kept before it stays rather
    than be taken again."""
    hosts = remotes(site)
    kept = []
    for placement in site.topology.placements():
        if not placement.runs_srht:
            continue
        remote = hosts[placement.name]
        if _distro(site):
            found = remote.run(keep_packages_command(), "keep the previous packages").stdout
            missing = [line[8:] for line in found.splitlines() if line.startswith("missing ")]
            if missing:
                errors.print(
                    f"Not kept on {placement.name} (no .deb file of them there, and apt "
                    f"cannot download them): {', '.join(missing)}. A service there that fails "
                    "its upgrade gets its database back, and those packages stay upgraded.",
                    markup=False,
                    highlight=False,
                )
        else:
            venv = _venv()
            previous = shlex.quote(venv + PREVIOUS_SUFFIX)
            remote.run(
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
    previous = shlex.quote(_kept_folder(site))
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
    put_back: dict[str, tuple[str, list[str]]],
) -> RolledBack:
    """Roll ``service`` back; ``put_back``: ``{host: (what, removed)}``
    whose packages (``install-method = distro``) were put back already in
    this rollback, and the names of those it removed there."""
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
        if _distro(site):
            if host not in put_back:  # else a service before it on this host put them back
                put_back[host] = _put_back_packages(hosts[host], service)
            what, removed = put_back[host]
            done.restored.append(f"its code ({what}) on {host}")
            if f"srht-{service}" in removed:
                done.removed_from.append(host)
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
                (
                    p
                    for p in manifest["parts"]
                    if p.get("service") == service and p["kind"] == place.kind
                ),
                None,
            )
            if part is not None:
                target = Target(part, place.host, place=place, owner=f"srht-{service}")
                _restore_database(reader, hosts[place.host], target, manifest["id"])
                # Not a restore of the site: `srht-install restore` of this archive redoes it.
                hosts[place.host].run(f"rm -f {_marker(part)}", "forget the restore's mark")
        finally:
            reader.close()
        if part is None:  # the upgrade added it: there is no database of before
            done.missing.append(f"its database ({archive.name} holds none of it)")
        else:
            done.restored.append(
                f"its database ({place.name} on {place.host}, from {archive.name})"
            )
    # The next deploy migrates it again and restarts its daemons onto the new
    # code (and installs the new packages again).
    stamps = [f"{STATE_DIR}/migrated-{service}"]
    if _distro(site):
        stamps.append(f"{STATE_DIR}/{PACKAGES_STAMP}")
    # Where its package was removed, it was not there before the upgrade:
    # nothing of it is started again.
    started = [host for host in where if units[host] and host not in done.removed_from]
    for host in where:
        forget = stamps + [f"{STATE_DIR}/applied-{unit}" for unit in units[host]]
        hosts[host].run("rm -f " + shlex.join(forget), f"forget the stamps of {service}")
        if host in started:
            hosts[host].run("systemctl start " + shlex.join(units[host]), f"start {service}")
    done.answers = all(_answers(site, hosts[host], service) for host in started)
    done.started = bool(started) or not done.removed_from
    for name, remote in hosts.items():
        if name in site.topology.hosts:
            remote.run(f"rm -f {STATE_DIR}/failed-{shlex.quote(service)}", "forget the failure")
    return done


def _put_back_packages(remote: Remote, service: str) -> tuple[str, list[str]]:
    """Put back the host's kept packages (:func:`put_back_packages_command`):
    what the report says of them, and the packages removed."""
    lines = remote.run(
        put_back_packages_command(service), f"put back the previous packages of {service}"
    ).stdout.splitlines()
    version = next((line[8:] for line in lines if line.startswith("version ")), "")
    removed = [line[8:] for line in lines if line.startswith("removed ")]
    what = (
        f"srht-{service} {version}, with the host's other srht packages"
        if version
        else "the host's srht packages of before the upgrade"
    )
    if removed:
        what += f"; removed, as the upgrade installed them: {', '.join(removed)}"
    return what, [package.split()[0] for package in removed]


def roll_back(
    site: Any, failures: list[Failure], migrating: set[str], archive: Path | None, kept: list[str]
) -> list[RolledBack]:
    """Roll back each service of ``failures``: its code on its hosts, its
    database from ``archive`` when it is in ``migrating`` (it had
    migrations to run), then start it and ask whether it answers.

    :raises RemoteError: a host did not do what it was asked.
    """
    out = []
    put_back: dict[str, tuple[str, list[str]]] = {}
    for service in _with_shared_code(site, {f.service for f in failures}):
        mine = [f for f in failures if f.service == service]
        console.print(f"Rolling back {service}...")
        done = _roll_back_one(site, service, mine, service in migrating, archive, kept, put_back)
        if not mine:
            done.shares = _code(site, service)
        out.append(done)
    return out


def _code(site: Any, service: str) -> str:
    """What holds ``service``'s code on a host, put back as one: its
    distribution in the virtualenv, or, with ``install-method = distro``,
    the host's srht packages (each depends on srht-core of its version)."""
    return "the host's srht packages" if _distro(site) else site.distribution(service)


def _with_shared_code(site: Any, failed: set[str]) -> list[str]:
    """``failed`` and the services whose code is put back with one of
    theirs on one of its hosts (:func:`_code`), in the site's order."""
    topology = site.topology
    group = set(failed)
    while True:
        more = {
            other
            for service in group
            for other in topology.services
            if other not in group
            and _code(site, other) == _code(site, service)
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
                f"  {done.service} is rolled back too: its code ({done.shares}) is put back "
                "with theirs on its hosts.",
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
        if done.removed_from:
            errors.print(
                f"  {done.service} is not installed on {', '.join(done.removed_from)} any more: "
                "the upgrade installed it there.",
                markup=False,
                highlight=False,
            )
            if not done.started:  # on none of its hosts any more: nothing to ask
                continue
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
