"""The one config file: its schema types, its reader and its checker.

This module owns the INI format (read with line numbers, so every problem can
say where it is), the schema declarations (``Section`` and ``Key`` with typed
values) and the check that compares a file against the schemas of the core
and of every installed service. It knows nothing of Flask or of any service:
the plugin host hands it the sections each plugin declares.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "Address",
    "Boolean",
    "Choice",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "Email",
    "FernetKey",
    "Integer",
    "Key",
    "KeyType",
    "List",
    "Networks",
    "PathValue",
    "Secret",
    "Section",
    "SigningKey",
    "Text",
    "Url",
    "find_config",
    "load_config",
]

#: Where the config is looked for, after ``--config`` and ``$SRHT_CONFIG``.
DEFAULT_LOCATIONS = (Path("config.ini"), Path("/etc/srht/config.ini"))


# -- value types -------------------------------------------------------------


class KeyType:
    """How a raw string from the file becomes a value. Subclasses override
    :meth:`parse`, raising :class:`ValueError` with a short reason."""

    #: Shown in the config reference and the example file.
    label = "text"

    def parse(self, raw: str) -> Any:
        return raw

    def format(self, value: Any) -> str:
        """Write a value (a default) back as it would appear in the file."""
        if value is None:
            return ""
        return str(value)


class Text(KeyType):
    """Any string."""


@dataclass(frozen=True)
class Integer(KeyType):
    """A whole number, optionally bounded."""

    min: int | None = None
    max: int | None = None
    label = "integer"

    def parse(self, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"not a whole number: {raw!r}") from None
        if self.min is not None and value < self.min:
            raise ValueError(f"must be at least {self.min}, got {value}")
        if self.max is not None and value > self.max:
            raise ValueError(f"must be at most {self.max}, got {value}")
        return value


class Boolean(KeyType):
    """yes/no, true/false, on/off, 1/0."""

    label = "yes/no"
    _true = {"yes", "true", "on", "1"}
    _false = {"no", "false", "off", "0"}

    def parse(self, raw: str) -> bool:
        word = raw.strip().lower()
        if word in self._true:
            return True
        if word in self._false:
            return False
        raise ValueError(f"not yes or no: {raw!r}")

    def format(self, value: Any) -> str:
        if value is None:
            return ""
        return "yes" if value else "no"


@dataclass(frozen=True)
class Url(KeyType):
    """An absolute URL; ``schemes`` limits which."""

    schemes: tuple[str, ...] = ("http", "https")
    label = "URL"

    def parse(self, raw: str) -> str:
        value = raw.strip()
        parts = urlsplit(value)
        if parts.scheme not in self.schemes or not (parts.netloc or parts.path):
            wanted = " or ".join(f"{s}://" for s in self.schemes)
            raise ValueError(f"not a URL starting with {wanted}: {raw!r}")
        return value.rstrip("/") if parts.scheme in ("http", "https") else value


class DatabaseUrl(KeyType):
    """A database the services can use: PostgreSQL (``postgresql://``,
    through psycopg2) or SQLite (``sqlite:///path``), as an SQLAlchemy URL.
    Its problems never quote the value, which may hold a password."""

    label = "database URL"
    #: SQLAlchemy driver names srht ships a driver for.
    DRIVERS = ("postgresql", "postgresql+psycopg2", "sqlite", "sqlite+pysqlite")

    def parse(self, raw: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        value = raw.strip()
        scheme = value.partition("://")[0].lower()
        if scheme == "postgres":
            raise ValueError("write postgresql:// (not postgres://)")
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "not a database URL like postgresql://USER@HOST/NAME or sqlite:///PATH"
            ) from None
        if url.drivername not in self.DRIVERS:
            raise ValueError(
                f"{url.drivername}:// is not a database srht can use (postgresql:// or sqlite:///)"
            )
        if url.get_backend_name() == "sqlite" and not url.database:
            raise ValueError(
                "sqlite:/// needs the path of a file (an in-memory database "
                "would be gone at the next request)"
            )
        if url.get_backend_name() == "postgresql" and not url.database:
            raise ValueError("name the database: postgresql://USER@HOST/DATABASE")
        return value


class Email(KeyType):
    """An email address (syntax only; the mail server is the real judge)."""

    label = "email address"
    _pattern = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")

    def parse(self, raw: str) -> str:
        value = raw.strip()
        if not self._pattern.match(value):
            raise ValueError(f"not an email address: {raw!r}")
        return value


class PathValue(KeyType):
    """A file system path; relative paths are resolved against the config file's folder."""

    label = "path"

    def parse(self, raw: str) -> str:
        return os.path.expanduser(raw.strip())


class Address(KeyType):
    """``HOST:PORT`` to listen on or connect to."""

    label = "host:port"

    def parse(self, raw: str) -> str:
        value = raw.strip()
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"not HOST:PORT: {raw!r}")
        return value


