"""Facts: what the deploy reads from a host before deciding what to change.

Each is one small shell command whose output is parsed here. None of them
prints a secret: the PostgreSQL fact reads SCRAM verifiers, which are
compared with the wanted ones, never shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyinfra.api.facts import FactBase

__all__ = [
    "DropinUnits",
    "FileText",
    "HttpAnswer",
    "HttpCheck",
    "ManagedFiles",
    "PathStates",
    "PostgresState",
    "StateFiles",
]

_MISSING = "__srht_missing__"
_PRESENT = "__srht_present__"


class FileText(FactBase[Any]):
    """The text of a file (without its final newline), or ``None`` if absent."""

    def command(self, path: str) -> str:
        # A first line either way: pyinfra takes no output for "no fact".
        return f"if [ -f {path} ]; then echo {_PRESENT}; cat {path}; else echo {_MISSING}; fi"

    def process(self, output: list[str]) -> str | None:
        if not output or output[0] != _PRESENT:
            return None
        return "\n".join(output[1:])


class ManagedFiles(FactBase[Any]):
    """Names of the files matching a shell glob (``/etc/nginx/sites-enabled/srht-*``)."""

    def command(self, pattern: str) -> str:
        return f'for f in {pattern}; do [ -e "$f" ] && basename "$f"; done; true'

    @staticmethod
    def default() -> list[str]:
        return []

    def process(self, output: list[str]) -> list[str]:
        return sorted(line for line in output if line)


class DropinUnits(FactBase[Any]):
    """``{unit: package}`` of the packaged srht units that carry the deploy's
    drop-in ``dropin`` (``install-method = distro``); the package is the
    one that ships the unit, ``None`` when none does any more."""

    def command(self, dropin: str) -> str:
        return (
            f"for f in /etc/systemd/system/srht-*.service.d/{dropin}; do "
            '[ -e "$f" ] || continue; u=$(basename "$(dirname "$f")" .d); '
            'p=$(dpkg-query -S "/lib/systemd/system/$u" 2>/dev/null | cut -d: -f1); '
            'echo "$u ${p:--}"; done; true'
        )

    @staticmethod
    def default() -> dict[str, str | None]:
        return {}

    def process(self, output: list[str]) -> dict[str, str | None]:
        units: dict[str, str | None] = {}
        for line in output:
            unit, _, package = line.partition(" ")
            if unit:
                units[unit] = None if package in ("", "-") else package
        return units


class PostgresState(FactBase[Any]):
    """Roles (with their password verifiers) and databases (with owners) of
    the local PostgreSQL, read as its superuser; empty before it is installed."""

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "psql"

    def command(self) -> str:
        query = (
            "SELECT 'role', rolname, coalesce(rolpassword, '') FROM pg_authid "
            "UNION ALL SELECT 'database', datname, pg_get_userbyid(datdba) "
            "FROM pg_database"
        )
        return f"runuser -u postgres -- psql -XAtq -F '|' -c \"{query}\""

    @staticmethod
    def default() -> dict[str, dict[str, str]]:
        return {"role": {}, "database": {}}

    def process(self, output: list[str]) -> dict[str, dict[str, str]]:
        state = self.default()
        for line in output:
            kind, name, value = (line.split("|", 2) + ["", ""])[:3]
            if kind in state:
                state[kind][name] = value
        return state


@dataclass(frozen=True)
class HttpAnswer:
    """What a URL answered, asked from a host (see :class:`HttpCheck`)."""

    status: int  # 0: no HTTP answer
    error: str = ""  # curl's own words when there was none
    body: str = ""  # the start of the body

    @property
    def why(self) -> str:
        """The failure as a phrase: ``answered 503: {...}``, ``did not answer (...)``."""
        if self.status:
            body = " ".join(self.body.split())[:400]
            return f"answered {self.status}" + (f": {body}" if body else "")
        return "did not answer" + (f" ({self.error})" if self.error else "")


class HttpCheck(FactBase[HttpAnswer]):
    """What a URL answers, asked from the host itself, retrying while the
    service starts or nginx reloads (connection refused, TLS not yet
    serving the new certificate or name, 502, 503) for up to about a
    minute: the status, curl's error when nothing answered (a name that
    does not resolve is not retried) and the start of the body.

    :param url: what to ask for.
    :param resolve: ``NAME:PORT:ADDRESS`` to reach a virtual host locally.
    """

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "curl"

    def command(self, url: str, resolve: str | None = None) -> str:
        extra = f"--resolve {resolve} " if resolve else ""
        # curl's exit codes: 7 refused, 35 TLS handshake, 51/60 certificate.
        return (
            "f=$(mktemp); i=0; while :; do "
            f"code=$(curl -sS -o \"$f\" -w '%{{http_code}}' --max-time 10 {extra}{url} "
            '2>"$f.err"); rc=$?; case "$rc:$code" in '
            "0:502|0:503|7:*|35:*|51:*|60:*) ;; *) break ;; esac; i=$((i+1)); "
            '[ $i -ge 60 ] && break; sleep 1; done; echo "status $code"; '
            "sed 's/^/error /' \"$f.err\"; head -c 1000 \"$f\" | sed 's/^/body /'; "
            'rm -f "$f" "$f.err"'
        )

    @staticmethod
    def default() -> HttpAnswer:
        return HttpAnswer(0, "curl is not installed")

    def process(self, output: list[str]) -> HttpAnswer:
        status, errors, body = 0, [], []
        for line in output:
            kind, _, text = line.partition(" ")
            if kind == "status":
                status = int(text[-3:]) if text[-3:].isdigit() else 0
            elif kind == "error":
                errors.append(text.removeprefix("curl: "))
            elif kind == "body":
                body.append(text)
        return HttpAnswer(status, " ".join(errors).strip(), "\n".join(body))


class PathStates(FactBase[Any]):
    """``{path: (kind, mode, user, group, sha1)}`` of every path matching
    ``globs`` (expanded by the host's shell), in one command: the deploy's
    own files and folders, read once per host rather than once per file
    (a re-run's time is mostly facts). ``kind`` is ``file``, ``directory``
    or ``other``; ``sha1`` is ``-`` but for files."""

    def command(self, globs: tuple[str, ...]) -> str:
        return (
            "for p in " + " ".join(globs) + '; do [ -e "$p" ] || continue; '
            "s=$(stat -c '%F|%a|%U|%G' \"$p\") || continue; h=-; "
            '[ -f "$p" ] && h=$(sha1sum < "$p" | cut -c1-40); '
            'printf \'%s|%s|%s\\n\' "$s" "$h" "$p"; done; true'
        )

    @staticmethod
    def default() -> dict[str, tuple[str, ...]]:
        return {}

    def process(self, output: list[str]) -> dict[str, tuple[str, ...]]:
        out: dict[str, tuple[str, ...]] = {}
        for line in output:
            parts = line.split("|", 5)
            if len(parts) != 6:
                continue
            kind, mode, user, group, sha, path = parts
            kind = (
                "file"
                if kind.startswith("regular")
                else "directory"
                if kind == "directory"
                else "other"
            )
            out[path] = (kind, mode, user, group, sha)
        return out


class StateFiles(FactBase[Any]):
    """``{name: first line}`` of the deploy's stamps in ``folder`` (what each
    converge and migration last applied, and which services failed a step), in
    one command."""

    def command(self, folder: str) -> str:
        return (
            f'for f in {folder}/applied-* {folder}/migrated-* {folder}/failed-*; do [ -f "$f" ] && '
            'printf \'%s|%s\\n\' "${f##*/}" "$(head -n1 "$f")"; done; true'
        )

    @staticmethod
    def default() -> dict[str, str]:
        return {}

    def process(self, output: list[str]) -> dict[str, str]:
        return dict(line.split("|", 1) for line in output if "|" in line)
