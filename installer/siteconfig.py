"""From answers to the one config, and changes to it after.

:func:`config_text` turns the answers into the site's config, with fresh
secrets from :mod:`srht_core.keys`; :func:`write_checked` writes a config
only once the core's checker and the deploy's topology check find no
problem, private (mode 0600) from its first byte, and reports problems in
the answers' terms (``answers.toml: key `hosts`: ...``) where an answer
caused them.

A change is not written where the config goes until it is applied: a
:class:`PendingConfig` holds it beside the config (same folder, so its
relative paths mean the same) for the plan, and is put in place only when
the run starts changing hosts. A plan declined, only shown (``--dry-run``)
or that cannot be made leaves the config as it was, or absent.

:func:`add_service` and :func:`remove_service` edit an existing config's
text: a section appended, or a service's sections cut out, and every other
line left byte for byte as it was (comments and hand edits included).

The installer's own memory of a site is a small JSON file beside the
config (:class:`InstallState`): who the first admin is and whether they
were created, so a run that stopped before that step does it next time.
No secret goes in it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from srht_core import ConfigError, ConfigProblem
from srht_core.config import dump_ini, parse_ini
from srht_core.keys import SiteKeys, generate_keys

from .answers import AnswerProblem

__all__ = [
    "InstallState",
    "PendingConfig",
    "add_service",
    "config_text",
    "load_site",
    "remove_service",
    "state_path",
    "write_checked",
    "write_private",
]

HEADER = """\
# The srht site's one config, written by srht-install on {date}.
# It holds the site's secrets: keep it private (mode 0600) and back it up.
# Edit it and run `srht-install` again to apply; `srht-install add SERVICE`
# and `srht-install remove SERVICE` change which services run. Every key is
# described in config.example.ini and docs/config.md.