@dataclass(frozen=True)
class Choice(KeyType):
    """One of a fixed set of words."""

    choices: tuple[str, ...] = ()

    @property
    def label(self) -> str:  # type: ignore[override]
        return " | ".join(self.choices)

    def parse(self, raw: str) -> str:
        value = raw.strip()
        if value not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}; got {raw!r}")
        return value


@dataclass(frozen=True)
class List(KeyType):
    """A comma- or whitespace-separated list of ``item`` values."""

    item: KeyType = field(default_factory=Text)

    @property
    def label(self) -> str:  # type: ignore[override]
        return f"list of {self.item.label}"

    def parse(self, raw: str) -> list[Any]:
        return [self.item.parse(part) for part in re.split(r"[,\s]+", raw.strip()) if part]

    def format(self, value: Any) -> str:
        if not value:
            return ""
        return ", ".join(self.item.format(v) for v in value)


class Networks(List):
    """A list of IP networks in CIDR notation."""

    label = "list of networks"

    def parse(self, raw: str) -> list[Any]:
        out = []
        for part in re.split(r"[,\s]+", raw.strip()):
            if not part:
                continue
            try:
                out.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"not a network in CIDR notation: {part!r}") from None
        return out

    def format(self, value: Any) -> str:
        return ", ".join(str(v) for v in value or ())


class FernetKey(KeyType):
    """A Fernet key: 32 random bytes, URL-safe base64 (``srht keygen``)."""

    label = "Fernet key"

    def parse(self, raw: str) -> str:
        from cryptography.fernet import Fernet

        value = raw.strip()
        try:
            Fernet(value)
        except (ValueError, TypeError):
            raise ValueError(
                "not a Fernet key (32 bytes, URL-safe base64); generate one with `srht keygen`"
            ) from None
        return value


class SigningKey(KeyType):
    """An Ed25519 private key: 32 bytes, base64 (``srht keygen``)."""

    label = "Ed25519 private key"

    def parse(self, raw: str) -> str:
        import base64
        import binascii

        value = raw.strip()
        try:
            decoded = base64.b64decode(value, validate=True)
        except (ValueError, binascii.Error):
            decoded = b""
        if len(decoded) != 32:
            raise ValueError(
                "not an Ed25519 private key (32 bytes, base64); generate one with `srht keygen`"
            )
        return value


@dataclass(frozen=True)
class Secret(KeyType):
    """A random secret string of at least ``min_length`` characters."""

    min_length: int = 32
    label = "random string"

    def parse(self, raw: str) -> str:
        value = raw.strip()
        if len(value) < self.min_length:
            raise ValueError(
                f"too short to be secret ({len(value)} characters, at least "
                f"{self.min_length}); generate one with `srht keygen`"
            )
        return value


