"""The ``srht`` command line.

Everything a self-hoster or developer does by hand: list services, check or
write a config, make keys, migrate, serve one service, run every service
(``srht up``), run a worker, and each service's own commands under
``srht <service> ...``. Commands that only read the installation keep
working when a plugin is broken, and say which one.

Exit codes: 0 success, 1 failure while running, 2 a problem with the config
or the command line.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click

from .config import Config, ConfigError, find_config, load_config
from .plugins import PluginError, PluginHost

EXIT_FAILURE, EXIT_CONFIG = 1, 2


class Context:
    """What a CLI run shares between commands: the config path and one
    plugin host, both made on first use."""

    def __init__(self, config_path: str | None = None):
        self.config_path = config_path
        self._plugins: PluginHost | None = None

    @property
    def plugins(self) -> PluginHost:
        if self._plugins is None:
            self._plugins = PluginHost()
        return self._plugins

    def config(self, path: str | None = None) -> Config:
        try:
            return load_config(path or self.config_path)
        except ConfigError as error:
            fail_config(error)

    def checked_config(self, path: str | None = None) -> Config:
        config = self.config(path)
        problems = self.plugins.check_config(config)
        if problems:
            fail_config(ConfigError(problems))
        return config


def fail_config(error: ConfigError) -> NoReturn:
    for problem in error.problems:
        click.echo(str(problem), err=True)
    count = len(error.problems)
    click.echo(f"{count} problem{'s' if count != 1 else ''} found; nothing was started.", err=True)
    sys.exit(EXIT_CONFIG)


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


pass_context = click.make_pass_decorator(Context)


class SrhtGroup(click.Group):
    """The top-level group, with a ``srht <service>`` group per installed
    service that declares commands."""

    def _service_groups(self, ctx: click.Context) -> dict[str, click.Group]:
        obj = ctx.ensure_object(Context) if ctx.obj is None else ctx.obj
        groups: dict[str, click.Group] = {}
        if not isinstance(obj, Context):
            return groups
        plugins = obj.plugins
        for record in plugins.services():
            if (
                record.name in self.commands
                or plugins.hook_function("cli_commands", record.name) is None
            ):
                continue
            groups[record.name] = _service_group(
                record.name, record.info.title if record.info else record.name, plugins
            )
        return groups

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(
            set(super().list_commands(ctx))
            | set(self._service_groups(ctx))
            | {e.name for e in _added_commands()}
        )

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        for entry_point in _added_commands():
            if entry_point.name == cmd_name:
                return _load_added_command(entry_point)
        return self._service_groups(ctx).get(cmd_name)


#: Entry point group of commands other distributions add to ``srht`` (the
#: deploy's ``srht deploy``), so the core imports none of them.
COMMANDS_GROUP = "srht.commands"


def _added_commands() -> list[Any]:
    from importlib import metadata

    return sorted(metadata.entry_points(group=COMMANDS_GROUP), key=lambda e: e.name)


def _load_added_command(entry_point: Any) -> click.Command | None:
    try:
        command = entry_point.load()
    except Exception as error:  # noqa: BLE001 - a broken extension must not break srht
        click.echo(
            f"warning: command {entry_point.name} ({entry_point.value}) could not be "
            f"loaded: {type(error).__name__}: {error}",
            err=True,
        )
        return None
    return command if isinstance(command, click.Command) else None


class _ServiceGroup(click.Group):
    """``srht <service>``: its commands are asked of the service (which
    imports their modules) only when the group is listed or run, so ``srht
    --help`` imports no service's commands."""

    def __init__(self, *args: Any, plugins: PluginHost, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._plugins: PluginHost | None = plugins

    def _load(self) -> None:
        plugins, self._plugins = self._plugins, None
        if plugins is None or self.name is None:
            return
        try:
            commands = plugins.call_one("cli_commands", self.name) or []
        except PluginError as error:
            click.echo(f"warning: {error}", err=True)
            return
        for command in commands:
            self.add_command(command)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._load()
        return super().get_command(ctx, cmd_name)


def _service_group(name: str, title: str, plugins: PluginHost) -> click.Group:
    @click.group(
        name=name,
        cls=_ServiceGroup,
        plugins=plugins,
        help=f"Commands of the {title} service ({name}).",
    )
    @pass_context
    @click.pass_context
    def group(click_ctx: click.Context, ctx: Context) -> None:
        from .app import create_app

        config = ctx.checked_config()
        try:
            app = create_app(name, config, plugins=ctx.plugins)
        except PluginError as error:
            fail(str(error), EXIT_CONFIG)
        click_ctx.with_resource(app.app_context())

    return group


@click.group(cls=SrhtGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--config",
    "config_path",
    metavar="PATH",
    envvar="SRHT_CONFIG",
    help="Config file (default: $SRHT_CONFIG, ./config.ini, /etc/srht/config.ini).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.version_option(package_name="srht", prog_name="srht")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """srht: a self-hosted forge of small services.

    Start with `srht up` for a local look, or `srht config init --dev
    config.ini` to write a config to edit.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)
        logging.getLogger("srht.plugins").setLevel(logging.ERROR)
        logging.getLogger("srht_core.plugins").setLevel(logging.ERROR)
    if isinstance(ctx.obj, Context):
        # Resolving a service's command group already made one (and its plugins).
        ctx.obj.config_path = config_path
    else:
        ctx.obj = Context(config_path)


# -- services ----------------------------------------------------------------


@main.command()
@click.option("--hooks", "show_hooks", is_flag=True, help="Add the hooks each service implements.")
@pass_context
def services(ctx: Context, show_hooks: bool) -> None:
    """List installed services: version, status and why (and, with
    --hooks, which hooks each implements, comma-separated)."""
    config: Config | None = None
    path = find_config(ctx.config_path)
    if path is not None:
        try:
            config = load_config(path)
        except ConfigError as error:
            click.echo(f"warning: {error}", err=True)
    records = ctx.plugins.statuses(config)
    if not records:
        click.echo("No services installed.")
        return
    header = ["SERVICE", "PACKAGE", "STATUS"] + (["HOOKS"] if show_hooks else []) + ["WHY"]
    rows = [
        [r.name, r.label, r.status]
        + ([",".join(r.hooks) or "-"] if show_hooks else [])
        + [r.reason]
        for r in records
    ]
    # Every column but the last (WHY, free text) is padded to its widest cell.
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]))
    if any(r.status in ("failed", "incompatible") for r in records):
        sys.exit(EXIT_FAILURE)


