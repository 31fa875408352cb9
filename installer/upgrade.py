"""``srht-install upgrade``: this machine's srht onto a running site, the
safe way round.

1. **The plan**, before anything changes: per host, the versions of the
   site's distributions in its virtualenv and the versions this machine
   would put there; per service, the migrations its database would run
   (read from the database's own version tables on its host, compared with
   this machine's migrations; ``--sql``: the SQL Alembic writes for them);
   the units that would restart (pyinfra's dry run) and so what is down
   while it happens.
2. **A backup** (``srht-install backup``'s archive) before any host is
   touched; when it fails the upgrade stops there. ``--no-backup`` skips
   it, and says so loudly.
3. **A rehearsal** of the migrations: for each PostgreSQL database with
   migrations to run, a scratch database on the same PostgreSQL is
   restored from the backup's dump, the upgrade's SQL (Alembic's, each part
   in its transaction) runs on it as the service's role, and the time it
   took is reported; the scratch database is dropped. A migration failing there stops the
   upgrade before any host is changed, naming the service and PostgreSQL's
   words.
4. **The previous code kept**: each host's virtualenv is copied beside it
   (``/opt/srht/venv.previous``; with ``install-method = distro``, the
   ``.deb`` files of its srht packages are kept).
5. **The deploy**, as ``srht-install`` runs it, each service through its
   own steps: its migrations before its new code starts, its restarts, its
   health checks through nginx; then each database's revisions are read
   again and the report says what was applied.
6. **A rollback** of each service whose migration or health check failed
   (:mod:`srht_installer.rollback`): the deploy skips its later steps and
   carries on with the others; then its previous code is put back on its
   hosts and, when it had migrations to run, its database is restored from
   the backup of step 2; it is started again and asked whether it answers.
   The report names it, PostgreSQL's or the check's words, and what was
   put back; the exit status is 1. The others stay upgraded, and a run
   after the fix (a newer version of the service) upgrades it.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from srht_core import human_size

from .backup import MANIFEST, DatabasePlace, _database, _revisions, take_backup
from .remote_archive import ArchiveError, ArchiveReader, Remote, RemoteError, remotes
from .rollback import after_failed_deploy, keep_previous_code, upgrade_over
from .ui import console, errors

__all__ = ["MigrationPlan", "Rehearsal", "UpgradePlan", "read_plan", "rehearse"]

#: The scratch database's name: the real one's, with this suffix.
SCRATCH_SUFFIX = "_upgrade_rehearsal"


@dataclass
class MigrationPlan:
    """What one service's database would run."""

    service: str
    place: DatabasePlace
    applied: dict[str, list[str]]
    migrations: list[Any]  # srht_core.migrate.PendingMigration
    sql: str | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Build:
    """One distribution's wheel: its version and content hash (the version
    alone does not change between two commits of one release)."""

    version: str
    sha256: str

    def __str__(self) -> str:
        return f"{self.version} ({self.sha256[:12]})"


@dataclass
class UpgradePlan:
    """What ``srht-install upgrade`` would do, read from the hosts."""

    #: ``{host: {distribution: Build or None (not installed)}}``
    versions_before: dict[str, dict[str, Build | None]]
    versions_after: dict[str, dict[str, Build | None]]
    migrations: list[MigrationPlan]
    restarts: dict[str, list[str]] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        return [f"{m.service}: {m.problem}" for m in self.migrations if m.problem]


def _builds(record: dict[str, str], names: list[str]) -> dict[str, Build | None]:
    """``{distribution: Build}`` of ``names`` among ``{wheel file: sha256}``."""
    from packaging.utils import canonicalize_name, parse_wheel_filename

    found: dict[str, Build] = {}
    for wheel, sha in record.items():
        project, version, _build, _tags = parse_wheel_filename(wheel)
        found[str(project)] = Build(str(version), sha)
    return {name: found.get(canonicalize_name(name)) for name in names}


def _host_record(remote: Remote, venv: str) -> dict[str, str]:
    """``{wheel file: sha256}`` the deploy recorded in the host's virtualenv."""
    result = remote.run(
        f"cat {venv}/.srht-wheels", "read the installed software's record", check=False
    )
    out = {}
    for line in result.stdout.splitlines() if result.returncode == 0 else []:
        sha, _, name = line.partition("  ")
        if name:
            out[name] = sha
    return out


