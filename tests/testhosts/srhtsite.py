"""An srht site on test hosts, deployed from a control machine: what the
deploy suite (and the installer's, later) drives.

:class:`Control` is the deploying machine (a Python with srht and pyinfra);
:class:`Site` writes a config for a layout of services on the hosts, runs
``srht deploy --json`` on it and reaches the services through nginx the way
a browser would (``curl --resolve``, trusting the site's authority).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srht_core.config import dump_ini

from .machine import TestHosts

DOMAIN = "srht.test"
HOSTS = ["alpha", "beta"]
#: Where each service's name points, as the site's DNS would say.
NAMES = {
    f"meta.{DOMAIN}": "alpha",
    f"todo.{DOMAIN}": "beta",
    f"paste.{DOMAIN}": "beta",
    f"hello.{DOMAIN}": "beta",
    f"git.{DOMAIN}": "beta",
    f"lists.{DOMAIN}": "beta",
    f"hub.{DOMAIN}": "alpha",
    f"builds.{DOMAIN}": "alpha",
}
#: The host that runs builds' jobs (its control groups are writable, see
#: ``TestHosts(cgroup_hosts=...)``).
RUNNER_HOST = "beta"
#: The site of the issue's scenario: alpha runs PostgreSQL, Redis, nginx and
#: meta; beta runs todo and paste behind its own nginx.
BASE_LAYOUT = {"meta": {"hosts": "alpha"}, "todo": {"hosts": "beta"}, "paste": {"hosts": "beta"}}
#: Distributions the wheelhouse holds besides the layout's, so adding the
#: example external service later reuses the session's build.
EXTRA_DISTRIBUTIONS = ("srht-hello",)


@dataclass
class Control:
    """The deploying machine: a Python with srht, srht-hello and pyinfra."""

    python: str
    env: dict[str, str]

    def srht(
        self, config: Path, *args: str, timeout: float = 900, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.python, "-m", "srht_core.cli", "--config", str(config), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
        )


@dataclass
class Site:
    """A site on the test hosts: its config (rewritten by :meth:`write`) and
    how to deploy it."""

    control: Control
    hosts: TestHosts
    folder: Path
    keys: Any
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    srht: dict[str, Any] = field(default_factory=dict)
    #: Keys of ``[deploy]`` besides the hosts, PostgreSQL and Redis on alpha.
    deploy_keys: dict[str, Any] = field(default_factory=dict)
    wheelhouse: str | None = None
    #: Other sections of the config, as they are (``[backup]``, say).
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def layout(
        self,
        services: dict[str, dict[str, Any]] | None = None,
        *,
        srht: dict[str, Any] | None = None,
        deploy: dict[str, Any] | None = None,
    ) -> Site:
        """Say what the site is (default: :data:`BASE_LAYOUT`), replacing
        what an earlier test said; deploy it with :meth:`converge`. A test
        states its whole layout, so it runs alone or after any other, and
        on hosts that already have it the deploy takes seconds."""
        self.services = {
            name: dict(values)
            for name, values in (services if services is not None else BASE_LAYOUT).items()
        }
        self.srht = dict(srht or {})
        self.deploy_keys = dict(deploy or {})
        return self

    @property
    def config(self) -> Path:
        return self.folder / "config.ini"

    def write(self) -> Path:
        hosts = ", ".join(f"{name}=root@{self.hosts.address(name)}" for name in HOSTS)
        data: dict[str, dict[str, Any]] = {
            "srht": {
                "site-name": "srht e2e",
                "site-owner-email": f"admin@{DOMAIN}",
                "global-domain": DOMAIN,
                "service-key": self.keys.service_key,
                "network-key": self.keys.network_key,
                "internal-networks": f"127.0.0.0/8, {self.hosts.address('alpha')}/24",
                **self.srht,
            },
            "mail": {"smtp-from": f"srht@{DOMAIN}"},
            "webhooks": {"private-key": self.keys.webhook_private_key},
            "deploy": {
                "hosts": hosts,
                "postgresql-host": "alpha",
                "redis-host": "alpha",
                "ssh-key": str(self.hosts.key),
                "ssh-known-hosts": "/dev/null",
                "ssh-host-key-checking": "no",
                **self.deploy_keys,
            },
        }
        for name, values in self.services.items():
            data[name] = {"origin": f"https://{name}.{DOMAIN}", **values}
        data.update(self.sections)
        self.config.write_text(dump_ini(data))
        self.config.chmod(0o600)
        return self.config

    def deploy(self, *args: str) -> tuple[int, dict[str, Any], str]:
        """``srht deploy --json ARGS``: exit code, pyinfra's JSON report, stderr."""
        self.write()
        if self.wheelhouse is None:
            also = [arg for name in EXTRA_DISTRIBUTIONS for arg in ("--also", name)]
            built = self.control.srht(self.config, "deploy", "wheelhouse", *also)
            assert built.returncode == 0, built.stderr
            self.wheelhouse = built.stdout.strip()
            self.control.env["SRHT_DEPLOY_WHEELHOUSE"] = self.wheelhouse
        result = self.control.srht(self.config, "deploy", "--json", *args)
        with open(self.folder / "deploy.log", "a") as log:
            log.write(result.stderr)
        try:
            report = json.loads(result.stdout)
        except ValueError:
            raise AssertionError(
                f"no JSON from srht deploy (exit {result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            ) from None
        return result.returncode, report, result.stderr

    def converge(self, *args: str) -> dict[str, Any]:
        """Deploy and insist every host converged; returns the report."""
        code, report, stderr = self.deploy(*args)
        results = report.get("results") or {}
        errors = [(op["name"], op["error"]) for op in results.get("operations", []) if op["error"]]
        assert code == 0 and not errors and not results.get("failed_hosts"), (
            f"deploy failed (exit {code}): {errors}\n{stderr[-4000:]}"
        )
        return report

    def curl(
        self,
        name: str,
        path: str = "/",
        *,
        host: str | None = None,
        args: tuple[str, ...] = (),
        ca: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """``curl https://NAME.DOMAIN/PATH`` reaching the host DNS would say,
        trusting the site's authority (or only the authorities in ``ca``)."""
        address = self.hosts.address(host or NAMES[f"{name}.{DOMAIN}"])
        if ca is None:
            ca = self.folder / "ca.pem"
            if not ca.exists():
                ca.write_text(self.control.srht(self.config, "deploy", "ca").stdout)
        return subprocess.run(
            [
                "curl",
                "-sS",
                "--max-time",
                "30",
                "--cacert",
                str(ca),
                "--resolve",
                f"{name}.{DOMAIN}:443:{address}",
                "-w",
                "\n%{http_code}",
                *args,
                f"https://{name}.{DOMAIN}{path}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )


def changed(report: dict[str, Any]) -> dict[str, list[str]]:
    """``{operation name: [hosts it changed]}`` of a deploy's results.

    pyinfra merges the same step done to different things on different
    hosts (a loop over each host's services) into one operation with
    several names; each name is listed with the operation's hosts."""
    out: dict[str, list[str]] = {}
    for op in report["results"]["operations"]:
        if op["success"]:
            for name in op["names"]:
                out[name] = op["success"]
    return out


def changed_on(report: dict[str, Any], host: str) -> list[str]:
    """The names of the operations a deploy changed something with on ``host``."""
    return sorted(name for name, hosts in changed(report).items() if host in hosts)


def planned(report: dict[str, Any]) -> dict[str, list[str]]:
    """``{operation name: [hosts it would change]}`` of a dry run."""
    out: dict[str, list[str]] = {}
    for op in report["plan"]:
        if op["hosts_with_change"] or op["hosts_with_conditional_change"]:
            for name in op["names"]:
                out[name] = op["hosts_with_change"] + op["hosts_with_conditional_change"]
    return out