# -- config ------------------------------------------------------------------


@main.group("config")
def config_group() -> None:
    """Check, write and show configs."""


@config_group.command("check")
@click.argument("path", required=False)
@pass_context
def config_check(ctx: Context, path: str | None) -> None:
    """Check a config against every installed service's schema.

    Prints every problem with file, line, section and key, and exits 2 when
    there is one.
    """
    from .schema import example_secrets_in_use

    config = ctx.config(path)
    problems = ctx.plugins.check_site(config)
    if problems:
        fail_config(ConfigError(problems))
    for warning in example_secrets_in_use(config):
        click.echo(f"warning: {warning}", err=True)
    enabled = [r.name for r in ctx.plugins.enabled(config)]
    keys = sum(len(s.values) for s in config.raw.values())
    click.echo(
        f"{config.path}: OK ({len(config.raw)} sections, {keys} keys; "
        f"services: {', '.join(enabled) or 'none'})"
    )


@config_group.command("init")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option(
    "--dev",
    is_flag=True,
    required=True,
    help="Write a development config (SQLite, local ports, outbox mail).",
)
@click.option(
    "--services",
    "services_",
    metavar="NAMES",
    help="Comma-separated services to enable (default: every installed one).",
)
@click.option("--force", is_flag=True, help="Replace an existing file.")
@pass_context
def config_init(ctx: Context, path: str, dev: bool, services_: str | None, force: bool) -> None:
    """Write a working development config to PATH."""
    from .devconfig import write_dev_config

    chosen = [s.strip() for s in services_.split(",") if s.strip()] if services_ else None
    try:
        target = write_dev_config(path, ctx.plugins, chosen, force=force)
    except (FileExistsError, LookupError) as error:
        fail(str(error), EXIT_CONFIG)
    click.echo(f"Wrote {target} (mode 0600). Check it with `srht config check {target}`.")