"""

#: Which answer each config key comes from, to report a config problem in
#: the answers' terms. A service section's keys come from ``placement``
#: (its hosts) or ``services`` (the rest).
ANSWER_OF = {
    ("srht", "site-name"): "site-name",
    ("srht", "site-owner-name"): "owner-name",
    ("srht", "site-owner-email"): "owner-email",
    ("srht", "global-domain"): "domain",
    ("srht", "internal-networks"): "hosts",
    ("mail", "smtp-host"): "smtp-host",
    ("mail", "smtp-port"): "smtp-port",
    ("mail", "smtp-encryption"): "smtp-encryption",
    ("mail", "smtp-user"): "smtp-user",
    ("mail", "smtp-password"): "smtp-password",
    ("mail", "smtp-from"): "smtp-from",
    ("deploy", "hosts"): "hosts",
    ("deploy", "postgresql-host"): "postgresql-host",
    ("deploy", "redis-host"): "redis-host",
    ("deploy", "certificates"): "tls",
    ("deploy", "acme-email"): "acme-email",
    ("deploy", "ssh-key"): "ssh-key",
    ("deploy", "ssh-known-hosts"): "ssh-known-hosts",
    ("deploy", "ssh-host-key-checking"): "ssh-host-key-checking",
    ("meta::settings", "registration"): "registration",
    ("lists", "posting-domain"): "lists-domain",
}


def _networks(answers: dict[str, Any]) -> list[str]:
    """Loopback and every host's addresses: the services call each other's
    internal APIs from the hosts (a DNS name is resolved here, now)."""
    networks = ["127.0.0.0/8", "::1/128"]
    for target in answers["hosts"]:
        try:
            addresses = [str(ipaddress.ip_address(target.address))]
        except ValueError:
            try:
                found = socket.getaddrinfo(target.address, None, proto=socket.IPPROTO_TCP)
            except OSError:
                found = []
            addresses = sorted({str(info[4][0]) for info in found})
        for address in addresses:
            ip = ipaddress.ip_address(address)
            network = f"{ip}/{32 if ip.version == 4 else 128}"
            if not ip.is_loopback and network not in networks:
                networks.append(network)
    return networks


def config_data(answers: dict[str, Any], keys: SiteKeys) -> dict[str, dict[str, Any]]:
    """``{section: {key: value}}`` of the config the answers describe."""
    domain = answers["domain"]
    srht: dict[str, Any] = {
        "site-name": answers["site-name"],
        "site-owner-name": answers.get("owner-name") or "",
        "site-owner-email": answers["owner-email"],
        "global-domain": domain,
        "service-key": keys.service_key,
        "network-key": keys.network_key,
        "internal-networks": _networks(answers),
    }
    if not answers.get("owner-name"):
        del srht["site-owner-name"]
    mail: dict[str, Any] = {}
    if answers.get("smtp-host"):
        mail = {
            "smtp-host": answers["smtp-host"],
            "smtp-port": answers["smtp-port"],
            "smtp-encryption": answers["smtp-encryption"],
        }
        if answers.get("smtp-user"):
            mail["smtp-user"] = answers["smtp-user"]
            mail["smtp-password"] = answers.get("smtp-password") or ""
        mail["smtp-from"] = answers["smtp-from"]
    else:
        mail = {"smtp-from": f"srht@{domain}"}
    hosts = answers["hosts"]
    names = [t.name for t in hosts]
    deploy: dict[str, Any] = {
        "hosts": ", ".join(_host_entry(t) for t in hosts),
        "postgresql-host": answers.get("postgresql-host") or names[0],
    }
    redis = answers.get("redis-host")
    if redis:
        deploy["redis-host"] = redis
    deploy["certificates"] = answers.get("tls") or "self-signed"
    if answers.get("tls") == "acme":
        deploy["acme-email"] = answers.get("acme-email") or answers["owner-email"]
    for key in ("ssh-key", "ssh-known-hosts"):
        if answers.get(key):
            deploy[key] = answers[key]
    if answers.get("ssh-host-key-checking", "accept-new") != "accept-new":
        deploy["ssh-host-key-checking"] = answers["ssh-host-key-checking"]
    data: dict[str, dict[str, Any]] = {
        "srht": srht,
        "mail": mail,
        "webhooks": {"private-key": keys.webhook_private_key},
        "deploy": deploy,
    }
    placement = answers.get("placement") or {s: names[0] for s in answers["services"]}
    for service in answers["services"]:
        data[service] = {
            "origin": f"https://{service}.{domain}",
            "hosts": placement.get(service, names[0]),
        }
        if service == "meta":
            data["meta::settings"] = {"registration": answers.get("registration") == "open"}
        if service == "lists" and answers.get("lists-domain"):
            data[service]["posting-domain"] = answers["lists-domain"]
    return data


def _host_entry(target: Any) -> str:
    address = f"[{target.address}]" if ":" in target.address else target.address
    port = "" if target.port == 22 else f":{target.port}"
    return f"{target.name}={target.user}@{address}{port}"


def config_text(answers: dict[str, Any], keys: SiteKeys | None = None) -> str:
    """The config the answers describe, as text, with fresh secrets unless
    ``keys`` are given."""
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    return HEADER.format(date=date) + dump_ini(config_data(answers, keys or generate_keys()))


# -- writing ------------------------------------------------------------------------


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600 from the first byte
    (a temporary file beside it, renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def load_site(path: Path) -> Any:
    """The deploy's :class:`~srht_deploy.Site` of the config at ``path``: the
    core's checker and the topology's, every problem at once.

    :raises ConfigError: listing every problem.
    """
    from srht_deploy import Site

    return Site.from_config(path)


def check_text(text: str, path: Path) -> list[ConfigProblem]:
    """Every problem the core's checker and the topology find in ``text``
    (as it would be at ``path``), without writing it where it goes."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.check")
    write_private(temporary, text.encode())
    try:
        load_site(temporary)
    except ConfigError as error:
        return [
            ConfigProblem(str(path), p.line, p.section, p.key, p.message)
            if p.file == str(temporary)
            else p
            for p in error.problems
        ]
    finally:
        temporary.unlink(missing_ok=True)
    return []


def write_checked(path: Path, text: str, *, source: str | None = None) -> None:
    """Write the config ``text`` to ``path`` (0600) if it checks clean.

    :param source: the answers' source (an answers file's name): problems
        caused by an answer are reported as that answer's.
    :raises ConfigError: (for a config edited by hand) or
        :class:`~srht_installer.answers.AnswersError` (for answers), listing
        every problem; nothing is written then.
    """
    problems = check_text(text, path)
    if problems and source is not None:
        from .answers import AnswersError

        raise AnswersError([_as_answer(p, source) for p in problems])
    if problems:
        raise ConfigError(problems)
    write_private(path, text.encode())


