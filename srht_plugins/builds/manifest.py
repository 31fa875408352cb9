"""Build manifests: the YAML a job is described by, read as sr.ht reads it.

A manifest names an ``image``, the ``packages`` to install on it, the git
``sources`` to clone, an ``environment``, the ``secrets`` the job may have,
its ``tasks`` (named shell scripts run in order), the ``artifacts`` to keep
and the ``triggers`` to fire when it ends::

    image: debian/bookworm
    packages: [make]
    sources: [https://git.example.org/~alice/hello]
    environment: {GREETING: hello}
    tasks:
      - build: |
          cd hello
          make
      - test: make -C hello check
    artifacts: [hello/hello]
    triggers:
      - {action: email, condition: failure, to: alice@example.org}

:func:`parse` reads one and reports *every* problem at once, each with its
line and the key at fault (``manifest:7 tasks[1]: ...``), the way ``srht
config check`` reports a config: nothing runs until a manifest has none.
PyYAML's composer gives each node its position, so the checks walk nodes
rather than the plain values ``yaml.safe_load`` would give.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

__all__ = [
    "MAX_LENGTH",
    "Manifest",
    "ManifestError",
    "ManifestProblem",
    "Trigger",
    "parse",
    "source_name",
]

#: The longest manifest accepted, in characters.
MAX_LENGTH = 64 * 1024
MAX_TASKS = 50
MAX_LIST = 200
MAX_ARTIFACTS = 20
MAX_TRIGGERS = 10
#: Nodes walked at most: aliases could otherwise make a small text huge.
MAX_NODES = 10_000

KEYS = (
    "image",
    "packages",
    "sources",
    "environment",
    "secrets",
    "tasks",
    "artifacts",
    "triggers",
)
TASK_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,99}(=[A-Za-z0-9.+:~-]{1,100})?$")
VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
SECRET_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ACTIONS = ("email", "webhook")
CONDITIONS = ("always", "failure", "success")
#: Names of the job's own variables, which a manifest may not set.
RESERVED = ("JOB_ID", "JOB_URL", "BUILD_SUBMITTER", "BUILD_REASON", "GIT_REF", "HOME", "PATH")


@dataclass(frozen=True)
class ManifestProblem:
    """One thing wrong with a manifest: where (``line``, 1-based, and the
    ``key`` path such as ``tasks[2]``) and what."""

    line: int | None
    key: str | None
    message: str
    file: str = "manifest"

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where} {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ManifestError(ValueError):
    """A manifest that cannot run; carries every problem found."""

    def __init__(self, problems: Iterable[ManifestProblem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class Trigger:
    """What to do when the job ends: mail ``to`` or POST to ``url``, when
    the job's end matches ``condition``."""

    action: str
    condition: str
    to: str | None = None
    url: str | None = None

    def fires(self, succeeded: bool) -> bool:
        return self.condition == "always" or (self.condition == "success") == succeeded

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action, "condition": self.condition}
        if self.to:
            out["to"] = self.to
        if self.url:
            out["url"] = self.url
        return out


@dataclass(frozen=True)
class Manifest:
    """A manifest that passed every check."""

    image: str
    tasks: tuple[tuple[str, str], ...]
    packages: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    artifacts: tuple[str, ...] = ()
    triggers: tuple[Trigger, ...] = ()
    #: The line of each source and secret (``sources[0]``, ``secrets[1]``),
    #: for problems found later (a source the user cannot read).
    lines: dict[str, int] = field(default_factory=dict)

    @property
    def task_names(self) -> list[str]:
        return [name for name, _script in self.tasks]


def source_name(url: str) -> str:
    """The folder a source is cloned into: the last part of its path,
    without ``.git`` (``https://git.example.org/~alice/hello.git`` →
    ``hello``)."""
    path = urlsplit(url.split("#", 1)[0]).path.rstrip("/")
    return path.rsplit("/", 1)[-1].removesuffix(".git")


