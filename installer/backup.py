"""``srht-install backup`` and ``srht-install restore ARCHIVE``.

**backup** writes one archive per run, ``srht-backup-YYYYmmddTHHMMSSZ.tar``
(mode 0600: it holds the config, and with it every secret of the site):

- ``config.ini``: the site's one config, as the deploying machine has it;
- ``databases/<service>.pgdump``: ``pg_dump -Fc`` of each PostgreSQL
  database, run on the PostgreSQL host as ``postgres`` and streamed over
  SSH (no password anywhere); ``databases/<service>.sqlite`` for a SQLite
  database, copied with SQLite's online backup API on its host;
- ``data/<service>/<label>.tar.gz``: each data folder of each service (its
  home, ``DATA-DIR/<service>``, and the paths its plugin declares, such as
  git's repositories), taken on the service's first host with owners by name;
- ``manifest.json``: format, versions, services, the schema revisions and
  the row count of each table of each database (``rows``; archives made
  before srht recorded them have none, and restore the same), and the size
  and SHA-256 of every part.

By default the site's daemons (``srht-*`` units on every host) are stopped
while the backup is taken and started again afterwards, whatever happens:
no push, ticket or sign-up lands half-way, so the databases and the
repositories agree with each other. ``--online`` keeps them running: each
database dump is still consistent in itself (``pg_dump`` reads one
snapshot), but a repository pushed to during the copy may come back with
refs and objects out of step, and rows may name repositories that are not
in the copy (or the reverse). Redis (queued jobs) is not backed up: queued
jobs are retried from the databases, which are.

**restore** brings the site back on fresh hosts, from the archived config
(or a config with the same secrets, e.g. with new host addresses):

1. verify the whole archive (every part's SHA-256, the format, that this
   srht knows every schema revision in it) before touching anything;
2. install and configure every host (``srht_deploy`` install + configure:
   packages, users, PostgreSQL roles and empty databases, config, units);
3. stop any ``srht-*`` unit, then restore each database (``pg_restore``
   in one transaction, objects owned by the service's role) and each data
   folder (owners by name, modes as archived);
4. run the whole deploy (``srht deploy``): migrations, start, health checks.

Every step is re-runnable: each restored part leaves a marker on its host
(the archive's id, in the deploy's root-only state folder), so running the
same restore again after a failure redoes only what is not done. A database
that holds rows not restored from this archive is never replaced without
``--force``. An encrypted archive of a scheduled backup
(``srht-backup-DATE.tar.age``) is decrypted first, next to it, with
``--identity KEYFILE`` (the age private key of ``[backup] recipient``) or
``--passphrase-file``.

**Scheduled backups** (``[backup]``) run :func:`take_backup` on a host of
the site, on a systemd timer, then encrypt, verify and prune the archives:
see :mod:`srht_installer.scheduled`, and :mod:`srht_deploy.backupplan` for
where they run and why.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn

import click

from srht_core import human_size

from .remote_archive import (
    ArchiveError,
    ArchiveReader,
    ArchiveWriter,
    Remote,
    RemoteError,
    remotes,
)

__all__ = ["backup_command", "restore_command"]

FORMAT = "srht-backup/1"
MANIFEST = "manifest.json"
CONFIG_PART = "config.ini"
#: The deploy's root-only state folder on every host (see srht_deploy.operations).
STATE_DIR = "/var/lib/srht-deploy"
#: Secrets that must agree between the archive's config and the one restored
#: with: tokens, cookies, derived database passwords and webhook signatures
#: depend on them.
SECRET_KEYS = (("srht", "service-key"), ("srht", "network-key"), ("webhooks", "private-key"))
#: What a part's name may be (it names a marker file on a host).
SAFE_NAME = re.compile(r"(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9_./-]{0,98}")
#: Rows in any table but these mean a database holds data.
EMPTY_SQL = (
    "SELECT coalesce(sum((xpath('/row/c/text()', query_to_xml(format("
    "'SELECT count(*) AS c FROM %I.%I', schemaname, tablename), false, true, ''))"
    ")[1]::text::bigint), 0) FROM pg_tables WHERE schemaname = 'public' "
    "AND tablename NOT LIKE 'alembic_version%'"
)
#: ``TABLE|{REVISION,...}`` of each Alembic version table of a database.
REVISIONS_SQL = (
    "SELECT tablename, (xpath('/table/row/v/text()', query_to_xml(format("
    "'SELECT version_num AS v FROM %I', tablename), false, false, '')))::text[] "
    "FROM pg_tables WHERE schemaname = 'public' "
    "AND tablename LIKE 'alembic_version%'"
)
#: ``TABLE|ROWS`` of every table of a database (the manifest's row counts,
#: which a restore drill compares).
COUNTS_SQL = (
    "SELECT tablename, (xpath('/row/c/text()', query_to_xml(format("
    "'SELECT count(*) AS c FROM %I.%I', schemaname, tablename), false, true, ''))"
    ")[1]::text FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
)
#: Run on a host with its python3: back a SQLite database up (online), count
#: its rows, or read its schema revisions. Arguments: MODE PATH.
SQLITE_SCRIPT = r"""
import os, sqlite3, sys, tempfile
mode, path = sys.argv[1], sys.argv[2]
if mode == "dump":
    fd, copy = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".srht-backup-")
    os.close(fd)
    try:
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        target = sqlite3.connect(copy)
        source.backup(target)
        target.close()
        source.close()
        with open(copy, "rb") as data:
            while chunk := data.read(1 << 20):
                sys.stdout.buffer.write(chunk)
    finally:
        os.unlink(copy)
