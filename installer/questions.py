"""The installer's questions: one table drives the interactive prompts, the
answers-file keys and the command-line flags, so the three cannot drift.

Each :class:`Question` has a key (the answers-file key; ``--key`` is its
flag), a prompt and a line of help, a default (computed from the answers
before it), and a ``parse`` function that turns what was typed or written
into a value or raises :class:`ValueError` with a sentence saying why not.
Whichever way an answer arrives, it goes through the same ``parse``: a
wrong answer is refused with the same reason at the prompt, in an answers
file and on the command line.

Questions are asked in table order; a question whose ``when`` is false for
the answers so far is skipped (no SMTP port without an SMTP host).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srht_core import PluginHost
from srht_core.config import Email
from srht_core.schema import HostEntry, SshTarget

from .hosts import SshSettings, reachable

__all__ = ["QUESTIONS", "Asking", "Question", "RefusedButUsable", "question"]

#: The service every site needs: the others sign users in through it.
IDENTITY = "meta"
LOCAL = ("local", "this-machine", "localhost")
#: meta's rule for usernames (it has the last word when the admin is created).
USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{1,29}$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass
class Asking:
    """What parsing and defaults see: the installed services and the
    answers given so far (parsed values, by key)."""

    plugins: PluginHost
    answers: dict[str, Any] = field(default_factory=dict)
    #: Set by the interactive flow: checks that talk to the network say so.
    note: Callable[[str], None] = lambda _message: None

    def get(self, key: str, default: Any = None) -> Any:
        value = self.answers.get(key)
        return default if value is None else value

    def installed(self) -> dict[str, str]:
        """``{service: "Title: one sentence"}`` of every installed service."""
        out = {}
        for record in self.plugins.services():
            info = record.info
            out[record.name] = f"{info.title}: {info.description}" if info else record.name
        return out

    def host_names(self) -> list[str]:
        return [t.name for t in self.get("hosts", [])]


class RefusedButUsable(ValueError):
    """An answer refused for a reason that leaves it usable by the answers
    after it: hosts that do not answer over SSH still have names, so where
    each service runs is checked against them in the same run.

    :param value: the parsed answer.
    """

    def __init__(self, message: str, value: Any):
        super().__init__(message)
        self.value = value


Parse = Callable[[str, Asking], Any]
Default = Callable[[Asking], str | None]


@dataclass(frozen=True)
class Question:
    """One question of the installer.

    :param key: the answers-file key; the flag is ``--KEY``.
    :param prompt: what the interactive mode asks.
    :param help: one line on what the answer is for (``--help`` shows it too).
    :param parse: turns the answer as typed into its value, or raises
        :class:`ValueError` saying why it is refused.
    :param default: the answer used when none is given (shown at the prompt).
    :param kind: how it is asked: ``text``, ``select``, ``checkbox``,
        ``confirm``, ``password`` or ``placement``.
    :param choices: for ``select`` and ``checkbox``: ``{value: label}``.
    :param when: asked only when true for the answers so far.
    :param required: an answers file must give it: its default is only a
        suggestion at the prompt (whose admin is this?), never silently used.
    :param secret: never shown, and no flag (a command line is visible to
        every user of the machine); an answers-file key only.
    :param interactive: asked at the prompt; else a flag or key only.
    :param needs: answers it is computed from; when one of them was refused,
        this one is not asked (its check would only repeat the problem).
    :param path: the answer is a file's path; in an answers file, relative to
        the answers file's folder.
    """

    key: str
    prompt: str
    help: str
    parse: Parse
    default: Default = lambda _asking: None
    kind: str = "text"
    choices: Callable[[Asking], dict[str, str]] | None = None
    when: Callable[[Asking], bool] = lambda _asking: True
    required: bool = False
    secret: bool = False
    interactive: bool = True
    needs: tuple[str, ...] = ()
    path: bool = False

    @property
    def flag(self) -> str | None:
        return None if self.secret else f"--{self.key}"


# -- parsers -------------------------------------------------------------------


def _text(raw: str, _asking: Asking) -> str:
    value = raw.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def _optional_text(raw: str, _asking: Asking) -> str | None:
    return raw.strip() or None


def _domain(raw: str, _asking: Asking) -> str:
    value = raw.strip().lower().rstrip(".")
    if "://" in value or "/" in value:
        raise ValueError(f"a domain name only, without a scheme or path: {raw.strip()!r}")
    labels = value.split(".")
    if len(labels) < 2 or len(value) > 253 or not all(_LABEL.match(x) for x in labels):
        raise ValueError(f"not a domain name (like example.org): {raw.strip()!r}")
    if labels[-1].isdigit():
        raise ValueError(f"a domain name, not an address: {raw.strip()!r}")
    return value


def _email(raw: str, _asking: Asking) -> str:
    return str(Email().parse(raw))


def _yes_no(raw: str, _asking: Asking) -> bool:
    value = raw.strip().lower()
    if value in ("yes", "y", "true", "on", "1"):
        return True
    if value in ("no", "n", "false", "off", "0"):
        return False
    raise ValueError(f"yes or no, not {raw.strip()!r}")


def _choice(*choices: str) -> Parse:
    def parse(raw: str, _asking: Asking) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"one of {', '.join(choices)}; not {raw.strip()!r}")
        return value

    return parse


def _split(raw: str) -> list[str]:
    return [part for part in re.split(r"[,\s]+", raw.strip()) if part]


def _services(raw: str, asking: Asking) -> list[str]:
    installed = asking.installed()
    names = list(dict.fromkeys(_split(raw)))
    unknown = [n for n in names if n not in installed]
    if unknown:
        raise ValueError(
            f"unknown service{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(n) for n in unknown)}; installed: "
            f"{', '.join(installed) or 'none'}"
        )
    if IDENTITY not in names:
        raise ValueError(f"{IDENTITY} is required: every other service signs users in through it")
    return sorted(names, key=lambda n: (n != IDENTITY, n))


def _path(raw: str, _asking: Asking) -> str | None:
    value = raw.strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.exists():
        raise ValueError(f"no such file: {value}")
    return str(path.absolute())


def _ssh_settings(asking: Asking, targets: list[SshTarget]) -> SshSettings:
    return SshSettings(
        {t.name: t for t in targets},
        key=asking.get("ssh-key"),
        known_hosts=asking.get("ssh-known-hosts"),
        host_key_checking=asking.get("ssh-host-key-checking", "accept-new"),
    )


def _local_name() -> str:
    name = socket.gethostname().split(".")[0].lower()
    name = re.sub(r"[^a-z0-9-]", "-", name).strip("-")
    return name if name and name[0].isalnum() else "server"


def _host_entries(raw: str) -> list[SshTarget]:
    """``local``, ``NAME=[USER@]ADDRESS[:PORT]`` or ``[USER@]ADDRESS[:PORT]``
    (named after the address's first label, or hostN for an IP)."""
    targets: list[SshTarget] = []
    for index, entry in enumerate(_split(raw), start=1):
        if entry.lower() in LOCAL:
            targets.append(SshTarget(_local_name(), "root", "127.0.0.1", 22))
            continue
        if "=" not in entry:
            address = entry.rpartition("@")[2].rpartition(":")[0] or entry.rpartition("@")[2]
            address = address.strip("[]")
            try:
                ipaddress.ip_address(address)
                name = f"host{index}"
            except ValueError:
                name = re.sub(r"[^a-z0-9-]", "-", address.split(".")[0].lower()) or f"host{index}"
            entry = f"{name}={entry}"
        targets.append(HostEntry().parse(entry))
    return targets


def _hosts(raw: str, asking: Asking) -> list[SshTarget]:
    targets = _host_entries(raw)
    if not targets:
        raise ValueError(
            "name at least one host: `local` for this machine, or NAME=USER@ADDRESS[:PORT]"
        )
    names = [t.name for t in targets]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"host name {', '.join(twice)} given twice; name them (NAME=USER@ADDRESS)")
    if len(targets) > 1 and any(
        ipaddress.ip_address(t.address).is_loopback for t in targets if _is_ip(t.address)
    ):
        raise ValueError(
            "this machine (local, 127.0.0.1) can only be the only host: the "
            "others would reach it at 127.0.0.1; give its network address "
            "instead (NAME=root@ADDRESS)"
        )
    settings = _ssh_settings(asking, targets)
    problems = []
    for target in targets:
        asking.note(f"checking {target.user}@{target.address}:{target.port} over SSH...")
        why = reachable(settings, target)
        if why:
            problems.append(f"host {target.name}: {why}")
    if problems:
        raise RefusedButUsable("; ".join(problems), targets)
    return targets


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _placement(raw: str, asking: Asking) -> dict[str, str]:
    """``service=host, ...``: where each chosen service runs."""
    hosts, services = asking.host_names(), asking.get("services", [])
    placed: dict[str, str] = {}
    for entry in _split(raw):
        service, sep, host = entry.partition("=")
        if not sep or not service or not host:
            raise ValueError(f"not SERVICE=HOST: {entry!r}")
        if service not in services:
            raise ValueError(
                f"{service!r} is not one of the chosen services ({', '.join(services)})"
            )
        if host not in hosts:
            raise ValueError(f"no host {host!r} (hosts: {', '.join(hosts)})")
        placed[service] = host
    missing = [s for s in services if s not in placed]
    if missing and len(hosts) > 1:
        raise ValueError(f"say which host runs {', '.join(missing)} (SERVICE=HOST)")
    for service in missing:
        placed[service] = hosts[0]
    return {s: placed[s] for s in services}