class _Checker:
    """Walks the composed YAML, collecting problems."""

    def __init__(self, file: str):
        self.file = file
        self.problems: list[ManifestProblem] = []
        self.walked = 0

    def problem(self, node: yaml.Node | None, key: str | None, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else None
        self.problems.append(ManifestProblem(line, key, message, self.file))

    # -- shapes ------------------------------------------------------------------

    def count(self, node: yaml.Node) -> None:
        self.walked += 1
        if self.walked > MAX_NODES:
            raise _TooComplex()

    def text(self, node: yaml.Node, key: str, what: str = "text") -> str | None:
        """A string scalar (numbers and booleans are not text here: a task
        of ``yes`` is a mistake more often than a script)."""
        self.count(node)
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str":
            self.problem(node, key, f"must be {what}, not {_kind(node)}")
            return None
        return str(node.value)

    def scalar(self, node: yaml.Node, key: str) -> str | None:
        """Any scalar, as the text it was written as (for variables)."""
        self.count(node)
        if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            self.problem(node, key, f"must be text, a number or true/false, not {_kind(node)}")
            return None
        return str(node.value)

    def sequence(self, node: yaml.Node, key: str, limit: int = MAX_LIST) -> list[yaml.Node]:
        self.count(node)
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, key, f"must be a list, not {_kind(node)}")
            return []
        if len(node.value) > limit:
            self.problem(node, key, f"has {len(node.value)} items; at most {limit} are allowed")
            return list(node.value[:limit])
        return list(node.value)

    def mapping(self, node: yaml.Node, key: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """``(name, key node, value node)`` of a mapping, each key once."""
        self.count(node)
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, key, f"must be a mapping (name: value), not {_kind(node)}")
            return []
        seen: dict[str, int] = {}
        out = []
        for key_node, value_node in node.value:
            self.count(key_node)
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_node, key, "has a key that is not a name")
                continue
            name = str(key_node.value)
            if name in seen:
                self.problem(
                    key_node,
                    _join(key, name),
                    f"is given twice (first on line {seen[name]})",
                )
                continue
            seen[name] = key_node.start_mark.line + 1
            out.append((name, key_node, value_node))
        return out

    def text_list(self, node: yaml.Node, key: str, limit: int = MAX_LIST) -> list[tuple[str, Any]]:
        out = []
        for index, item in enumerate(self.sequence(node, key, limit)):
            value = self.text(item, f"{key}[{index}]")
            if value is not None:
                out.append((value, item))
        return out


class _TooComplex(Exception):
    pass