# -- schema ------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One key of a section.

    :param name: the key as written in the file (lower case, dashes).
    :param type: how its value is read; :class:`Text` by default.
    :param default: the value when the key is absent (already typed).
    :param required: the key must be present and non-empty.
    :param secret: the value is a secret: redacted wherever config is shown,
        and an empty value is an error.
    :param description: one or two sentences for the reference and example.
    :param example: the value written into ``config.example.ini``.
    :param dev: the value a development config (``srht up``, ``srht config
        init --dev``) writes, where a developer's machine differs from a
        server (git's ``ssh = no``: ``srht up`` runs no sshd).

    .. versionchanged:: 0.1
        ``dev``.
    """

    name: str
    type: KeyType = field(default_factory=Text)
    default: Any = None
    required: bool = False
    secret: bool = False
    description: str = ""
    example: str | None = None
    dev: str | None = None


@dataclass(frozen=True)
class Section:
    """A section of the config and the keys it may hold.

    :param name: ``srht``, ``mail``, ``todo`` or a sub-section ``todo::settings``.
    :param keys: the keys; any other key in the file is reported.
    :param description: what the section configures.
    :param required: the section must be present (only core sections are).
    """

    name: str
    keys: tuple[Key, ...] = ()
    description: str = ""
    required: bool = False

    def key(self, name: str) -> Key | None:
        for key in self.keys:
            if key.name == name:
                return key
        return None


# -- problems ----------------------------------------------------------------


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config file, and where."""

    file: str
    line: int | None
    section: str | None
    key: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        what = ""
        if self.section is not None:
            what = f" [{self.section}]"
            if self.key is not None:
                what += f" {self.key}"
        return f"{where}{what}: {self.message}"


class ConfigError(Exception):
    """Raised when a config cannot be used; carries every problem found."""

    def __init__(self, problems: Iterable[ConfigProblem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# -- reading -----------------------------------------------------------------


@dataclass
class RawValue:
    value: str
    line: int


@dataclass
class RawSection:
    name: str
    line: int
    values: dict[str, RawValue] = field(default_factory=dict)


_SECTION = re.compile(r"^\[(?P<name>[^\[\]]*)\]\s*$")
_KEY = re.compile(r"^(?P<key>[A-Za-z0-9_.:-]+)\s*=\s?(?P<value>.*)$")


def parse_ini(text: str, filename: str) -> tuple[dict[str, RawSection], list[ConfigProblem]]:
    """Read INI text, keeping line numbers. Returns the sections and every
    syntax problem (malformed lines, duplicates), never stopping at the first.

    Comments start with ``#`` or ``;`` at the beginning of a line. A line
    starting with white space continues the previous value (for multi-line
    values such as sshd snippets).
    """
    sections: dict[str, RawSection] = {}
    problems: list[ConfigProblem] = []
    current: RawSection | None = None
    last: RawValue | None = None
    # Keys under a malformed header belong to it: its one problem covers them.
    under_malformed_header = False

    def problem(
        line: int, message: str, section: str | None = None, key: str | None = None
    ) -> None:
        problems.append(ConfigProblem(filename, line, section, key, message))

    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            last = None if not stripped else last
            continue
        if line[0] in " \t" and last is not None:
            last.value += "\n" + stripped
            continue
        last = None
        if stripped.startswith("["):
            match = _SECTION.match(stripped)
            name = match.group("name").strip() if match else ""
            if not match or not name:
                problem(number, f"malformed section header {stripped!r}; expected [name]")
                current = None
                under_malformed_header = True
                continue
            under_malformed_header = False
            if name in sections:
                first = sections[name].line
                problem(number, f"section repeated (first at line {first})", name)
                current = sections[name]
                continue
            current = sections[name] = RawSection(name, number)
            continue
        match = _KEY.match(stripped)
        if not match:
            problem(
                number,
                f"malformed line {stripped!r}; expected key = value",
                current.name if current else None,
            )
            continue
        key = match.group("key").lower()
        if current is None:
            if not under_malformed_header:
                problem(number, f"key {key!r} before any [section]")
            continue
        if key in current.values:
            first = current.values[key].line
            problem(number, f"key repeated (first at line {first})", current.name, key)
            continue
        last = current.values[key] = RawValue(match.group("value").strip(), number)
    return sections, problems


# -- the config --------------------------------------------------------------


class SectionValues(Mapping[str, Any]):
    """The values of one section, typed by its schema, defaults filled in."""

    def __init__(self, name: str, values: dict[str, Any]):
        self.name = name
        self._values = values

    def __getitem__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise KeyError(f"[{self.name}] has no key {key!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"<SectionValues [{self.name}] {sorted(self._values)}>"


class Config:
    """A config file as read: raw sections with line numbers, and typed
    values once it has been :meth:`bind`-ed to the schemas.

    Build one with :func:`load_config`, :meth:`from_string` or
    :meth:`from_dict`; the last two are for tests and generated configs.
    """

    def __init__(
        self, path: str, sections: dict[str, RawSection], syntax_problems: list[ConfigProblem]
    ):
        self.path = path
        self.raw = sections
        self.syntax_problems = syntax_problems
        self.schemas: dict[str, Section] = {}
        self._typed: dict[str, SectionValues] = {}

    # construction

    @classmethod
    def from_string(cls, text: str, path: str = "<string>") -> Config:
        sections, problems = parse_ini(text, path)
        return cls(path, sections, problems)

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, Any]], path: str = "<dict>") -> Config:
        """Build a config from ``{section: {key: value}}``; values are written
        as they would be in the file (``True`` becomes ``yes``)."""
        return cls.from_string(dump_ini(data), path)

    # what is in it

    @property
    def directory(self) -> Path:
        """The folder relative paths in the config are resolved against."""
        if self.path.startswith("<"):
            return Path.cwd()
        return Path(self.path).resolve().parent

    def has_section(self, name: str) -> bool:
        return name in self.raw

    def section_names(self) -> list[str]:
        return list(self.raw)

    def raw_value(self, section: str, key: str) -> str | None:
        raw = self.raw.get(section)
        if raw is None or key not in raw.values:
            return None
        return raw.values[key].value

    def bind(self, schemas: Mapping[str, Section]) -> list[ConfigProblem]:
        """Type every known section by its schema and return every problem
        found (syntax problems from reading included). Unknown sections and
        keys are reported but do not stop the known ones from being typed."""
        self.schemas = dict(schemas)
        self._typed = {}
        problems = list(self.syntax_problems)
        for name, schema in self.schemas.items():
            raw = self.raw.get(name)
            if raw is None:
                if schema.required:
                    problems.append(
                        ConfigProblem(
                            self.path, None, name, None, "section missing; it is required"
                        )
                    )
                continue
            self._typed[name] = SectionValues(name, self._type_section(schema, raw, problems))
        for name, raw in self.raw.items():
            if name in self.schemas:
                continue
            message = f"unknown section; no installed service owns [{name}]"
            close = difflib.get_close_matches(name, list(self.schemas), n=1)
            if close:
                message += f" (did you mean [{close[0]}]?)"
            problems.append(ConfigProblem(self.path, raw.line, name, None, message))
        return problems

    def _type_section(
        self, schema: Section, raw: RawSection, problems: list[ConfigProblem]
    ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key in schema.keys:
            found = raw.values.get(key.name)
            if found is None or found.value == "":
                line = found.line if found is not None else raw.line
                if key.secret and key.required and found is not None:
                    problems.append(
                        ConfigProblem(
                            self.path,
                            line,
                            schema.name,
                            key.name,
                            "secret is empty; generate one with `srht keygen`",
                        )
                    )
                elif key.required:
                    problems.append(
                        ConfigProblem(
                            self.path,
                            line,
                            schema.name,
                            key.name,
                            f"required key missing ({key.type.label})",
                        )
                    )
                values[key.name] = key.default
                continue
            try:
                value = key.type.parse(found.value)
            except ValueError as error:
                problems.append(
                    ConfigProblem(self.path, found.line, schema.name, key.name, str(error))
                )
                values[key.name] = key.default
                continue
            if isinstance(key.type, PathValue) and value and not os.path.isabs(value):
                value = str(self.directory / value)
            values[key.name] = value
        known = {key.name for key in schema.keys}
        for name, found in raw.values.items():
            if name in known:
                continue
            message = "unknown key"
            close = difflib.get_close_matches(name, sorted(known), n=1)
            if close:
                message += f" (did you mean {close[0]!r}?)"
            problems.append(ConfigProblem(self.path, found.line, schema.name, name, message))
        return values

    def __getitem__(self, section: str) -> SectionValues:
        """The typed values of a bound section."""
        try:
            return self._typed[section]
        except KeyError:
            if section in self.schemas:
                raise KeyError(f"{self.path} has no [{section}] section") from None
            raise KeyError(
                f"[{section}] is not a declared section (is the config bound?)"
            ) from None

    def get(self, section: str, key: str, default: Any = None) -> Any:
        values = self._typed.get(section)
        if values is None:
            return default
        value = values.get(key)
        return default if value is None else value

    def redacted(self) -> dict[str, dict[str, str]]:
        """The raw values with every key declared ``secret`` replaced."""
        out: dict[str, dict[str, str]] = {}
        for name, raw in self.raw.items():
            schema = self.schemas.get(name)
            out[name] = {}
            for key, value in raw.values.items():
                declared = schema.key(key) if schema else None
                secret = declared is not None and declared.secret
                out[name][key] = "********" if secret and value.value else value.value
        return out


def dump_ini(data: Mapping[str, Mapping[str, Any]]) -> str:
    """Write ``{section: {key: value}}`` as INI text."""
    lines: list[str] = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, bool):
                value = "yes" if value else "no"
            elif isinstance(value, list | tuple):
                value = ", ".join(str(v) for v in value)
            text = "" if value is None else str(value)
            text = text.replace("\n", "\n  ")
            lines.append(f"{key} = {text}".rstrip())
        lines.append("")
    return "\n".join(lines)


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The config file to use: ``explicit``, then ``$SRHT_CONFIG``, then
    ``./config.ini``, then ``/etc/srht/config.ini``; ``None`` if none exists.

    An explicit path or ``$SRHT_CONFIG`` is returned even when missing, so
    that the caller can say that file is missing rather than silently
    falling back to another."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("SRHT_CONFIG")
    if env:
        return Path(env)
    for candidate in DEFAULT_LOCATIONS:
        try:
            if candidate.is_file():
                return candidate
        except OSError:
            continue  # an unreadable working directory, say: look further

    return None


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read the config found by :func:`find_config` (not yet bound).

    :raises ConfigError: when no file is found or it cannot be read.
    """
    found = find_config(path)
    if found is None:
        raise ConfigError(
            [
                ConfigProblem(
                    "config.ini",
                    None,
                    None,
                    None,
                    "no config found (looked at --config, $SRHT_CONFIG, ./config.ini, "
                    "/etc/srht/config.ini); write one with `srht config init --dev config.ini`",
                )
            ]
        )
    try:
        text = found.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(str(found), None, None, None, "file not found")]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(
            [ConfigProblem(str(found), None, None, None, f"cannot be read: {error}")]
        ) from None
    return Config.from_string(text, str(found))
