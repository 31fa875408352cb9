"""``srht deploy``: deploy the site the config describes.

Registered on the ``srht`` command through the ``srht.commands`` entry
point (the core imports nothing of the deploy). It checks the config and
its topology, builds the wheelhouse, then runs pyinfra on the inventory
derived from the config (``deploy/inventory.py``) with ``deploy/site.py``,
exactly what a user can run by hand::

    SRHT_CONFIG=config.ini pyinfra srht_deploy/inventory.py srht_deploy/site.py -y

Exit codes: 0 when every host converged, 1 when a host failed or could not
be reached (named in the output), 2 for a problem with the config.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from srht_core import ConfigError, PluginError
from srht_core.config import find_config

HERE = Path(__file__).parent
EXIT_FAILURE, EXIT_CONFIG = 1, 2


def _config_path(ctx: click.Context) -> Path:
    root = ctx.find_root().obj
    explicit = getattr(root, "config_path", None)
    found = find_config(explicit)
    if found is None:
        raise click.ClickException(
            "no config found (looked at --config, $SRHT_CONFIG, ./config.ini, /etc/srht/config.ini)"
        )
    return found.resolve()


def _site(path: Path) -> Any:
    from .model import Site

    try:
        return Site.from_config(path)
    except ConfigError as error:
        for problem in error.problems:
            click.echo(str(problem), err=True)
        count = len(error.problems)
        click.echo(
            f"{count} problem{'s' if count != 1 else ''} found; nothing was deployed.", err=True
        )
        sys.exit(EXIT_CONFIG)


@click.group("deploy", invoke_without_command=True)
@click.option("--dry", is_flag=True, help="Show what would change on each host; change nothing.")
@click.option(
    "--limit",
    metavar="NAMES",
    help="Only these hosts or groups (comma-separated: alpha, nginx, meta, ...).",
)
@click.option(
    "--json",
    "json_output",
    is_flag=True,
    help="Print pyinfra's JSON plan and results instead of its progress.",
)
@click.option("-v", "--verbose", count=True, help="More of pyinfra's output (-v, -vv, -vvv).")
@click.pass_context
def deploy(
    ctx: click.Context, dry: bool, limit: str | None, json_output: bool, verbose: int
) -> None:
    """Deploy the site the config describes to its hosts.

    Checks the config and the topology in [deploy], builds the wheelhouse,
    then installs, configures and activates every host over SSH with
    pyinfra. A second run changes nothing. See `srht deploy hosts` for what
    goes where.
    """
    if ctx.invoked_subcommand is not None:
        return
    path = _config_path(ctx)
    site = _site(path)
    # install-method = distro installs packages: no wheelhouse to build.
    distro = site.config.get("srht", "install-method") == "distro"
    wheelhouse = None if distro else _wheelhouse(site, quiet=json_output).folder
    code, report = run_pyinfra(
        path, dry=dry, limit=limit, json_output=json_output, verbose=verbose, wheelhouse=wheelhouse
    )
    if report is not None:
        click.echo(json.dumps(report, indent=2))
        failed = (report.get("results") or {}).get("failed_hosts") or []
        for name in failed:
            target = site.topology.hosts.get(name)
            where = f" ({target.user}@{target.address}:{target.port})" if target else ""
            click.echo(f"error: host {name}{where} failed or could not be reached", err=True)
    sys.exit(EXIT_FAILURE if code else 0)


def run_pyinfra(
    config: Path,
    *,
    dry: bool = False,
    limit: str | None = None,
    json_output: bool = False,
    verbose: int = 0,
    wheelhouse: Path | None = None,
    extra: list[str] | None = None,
) -> tuple[int, dict[str, Any] | None]:
    """Run ``pyinfra inventory.py site.py`` for the config at ``config``;
    returns its exit code and, with ``json_output``, its JSON report."""
    command = [sys.executable, "-m", "pyinfra", str(HERE / "inventory.py"), str(HERE / "site.py")]
    command += ["--dry"] if dry else ["-y"]
    if limit:
        command += ["--limit", limit]
    if json_output:
        command += ["--json"]
    if verbose:
        command += ["-" + "v" * verbose]
    command += extra or []
    env = {**os.environ, "SRHT_CONFIG": str(config)}
    if wheelhouse is not None:
        from .model import WHEELHOUSE_ENV

        env[WHEELHOUSE_ENV] = str(wheelhouse)
    if not json_output:
        return subprocess.call(command, env=env, stdin=subprocess.DEVNULL), None
    result = subprocess.run(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
    )
    try:
        report = json.loads(result.stdout)
    except ValueError:
        click.echo(result.stdout, err=True)
        report = None
    return result.returncode, report


def _wheelhouse(site: Any, *, quiet: bool) -> Any:
    from .model import WHEELHOUSE_ENV
    from .wheels import WheelhouseError

    if not quiet and not os.environ.get(WHEELHOUSE_ENV):
        click.echo(f"Building the wheelhouse ({', '.join(site.distributions())})...", err=True)
    try:
        wheelhouse = site.wheelhouse
    except (WheelhouseError, PluginError) as error:
        raise click.ClickException(str(error)) from None
    if not quiet:
        click.echo(f"Wheelhouse {wheelhouse.id}: {wheelhouse.folder}", err=True)
    return wheelhouse


@deploy.command("wheelhouse")
@click.option(
    "--also",
    "also",
    multiple=True,
    metavar="DISTRIBUTION",
    help="Also hold this installed distribution (for services to be added later); repeatable.",
)
@click.pass_context
def wheelhouse(ctx: click.Context, also: tuple[str, ...]) -> None:
    """Build the wheelhouse and print its folder.

    Deploys use the one named by $SRHT_DEPLOY_WHEELHOUSE when it is set and
    holds every distribution they need, so several deploys (or hosts
    deployed one by one) can share one build.
    """
    from .wheels import WheelhouseError, build_wheelhouse

    site = _site(_config_path(ctx))
    if not also:
        built = _wheelhouse(site, quiet=True)
    else:
        try:
            built = build_wheelhouse([*site.distributions(), *also], cache=site.wheelhouse_dir)
        except (WheelhouseError, PluginError) as error:
            raise click.ClickException(str(error)) from None
    click.echo(str(built.folder))


@deploy.command("hosts")
@click.pass_context
def hosts(ctx: click.Context) -> None:
    """List the hosts, how they are reached and what each runs."""
    site = _site(_config_path(ctx))
    for placement in site.topology.placements():
        target = placement.target
        click.echo(
            f"{placement.name}  {target.user}@{target.address}:{target.port}  "
            + (", ".join(placement.roles) or "nothing")
        )


@deploy.command("ca")
@click.pass_context
def ca(ctx: click.Context) -> None:
    """Print the site's certificate authority (PEM), to trust in browsers."""
    site = _site(_config_path(ctx))
    click.echo(site.authority().cert, nl=False)