@config_group.command("show")
@click.argument("path", required=False)
@pass_context
def config_show(ctx: Context, path: str | None) -> None:
    """Print the config with every secret redacted."""
    from .config import dump_ini

    config = ctx.config(path)
    schemas, _problems = ctx.plugins.config_schemas()
    config.bind(schemas)
    click.echo(dump_ini(config.redacted()), nl=False)


@config_group.command("example")
def config_example() -> None:
    """Print config.example.ini as generated from the built-in schemas."""
    from .docs import example_config

    click.echo(example_config(PluginHost()), nl=False)


@main.command()
def keygen() -> None:
    """Generate a service key, network key and webhook signing key."""
    from .keys import generate_keys

    keys = generate_keys()
    click.echo("[srht]")
    click.echo(f"service-key = {keys.service_key}")
    click.echo(f"network-key = {keys.network_key}")
    click.echo("")
    click.echo("[webhooks]")
    click.echo(f"private-key = {keys.webhook_private_key}")
    click.echo(f"# public key, for webhook receivers: {keys.webhook_public_key}")


# -- database ----------------------------------------------------------------


@main.command()
@click.argument("service", required=False)
@pass_context
def migrate(ctx: Context, service: str | None) -> None:
    """Create or upgrade the database of SERVICE (default: every enabled one)."""
    from .app import create_app
    from .migrate import upgrade

    config = ctx.checked_config()
    names = [service] if service else [r.name for r in ctx.plugins.enabled(config)]
    broken = [r for r in ctx.plugins.statuses(config) if not r.ok and config.has_section(r.name)]
    for record in broken:
        click.echo(f"skipped {record.name}: {record.status}: {record.reason}", err=True)
    failed = bool(broken)
    for name in names:
        try:
            app = create_app(name, config, plugins=ctx.plugins)
        except PluginError as error:
            click.echo(f"{name}: {error}", err=True)
            failed = True
            continue
        state = app.extensions["srht"]
        try:
            changes = upgrade(state.db, name, state.schema)
        except Exception as error:  # noqa: BLE001 - reported per service, others go on
            click.echo(f"{name}: migration failed: {type(error).__name__}: {error}", err=True)
            failed = True
            continue
        finally:
            state.db.dispose()
        click.echo(f"{name}: " + ("; ".join(changes) if changes else "up to date"))
    if failed:
        sys.exit(EXIT_FAILURE)


# -- running -----------------------------------------------------------------


@main.command()
@click.argument("service")
@click.option("--bind", metavar="HOST:PORT", help="Listen here instead of [SERVICE] bind.")
@click.option(
    "--workers", type=click.IntRange(1, 256), help="gunicorn workers instead of [SERVICE] workers."
)
@pass_context
def serve(ctx: Context, service: str, bind: str | None, workers: int | None) -> None:
    """Run SERVICE under gunicorn."""
    from .serve import serve as run

    config = ctx.checked_config()
    try:
        run(service, config, ctx.plugins, bind=bind, workers=workers)
    except PluginError as error:
        fail(str(error), EXIT_CONFIG)


@main.command()
@click.argument("service")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="Jobs run at once (with a broker).",
)
@pass_context
def worker(ctx: Context, service: str, concurrency: int) -> None:
    """Run the background jobs and timers of SERVICE.

    With [srht] broker set, this is a Celery worker on the service's queue;
    without, it runs jobs straight from the service's database. It waits
    out database and broker outages; it exits 1 only when it cannot go on.
    """
    from .app import create_app
    from .jobs import Worker

    config = ctx.checked_config()
    try:
        app = create_app(service, config, plugins=ctx.plugins)
    except PluginError as error:
        fail(str(error), EXIT_CONFIG)
    if config.get("srht", "broker"):
        from .jobs import run_celery_worker

        run_celery_worker(app, concurrency=concurrency)
        return
    runner = Worker(app)
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    try:
        runner.run_forever()
    except KeyboardInterrupt:
        runner.stop()
    except Exception:  # noqa: BLE001 - logged with its traceback by run_forever
        sys.exit(EXIT_FAILURE)