def _host_of(optional: bool) -> Parse:
    def parse(raw: str, asking: Asking) -> str | None:
        value = raw.strip()
        if optional and value.lower() in ("", "none", "no"):
            return None
        hosts = asking.host_names()
        if value not in hosts:
            raise ValueError(
                f"no host {value!r} (hosts: {', '.join(hosts)}"
                + (", or none" if optional else "")
                + ")"
            )
        return value

    return parse


def _port(raw: str, _asking: Asking) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError(f"not a port number: {raw.strip()!r}") from None
    if not 0 < value < 65536:
        raise ValueError(f"a port is 1 to 65535, not {value}")
    return value


def _smtp_test(raw: str, asking: Asking) -> bool:
    wanted = _yes_no(raw, asking)
    if wanted:
        from .mailtest import send_test_message

        asking.note(f"sending a test message to {asking.get('owner-email')}...")
        problem = send_test_message(asking.answers)
        if problem:
            raise ValueError(
                f"the test message was not sent: {problem} (fix the SMTP "
                "answers, or answer no to skip the test)"
            )
    return wanted


def _username(raw: str, _asking: Asking) -> str:
    value = raw.strip()
    if not USERNAME.match(value):
        raise ValueError(
            "2 to 30 characters: lower-case letters, digits, _ and -, not "
            f"starting with a digit or -; not {value!r}"
        )
    return value


