"""Facts: what the deploy reads from a host before deciding what to change.

Each is one small shell command whose output is parsed here. None of them
prints a secret: the PostgreSQL fact reads SCRAM verifiers, which are
compared with the wanted ones, never shown.
"""

from __future__ import annotations

from typing import Any

from pyinfra.api import FactBase

__all__ = [
    "DropinUnits",
    "FileText",
    "HttpStatus",
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

    def default(self) -> list[str]:
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

    def default(self) -> dict[str, str | None]:
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

    requires_command = "psql"

    def command(self) -> str:
        query = (
            "SELECT 'role', rolname, coalesce(rolpassword, '') FROM pg_authid "
            "UNION ALL SELECT 'database', datname, pg_get_userbyid(datdba) "
            "FROM pg_database"
        )
        return f"runuser -u postgres -- psql -XAtq -F '|' -c \"{query}\""

    def default(self) -> dict[str, dict[str, str]]:
        return {"role": {}, "database": {}}

    def process(self, output: list[str]) -> dict[str, dict[str, str]]:
        state = self.default()
        for line in output:
            kind, name, value = (line.split("|", 2) + ["", ""])[:3]
            if kind in state:
                state[kind][name] = value
        return state


class HttpStatus(FactBase[Any]):
    """The HTTP status a URL answers with, asked from the host itself,
    retrying while the service starts or nginx reloads (connection refused,
    TLS not yet serving the new certificate or name, 502, 503) for up to
    about a minute; 0 when it never answered.

    :param url: what to ask for.
    :param resolve: ``NAME:PORT:ADDRESS`` to reach a virtual host locally.
    """

    requires_command = "curl"

    def command(self, url: str, resolve: str | None = None) -> str:
        extra = f"--resolve {resolve} " if resolve else ""
        # curl's exit codes: 7 refused, 35 TLS handshake, 51/60 certificate.
        return (
            f"i=0; while :; do code=$(curl -sS -o /dev/null -w '%{{http_code}}' "
            f'--max-time 10 {extra}{url} 2>/dev/null); rc=$?; case "$rc:$code" in '
            "0:502|0:503|7:*|35:*|51:*|60:*) ;; *) break ;; esac; i=$((i+1)); "
            '[ $i -ge 60 ] && break; sleep 1; done; echo "$code"'
        )

    def default(self) -> int:
        return 0

    def process(self, output: list[str]) -> int:
        text = "".join(output).strip()
        return int(text[-3:]) if text[-3:].isdigit() else 0


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

    def default(self) -> dict[str, tuple[str, ...]]:
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
    converge and migration last applied), in one command."""

    def command(self, folder: str) -> str:
        return (
            f'for f in {folder}/applied-* {folder}/migrated-*; do [ -f "$f" ] && '
            'printf \'%s|%s\\n\' "${f##*/}" "$(head -n1 "$f")"; done; true'
        )

    def default(self) -> dict[str, str]:
        return {}

    def process(self, output: list[str]) -> dict[str, str]:
        return dict(line.split("|", 1) for line in output if "|" in line)