elif mode == "rows":
    if not os.path.exists(path):
        print(0)
        sys.exit()
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
              if not r[0].startswith(("alembic_version", "sqlite_"))]
    print(sum(db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables))
elif mode == "counts":
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                               "AND name NOT LIKE 'sqlite_%' ORDER BY name"):
        print(table, db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
elif mode == "revisions":
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                               "AND name LIKE 'alembic_version%'"):
        for (revision,) in db.execute(f'SELECT version_num FROM "{table}"'):
            print(table, revision)
"""


def fail(message: str) -> NoReturn:
    raise click.ClickException(message)


def say(message: str) -> None:
    click.echo(message, err=True)


# -- the site ------------------------------------------------------------------------------


def _config_path(ctx: click.Context, explicit: str | None) -> Path | None:
    """``--config``/``$SRHT_CONFIG`` (click fills both), else the group's
    context object, else ``./config.ini`` and ``/etc/srht/config.ini``."""
    from srht_core.config import find_config

    if not explicit:
        root = ctx.find_root().obj
        explicit = (
            root.get("config_path")
            if isinstance(root, dict)
            else getattr(root, "config_path", None)
        )
    return find_config(explicit)


def _load_site(path: Path) -> Any:
    from srht_deploy import Site

    from srht_core import ConfigError

    try:
        return Site.from_config(path)
    except ConfigError as error:
        problems = "\n".join(str(p) for p in error.problems)
        fail(f"the config has problems; nothing was done:\n{problems}")


def _first_host(site: Any, service: str) -> str | None:
    hosts = site.topology.service_hosts[service] or site.topology.worker_hosts[service]
    return hosts[0] if hosts else None


def _inside(path: str, folder: str) -> bool:
    return (
        PurePosixPath(path) == PurePosixPath(folder)
        or PurePosixPath(folder) in PurePosixPath(path).parents
    )


def _folders(site: Any, service: str) -> list[tuple[str, str]]:
    """``[(label, path)]`` of a service's data folders: its home and what its
    plugin declares, without a folder inside another one."""
    wanted = [("home", f"{site.data_dir}/{service}")]
    wanted += [(f"path{i}", str(p)) for i, p in enumerate(site.needs(service).paths)]
    kept: list[tuple[str, str]] = []
    for label, path in wanted:
        if any(_inside(path, other) for _l, other in kept):
            continue
        kept = [(lbl, other) for lbl, other in kept if not _inside(other, path)]
        kept.append((label, path))
    return kept


@dataclass(frozen=True)
class DatabasePlace:
    """Where a service's database lives, as seen from the host that holds it."""

    service: str
    kind: str  # "postgresql" or "sqlite"
    host: str
    name: str  # database name, or the SQLite file's path
    role: str | None = None


def _database(site: Any, service: str) -> DatabasePlace | None:
    from sqlalchemy.engine import make_url

    from srht_core.db import default_url

    pg = site.topology.postgresql_host
    database = site.databases(pg).get(service) if pg else None
    if database is not None:
        return DatabasePlace(service, "postgresql", pg, database.name, database.role)
    written = site.config.get(service, "connection-string")
    url = make_url(written or default_url(site.data_dir, service))
    host = _first_host(site, service)
    if url.get_backend_name() == "sqlite" and url.database and host:
        return DatabasePlace(service, "sqlite", host, url.database)
    if url.get_backend_name() == "postgresql":
        fail(
            f"[{service}] connection-string names a PostgreSQL the site does not manage "
            "([deploy] postgresql-host is empty): back that database up with your "
            "PostgreSQL's own tools (pg_dump), or set postgresql-host"
        )
    return None