@main.command()
@click.option(
    "--services",
    "services_",
    metavar="NAMES",
    help="With no config yet: the services to enable (default: all).",
)
@pass_context
def up(ctx: Context, services_: str | None) -> None:
    """Run every enabled service on this machine, each on its own port.

    Uses the config found as usual; with none, writes a development config
    to ./config.ini first. A process that exits is started again (after a
    pause that grows while it keeps exiting); the others go on. Stops
    everything on Ctrl-C.
    """
    from .devconfig import write_dev_config

    path = find_config(ctx.config_path)
    if path is None:
        chosen = [s.strip() for s in services_.split(",")] if services_ else None
        try:
            path = write_dev_config("config.ini", ctx.plugins, chosen)
        except (FileExistsError, LookupError) as error:
            fail(str(error), EXIT_CONFIG)
        click.echo(f"No config found: wrote a development config to {path}.")
    config = ctx.checked_config(str(path))
    names = [r.name for r in ctx.plugins.enabled(config)]
    if not names:
        fail(
            f"no service is enabled in {path}; add a [service] section (see `srht services`)",
            EXIT_CONFIG,
        )
    base = [sys.executable, "-m", "srht_core.cli", "--config", str(Path(path).resolve())]
    if subprocess.call([*base, "migrate"]) != 0:
        fail("migrations failed; nothing was started")
    daemons = dev_daemons(ctx.plugins, config, names)
    children = [
        _Child(label, [*base, *arguments]) for label, arguments in up_processes(names, daemons)
    ]
    for child in children:
        child.start()
    click.echo("")
    for name in names:
        click.echo(f"  {name:<10} {config[name]['origin']}")
        for daemon in daemons.get(name, []):
            if daemon.address:
                about = f"  ({daemon.description})" if daemon.description else ""
                click.echo(f"  {'':<10} {daemon.name}: {daemon.address}{about}")
    click.echo("\nRunning. Press Ctrl-C to stop.")
    _supervise(children)


def dev_daemons(plugins: PluginHost, config: Config, names: list[str]) -> dict[str, list[Any]]:
    """``{service: [DevDaemon, ...]}``: what each of ``names`` asks ``srht
    up`` to run besides its web server and worker (the ``dev_daemons``
    hook), each service asked in isolation."""
    found: dict[str, list[Any]] = {}
    for name, daemons, error in plugins.call_each("dev_daemons", names, config=config):
        if error is not None:
            click.echo(f"warning: {error}; its daemons are not started", err=True)
            continue
        found[name] = list(daemons or [])
    return found


def up_processes(names: list[str], daemons: dict[str, list[Any]]) -> list[tuple[str, list[str]]]:
    """What ``srht up`` starts, as ``(label, srht arguments)``: each
    service's web server and worker, then its development daemons."""
    out: list[tuple[str, list[str]]] = []
    for name in names:
        out.append((f"{name} web", ["serve", name]))
        out.append((f"{name} worker", ["worker", name]))
        for daemon in daemons.get(name, []):
            out.append((f"{name} {daemon.name}", list(daemon.command)))
    return out


#: A child that exits this many times in a row, each time sooner than
#: :data:`STEADY_AFTER` seconds after it started, is given up on: `srht up`
#: stops and says so, rather than restart it for ever.
MAX_QUICK_EXITS = 5
STEADY_AFTER = 30.0
MAX_RESTART_DELAY = 30.0