def read_plan(site: Any, *, sql: bool) -> UpgradePlan:
    """The versions on each host and the migrations of each database, read
    over SSH; nothing is changed.

    :raises RemoteError: a host did not answer.
    """
    from srht_deploy.model import VENV

    from srht_core.migrate import pending, upgrade_sql

    hosts = remotes(site)
    names = site.distributions()
    running = [p.name for p in site.topology.placements() if p.runs_srht]
    if site.config.get("srht", "install-method") == "distro":
        running = []  # the distribution's packages: apt says what they become
    before = {name: _builds(_host_record(hosts[name], VENV), names) for name in running}
    after = {name: _builds(site.software(name), names) for name in running}
    migrations = []
    for service in site.topology.services:
        place = _database(site, service)
        if place is None:
            continue
        applied = _revisions(hosts[place.host], place)
        schema = site.plugins.call_one("database_schema", service)
        entry = MigrationPlan(service, place, applied, [])
        try:
            entry.migrations = pending(service, schema, applied)
            if entry.migrations and (sql or place.kind == "postgresql"):
                dialect = "postgresql" if place.kind == "postgresql" else "sqlite"
                entry.sql = upgrade_sql(service, schema, applied, dialect)
        except Exception as error:  # noqa: BLE001 - a service's migration code, reported by name
            entry.problem = f"its migrations cannot be planned: {type(error).__name__}: {error}"
        migrations.append(entry)
    return UpgradePlan(before, after, migrations)


def restarts(planned: Any) -> dict[str, list[str]]:
    """``{host: [unit, ...]}`` the deploy's dry run would restart."""
    out: dict[str, list[str]] = {}
    for host, changes in planned.changes.items():
        for change in changes:
            _stage, _, step = change.operation.partition(" | ")
            if step.startswith("Restart "):
                out.setdefault(host, []).append(step.removeprefix("Restart "))
    return out


def show_plan(plan: UpgradePlan, *, sql: bool) -> None:
    """The versions and migrations of ``plan``, as tables."""
    versions = Table(title="Software per host (before → after)", title_justify="left")
    versions.add_column("host", style="bold")
    versions.add_column("distribution")
    versions.add_column("before")
    versions.add_column("after")
    for host, found in plan.versions_before.items():
        label = host
        for name, new in plan.versions_after[host].items():
            old = found.get(name)
            mark = "" if old == new else " [yellow]changes[/yellow]"
            versions.add_row(label, name, str(old or "not installed"), f"{new or 'none'}{mark}")
            label = ""
    console.print(versions)
    table = Table(title="Migrations per service", title_justify="left")
    table.add_column("service", style="bold")
    table.add_column("database")
    table.add_column("migrations to run")
    for entry in plan.migrations:
        where = f"{entry.place.name} on {entry.place.host}"
        if entry.problem:
            what = f"[red]{entry.problem}[/red]"
        elif entry.migrations:
            what = "\n".join(
                f"{m.part} {m.revision}" + (f": {m.description}" if m.description else "")
                for m in entry.migrations
            )
        else:
            what = "[dim]none (up to date)[/dim]"
        table.add_row(entry.service, where, what)
    console.print(table)
    if sql:
        for entry in plan.migrations:
            if entry.sql:
                console.print(f"[bold]-- SQL of {entry.service}'s migrations[/bold]")
                console.print(entry.sql, markup=False, highlight=False)


def show_restarts(plan: UpgradePlan, units: dict[str, list[str]]) -> None:
    """Which units restart on which host, and what is down meanwhile."""
    plan.restarts = units
    if not units:
        console.print("Restarts: none.")
        return
    for host, names in units.items():
        console.print(f"Restarts on {host}: {', '.join(names)}", markup=False, highlight=False)
    migrating = [m.service for m in plan.migrations if m.migrations]
    console.print(
        "Expected downtime: each restarted service is down from its restart until it "
        "answers again (seconds)"
        + (
            f"; {', '.join(migrating)} also while its migrations run (timed on a copy "
            "before the real ones)."
            if migrating
            else "."
        ),
        markup=False,
        highlight=False,
    )


