"""Plan, then apply: the deploy of :mod:`srht_deploy`, run by pyinfra on
the inventory derived from the config, exactly as ``srht deploy`` runs it.

- :func:`prepare` checks the config and builds (or reuses) the wheelhouse;
- :func:`plan` is ``srht deploy --dry --json``: what each host would
  install, change or remove, changing nothing;
- :func:`apply` runs the same deploy with a state callback
  (``pyinfra_site.py``) that streams each operation's start and result per
  host, for the progress display, and returns what failed where.

pyinfra's own log goes to a log file beside the config (it can hold
command output, so it is private like the config).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srht_deploy.cli import HERE as DEPLOY_DIR
from srht_deploy.model import WHEELHOUSE_ENV

__all__ = ["Applied", "Failure", "Plan", "PlannedChange", "apply", "log_path", "plan", "prepare"]

INVENTORY = DEPLOY_DIR / "inventory.py"
SITE = DEPLOY_DIR / "site.py"
#: The deploy file that adds progress events to ``SITE`` (or to the deploy
#: file named by ``$SRHT_INSTALLER_DEPLOY_FILE``).
EVENTS_SITE = Path(__file__).with_name("pyinfra_site.py")
DEPLOY_FILE_ENV = "SRHT_INSTALLER_DEPLOY_FILE"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def log_path(config: Path) -> Path:
    """pyinfra's log of the installer's runs for the site at ``config``."""
    return config.with_name(config.name + ".install.log")


def prepare(site: Any) -> Path:
    """The wheelhouse's folder for ``site`` (built unless cached); pyinfra
    is told to use it, so the plan and the run build it once."""
    built = site.wheelhouse
    folder = getattr(built, "folder", None)
    return Path(folder) if folder is not None else Path(built.tarball).parent


# -- the plan -------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedChange:
    """An operation that would change a host."""

    operation: str
    kind: str  # install, change or remove

    @staticmethod
    def classify(name: str) -> str:
        stage, _, step = name.partition(" | ")
        if re.match(r"(Remove|Stop|Forget removed)\b", step):
            return "remove"
        if stage.endswith("install"):
            return "install"
        return "change"


@dataclass
class Plan:
    """What a run would do, per host, from pyinfra's dry run."""

    hosts: list[str]
    changes: dict[str, list[PlannedChange]] = field(default_factory=dict)
    unreachable: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not any(self.changes.values())

    def counts(self, host: str) -> dict[str, int]:
        out = {"install": 0, "change": 0, "remove": 0}
        for change in self.changes.get(host, []):
            out[change.kind] += 1
        return out


def _environment(config: Path, wheelhouse: Path | None) -> dict[str, str]:
    env = {**os.environ, "SRHT_CONFIG": str(config), "PYINFRA_PROGRESS": "off", "NO_COLOR": "1"}
    if wheelhouse is not None:
        env[WHEELHOUSE_ENV] = str(wheelhouse)
    return env