def _psql(database: str, sql: str) -> str:
    return (
        f"runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d {shlex.quote(database)} "
        f"-c {shlex.quote(sql)}"
    )


def _sqlite(mode: str, path: str) -> str:
    return f"python3 -c {shlex.quote(SQLITE_SCRIPT)} {mode} {shlex.quote(path)}"


def _units(remote: Remote) -> list[str]:
    """The ``srht-*`` units running on a host."""
    out = remote.run(
        "systemctl list-units --type=service --state=active --plain --no-legend 'srht-*'",
        "list srht's running units",
    ).stdout
    units = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [unit for unit in units if not unit.startswith("srht-backup.")]  # the backup itself


def _stop(remote: Remote, units: list[str]) -> None:
    if units:
        remote.run("systemctl stop " + shlex.join(units), "stop srht's units")


def _distributions(site: Any) -> dict[str, str]:
    out = {}
    for name in site.distributions():
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


# -- backup --------------------------------------------------------------------------------


def _revisions(remote: Remote, place: DatabasePlace) -> dict[str, list[str]]:
    """``{version table: [revisions]}`` of a database: which migrations it has."""
    found: dict[str, list[str]] = {}
    if place.kind == "postgresql":
        out = remote.run(
            _psql(place.name, REVISIONS_SQL), f"read the migrations of {place.name}"
        ).stdout
        for line in out.splitlines():
            table, _, revisions = line.partition("|")
            found[table] = sorted(r for r in revisions.strip("{}").split(",") if r)
    else:
        out = remote.run(
            _sqlite("revisions", place.name), f"read the migrations of {place.name}"
        ).stdout
        for line in out.splitlines():
            table, _, revision = line.partition(" ")
            found.setdefault(table, []).append(revision)
    return found