def _join(parent: str | None, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    tag = getattr(node, "tag", "")
    return {
        "tag:yaml.org,2002:null": "empty",
        "tag:yaml.org,2002:bool": "true/false",
        "tag:yaml.org,2002:int": "a number",
        "tag:yaml.org,2002:float": "a number",
        "tag:yaml.org,2002:str": "text",
    }.get(tag, "a value of another kind")


def parse(
    text: str,
    *,
    images: Iterable[str] | None = None,
    file: str = "manifest",
) -> Manifest:
    """Read and check a manifest.

    :param images: the names of the images jobs may use; ``None`` accepts
        any (for checks that do not know the site).
    :param file: how problems name the manifest (``.build.yml``).
    :raises ManifestError: with every problem found.
    """
    checker = _Checker(file)
    if len(text) > MAX_LENGTH:
        raise ManifestError(
            [
                ManifestProblem(
                    None, None, f"is {len(text)} characters long; at most {MAX_LENGTH}", file
                )
            ]
        )
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        reason = getattr(error, "problem", None) or str(error)
        line = mark.line + 1 if mark is not None else None
        raise ManifestError(
            [ManifestProblem(line, None, f"is not valid YAML: {reason}", file)]
        ) from None
    if root is None:
        raise ManifestError([ManifestProblem(None, None, "is empty", file)])
    try:
        manifest = _check(checker, root, None if images is None else list(images))
    except _TooComplex:
        checker.problem(root, None, f"has more than {MAX_NODES} values (aliases?)")
        manifest = None
    if checker.problems or manifest is None:
        raise ManifestError(sorted(checker.problems, key=lambda p: (p.line or 0, p.key or "")))
    return manifest


def _check(c: _Checker, root: yaml.Node, images: list[str] | None) -> Manifest | None:
    entries = c.mapping(root, "")
    if not isinstance(root, yaml.MappingNode):
        return None
    given = {name: (key_node, value) for name, key_node, value in entries}
    for name, (key_node, _value) in given.items():
        if name not in KEYS:
            c.problem(key_node, name, f"is not a manifest key (known: {', '.join(KEYS)})")

    image = None
    if "image" not in given:
        c.problem(root, "image", "is required: the image the job runs on")
    else:
        image = c.text(given["image"][1], "image", "an image name")
        if image is not None and images is not None and image not in images:
            known = ", ".join(sorted(images)) or "none"
            c.problem(given["image"][1], "image", f"{image!r} is not an image here ({known})")

    packages: list[str] = []
    if "packages" in given:
        for value, node in c.text_list(given["packages"][1], "packages"):
            if PACKAGE.match(value):
                packages.append(value)
            else:
                c.problem(node, "packages", f"{value!r} is not a Debian package name")

    lines: dict[str, int] = {}
    sources: list[str] = []
    if "sources" in given:
        names: dict[str, str] = {}
        for index, (value, node) in enumerate(c.text_list(given["sources"][1], "sources")):
            key = f"sources[{index}]"
            parts = urlsplit(value)
            if parts.scheme not in ("https", "http") or not parts.hostname:
                c.problem(node, key, f"{value!r} is not an http:// or https:// git URL")
                continue
            name = source_name(value)
            if not name or name in (".", ".."):
                c.problem(node, key, f"{value!r} does not end in a repository name")
                continue
            if name in names:
                c.problem(node, key, f"clones into {name}/ as {names[name]} does")
                continue
            names[name] = value
            lines[f"sources[{len(sources)}]"] = node.start_mark.line + 1
            sources.append(value)

    environment: dict[str, str] = {}
    if "environment" in given:
        for name, key_node, value_node in c.mapping(given["environment"][1], "environment"):
            key = f"environment.{name}"
            if not VARIABLE.match(name):
                c.problem(key_node, key, "is not a variable name (letters, digits, _)")
                continue
            if name in RESERVED:
                c.problem(key_node, key, "is set by the job itself")
                continue
            scalar = c.scalar(value_node, key)
            if scalar is not None:
                if "\0" in scalar:
                    c.problem(value_node, key, "must not contain NUL")
                else:
                    environment[name] = scalar

    secrets: list[str] = []
    if "secrets" in given:
        for value, node in c.text_list(given["secrets"][1], "secrets"):
            if SECRET_ID.match(value):
                if value not in secrets:
                    lines[f"secrets[{len(secrets)}]"] = node.start_mark.line + 1
                    secrets.append(value)
            else:
                c.problem(node, "secrets", f"{value!r} is not a secret's id (a UUID)")

    tasks: list[tuple[str, str]] = []
    if "tasks" not in given:
        c.problem(root, "tasks", "is required: the list of named scripts the job runs")
    else:
        items = c.sequence(given["tasks"][1], "tasks", MAX_TASKS)
        if isinstance(given["tasks"][1], yaml.SequenceNode) and not items:
            c.problem(given["tasks"][1], "tasks", "must name at least one task")
        seen_tasks: set[str] = set()
        for index, item in enumerate(items):
            key = f"tasks[{index}]"
            if not isinstance(item, yaml.MappingNode) or len(item.value) != 1:
                c.problem(item, key, "must be one task: `- name: script`")
                c.count(item)
                continue
            entries_ = c.mapping(item, key)
            if not entries_:
                continue
            name, key_node, script_node = entries_[0]
            if not TASK_NAME.match(name):
                c.problem(key_node, key, f"{name!r} is not a task name (letters, digits, - and _)")
                continue
            if name in seen_tasks:
                c.problem(key_node, key, f"{name!r} is the name of an earlier task")
                continue
            seen_tasks.add(name)
            script = c.text(script_node, f"{key}.{name}", "text (a shell script)")
            if script is not None:
                if "\0" in script:
                    c.problem(script_node, f"{key}.{name}", "must not contain NUL")
                else:
                    tasks.append((name, script))

    artifacts: list[str] = []
    if "artifacts" in given:
        for value, node in c.text_list(given["artifacts"][1], "artifacts", MAX_ARTIFACTS):
            if not value.strip() or "\0" in value or "\n" in value or len(value) > 512:
                c.problem(node, "artifacts", f"{value!r} is not a file path")
            else:
                artifacts.append(value)

    triggers: list[Trigger] = []
    if "triggers" in given:
        for index, item in enumerate(c.sequence(given["triggers"][1], "triggers", MAX_TRIGGERS)):
            trigger = _trigger(c, item, f"triggers[{index}]")
            if trigger is not None:
                triggers.append(trigger)

    if image is None or not tasks:
        return None
    return Manifest(
        image=image,
        tasks=tuple(tasks),
        packages=tuple(packages),
        sources=tuple(sources),
        environment=environment,
        secrets=tuple(secrets),
        artifacts=tuple(artifacts),
        triggers=tuple(triggers),
        lines=lines,
    )


def _trigger(c: _Checker, node: yaml.Node, key: str) -> Trigger | None:
    values: dict[str, tuple[str, yaml.Node]] = {}
    for name, key_node, value_node in c.mapping(node, key):
        if name not in ("action", "condition", "to", "url"):
            c.problem(
                key_node, f"{key}.{name}", "is not a trigger key (action, condition, to, url)"
            )
            continue
        value = c.text(value_node, f"{key}.{name}")
        if value is not None:
            values[name] = (value, value_node)
    if not isinstance(node, yaml.MappingNode):
        return None
    ok = True
    action = values.get("action", (None, node))[0]
    if action not in ACTIONS:
        c.problem(
            values.get("action", (None, node))[1], f"{key}.action", "must be email or webhook"
        )
        ok = False
    condition = values.get("condition", ("always", node))[0]
    if condition not in CONDITIONS:
        c.problem(values["condition"][1], f"{key}.condition", "must be always, failure or success")
        ok = False
    to = values.get("to", (None, node))[0]
    url = values.get("url", (None, node))[0]
    if action == "email":
        if to is None or not EMAIL.match(to):
            c.problem(values.get("to", (None, node))[1], f"{key}.to", "must be an email address")
            ok = False
        if url is not None:
            c.problem(values["url"][1], f"{key}.url", "is for webhook triggers")
            ok = False
    if action == "webhook":
        parts = urlsplit(url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            c.problem(values.get("url", (None, node))[1], f"{key}.url", "must be an http(s) URL")
            ok = False
        if to is not None:
            c.problem(values["to"][1], f"{key}.to", "is for email triggers")
            ok = False
    if not ok or action is None:
        return None
    return Trigger(action, condition, to=to, url=url)