def _pyinfra(site_file: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pyinfra", str(INVENTORY), str(site_file), *args]


def plan(
    config: Path, hosts: list[str], *, wheelhouse: Path | None = None, log: Path | None = None
) -> Plan:
    """pyinfra's dry run of the deploy: what would change on each host.

    Each planned operation is one step of the deploy on the hosts it lists
    (:func:`srht_deploy.operations.each` keeps different things done on
    different hosts apart), so its name is listed under each of them.

    :param log: pyinfra's log (default: beside ``config``).
    :raises RuntimeError: when pyinfra gave no plan (its log says why).
    """
    log = log or log_path(config)
    with _log(log, "plan") as out:
        result = subprocess.run(
            _pyinfra(SITE, "--dry", "--json"),
            env=_environment(config, wheelhouse),
            stdout=subprocess.PIPE,
            stderr=out,
            stdin=subprocess.DEVNULL,
            text=True,
        )
    try:
        report = json.loads(result.stdout)
    except ValueError:
        raise RuntimeError(
            f"pyinfra gave no plan (exit {result.returncode}); see {log}:\n" + _tail(log)
        ) from None
    changes: dict[str, list[PlannedChange]] = {h: [] for h in hosts}
    for operation in report.get("plan") or []:
        wanted = set(operation["hosts_with_change"]) | set(
            operation["hosts_with_conditional_change"]
        )
        for name in operation["names"] or [operation["name"]]:
            for host in sorted(wanted):
                changes.setdefault(host, []).append(
                    PlannedChange(name, PlannedChange.classify(name))
                )
    failed = list((report.get("results") or {}).get("failed_hosts") or [])
    planned_hosts = {
        h
        for op in report.get("plan") or []
        for h in op["hosts_with_change"] + op["hosts_with_conditional_change"]
    }
    if not failed and result.returncode != 0 and not planned_hosts:
        failed = [h for h in hosts if h not in planned_hosts]
    return Plan(hosts, changes, failed, report)


# -- applying -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """Where a run stopped on a host, and why."""

    host: str
    step: str | None  # None: the host could not be reached
    output: str = ""


@dataclass
class Applied:
    """The outcome of a run."""

    code: int
    failures: list[Failure]
    changed: dict[str, int]
    report: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        return self.code == 0 and not self.failures


Listener = Callable[[dict[str, Any]], None]


def apply(
    config: Path,
    *,
    wheelhouse: Path | None = None,
    listener: Listener = lambda _event: None,
    deploy_file: Path = SITE,
    what: str = "apply",
) -> Applied:
    """Run the deploy (``deploy_file``: the whole of :mod:`srht_deploy`'s,
    or a part of it, such as the restore's first stage); ``listener`` gets
    each event (``begin``, ``start``, ``end``: see ``pyinfra_site.py``) as
    it happens. ``what`` heads its part of the log."""
    read, write = os.pipe()
    env = _environment(config, wheelhouse)
    env["SRHT_INSTALLER_EVENTS_FD"] = str(write)
    env[DEPLOY_FILE_ENV] = str(deploy_file)
    log = log_path(config)
    failures: dict[str, Failure] = {}
    changed: dict[str, int] = {}
    with _log(log, what) as out:
        process = subprocess.Popen(
            _pyinfra(EVENTS_SITE, "-y", "--json"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=out,
            stdin=subprocess.DEVNULL,
            pass_fds=(write,),
            text=True,
        )
        os.close(write)
        begun = False
        with os.fdopen(read, encoding="utf-8") as events:
            for event in _events(events):
                if event["event"] == "begin":
                    begun = True
                    for host in event.get("failed") or []:
                        failures.setdefault(host, Failure(host, None, _host_log(log, host)))
                elif event["event"] == "end":
                    for host, result in event["results"].items():
                        if result["status"] == "error" and host not in failures:
                            failures[host] = Failure(host, event["op"], result.get("output", ""))
                        if result["status"] == "changed":
                            changed[host] = changed.get(host, 0) + 1
                listener(event)
        stdout = process.stdout.read() if process.stdout else ""
        code = process.wait()
    try:
        report: dict[str, Any] | None = json.loads(stdout)
    except ValueError:
        report = None
    for host in ((report or {}).get("results") or {}).get("failed_hosts") or []:
        failures.setdefault(host, Failure(host, None, _host_log(log, host)))
    if code != 0 and not failures:
        step = None if not begun else "the deploy"
        failures["?"] = Failure("?", step, _tail(log))
    return Applied(code, list(failures.values()), changed, report)


def _events(stream: Any) -> Iterator[dict[str, Any]]:
    for line in stream:
        try:
            yield json.loads(line)
        except ValueError:
            continue


class _log:
    """Append a run's pyinfra output to the log (0600), with a heading."""

    def __init__(self, path: Path, what: str):
        self.path, self.what = path, what

    def __enter__(self) -> Any:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.file = os.fdopen(fd, "a")
        self.file.write(f"\n===== srht-install: {self.what} =====\n")
        self.file.flush()
        return self.file

    def __exit__(self, *exc: object) -> None:
        self.file.close()


def _tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    return _ANSI.sub("", "\n".join(text.splitlines()[-lines:]))


def _host_log(log: Path, host: str, lines: int = 5) -> str:
    """The last lines pyinfra logged about ``host`` (why it could not connect)."""
    try:
        text = _ANSI.sub("", log.read_text(errors="replace"))
    except OSError:
        return ""
    mine = [line.strip() for line in text.splitlines() if f"[{host}]" in line]
    return "\n".join(mine[-lines:])