def take_backup(
    site: Any,
    config_path: Path,
    output: Path,
    *,
    online: bool,
    hosts: dict[str, Remote] | None = None,
) -> Path:
    """Write the archive of ``site`` into the folder ``output``; returns its path.

    :param hosts: how to reach the hosts (default: as ``[deploy]`` says; the
        scheduled backup gives its own key, see :mod:`srht_installer.scheduled`).
    """
    hosts = hosts if hosts is not None else remotes(site)
    topology = site.topology
    places = {s: p for s in topology.services if (p := _database(site, s)) is not None}
    involved = sorted(
        {p.host for p in places.values()}
        | {h for s in topology.services if (h := _first_host(site, s))}
    )
    for name in involved:  # reach every host before anything is stopped
        hosts[name].run("true", "check the connection")

    stamp = datetime.now(UTC)
    output.mkdir(parents=True, exist_ok=True)
    path = output / f"srht-backup-{stamp:%Y%m%dT%H%M%SZ}.tar"
    if path.exists():
        raise ArchiveError(f"{path} exists already (a backup made this very second); try again")
    writer = ArchiveWriter(path)
    stopped: dict[str, list[str]] = {}
    parts: list[dict[str, Any]] = []
    try:
        if not online:
            for placement in topology.placements():
                if placement.runs_srht:
                    units = _units(hosts[placement.name])
                    say(f"Stopping {len(units)} unit(s) on {placement.name} for the backup")
                    stopped[placement.name] = units
                    _stop(hosts[placement.name], units)

        written = writer.add_bytes(CONFIG_PART, config_path.read_bytes())
        parts.append(
            {"name": CONFIG_PART, "kind": "config", "size": written.size, "sha256": written.sha256}
        )
        for service in topology.services:
            place = places.get(service)
            if place is not None:
                parts.append(_backup_database(writer, hosts[place.host], place))
            host = _first_host(site, service)
            if host is None:
                continue
            exclude = [place.name] if place and place.kind == "sqlite" else []
            for label, folder in _folders(site, service):
                part = _backup_folder(
                    writer, hosts[host], service, label, folder, exclude=exclude, online=online
                )
                if part is not None:
                    parts.append(part)

        manifest = {
            "format": FORMAT,
            "id": uuid.uuid4().hex,
            "created": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "versions": _distributions(site),
            "python": platform.python_version(),
            "site-name": site.site_name,
            "services": list(topology.services),
            "hosts": {s: list(topology.service_hosts[s]) for s in topology.services},
            "postgresql-host": topology.postgresql_host,
            "online": online,
            "parts": parts,
        }
        writer.add_bytes(MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n")
        done = writer.commit()
    except BaseException:
        writer.abort()
        raise
    finally:
        for name, units in stopped.items():
            if units:
                say(f"Starting {len(units)} unit(s) on {name} again")
                try:
                    hosts[name].run(
                        "systemctl start " + shlex.join(units), "start srht's units again"
                    )
                    _wait_for_services(hosts[name], topology, units)
                except RemoteError as error:
                    say(f"error: {error}; start them by hand: systemctl start " + " ".join(units))
    return done


#: Seconds a restarted service has to answer its /healthz again.
RESTART_WAIT = 90


def _wait_for_services(remote: Remote, topology: Any, units: list[str]) -> None:
    """Wait until each web service among ``units`` answers its ``/healthz``
    on the host again, so that the backup is over only once the site is
    (systemd calls a unit active as soon as its process started, before
    gunicorn listens).

    :raises RemoteError: when one does not answer within
        :data:`RESTART_WAIT` seconds.
    """
    urls = []
    for service, bind in topology.binds.items():
        if f"srht-{service}.service" in units:
            address, _, port = bind.rpartition(":")
            if address in ("", "0.0.0.0", "::", "[::]"):  # noqa: S104 - a config value
                address = "127.0.0.1"
            urls.append(f"http://{address}:{port}/healthz")
    for url in urls:
        remote.run(
            f"for i in $(seq {RESTART_WAIT}); do "
            f"curl -fsS -o /dev/null --max-time 5 {shlex.quote(url)} && exit 0; sleep 1; "
            "done; exit 1",
            f"wait for {url} to answer again",
        )


def table_rows(remote: Remote, place: DatabasePlace) -> dict[str, int]:
    """``{table: rows}`` of every table of a database."""
    if place.kind == "postgresql":
        command, separator = _psql(place.name, COUNTS_SQL), "|"
    else:
        command, separator = _sqlite("counts", place.name), " "
    out = remote.run(command, f"count the rows of {place.name}").stdout
    rows = {}
    for line in out.splitlines():
        table, _, count = line.rpartition(separator)
        if table:
            rows[table] = int(count)
    return rows


def _backup_database(writer: ArchiveWriter, remote: Remote, place: DatabasePlace) -> dict[str, Any]:
    revisions = _revisions(remote, place)
    # Counted before the dump: with the services stopped (not --online) they agree.
    rows = table_rows(remote, place)
    if place.kind == "postgresql":
        name = f"databases/{place.service}.pgdump"
        command = f"runuser -u postgres -- pg_dump -Fc --no-password {shlex.quote(place.name)}"
    else:
        name = f"databases/{place.service}.sqlite"
        command = _sqlite("dump", place.name)
    say(f"Dumping the database of {place.service} ({place.name} on {remote.name})...")
    written = writer.add(
        name,
        lambda sink: remote.read(
            command, f"dump the database of {place.service} ({place.name})", sink
        ),
    )
    say(f"  {human_size(written.size)}")
    return {
        "name": name,
        "kind": place.kind,
        "service": place.service,
        "host": place.host,
        "database": place.name,
        "role": place.role,
        "revisions": revisions,
        "rows": rows,
        "size": written.size,
        "sha256": written.sha256,
    }


def _backup_folder(
    writer: ArchiveWriter,
    remote: Remote,
    service: str,
    label: str,
    folder: str,
    *,
    exclude: list[str],
    online: bool,
) -> dict[str, Any] | None:
    quoted = shlex.quote(folder)
    if remote.run(f"test -d {quoted}", f"look for {folder}", check=False).returncode != 0:
        say(f"No {folder} on {remote.name}: nothing to back up there for {service}")
        return None
    options = []
    for path in exclude:
        if _inside(path, folder) and path != folder:
            relative = "./" + str(PurePosixPath(path).relative_to(folder))
            options += [
                f"--exclude={relative}{suffix}" for suffix in ("", "-wal", "-shm", "-journal")
            ]
    command = f"tar -C {quoted} -czf - {shlex.join(options)} ."
    if online:
        # Online, a file may change while tar reads it (exit 1): that is the trade-off.
        command = (
            f"tar -C {quoted} -czf - --warning=no-file-changed {shlex.join(options)} .; "
            "s=$?; [ $s -le 1 ] || exit $s"
        )
    name = f"data/{service}/{label}.tar.gz"
    say(f"Archiving {folder} of {service} on {remote.name}...")
    written = writer.add(name, lambda sink: remote.read(command, f"archive {folder}", sink))
    say(f"  {human_size(written.size)}")
    return {
        "name": name,
        "kind": "folder",
        "service": service,
        "label": label,
        "host": remote.name,
        "path": folder,
        "size": written.size,
        "sha256": written.sha256,
    }


@click.command("backup")
@click.option(
    "-c",
    "--config",
    "config_path",
    metavar="PATH",
    envvar="SRHT_CONFIG",
    help="The site's config (default: $SRHT_CONFIG, ./config.ini, /etc/srht/config.ini).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder to write the archive into.",
)
@click.option(
    "--online",
    is_flag=True,
    help="Keep the services running: each database dump is still consistent, "
    "but a repository pushed to during the backup may be caught half-way, "
    "out of step with the database.",
)
@click.pass_context
def backup_command(ctx: click.Context, config_path: str | None, output: Path, online: bool) -> None:
    """Back the whole site up into one archive: every service's database,
    data folders (git repositories, ...) and the config.

    The services are stopped while the backup is taken (unless --online)
    and started again afterwards. The archive, srht-backup-DATE.tar, is
    written with mode 0600: it holds the config and with it every secret
    of the site; keep it as safe as the config itself. Its path is printed.
    """
    path = _config_path(ctx, config_path)
    if path is None or not path.is_file():
        fail(
            f"no config at {path}"
            if path
            else "no config found (looked at --config, "
            "$SRHT_CONFIG, ./config.ini, /etc/srht/config.ini)"
        )
    site = _load_site(path)
    started = time.monotonic()
    try:
        archive = take_backup(site, path.resolve(), output, online=online)
    except (RemoteError, ArchiveError, OSError) as error:
        fail(f"{error}\nNo archive was written.")
    say(
        f"Backup complete in {time.monotonic() - started:.0f}s: {archive} "
        f"({human_size(archive.stat().st_size)}, mode 0600: it holds the site's secrets)"
    )
    click.echo(str(archive))


# -- restore -------------------------------------------------------------------------------


def verify_archive(reader: ArchiveReader) -> dict[str, Any]:
    """The manifest, once every part is present with its recorded size and
    SHA-256 and the archive is one this srht can restore."""
    try:
        manifest = json.loads(reader.read_bytes(MANIFEST))
    except ValueError as error:
        raise ArchiveError(
            f"the manifest of {reader.path} is not JSON ({error}): the archive is damaged"
        ) from None
    found = manifest.get("format", "unknown") if isinstance(manifest, dict) else "unknown"
    if found != FORMAT:
        raise ArchiveError(
            f"{reader.path} is a {found!r} archive; this srht-install restores "
            f"{FORMAT!r} archives (made by `srht-install backup`)"
        )
    parts = manifest.get("parts")
    keys = ("name", "kind", "size", "sha256")
    if (
        not isinstance(parts, list)
        or not isinstance(manifest.get("services"), list)
        or not all(isinstance(p, dict) and all(k in p for k in keys) for p in parts)
    ):
        raise ArchiveError(
            f"the manifest of {reader.path} lacks its parts or services: the archive is damaged"
        )
    # Names and the id reach shell lines on the hosts (restore markers): only safe ones.
    unsafe = [str(p["name"]) for p in parts if not SAFE_NAME.fullmatch(str(p["name"]))]
    if unsafe or not re.fullmatch(r"[0-9a-f]{32}", str(manifest.get("id"))):
        raise ArchiveError(
            f"the manifest of {reader.path} has a bad id or part names "
            f"({', '.join(unsafe) or 'id'}): it was not written by "
            "`srht-install backup`"
        )
    problems = []
    for part in parts:
        name = part["name"]
        if name not in reader.members:
            problems.append(f"{name} is missing")
            continue
        size, digest = reader.digest(name)
        if (size, digest) != (part["size"], part["sha256"]):
            problems.append(
                f"{name} is damaged (SHA-256 {digest[:12]}..., size {size}; "
                f"the manifest says {part['sha256'][:12]}..., size {part['size']})"
            )
    if problems:
        raise ArchiveError(
            f"{reader.path} is corrupt; nothing was restored:\n  " + "\n  ".join(problems)
        )
    checked: dict[str, Any] = manifest
    return checked


def check_software(manifest: dict[str, Any], site: Any) -> list[str]:
    """What this machine's srht lacks to restore the archive: distributions
    older than those that made it, and schema revisions it does not know."""
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError
    from packaging.version import InvalidVersion, Version

    from srht_core.migrate import CORE_MIGRATIONS, CORE_VERSION_TABLE, ENV_DIR, version_table

    problems = []
    installed = _distributions(site)
    for name, version in manifest.get("versions", {}).items():
        mine = installed.get(name)
        if mine is None:
            problems.append(
                f"{name} {version} made this backup but is not installed here "
                f"(install it: the site's config enables its service)"
            )
            continue
        try:
            newer = Version(version) > Version(mine)
        except InvalidVersion:
            newer = False
        if newer:
            problems.append(
                f"this backup was made with {name} {version}, this is {mine}: "
                f"install {name} {version} or newer to restore it"
            )

    def scripts(folder: Path) -> ScriptDirectory:
        config = AlembicConfig()
        config.set_main_option("script_location", str(ENV_DIR))
        config.set_main_option("version_locations", str(folder))
        config.set_main_option("path_separator", "os")
        return ScriptDirectory.from_config(config)

    for part in manifest["parts"]:
        if part["kind"] not in ("postgresql", "sqlite"):
            continue
        service = part["service"]
        schema = site.plugins.call_one("database_schema", service)
        folders = {
            CORE_VERSION_TABLE: CORE_MIGRATIONS,
            version_table(service): getattr(schema, "migrations", None),
        }
        for table, revisions in part.get("revisions", {}).items():
            folder = folders.get(table)
            if folder is None:
                continue
            known = scripts(folder)
            for revision in revisions:
                try:
                    found = known.get_revision(revision)
                except CommandError:
                    found = None
                if found is None:
                    problems.append(
                        f"the {service} database is at migration {revision}, "
                        "which this srht does not know: restore with the srht "
                        "version that made the backup, or newer"
                    )
    return problems


def _restore_config(reader: ArchiveReader, path: Path) -> Path:
    """The config to restore with: the archived one, written to ``path``
    when nothing is there; else the one at ``path`` if its secrets are the
    archive's (new host addresses, say)."""
    from srht_core import load_config

    archived = reader.read_bytes(CONFIG_PART)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(archived)
        say(f"Wrote the archived config to {path} (mode 0600)")
        return path
    if path.read_bytes() == archived:
        return path
    mine = load_config(path)
    copy = path.with_name(f".{path.name}.archived-{os.getpid()}")
    fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(archived)
        theirs = load_config(copy)
    finally:
        copy.unlink(missing_ok=True)
    differ = [
        f"[{s}] {k}"
        for s, k in SECRET_KEYS
        if mine.raw.get(s) is None
        or theirs.raw.get(s) is None
        or getattr(mine.raw[s].values.get(k), "value", None)
        != getattr(theirs.raw[s].values.get(k), "value", None)
    ]
    if differ:
        fail(
            f"{path} is not the archived config and its {', '.join(differ)} differ from "
            "the archive's: tokens, sign-ins and database passwords depend on them. "
            "Restore with the archived config (give --config a path that does not exist "
            "yet: it is written there), or copy those keys into yours."
        )
    say(f"Restoring with {path} (not the archived config, but with the same secrets)")
    return path


def _deploy(site: Any, config: Path, wheelhouse: Path, what: str, deploy_file: Path) -> bool:
    """Run ``deploy_file`` on every host with the installer's compact
    progress (pyinfra's own output goes to the installer's log); ``False``
    after naming each host that failed, its step and its output."""
    from .run import apply, log_path
    from .ui import ApplyDisplay, report_failures

    hosts = list(site.topology.hosts)
    with ApplyDisplay(hosts) as display:
        applied = apply(
            config, wheelhouse=wheelhouse, listener=display, deploy_file=deploy_file, what=what
        )
        if applied.ok:
            display.finish()
    if not applied.ok:
        report_failures(site, applied.failures, log_path(config), again="the same restore")
    return applied.ok


def _marker(part: dict[str, Any]) -> str:
    label = part["name"].replace("/", "-")
    return f"{STATE_DIR}/restored-{label}"


def _restored(remote: Remote, part: dict[str, Any], archive_id: str) -> bool:
    result = remote.run(f"cat {_marker(part)} 2>/dev/null || true", "read restore markers")
    return result.stdout.strip() == archive_id


@dataclass(frozen=True)
class Target:
    """Where one archived part goes in the site being restored."""

    part: dict[str, Any]
    host: str
    place: DatabasePlace | None = None
    path: str | None = None
    owner: str | None = None


def _targets(site: Any, manifest: dict[str, Any]) -> list[Target]:
    out = []
    for part in manifest["parts"]:
        service = part.get("service")
        if part["kind"] == "config":
            continue
        if service not in site.topology.services:
            fail(
                f"the archive holds {service}, which the config does not enable: add its "
                f"[{service}] section (and its hosts) to restore it"
            )
        if part["kind"] in ("postgresql", "sqlite"):
            place = _database(site, service)
            if place is None or place.kind != part["kind"]:
                now = place.kind if place else "no database"
                fail(
                    f"{service}'s database was {part['kind']} when backed up and is {now} "
                    "in this config: restore with the archived config"
                )
            out.append(Target(part, place.host, place=place, owner=f"srht-{service}"))
        else:
            folders = dict(_folders(site, service))
            host = _first_host(site, service)
            if part["label"] not in folders or host is None:
                fail(
                    f"the archive holds {part['path']} of {service}, which this config "
                    "places nowhere: restore with the archived config"
                )
            out.append(Target(part, host, path=folders[part["label"]]))
    return out


def _holds_data(remote: Remote, target: Target) -> bool:
    place = target.place
    assert place is not None
    if place.kind == "postgresql":
        if remote.run("command -v psql", "look for PostgreSQL", check=False).returncode != 0:
            return False  # a fresh host: PostgreSQL is not even installed yet
        names = remote.run(
            _psql("postgres", "SELECT datname FROM pg_database"), "list the databases"
        ).stdout.split()
        exists = place.name in names
        if not exists:
            return False
        rows = remote.run(_psql(place.name, EMPTY_SQL), f"count the rows of {place.name}")
    else:
        rows = remote.run(_sqlite("rows", place.name), f"count the rows of {place.name}")
    return int(rows.stdout.strip() or 0) > 0


def _restore_database(
    reader: ArchiveReader, remote: Remote, target: Target, archive_id: str
) -> None:
    place, part = target.place, target.part
    assert place is not None
    marker = f"echo {archive_id} > {_marker(part)}"
    if place.kind == "postgresql":
        database, role = shlex.quote(place.name), shlex.quote(place.role or "")
        command = (
            "set -e; "
            f"runuser -u postgres -- dropdb --if-exists --force {database}; "
            f"runuser -u postgres -- createdb --owner={role} {database}; "
            "runuser -u postgres -- pg_restore --no-owner --no-privileges --exit-on-error "
            f"--single-transaction --role={role} -d {database}; {marker}"
        )
    else:
        path = shlex.quote(place.name)
        staged = shlex.quote(place.name + ".restoring")
        owner = shlex.quote(f"{target.owner}:{target.owner}")
        command = (
            f"set -e; mkdir -p $(dirname {path}); cat > {staged}; "
            f"chown {owner} {staged}; chmod 640 {staged}; "
            f"rm -f {path}-wal {path}-shm {path}-journal; mv {staged} {path}; {marker}"
        )
    say(f"Restoring the database of {place.service} ({place.name} on {remote.name})...")
    remote.write(command, f"restore the database of {place.service}", reader.chunks(part["name"]))


def _restore_folder(reader: ArchiveReader, remote: Remote, target: Target, archive_id: str) -> None:
    part, path = target.part, target.path
    assert path is not None
    folder = shlex.quote(path)
    # Emptied first, so a run cut short is redone from scratch; owners by name.
    command = (
        f"set -e; mkdir -p {folder}; find {folder} -mindepth 1 -delete; "
        f"tar -C {folder} -xzpf - --same-owner; echo {archive_id} > {_marker(part)}"
    )
    say(f"Restoring {path} of {part['service']} on {remote.name}...")
    remote.write(command, f"restore {path}", reader.chunks(part["name"]))


def run_restore(
    reader: ArchiveReader, manifest: dict[str, Any], config_path: Path, *, force: bool
) -> Any:
    """Restore the verified archive onto the site of ``config_path``."""
    from srht_deploy.wheels import WheelhouseError

    from .run import SITE

    site = _load_site(config_path)
    missing = [s for s in manifest["services"] if s not in site.topology.services]
    if missing:
        fail(f"the config does not enable {', '.join(missing)}, which the archive holds")
    problems = check_software(manifest, site)
    if problems:
        fail(
            "this archive cannot be restored with this srht; nothing was changed:\n  "
            + "\n  ".join(problems)
        )
    targets = _targets(site, manifest)
    hosts = remotes(site)
    archive_id = manifest["id"]

    # Before anything changes: what this archive restored already (a re-run),
    # and whether the site holds other data that a restore would replace.
    pending = [t for t in targets if not _restored(hosts[t.host], t.part, archive_id)]
    if not force:
        busy = [t.place for t in pending if t.place is not None and _holds_data(hosts[t.host], t)]
        if busy:
            names = ", ".join(f"{p.name} on {p.host}" for p in busy if p is not None)
            fail(
                f"{names} already hold data that is not from this archive; nothing was "
                "changed. Restore is for fresh hosts: run it with --force to replace that "
                "data with the archive's."
            )

    say(f"Building the wheelhouse ({', '.join(site.distributions())})...")
    try:
        wheelhouse = site.wheelhouse.folder
    except WheelhouseError as error:
        fail(str(error))
    say("Installing and configuring every host (srht_deploy install, configure)...")
    stage = Path(__file__).with_name("restore_stage.py")
    if not _deploy(site, config_path, wheelhouse, "restore: install, configure", stage):
        fail("installing or configuring a host failed (see above); nothing was restored yet")
    for placement in site.topology.placements():
        if placement.runs_srht:
            _stop(hosts[placement.name], _units(hosts[placement.name]))
    for target in targets:
        if target not in pending:
            say(f"{target.part['name']}: already restored from this archive")
    for target in pending:
        if target.place is not None:
            _restore_database(reader, hosts[target.host], target, archive_id)
    for target in pending:
        if target.path is not None:
            _restore_folder(reader, hosts[target.host], target, archive_id)

    say("Deploying (migrations, start, health checks)...")
    if not _deploy(site, config_path, wheelhouse, "restore: deploy", SITE):
        fail(
            "the data is restored, but the deploy that starts the site failed (see above); "
            "fix that and run `srht-install` (or this restore again)"
        )
    return site


def _decrypted(archive: Path, identity: Path | None, passphrase_file: Path | None) -> Path:
    """The plain archive of an encrypted one, decrypted next to it (mode
    0600, ``ARCHIVE.tar``); an existing one is used as it is."""
    from .scheduled import decrypt_archive

    plain = archive.with_name(archive.name.removesuffix(".age"))
    if plain.exists():
        say(f"Using {plain}, decrypted already")
        return plain
    if identity is None and passphrase_file is None:
        fail(
            f"{archive} is encrypted: give --identity KEYFILE (the age private key of "
            "[backup] recipient) or --passphrase-file FILE"
        )
    say(f"Decrypting {archive} into {plain} (mode 0600)...")
    try:
        decrypt_archive(
            archive,
            plain,
            identity=identity,
            passphrase=passphrase_file.read_text().strip("\n") if passphrase_file else None,
        )
    except (ValueError, OSError) as error:
        fail(str(error))
    return plain


@click.command("restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-c",
    "--config",
    "config_path",
    metavar="PATH",
    envvar="SRHT_CONFIG",
    help="The config to restore with. When no file is there (or none is found), "
    "the archived config is written there (default ./config.ini).",
)
@click.option(
    "--force", is_flag=True, help="Replace databases that already hold data not from this archive."
)
@click.option(
    "--identity",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="For an encrypted archive (ARCHIVE.tar.age, from a scheduled backup): the age "
    "private key file (age-keygen's) to decrypt it with.",
)
@click.option(
    "--passphrase-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="For an archive encrypted with a passphrase ([backup] passphrase-file): that file.",
)
@click.pass_context
def restore_command(
    ctx: click.Context,
    archive: Path,
    config_path: str | None,
    force: bool,
    identity: Path | None,
    passphrase_file: Path | None,
) -> None:
    """Bring the site of ARCHIVE (from `srht-install backup`) back on fresh hosts.

    Verifies the whole archive first, then installs and configures every
    host, restores each database and data folder, migrates, starts the
    services and checks them. Run it again after a failure: what was
    restored already is skipped.
    """
    started = time.monotonic()
    if archive.name.endswith(".age"):
        archive = _decrypted(archive, identity, passphrase_file)
    try:
        reader = ArchiveReader(archive)
    except ArchiveError as error:
        fail(str(error))
    try:
        say(f"Verifying {archive}...")
        manifest = verify_archive(reader)
        say(
            f"Backup of {manifest.get('site-name')} from {manifest.get('created')}: "
            f"{', '.join(manifest['services'])}"
        )
        path = _config_path(ctx, config_path) or Path("config.ini")
        path = _restore_config(reader, path)
    except (ArchiveError, OSError) as error:
        reader.close()
        fail(str(error))
    try:
        site = run_restore(reader, manifest, path.resolve(), force=force)
    except (RemoteError, ArchiveError, OSError) as error:
        fail(
            f"{error}\nRun the same restore again once that is fixed: what was restored "
            "already is skipped."
        )
    finally:
        reader.close()
    say(f"Restored in {time.monotonic() - started:.0f}s.")
    for service in site.topology.services:
        click.echo(f"  {service:<10} {site.config[service]['origin']}")