@dataclass(frozen=True)
class Rehearsal:
    """How one service's migrations went on a scratch copy of its database."""

    service: str
    seconds: float
    error: str | None = None


def _manifest_parts(archive: Path) -> dict[str, dict[str, Any]]:
    reader = ArchiveReader(archive)
    try:
        manifest = json.loads(reader.read_bytes(MANIFEST))
    finally:
        reader.close()
    return {p["service"]: p for p in manifest["parts"] if p["kind"] == "postgresql"}


def rehearse(site: Any, plan: UpgradePlan, archive: Path) -> list[Rehearsal]:
    """Run each PostgreSQL database's pending migrations (their offline SQL)
    on a scratch copy restored from ``archive``, timed; the copies are
    dropped whatever happens."""
    hosts = remotes(site)
    parts = _manifest_parts(archive)
    out = []
    for entry in plan.migrations:
        place = entry.place
        if not entry.migrations or place.kind != "postgresql" or entry.sql is None:
            continue
        part = parts.get(entry.service)
        if part is None:
            raise ArchiveError(f"{archive} holds no database of {entry.service}")
        remote = hosts[place.host]
        scratch = shlex.quote(place.name + SCRATCH_SUFFIX)
        role = shlex.quote(place.role or "postgres")
        drop = f"runuser -u postgres -- dropdb --if-exists --force {scratch}"
        console.print(f"Rehearsing the migrations of {entry.service} on a copy of {place.name}...")
        reader = ArchiveReader(archive)
        try:
            remote.write(
                f"set -e; {drop}; runuser -u postgres -- createdb --owner={role} {scratch}; "
                "runuser -u postgres -- pg_restore --no-owner --no-privileges --exit-on-error "
                f"--single-transaction --role={role} -d {scratch}",
                f"copy the database of {entry.service} for the rehearsal",
                reader.chunks(part["name"]),
            )
            started = time.monotonic()
            result = remote.run(
                f"cd / && runuser -u postgres -- psql -XAq -v ON_ERROR_STOP=1 -d {scratch}",
                f"rehearse the migrations of {entry.service}",
                input=f'SET ROLE "{place.role}";\n{entry.sql}' if place.role else entry.sql,
                check=False,
            )
            seconds = time.monotonic() - started
            error = (result.stderr.strip() or "no message")[-1500:] if result.returncode else None
            out.append(Rehearsal(entry.service, seconds, error))
        finally:
            reader.close()
            remote.run(drop, "drop the rehearsal's copy", check=False)
    return out


def take_upgrade_backup(site: Any, config: Path, output: Path) -> Path:
    """The backup an upgrade starts with; exits 1 (nothing changed) when it fails."""
    from .cli import fail

    console.print("Taking a backup before the upgrade (the site stops while it runs)...")
    started = time.monotonic()
    try:
        archive = take_backup(site, config.resolve(), output, online=False)
    except (RemoteError, ArchiveError, OSError) as error:
        fail(
            f"the backup before the upgrade failed: {error}\nThe upgrade stopped there: "
            "nothing was changed on any host. Fix that (or pass --no-backup, at your "
            "own risk), then run srht-install upgrade again."
        )
    console.print(
        f"Backup: {archive} ({human_size(archive.stat().st_size)}, "
        f"{time.monotonic() - started:.0f}s). If the upgrade fails, "
        f"`srht-install restore {archive}` brings the site back as it was."
    )
    return archive


def report_rehearsals(rehearsals: list[Rehearsal], archive: Path) -> None:
    """Print each rehearsal; exit 1 (nothing changed) when one failed."""
    from .cli import fail

    for rehearsal in rehearsals:
        if rehearsal.error is None:
            console.print(
                f"[green]✓[/green] {rehearsal.service}: its migrations ran on a copy in "
                f"{rehearsal.seconds:.1f}s"
            )
    failed = [r for r in rehearsals if r.error is not None]
    if failed:
        for rehearsal in failed:
            errors.print(
                f"[red]✗[/red] {rehearsal.service}: its migrations failed on a copy of its "
                f"database: {rehearsal.error}",
                markup=True,
                highlight=False,
            )
        fail(
            f"the upgrade stopped before changing any host: the migrations of "
            f"{', '.join(r.service for r in failed)} fail on a copy of the current data. "
            f"Every service runs as before; the backup is {archive}."
        )