class _Child:
    """A process `srht up` runs and starts again when it exits."""

    def __init__(self, label: str, command: list[str]):
        self.label = label
        self.command = command
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.quick_exits = 0
        self.restart_at: float | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command)
        self.started = time.monotonic()
        self.restart_at = None

    def check(self) -> None:
        """Start the process again if it exited and its pause is over.

        :raises SystemExit: when it keeps exiting at once, or exited with a
            config problem (which no restart fixes).
        """
        now = time.monotonic()
        if self.restart_at is not None:
            if now >= self.restart_at:
                click.echo(f"{self.label}: starting again.", err=True)
                self.start()
            return
        if self.process is None or self.process.poll() is None:
            return
        code = self.process.returncode
        if code == EXIT_CONFIG:
            click.echo(f"{self.label} exited: a problem with the config; stopping.", err=True)
            raise SystemExit(EXIT_FAILURE)
        self.quick_exits = self.quick_exits + 1 if now - self.started < STEADY_AFTER else 1
        if self.quick_exits >= MAX_QUICK_EXITS:
            click.echo(
                f"{self.label} exited with code {code} {self.quick_exits} times in a row, "
                "each time soon after it started; stopping.",
                err=True,
            )
            raise SystemExit(EXIT_FAILURE)
        delay = min(2.0 ** (self.quick_exits - 1), MAX_RESTART_DELAY)
        click.echo(
            f"{self.label} exited with code {code}; starting it again in {delay:.0f} s "
            "(the other services go on).",
            err=True,
        )
        self.restart_at = now + delay

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _supervise(children: list[_Child]) -> None:
    def stop(*_args: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    # Explicitly: a shell without job control starts background commands
    # with SIGINT ignored, and Ctrl-C (or `kill -INT`) must still stop all.
    signal.signal(signal.SIGINT, stop)
    code = 0
    try:
        while True:
            for child in children:
                child.check()
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    finally:
        for child in children:
            child.stop()
        deadline = time.monotonic() + 10
        for child in children:
            child.wait(max(0.1, deadline - time.monotonic()))
    sys.exit(code)


# -- development -------------------------------------------------------------


@main.group()
def dev() -> None:
    """Tools for working on srht and on services."""


@dev.command("docs")
@click.option("--check", is_flag=True, help="Exit 1 if a generated file is stale.")
@click.option(
    "--root",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="The source tree to write into.",
)
def dev_docs(check: bool, root: str) -> None:
    """Generate docs/plugin-api.md, docs/config.md and config.example.ini."""
    from .docs import generated_files

    stale = []
    for relative, text in generated_files(PluginHost()).items():
        target = Path(root) / relative
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        stale.append(relative)
        if not check:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            click.echo(f"wrote {relative}")
    if check and stale:
        fail(f"stale: {', '.join(stale)}; run `srht dev docs`")
    if not stale:
        click.echo("generated files are current")


@dev.command("new-service")
@click.argument("name")
@click.option(
    "--path",
    "parent",
    type=click.Path(exists=True, file_okay=False, writable=True, path_type=Path),
    default=".",
    show_default=True,
    help="The folder to write srht-NAME into.",
)
@pass_context
def dev_new_service(ctx: Context, name: str, parent: Path) -> None:
    """Write a new service, srht-NAME, into a folder of its own.

    It installs with pip, passes its own tests and shows in `srht services`
    as it is: notes with pages, an API, a webhook, a migration and tests,
    built on the core's kit. NAME: lower-case letters, digits and dashes.
    Nothing is overwritten.
    """
    from .newservice import NewServiceError, write_service

    records = ctx.plugins.records.values()
    try:
        target = write_service(
            name,
            parent,
            taken=[r.name for r in records],
            ports=[r.info.default_port for r in records if r.info is not None],
        )
    except NewServiceError as error:
        fail(str(error), EXIT_CONFIG)
    files = sum(1 for path in target.rglob("*") if path.is_file())
    click.echo(f"Wrote {target} ({files} files), the service {name}. Next:")
    click.echo(f"  cd {target}")
    click.echo("  pip install -e '.[test]' && pytest")
    click.echo(f"  srht config init --dev config.ini --services meta,{name} && srht up")


@dev.command("revision")
@click.argument("service")
@click.option("-m", "--message", required=True, help="What the revision changes.")
@click.option("--empty", is_flag=True, help="Do not compare models with the database.")
@pass_context
def dev_revision(ctx: Context, service: str, message: str, empty: bool) -> None:
    """Write a new Alembic revision for SERVICE from its models."""
    from .app import create_app
    from .migrate import revision

    config = ctx.checked_config()
    app = create_app(service, config, plugins=ctx.plugins)
    state = app.extensions["srht"]
    if state.schema is None:
        fail(f"service {service} declares no database_schema")
    script = revision(state.db, service, state.schema, message, autogenerate=not empty)
    click.echo(f"wrote {script.path}" if script is not None else "nothing written")


if __name__ == "__main__":
    os.environ.setdefault("SRHT_CLI", "1")
    main()
