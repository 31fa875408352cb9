"""``srht-install``: from nothing to a running site, and every day after.

``srht-install`` with no config yet asks its questions (or reads
``--answers FILE``; every question also has a ``--flag``), writes the
config with generated secrets (0600, checked by the core before any host
is touched), shows the plan per host, applies it with progress, creates
the first admin and prints the URLs and DNS records. Run again on an
existing config, it upgrades: new code, migrations, restarts, with the
same plan, then apply.

``add SERVICE`` and ``remove SERVICE`` change the config's topology and
deploy the difference; ``status`` checks every service, daemon and
certificate; ``backup`` and ``restore`` are in :mod:`.backup`; ``upgrade``
(plan, backup, migrations rehearsed on a copy, then deploy) in
:mod:`.upgrade`.

Exit codes: 0 done (or nothing to do), 1 a host failed or a check is red,
2 a problem with the answers, the config or the command line, 130 stopped
at a prompt.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.markup import escape
from rich.table import Table

from srht_core import ConfigError, PluginError, PluginHost

from .answers import AnswerProblem, AnswersError, Given, collect, load_answers_file
from .hosts import HostError, reachable, site_config_path, ssh_settings
from .questions import QUESTIONS, Asking, question
from .siteconfig import (
    InstallState,
    PendingConfig,
    add_service,
    config_text,
    load_site,
    remove_service,
)
from .ui import (
    ApplyDisplay,
    Prompter,
    console,
    errors,
    plan_table,
    report_failures,
    summary_table,
)

EXIT_FAILURE, EXIT_USAGE, EXIT_STOPPED = 1, 2, 130


@dataclass
class Options:
    """What ``srht-install``'s own options say, for its subcommands
    (``ctx.find_root().obj.config_path`` is the ``--config`` given)."""

    config_path: str | None
    yes: bool = False
    dry_run: bool = False


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    errors.print(f"[red]error:[/red] {message}")
    sys.exit(code)


def _problems(lines: list[Any], what: str, code: int = EXIT_USAGE) -> NoReturn:
    for line in lines:
        errors.print(str(line), markup=False)
    count = len(lines)
    errors.print(f"{count} problem{'s' if count != 1 else ''} {what}; no host was touched.")
    sys.exit(code)


def _flag_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """A ``--KEY`` option per question (secrets have none: a command line
    is visible to every user of the machine)."""
    for entry in reversed(QUESTIONS):
        if entry.flag is None:
            continue
        function = click.option(
            entry.flag, f"flag_{entry.key.replace('-', '_')}", metavar="VALUE", help=entry.help
        )(function)
    return function


def _interactive(answers_file: str | None) -> bool:
    return answers_file is None and sys.stdin.isatty() and sys.stdout.isatty()


@click.group(
    "srht-install",
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "-c",
    "--config",
    "config_path",
    metavar="PATH",
    envvar="SRHT_CONFIG",
    help="The site's config (default: $SRHT_CONFIG, else ./config.ini). Written "
    "when it does not exist yet; upgraded from when it does.",
)
@click.option(
    "--answers",
    "answers_file",
    metavar="FILE",
    help="Answer the questions from FILE (TOML, or INI with an [install] section) "
    "instead of asking them.",
)
@click.option("-y", "--yes", is_flag=True, help="Apply the plan without asking.")
@click.option("--dry-run", is_flag=True, help="Stop after showing the plan.")
@_flag_options
@click.version_option(package_name="srht", prog_name="srht-install")
@click.pass_context
def main(
    ctx: click.Context,
    config_path: str | None,
    answers_file: str | None,
    yes: bool,
    dry_run: bool,
    **flags: str | None,
) -> None:
    """Install an srht site on your servers, or upgrade it.

    With no config yet, asks about the site (or reads --answers FILE; each
    question is also a --flag below), writes the config with fresh secrets,
    shows what each host will get, applies it and creates the first admin.
    With a config, upgrades the site the same way.
    """
    ctx.obj = Options(config_path, yes, dry_run)
    if ctx.invoked_subcommand is not None:
        return
    given: dict[str, Given] = {}
    # Problems of the file's keys are reported with those of its answers.
    key_problems: list[AnswerProblem] = []
    if answers_file:
        try:
            found, key_problems = load_answers_file(answers_file)
        except AnswersError as error:
            _problems(error.problems, "in the answers")
        given.update(found)
    for key, value in flags.items():
        if value is not None:
            name = key.removeprefix("flag_").replace("_", "-")
            given[name] = Given(value, f"--{name}")
    config = site_config_path(config_path, must_exist=False)
    try:
        install(
            config,
            given,
            key_problems=key_problems,
            answers_file=answers_file,
            yes=yes,
            dry_run=dry_run,
            interactive=_interactive(answers_file),
        )
    except KeyboardInterrupt:
        errors.print("\nStopped.")
        sys.exit(EXIT_STOPPED)


# -- install and upgrade -----------------------------------------------------------------


def install(
    config: Path,
    given: dict[str, Given],
    *,
    key_problems: Sequence[AnswerProblem] = (),
    answers_file: str | None,
    yes: bool,
    dry_run: bool,
    interactive: bool,
) -> None:
    """The whole run: answers and config (new site) or the config as it is
    (upgrade), then plan, apply, the first admin and the summary.

    A new site's config is written only when the run starts changing
    hosts: a declined plan or a dry run writes nothing, so answers changed
    afterwards are used by the next run (an existing config would win).
    """
    prompter = Prompter() if interactive else None
    pending: PendingConfig | None = None
    # The answers file's unknown keys, reported with every other problem.
    errors_so_far = list(key_problems)
    if config.exists():
        if errors_so_far:
            _problems(errors_so_far, "in the answers")
        console.print(
            f"[bold]{config}[/bold]: upgrading this site (new code, migrations, "
            "restarts where something changed)."
        )
        if any(not key.startswith("admin-") for key in given):
            console.print(
                "[dim]The config exists, so the answers only say who the first "
                "admin is; change the site by editing the config, or with "
                "`srht-install add` and `remove`.[/dim]"
            )
        site = _site(config)
        state = InstallState.load(config)
    else:
        if config.resolve() == Path("/etc/srht/config.ini"):
            fail(
                "the site's config must not be /etc/srht/config.ini: that is where the "
                "deploy writes each host's own copy; use --config PATH",
                EXIT_USAGE,
            )
        asking = Asking(
            PluginHost(),
            note=prompter.note
            if prompter
            else (lambda message: console.print(f"[dim]{message}[/dim]")),
        )
        if prompter is not None:
            console.print(
                "[bold]srht-install[/bold]: a few questions about your site. "
                "Ctrl-C stops without writing anything."
            )
        try:
            answers = collect(given, asking, prompter=prompter)
        except AnswersError as error:
            _problems([*errors_so_far, *error.problems], "in the answers")
        if prompter is not None:
            console.print(summary_table(answers))
            if not prompter.confirm("Show the plan for these answers (nothing is written yet)?"):
                console.print("Nothing was written.")
                return
        source = answers_file or "answers"
        try:
            pending = PendingConfig.checked(config, config_text(answers), source=source)
        except AnswersError as error:
            _problems([*errors_so_far, *error.problems], "in the answers")
        if errors_so_far:
            pending.discard()
            _problems(errors_so_far, "in the answers")
        state = InstallState(answers["admin-username"], answers["admin-email"])
        site = None
    new_site = pending

    def write_config() -> None:
        if new_site is None:
            return
        new_site.commit()
        assert state is not None
        state.save(config)
        console.print(
            f"Wrote [bold]{config}[/bold] (mode 0600; secrets generated, checked "
            "by `srht config check`)."
        )

    with pending or nullcontext():
        outcome = deploy(
            config,
            site or (new_site.site if new_site else _site(config)),
            yes=yes,
            dry_run=dry_run,
            prompter=prompter,
            source=pending.path if pending else None,
            before_apply=write_config,
        )
    if outcome in ("dry-run", "declined"):
        if pending is not None:
            console.print(f"Nothing was written: {config} does not exist yet.")
        return
    site = site or _site(config)
    if state is not None and not state.admin_created and state.admin_username:
        _first_admin(config, site, state, given, prompter)
    _finish(config, site, state)


def _site(config: Path) -> Any:
    try:
        return load_site(config)
    except ConfigError as error:
        _problems([str(p) for p in error.problems], f"in {config}")
    except PluginError as error:
        fail(str(error), EXIT_USAGE)


def deploy(
    config: Path,
    site: Any,
    *,
    yes: bool,
    dry_run: bool,
    prompter: Prompter | None,
    source: Path | None = None,
    before_apply: Callable[[], None] = lambda: None,
    after_plan: Callable[[Any], None] = lambda _plan: None,
    failed_note: Callable[[], str] = lambda: "",
) -> str:
    """Plan, show, confirm, apply. Returns ``applied``, ``nothing``,
    ``dry-run`` or ``declined``; exits 1 naming the host, step and remedy
    when a host fails (2 when there is no terminal to confirm on).

    :param source: the config to plan from when it is not ``config`` yet
        (a :class:`PendingConfig`'s); ``before_apply`` puts it in place,
        once the plan is accepted (or has nothing to change), just before
        the hosts are touched.
    :param after_plan: called with the plan once it is shown (the upgrade
        adds what restarts); ``failed_note`` adds a line to a failure's report.
    """
    from srht_deploy.wheels import WheelhouseError

    from .run import apply, log_path, plan, prepare

    source = source or config
    hosts = list(site.topology.hosts)
    settings = ssh_settings(source)
    unreachable = []
    with console.status("Checking that every host answers over SSH..."):
        for name in hosts:
            target = settings.targets[name]
            why = reachable(settings, target)
            if why:
                unreachable.append(
                    f"host {name} ({target.user}@{target.address}:{target.port}): {why}"
                )
    if unreachable:
        for line in unreachable:
            errors.print(f"[red]✗[/red] {line}", markup=True)
        fail(
            "nothing was changed on any host. Bring the host up (or fix [deploy] hosts in "
            f"{config}), then run srht-install again."
        )
    with console.status(f"Building the wheelhouse ({', '.join(site.distributions())})..."):
        try:
            wheelhouse = prepare(site)
        except (WheelhouseError, PluginError) as error:
            fail(f"the software for the hosts could not be built: {error}")
    with console.status("Planning: asking every host what would change (pyinfra's dry run)..."):
        try:
            planned = plan(source, hosts, wheelhouse=wheelhouse, log=log_path(config))
        except RuntimeError as error:
            fail(str(error))
    console.print(plan_table(planned))
    if planned.unreachable:
        fail(
            f"could not plan for {', '.join(planned.unreachable)} (see {log_path(config)}); "
            "nothing was changed."
        )
    after_plan(planned)
    if dry_run:
        console.print(
            "Dry run: nothing was changed on any host. Run srht-install again "
            "without --dry-run to apply."
        )
        return "dry-run"
    if planned.empty:
        before_apply()
        console.print("[green]Nothing to change:[/green] every host is as the config says.")
        return "nothing"
    if not yes:
        if prompter is None:
            fail("no terminal to confirm the plan on: pass --yes to apply it", EXIT_USAGE)
        if not prompter.confirm(
            f"Apply this plan to {len(hosts)} host{'s' if len(hosts) != 1 else ''}?"
        ):
            console.print("Nothing was changed.")
            return "declined"
    before_apply()
    with ApplyDisplay(hosts) as display:
        applied = apply(config, wheelhouse=wheelhouse, listener=display)
        if applied.ok:
            display.finish()
    if not applied.ok:
        report_failures(site, applied.failures, log_path(config))
        note = failed_note()
        if note:
            errors.print(note, markup=False, highlight=False)
        sys.exit(EXIT_FAILURE)
    changed = ", ".join(
        f"{host}: {applied.changed.get(host, 0)} step"
        f"{'s' if applied.changed.get(host, 0) != 1 else ''} changed"
        for host in hosts
    )
    console.print(f"[green]Applied.[/green] {changed}.")
    return "applied"


# -- the first admin ------------------------------------------------------------------------


def _admin_password(given: dict[str, Given], asking: Asking) -> str | None:
    """From ``admin-password-file`` (``-``: standard input), else ``None``."""
    entry = given.get("admin-password-file")
    if entry is None:
        return None
    try:
        path = question("admin-password-file").parse(entry.raw, asking)
    except ValueError as error:
        fail(f"{entry.source}: key `admin-password-file`: {error}", EXIT_USAGE)
    if path is None:
        return None
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    return text.splitlines()[0] if text.strip() else None


def _first_admin(
    config: Path, site: Any, state: InstallState, given: dict[str, Given], prompter: Prompter | None
) -> None:
    from .admin import create_admin

    username, email = state.admin_username or "", state.admin_email or ""
    password = _admin_password(given, Asking(PluginHost()))
    terminal = prompter or (Prompter() if sys.stdin.isatty() else None)
    if password is None and terminal is None:
        # Nobody to ask: meta prints a one-time link where the admin sets it.
        with console.status(f"Creating the admin ~{username} on meta..."):
            result = create_admin(config, site, username, email, None)
        if result.outcome == "refused":
            fail(
                f"meta refused the first admin ~{username}: {result.message}. Fix the "
                "answer, then run srht-install again (the site stays as deployed)."
            )
        console.print(f"[green]Admin:[/green] {result.message}")
        if result.link:
            console.print(
                f"Set the admin's password at [bold]{result.link}[/bold] (the link "
                "works once, and expires; `srht meta password-link "
                f"{username}` on the meta host makes a new one)."
            )
        state.admin_created = True
        state.save(config)
        return
    while True:
        if password is None:
            assert terminal is not None
            password = terminal.password(f"Password for ~{username} (at least 10 characters)")
            if terminal.password("The same password again") != password:
                console.print("[red]✗ the two passwords differ; again[/red]")
                password = None
                continue
        with console.status(f"Creating the admin ~{username} on meta..."):
            result = create_admin(config, site, username, email, password)
        if result.outcome in ("created", "exists"):
            console.print(f"[green]Admin:[/green] {result.message}")
            state.admin_created = True
            state.save(config)
            return
        if terminal is None or given.get("admin-password-file") is not None:
            fail(
                f"meta refused the first admin ~{username}: {result.message}. Fix the "
                "answer, then run srht-install again (the site stays as deployed)."
            )
        console.print(f"[red]✗ meta refused it: {result.message}[/red]")
        password = None


# -- the summary ----------------------------------------------------------------------------


def _finish(config: Path, site: Any, state: InstallState | None) -> None:
    from .finish import authority_file, dns_records, service_urls

    table = Table(title="Your site", title_justify="left")
    table.add_column("service", style="bold")
    table.add_column("URL")
    table.add_column("hosts")
    for service, url in service_urls(site).items():
        table.add_row(service, url, ", ".join(site.topology.service_hosts[service]))
    console.print(table)
    meta = service_urls(site).get("meta")
    if state is not None and state.admin_username and meta:
        done = "" if state.admin_created else " (not created yet)"
        console.print(
            f"Admin: sign in at {meta}/login as [bold]{state.admin_username}[/bold]{done}."
        )
    console.print("\nDNS records the site needs:")
    for record in dns_records(site):
        console.print(f"  {record}", markup=False, highlight=False)
    authority = authority_file(config, site)
    if authority is not None:
        console.print(
            f"\nThe certificates are self-signed: import {authority} in your "
            "browser as a trusted authority."
        )
    console.print("Check the site at any time with `srht-install status`.")


# -- add, remove ------------------------------------------------------------------------------


def _existing(ctx: click.Context) -> Path:
    try:
        return site_config_path(ctx.find_root().obj.config_path)
    except HostError as error:
        fail(str(error), EXIT_USAGE)


def _change_topology(
    ctx: click.Context, config: Path, new_text: str, yes: bool, dry_run: bool
) -> str:
    """Deploy ``new_text`` (checked) in place of the config: it is written
    only once the hosts start changing, so a plan declined, only shown, or
    refused (no terminal without ``--yes``, a host down) leaves the config
    as it was. Once applying has begun it stays, failed or not: running
    srht-install again completes the change."""
    options: Options = ctx.find_root().obj
    try:
        pending = PendingConfig.checked(config, new_text)
    except ConfigError as error:
        _problems(error.problems, "with that change")
    prompter = Prompter() if sys.stdin.isatty() and sys.stdout.isatty() else None
    with pending:
        try:
            return deploy(
                config,
                pending.site,
                yes=yes or options.yes,
                dry_run=dry_run or options.dry_run,
                prompter=prompter,
                source=pending.path,
                before_apply=pending.commit,
            )
        finally:
            if not pending.committed:
                errors.print(f"{config} is as it was.")


@main.command("add")
@click.argument("service")
@click.option(
    "--host",
    "hosts",
    metavar="NAMES",
    help="The hosts that run it, comma-separated (default: meta's host).",
)
@click.option("-y", "--yes", is_flag=True, help="Apply the plan without asking.")
@click.option("--dry-run", is_flag=True, help="Show the plan; leave the config as it was.")
@click.pass_context
def add_command(
    ctx: click.Context, service: str, hosts: str | None, yes: bool, dry_run: bool
) -> None:
    """Add SERVICE to the site and deploy the difference."""
    config = _existing(ctx)
    site = _site(config)
    installed = {r.name for r in site.plugins.services()}
    if service not in installed:
        fail(f"unknown service {service!r}; installed: {', '.join(sorted(installed))}", EXIT_USAGE)
    if site.config.has_section(service):
        fail(
            f"{service} is in {config} already (its hosts: "
            f"{', '.join(site.topology.service_hosts.get(service, ())) or 'none'})",
            EXIT_USAGE,
        )
    chosen = [h.strip() for h in (hosts or "").split(",") if h.strip()] or list(
        site.topology.service_hosts.get("meta", ())
    )[:1]
    unknown = [h for h in chosen if h not in site.topology.hosts]
    if unknown:
        fail(
            f"no host {', '.join(unknown)} in [deploy] hosts (hosts: "
            f"{', '.join(site.topology.hosts)})",
            EXIT_USAGE,
        )
    text = add_service(
        config.read_text(encoding="utf-8"),
        service,
        chosen,
        str(site.config["srht"]["global-domain"]),
    )
    if _change_topology(ctx, config, text, yes, dry_run) in ("applied", "nothing"):
        new = _site(config)
        console.print(
            f"[green]{service}[/green] runs at {new.config[service]['origin']} "
            f"on {', '.join(chosen)}."
        )


@main.command("remove")
@click.argument("service")
@click.option("-y", "--yes", is_flag=True, help="Apply the plan without asking.")
@click.option("--dry-run", is_flag=True, help="Show the plan; leave the config as it was.")
@click.pass_context
def remove_command(ctx: click.Context, service: str, yes: bool, dry_run: bool) -> None:
    """Remove SERVICE from the site: its daemons and web site go, its data stays."""
    config = _existing(ctx)
    site = _site(config)
    if service == "meta":
        fail("meta cannot be removed: every other service signs users in through it", EXIT_USAGE)
    if not site.config.has_section(service):
        fail(
            f"{service} is not in {config} (services: {', '.join(site.topology.services)})",
            EXIT_USAGE,
        )
    hosts = site.topology.service_hosts.get(service, ())
    text = remove_service(config.read_text(encoding="utf-8"), service)
    if _change_topology(ctx, config, text, yes, dry_run) in ("applied", "nothing"):
        database = site.databases().get(service)
        kept = (
            f"its database ({database.name} on {site.topology.postgresql_host})"
            if database is not None and site.topology.postgresql_host
            else "its database"
        )
        console.print(
            f"[green]{service} removed.[/green] Its data stays: {kept} and "
            f"{site.data_dir}/{service} on {', '.join(hosts)}; `srht-install add "
            f"{service}` brings it back."
        )


# -- status --------------------------------------------------------------------------------------


_COLOURS = {
    "green": "[green]ok[/green]",
    "yellow": "[yellow]soon[/yellow]",
    "red": "[red]FAIL[/red]",
}


@main.command("status")
@click.option(
    "--dns-server",
    metavar="ADDRESS[:PORT]",
    help="Resolve the services' names with this DNS server (default: this machine's resolver).",
)
@click.option(
    "--min-free",
    metavar="SIZE|PERCENT",
    multiple=True,
    help="A disk is red below all of these free (repeatable; default: 10% and 2GiB).",
)
@click.option(
    "--send-test-mail",
    metavar="ADDRESS",
    help="Also send a test message to ADDRESS through the site's mail relay.",
)
@click.pass_context
def status_command(
    ctx: click.Context,
    dns_server: str | None,
    min_free: tuple[str, ...],
    send_test_mail: str | None,
) -> None:
    """Check every service, daemon and certificate of the site, its DNS names, ports, mail
    relay, disks, PostgreSQL and Redis; exit 1 if one fails."""
    from .diagnose import DEFAULT_MIN_FREE, Diagnosis, FreeSpace, split_server
    from .status import check_site

    try:
        if dns_server:
            split_server(dns_server)
        thresholds = tuple(FreeSpace.parse(t) for t in min_free) or DEFAULT_MIN_FREE
    except ValueError as error:
        fail(f"status: {error}", EXIT_USAGE)
    diagnosis = Diagnosis(dns_server, thresholds, send_test_mail)
    config = _existing(ctx)
    site = _site(config)
    with console.status("Checking the site..."):
        checks = check_site(config, site, diagnosis=diagnosis)
    table = Table(title=f"{site.site_name}: status", title_justify="left")
    for column in ("check", "what", "host", "state", "detail"):
        table.add_column(column, overflow="fold")
    for check in checks:
        table.add_row(
            check.kind, check.what, check.where, _COLOURS[check.state], escape(check.detail)
        )
    console.print(table)
    red = [c for c in checks if c.state == "red"]
    if red:
        errors.print(
            f"[red]{len(red)} check{'s' if len(red) != 1 else ''} failed.[/red] "
            "Re-running srht-install repairs what the config describes."
        )
        sys.exit(EXIT_FAILURE)
    console.print("[green]All checks passed.[/green]")


# -- backup, restore (srht_installer.backup) ----------------------------------------------------

from .backup import backup_command, restore_command  # noqa: E402 - after the group exists
from .drill import drill_command  # noqa: E402 - after the group exists
from .upgrade import upgrade_command  # noqa: E402 - after the group exists

main.add_command(backup_command, "backup")
main.add_command(restore_command, "restore")
main.add_command(upgrade_command, "upgrade")
main.add_command(drill_command, "drill")


if __name__ == "__main__":
    main()