def report_applied(site: Any, plan: UpgradePlan) -> None:
    """After the deploy: each database's migrations, read again from it."""
    from srht_core.migrate import pending

    hosts = remotes(site)
    for entry in plan.migrations:
        if not entry.migrations:
            continue
        applied = _revisions(hosts[entry.place.host], entry.place)
        schema = site.plugins.call_one("database_schema", entry.service)
        left = pending(entry.service, schema, applied)
        ran = [m.revision for m in entry.migrations if m not in left]
        state = "[green]applied[/green]" if not left else "[red]not all applied[/red]"
        console.print(f"{entry.service}: migrations {state}: {', '.join(ran) or 'none'}")


@click.command("upgrade")
@click.option("--sql", is_flag=True, help="Show the SQL each service's migrations would run.")
@click.option(
    "--no-backup",
    is_flag=True,
    help="Do not take a backup first (and so do not rehearse the migrations): at your own risk.",
)
@click.option(
    "-o",
    "--backup-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the backup goes (default: backups/ beside the config).",
)
@click.option("-y", "--yes", is_flag=True, help="Apply the plan without asking.")
@click.option("--dry-run", is_flag=True, help="Stop after showing the plan.")
@click.pass_context
def upgrade_command(
    ctx: click.Context,
    sql: bool,
    no_backup: bool,
    backup_dir: Path | None,
    yes: bool,
    dry_run: bool,
) -> None:
    """Upgrade the site to the srht of this machine: the plan (versions,
    migrations, restarts), a backup, the migrations rehearsed on a copy of
    each database, then the deploy (each database migrated before its new
    code starts; each service health-checked through nginx). A service
    whose migration or health check fails is rolled back by itself (its
    previous code, and its database from the backup); the others stay
    upgraded."""
    import sys

    from .cli import EXIT_FAILURE, Options, _existing, _site, deploy, fail
    from .ui import Prompter

    options: Options = ctx.find_root().obj
    config = _existing(ctx)
    site = _site(config)
    if no_backup:
        errors.print(
            "[bold red]WARNING: --no-backup: no backup is taken and the migrations are not "
            "rehearsed. If the upgrade fails, the site can only come back from a backup of "
            "your own.[/bold red]"
        )
    with console.status("Reading the versions and migrations on every host..."):
        try:
            plan = read_plan(site, sql=sql)
        except RemoteError as error:
            fail(f"{error}\nNothing was changed on any host.")
    show_plan(plan, sql=sql)
    if plan.problems:
        fail(
            "the upgrade cannot be planned:\n"
            + "\n".join(plan.problems)
            + "\nNothing was changed on any host."
        )
    archive: list[Path] = []
    kept: list[str] = []
    state: dict[str, Any] = {}

    def after_plan(planned: Any) -> None:
        state["empty"] = planned.empty
        show_restarts(plan, restarts(planned))

    def before_apply() -> None:
        if state.get("empty"):
            return
        if not no_backup:
            taken = take_upgrade_backup(site, config, backup_dir or config.parent / "backups")
            archive.append(taken)
            report_rehearsals(rehearse(site, plan, taken), taken)
        kept.extend(keep_previous_code(site))

    def after_failure() -> str:
        migrating = {m.service for m in plan.migrations if m.migrations}
        rolled = after_failed_deploy(site, migrating, archive[0] if archive else None, kept)
        backup = (
            f"The backup taken before it is {archive[0]}: `srht-install restore "
            f"{archive[0]}` brings the whole site back as it was."
            if archive
            else ""
        )
        return "\n".join(line for line in (rolled, backup) if line)

    prompter = Prompter() if sys.stdin.isatty() and sys.stdout.isatty() else None
    try:
        outcome = deploy(
            config,
            site,
            yes=yes or options.yes,
            dry_run=dry_run or options.dry_run,
            prompter=prompter,
            before_apply=before_apply,
            after_plan=after_plan,
            failed_note=after_failure,
        )
    except RemoteError as error:
        fail(str(error), EXIT_FAILURE)
    if outcome == "applied":
        upgrade_over(site, kept)
        report_applied(site, plan)
        console.print("[green]Upgraded.[/green]")