class PendingConfig:
    """A config not in place yet: written (0600) beside ``target`` under a
    hidden name, for the plan to read exactly what would be applied.
    :meth:`commit` puts it at ``target``; leaving the ``with`` block
    without committing removes it (on an error, a declined plan, a dry
    run), and the folder too when it was made for it.

    Build one with :meth:`checked`.
    """

    def __init__(self, target: Path, text: str):
        self.target = target
        self.path = target.with_name(f".{target.name}.{os.getpid()}.pending")
        self.made_folder = not target.parent.exists()
        self.committed = False
        #: The deploy's Site of the pending config, once checked.
        self.site: Any = None
        write_private(self.path, text.encode())

    @classmethod
    def checked(cls, target: Path, text: str, *, source: str | None = None) -> PendingConfig:
        """The pending ``text`` for ``target`` if it checks clean.

        :raises ConfigError: or :class:`~srht_installer.answers.AnswersError`
            (with ``source``), as :func:`write_checked`; nothing is left then.
        """
        pending = cls(target, text)
        try:
            pending.site = load_site(pending.path)
        except ConfigError as error:
            pending.discard()
            problems = [
                ConfigProblem(str(target), p.line, p.section, p.key, p.message)
                if p.file == str(pending.path)
                else p
                for p in error.problems
            ]
            if source is not None:
                from .answers import AnswersError

                raise AnswersError([_as_answer(p, source) for p in problems]) from None
            raise ConfigError(problems) from None
        except BaseException:
            pending.discard()
            raise
        return pending

    def commit(self) -> None:
        """Put the config in place (atomically, 0600)."""
        write_private(self.target, self.path.read_bytes())
        self.committed = True
        self.path.unlink(missing_ok=True)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        if self.made_folder and not self.committed:
            with contextlib.suppress(OSError):
                self.target.parent.rmdir()

    def __enter__(self) -> PendingConfig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


def _as_answer(problem: ConfigProblem, source: str) -> AnswerProblem:
    key = ANSWER_OF.get((problem.section or "", problem.key or ""))
    if key is None and problem.section and problem.key == "hosts" and problem.section != "deploy":
        key = "placement"
    if (
        key is None
        and problem.section
        and problem.section not in ("srht", "mail", "webhooks", "deploy")
    ):
        key = "services"
    where = f"[{problem.section}] {problem.key or ''}".strip() if problem.section else ""
    message = f"{problem.message} (config {where})" if where else problem.message
    return AnswerProblem(source, key, message)


# -- changing the topology ----------------------------------------------------------


def _span(text: str, section: str) -> tuple[int, int]:
    """Line indexes ``[start, end)`` of ``section`` in ``text``: its header,
    keys and blank lines, up to the comments that introduce the next one."""
    sections, _problems = parse_ini(text, "<config>")
    headers = sorted(s.line for s in sections.values())
    start = sections[section].line - 1
    following = [line for line in headers if line - 1 > start]
    lines = text.splitlines(keepends=True)
    end = following[0] - 1 if following else len(lines)
    while end > start + 1 and lines[end - 1].strip().startswith(("#", ";")):
        end -= 1
    return start, end


def remove_service(text: str, service: str) -> str:
    """``text`` without ``[service]`` and its ``[service::...]`` sections;
    every other line as it was."""
    while True:
        sections, _problems = parse_ini(text, "<config>")
        names = [n for n in sections if n == service or n.startswith(f"{service}::")]
        if not names:
            return text
        start, end = _span(text, names[0])
        lines = text.splitlines(keepends=True)
        if end == len(lines):
            # The last section: the blank lines that set it apart go with it.
            while start > 0 and not lines[start - 1].strip():
                start -= 1
        text = "".join(lines[:start] + lines[end:])


def add_service(text: str, service: str, hosts: list[str], domain: str) -> str:
    """``text`` with a ``[service]`` section appended, placed on ``hosts``."""
    if text and not text.endswith("\n"):
        text += "\n"
    if text and not text.endswith("\n\n"):
        text += "\n"
    return text + dump_ini(
        {service: {"origin": f"https://{service}.{domain}", "hosts": ", ".join(hosts)}}
    )


# -- the installer's memory ---------------------------------------------------------


def state_path(config: Path) -> Path:
    """Where the installer keeps what it knows of the site at ``config``."""
    return config.with_name(config.name + ".install.json")


@dataclass
class InstallState:
    """What the installer remembers between runs (no secret)."""

    admin_username: str | None = None
    admin_email: str | None = None
    admin_created: bool = False

    @classmethod
    def load(cls, config: Path) -> InstallState | None:
        path = state_path(config)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def save(self, config: Path) -> None:
        write_private(state_path(config), (json.dumps(asdict(self), indent=2) + "\n").encode())