def _password_file(raw: str, _asking: Asking) -> str | None:
    value = raw.strip()
    if not value or value == "-":
        return value or None
    path = Path(value).expanduser()
    if not path.is_file():
        raise ValueError(f"no such file: {value}")
    return str(path.absolute())


# -- defaults --------------------------------------------------------------------


def _admin_name_default(asking: Asking) -> str | None:
    local = str(asking.get("owner-email", "")).partition("@")[0].lower()
    local = re.sub(r"[^a-z0-9_-]", "", local)
    if USERNAME.match(local) and local not in ("admin", "root", "webmaster", "postmaster"):
        return local
    return None


def _first_host(asking: Asking) -> str | None:
    hosts = asking.host_names()
    return hosts[0] if hosts else None


def _meta_host(asking: Asking) -> str | None:
    placement = asking.get("placement") or {}
    return placement.get(IDENTITY) or _first_host(asking)


def _several_hosts(asking: Asking) -> bool:
    return len(asking.host_names()) > 1


def _smtp(asking: Asking) -> bool:
    return bool(asking.get("smtp-host"))


# -- the table ---------------------------------------------------------------------

QUESTIONS: tuple[Question, ...] = (
    Question(
        "domain",
        "Domain of the site",
        "Each service is served at SERVICE.DOMAIN (meta.example.org, ...); the login "
        "cookie is set on DOMAIN.",
        _domain,
        required=True,
    ),
    Question(
        "site-name",
        "Name of the site",
        "Shown in every page's header and in mail.",
        _text,
        default=lambda a: a.get("domain"),
    ),
    Question(
        "owner-name",
        "Who runs the site (shown in the footer; optional)",
        "Your name or your organisation's.",
        _optional_text,
        default=lambda _a: "",
    ),
    Question(
        "owner-email",
        "Contact email of the site's owner",
        "Where users can reach you; also the default for the admin's and the "
        "ACME account's address.",
        _email,
        required=True,
        default=lambda a: f"admin@{a.get('domain')}" if a.get("domain") else None,
    ),
    Question(
        "services",
        "Services to run",
        "Comma-separated; meta (accounts and sign-on) is required.",
        _services,
        kind="checkbox",
        default=lambda a: ", ".join(a.installed()),
        choices=lambda a: a.installed(),
    ),
    Question(
        "ssh-key",
        "SSH private key for the hosts (empty: your SSH agent and default keys)",
        "The deploy logs in as root (or a user with password-less sudo) with it.",
        _path,
        default=lambda _a: "",
        path=True,
    ),
    Question(
        "ssh-known-hosts",
        "known_hosts file",
        "Checked against the hosts' keys; empty: ~/.ssh/known_hosts.",
        _path,
        default=lambda _a: "",
        interactive=False,
        path=True,
    ),
    Question(
        "ssh-host-key-checking",
        "Host key checking",
        "yes: known keys only; accept-new: remember a new host's key; no: never "
        "check (throwaway test hosts only).",
        _choice("yes", "accept-new", "no"),
        default=lambda _a: "accept-new",
        interactive=False,
    ),
    Question(
        "hosts",
        "Hosts (`local` for this machine, or NAME=USER@ADDRESS[:PORT], comma-separated)",
        "Debian 12 servers reached over SSH; each is checked on the spot. `local` "
        "deploys to this machine over SSH to root@127.0.0.1.",
        _hosts,
        required=True,
        default=lambda _a: "local",
    ),
    Question(
        "placement",
        "Which host runs each service",
        "SERVICE=HOST, comma-separated; default: every service on the first host.",
        _placement,
        kind="placement",
        when=_several_hosts,
        needs=("hosts", "services"),
        default=lambda a: ", ".join(f"{s}={_first_host(a)}" for s in a.get("services", [])),
    ),
    Question(
        "postgresql-host",
        "Host that runs PostgreSQL",
        "One database per service, reachable only from the hosts that run it.",
        _host_of(optional=False),
        kind="select",
        when=_several_hosts,
        needs=("hosts",),
        default=_meta_host,
        choices=lambda a: {h: h for h in a.host_names()},
    ),
    Question(
        "redis-host",
        "Host that runs Redis (the job queue; `none`: jobs run from the databases)",
        "Background jobs go through it when set.",
        _host_of(optional=True),
        kind="select",
        needs=("hosts",),
        default=lambda a: a.get("postgresql-host") or _meta_host(a),
        choices=lambda a: {**{h: h for h in a.host_names()}, "none": "none"},
    ),
    Question(
        "smtp-host",
        "SMTP server for outgoing mail (empty: keep mail in an outbox folder on each host)",
        "Account confirmations and password resets are mailed through it.",
        _optional_text,
        default=lambda _a: "",
    ),
    Question(
        "smtp-encryption",
        "SMTP encryption",
        "How the connection is secured.",
        _choice("starttls", "tls", "none"),
        kind="select",
        when=_smtp,
        default=lambda _a: "starttls",
        choices=lambda _a: {"starttls": "starttls", "tls": "tls", "none": "none"},
    ),
    Question(
        "smtp-port",
        "SMTP port",
        "587 for STARTTLS, 465 for TLS.",
        _port,
        when=_smtp,
        default=lambda a: "465" if a.get("smtp-encryption") == "tls" else "587",
    ),
    Question(
        "smtp-user",
        "SMTP user (empty: none)",
        "If the server wants a login.",
        _optional_text,
        when=_smtp,
        default=lambda _a: "",
    ),
    Question(
        "smtp-password",
        "SMTP password",
        "Never shown; kept in the config (0600).",
        _optional_text,
        kind="password",
        secret=True,
        when=lambda a: _smtp(a) and bool(a.get("smtp-user")),
    ),
    Question(
        "smtp-from",
        "From address of the site's mail",
        "Usually a no-reply address.",
        _email,
        when=_smtp,
        default=lambda a: f"srht@{a.get('domain')}",
    ),
    Question(
        "smtp-test",
        "Send a test message to the owner's address now?",
        "Checks the SMTP answers before anything is deployed.",
        _smtp_test,
        kind="confirm",
        when=_smtp,
        default=lambda _a: "yes",
        needs=("owner-email", "smtp-host", "smtp-port", "smtp-from"),
    ),
    Question(
        "lists-domain",
        "Mail domain of the mailing lists (their addresses are ~USER/LIST@DOMAIN)",
        "Its MX record must point at the lists host, whose Postfix the deploy sets up; "
        "the installer prints the record.",
        _domain,
        when=lambda a: "lists" in (a.get("services") or []),
        needs=("services",),
        default=lambda a: f"lists.{a.get('domain')}" if a.get("domain") else None,
    ),
    Question(
        "tls",
        "TLS certificates: acme (Let's Encrypt, needs public DNS) or self-signed",
        "self-signed: from a site authority every host trusts (import it in your browser).",
        _choice("self-signed", "acme"),
        kind="select",
        default=lambda _a: "self-signed",
        choices=lambda _a: {
            "self-signed": "self-signed (a site authority)",
            "acme": "acme (Let's Encrypt; needs public DNS)",
        },
    ),
    Question(
        "acme-email",
        "Email for the Let's Encrypt account",
        "Let's Encrypt writes there about expiring certificates.",
        _email,
        when=lambda a: a.get("tls") == "acme",
        default=lambda a: a.get("owner-email"),
    ),
    Question(
        "registration",
        "Registration: open (anyone may sign up) or closed (admins create accounts)",
        "Change it later in [meta::settings] registration.",
        _choice("open", "closed"),
        kind="select",
        default=lambda _a: "closed",
        choices=lambda _a: {"closed": "closed", "open": "open"},
    ),
    Question(
        "admin-username",
        "Username of the first admin",
        "An account on meta with the admin role.",
        _username,
        required=True,
        default=_admin_name_default,
    ),
    Question(
        "admin-email",
        "Email of the first admin",
        "Where the admin's mail goes.",
        _email,
        required=True,
        default=lambda a: a.get("owner-email"),
    ),
    Question(
        "admin-password-file",
        "File holding the first admin's password (`-`: standard input)",
        "Without a terminal the password comes from here; at a terminal it is asked.",
        _password_file,
        interactive=False,
        path=True,
    ),
)

_BY_KEY = {q.key: q for q in QUESTIONS}


def question(key: str) -> Question:
    """The question of answers-file key ``key``."""
    return _BY_KEY[key]
