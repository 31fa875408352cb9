"""The site's hosts as the installer reaches them: which config, which host,
and running a command there over SSH.

Everything here reads only ``[deploy]`` of the one config (how to reach the
hosts), so it works on a config whose services are broken, and it uses the
system's ``ssh`` client with the same settings pyinfra gets from
:func:`srht_deploy.inventory_data.host_data` (key, known hosts, host key
checking, a user other than root going through ``sudo``).

Stable API (the backup and restore commands build on it):

- :func:`site_config_path` — the config a command works on;
- :func:`host_names` and :func:`ssh_target` — the hosts of ``[deploy] hosts``;
- :func:`run_on` — run a command on a host by name, with optional standard
  input, returning a :class:`subprocess.CompletedProcess` of bytes;
- :func:`ssh_argv` — the ``ssh`` command line for a host, to stream to or
  from it yourself (``scp``-free copies: ``ssh ... cat > FILE``).

Commands are argument lists, quoted for the remote shell here; secrets go on
standard input, never on a command line.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from srht_core.config import Config, ConfigError, ConfigProblem, find_config, load_config
from srht_core.schema import DEPLOY, SshTarget

__all__ = [
    "DEFAULT_CONFIG",
    "HostError",
    "SshSettings",
    "host_names",
    "reachable",
    "run_on",
    "site_config_path",
    "ssh_argv",
    "ssh_settings",
    "ssh_target",
]

#: Where a new site's config goes when neither ``--config`` nor
#: ``$SRHT_CONFIG`` says: the folder the installer runs in, where
#: ``srht deploy`` finds it too.
DEFAULT_CONFIG = Path("config.ini")


class HostError(Exception):
    """A host is unknown or cannot be reached; the message says which and why."""


def site_config_path(
    explicit: str | os.PathLike[str] | None = None, *, must_exist: bool = True
) -> Path:
    """The site's config: ``explicit``, else ``$SRHT_CONFIG``, else
    ``./config.ini``, else ``/etc/srht/config.ini`` (the core's order).

    :param must_exist: raise :class:`HostError` when there is none; without
        it, a new site's path is returned (``./config.ini`` by default).
    """
    found = find_config(explicit)
    if found is None:
        if must_exist:
            raise HostError(
                "no site config found (looked at --config, $SRHT_CONFIG, "
                "./config.ini, /etc/srht/config.ini); run `srht-install` to "
                "make one"
            )
        found = DEFAULT_CONFIG
    found = found.expanduser().absolute()
    if must_exist and not found.is_file():
        raise HostError(f"{found}: no such config file")
    return found


@dataclass(frozen=True)
class SshSettings:
    """How to reach the site's hosts, from ``[deploy]``."""

    targets: dict[str, SshTarget]
    key: str | None = None
    known_hosts: str | None = None
    host_key_checking: str = "accept-new"
    #: Read no system-wide known hosts (``/etc/ssh/ssh_known_hosts``):
    #: only ``known_hosts`` says which key a host must have.
    only_known_hosts: bool = False
    #: ``ERROR`` hides why a login was refused ("Permission denied" is
    #: logged at ``INFO``); a host outside the site gets ``INFO`` so its
    #: failures say why (no host key is ever added silently there).
    log_level: str = "ERROR"
    #: ``[deploy] ssh-proxy-command``: OpenSSH's ProxyCommand (a jump host).
    proxy_command: str | None = None

    def options(self) -> list[str]:
        """``ssh`` options matching what pyinfra is given for the same config."""
        options = [
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=15",
            "-o",
            f"LogLevel={self.log_level}",
            "-o",
            f"StrictHostKeyChecking={self.host_key_checking}",
        ]
        if self.key:
            options += ["-i", self.key, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"]
        if self.known_hosts:
            options += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.only_known_hosts:
            options += ["-o", "GlobalKnownHostsFile=/dev/null"]
        if self.proxy_command:
            options += ["-o", f"ProxyCommand={self.proxy_command}"]
        return options


def _deploy_config(config: Config | str | os.PathLike[str]) -> Config:
    """The config bound to ``[deploy]``'s schema only: no plugin is loaded."""
    if isinstance(config, Config):
        # A copy: binding to [deploy] alone must not unbind the caller's config.
        config = Config(config.path, config.raw, config.syntax_problems)
    else:
        config = load_config(config)
    problems = [
        p for p in config.bind({"deploy": DEPLOY}) if p.section == "deploy" or p.section is None
    ]
    if problems:
        raise ConfigError(problems)
    if not config.has_section("deploy"):
        raise ConfigError(
            [
                ConfigProblem(
                    config.path,
                    None,
                    "deploy",
                    None,
                    "section missing: the site's hosts are listed there",
                )
            ]
        )
    return config


def ssh_settings(config: Config | str | os.PathLike[str]) -> SshSettings:
    """The hosts of ``config`` (a :class:`Config` or a path) and how to reach them.

    :raises ConfigError: when ``[deploy]`` has a problem.
    """
    bound = _deploy_config(config)
    deploy = bound["deploy"]
    return SshSettings(
        targets={target.name: target for target in deploy.get("hosts") or ()},
        key=deploy.get("ssh-key"),
        known_hosts=deploy.get("ssh-known-hosts"),
        host_key_checking=deploy.get("ssh-host-key-checking") or "accept-new",
        proxy_command=deploy.get("ssh-proxy-command") or None,
    )


def host_names(config: Config | str | os.PathLike[str]) -> list[str]:
    """The names of ``[deploy] hosts``, in the order written."""
    return list(ssh_settings(config).targets)


def ssh_target(config: Config | str | os.PathLike[str], host: str) -> SshTarget:
    """How to reach ``host``. :raises HostError: for a name not in ``[deploy] hosts``."""
    targets = ssh_settings(config).targets
    if host not in targets:
        raise HostError(
            f"no host {host!r} in [deploy] hosts (hosts: {', '.join(targets) or 'none'})"
        )
    return targets[host]


def ssh_argv(
    settings: SshSettings, target: SshTarget, command: list[str], *, sudo: bool = True
) -> list[str]:
    """The local command line that runs ``command`` on ``target`` as root
    (through ``sudo -n`` when the SSH user is not root), or with ``sudo``
    false as the SSH user itself (an account outside the site)."""
    remote = list(command)
    if sudo and target.user != "root" and remote:
        remote = ["sudo", "-n", "--", *remote]
    return [
        "ssh",
        *settings.options(),
        "-p",
        str(target.port),
        f"{target.user}@{target.address}",
        "--",
        shlex.join(remote),
    ]


def run_on(
    site_config_path: str | os.PathLike[str],
    host_name: str,
    command: list[str],
    input: bytes | None = None,
    *,
    timeout: float = 600,
    check: bool = False,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``command`` (an argument list) on the host named ``host_name`` in
    the config at ``site_config_path``, as root, with ``input`` on its
    standard input; returns the finished process (stdout and stderr as bytes).

    :param check: raise :class:`HostError` naming the host and command when
        it exits non-zero (else look at ``returncode`` yourself).
    :raises HostError: for an unknown host, or a command that did not finish
        within ``timeout`` seconds.
    """
    settings = ssh_settings(site_config_path)
    if host_name not in settings.targets:
        raise HostError(
            f"no host {host_name!r} in [deploy] hosts (hosts: "
            f"{', '.join(settings.targets) or 'none'})"
        )
    argv = ssh_argv(settings, settings.targets[host_name], command)
    try:
        result = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL if input is None else None,
        )
    except subprocess.TimeoutExpired:
        raise HostError(
            f"on {host_name}: `{shlex.join(command)}` did not finish within {timeout:.0f}s"
        ) from None
    if check and result.returncode != 0:
        tail = (result.stderr or result.stdout).decode(errors="replace").strip()[-2000:]
        raise HostError(
            f"on {host_name}: `{shlex.join(command)}` exited {result.returncode}"
            + (f": {tail}" if tail else "")
        )
    return result


def reachable(settings: SshSettings, target: SshTarget, *, timeout: float = 20) -> str | None:
    """``None`` when ``target`` answers over SSH and runs a command as root,
    else why not, as a sentence for the user."""
    try:
        if not settings.proxy_command:  # else only the jump host answers here
            with socket.create_connection((target.address, target.port), timeout=min(timeout, 8)):
                pass
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        return (
            f"nothing answers on {target.address}:{target.port} ({reason}); is the "
            "address right and sshd running?"
        )
    try:
        result = subprocess.run(
            ssh_argv(settings, target, ["true"]),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return f"SSH to {target.user}@{target.address}:{target.port} timed out"
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        hint = " (a user other than root needs password-less sudo)" if target.user != "root" else ""
        return f"SSH to {target.user}@{target.address}:{target.port} failed: {detail}{hint}"
    return None
