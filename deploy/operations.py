"""Operations pyinfra lacks, each idempotent: it reads a fact, and yields
commands only when the host differs from what is wanted.

Secrets never appear in a command: SQL carrying a password verifier is
uploaded into a root-only folder and fed to ``psql`` on standard input.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from fnmatch import fnmatchcase
from io import StringIO
from typing import Any, TypeVar

from packaging.utils import parse_wheel_filename
from pyinfra.api.command import FileUploadCommand
from pyinfra.api.exceptions import OperationError
from pyinfra.api.facts import FactBase
from pyinfra.api.operation import operation
from pyinfra.context import host
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus
from pyinfra.operations import files

from .facts import FileText, HttpCheck, PathStates, PostgresState, StateFiles
from .wheels import Wheelhouse

__all__ = [
    "HOSTS_FILE",
    "absent",
    "cached_fact",
    "converge",
    "directory",
    "each",
    "failed",
    "forget_failures",
    "health",
    "hosts_file_text",
    "migrate",
    "postgres_database",
    "postgres_role",
    "put",
    "reaches",
    "running",
    "service_names",
    "settled",
    "software",
    "track",
]

#: Root-only folder on every host for the deploy's own state (stamps, SQL).
STATE_DIR = "/var/lib/srht-deploy"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")
#: What an operation yields: shell commands and uploads.
Commands = Generator[str | FileUploadCommand, None, None]
T = TypeVar("T")


def each(
    items: Iterable[T], *, order: Sequence[T] = (), key: Callable[[T], str] = str
) -> Iterator[T]:
    """``host.loop(items)``, with each item's operations placed by the item
    itself rather than by its index in this host's list.

    pyinfra makes one step of the operations called from the same line at
    the same loop position on every host, and names it with all their
    names: with indexes, "User srht-meta" on alpha and "User srht-paste"
    on beta (each the first of its host's loop) would be one step, shown
    under both names on both hosts, in the plan and the progress. Placed
    by the item, the same thing done on several hosts is one step (run on
    them at once) and different things are different steps, each named
    for what it does where it does it.

    :param order: the site-wide order of the items, where it is not their
        names' (meta's unit restarted first); the others come after, in the
        order of ``key(item)``.
    """
    position = host.loop_position
    position.append(0)
    try:
        for item in items:
            if item in order:
                position[-1] = list(order).index(item)
            else:
                # An integer that sorts as the key does (its first 64 bytes).
                name = key(item).encode()[:64].ljust(64, b"\0")
                position[-1] = (1 << 520) + int.from_bytes(name, "big")
            yield item
    finally:
        position.pop()


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise OperationError(
            f"{name!r} is not a PostgreSQL name the deploy manages (letters, digits, _ and -)"
        )
    return '"' + name + '"'


def _psql_file(sql: str, label: str) -> list[str | FileUploadCommand]:
    path = f"{STATE_DIR}/{label}.sql"
    return [
        FileUploadCommand(StringIO(sql), path),
        f"runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 < {path}; "
        f"status=$?; rm -f {path}; exit $status",
    ]


@operation()
def postgres_role(role: str, verifier: str | None = None) -> Commands:
    """A login role whose password is ``verifier`` (a SCRAM verifier, see
    :func:`srht_deploy.secrets.scram_verifier`); no password when ``None``."""
    roles = host.get_fact(PostgresState)["role"]
    quoted = _ident(role)
    password = f" PASSWORD '{verifier}'" if verifier else ""
    if role not in roles:
        yield from _psql_file(f"CREATE ROLE {quoted} LOGIN{password};\n", f"role-{role}")
    elif verifier and roles[role] != verifier:
        yield from _psql_file(f"ALTER ROLE {quoted}{password};\n", f"role-{role}")


@operation()
def postgres_database(database: str, owner: str) -> Commands:
    """A database owned by ``owner``; an existing one is left as it is."""
    if database not in host.get_fact(PostgresState)["database"]:
        _ident(database), _ident(owner)
        yield (
            f"runuser -u postgres -- createdb --owner={shlex.quote(owner)} {shlex.quote(database)}"
        )


@operation()
def software(venv: str, wanted: dict[str, str], wheelhouse: Wheelhouse) -> Commands:
    """The virtualenv ``venv`` holding exactly the wheels ``wanted``
    (``{file name: sha256}``, see :meth:`Wheelhouse.closure`), without any
    index.

    The host records what the virtualenv holds in ``VENV/.srht-wheels``;
    only the wheels it lacks (or holds with other contents) are uploaded,
    as one tar, and installed without dependency resolution (the closure
    was resolved on the deploying machine) next to the others, and the
    projects no longer wanted are uninstalled. Adding a service to a host
    thus installs only its own wheels, and a re-run uploads nothing. The
    record is written last, so an interrupted install is redone."""
    record = f"{venv}/.srht-wheels"
    text = host.get_fact(FileText, path=record)
    installed = _read_record(text) if text is not None else {}
    if text is not None and installed == wanted:
        return
    new = sorted(name for name, sha in wanted.items() if installed.get(name) != sha)
    keep = {parse_wheel_filename(name)[0] for name in wanted}
    gone = sorted({str(parse_wheel_filename(name)[0]) for name in installed} - keep)
    root = venv.rsplit("/", 1)[0]
    upload = f"{root}/upload-wheels.tar"
    staging = f"{root}/upload-wheels"
    yield f"mkdir -p {root}"
    if new:
        yield FileUploadCommand(str(wheelhouse.upload(new)), upload)
    yield FileUploadCommand(
        StringIO("".join(f"{sha}  {name}\n" for name, sha in sorted(wanted.items()))),
        f"{upload}.record",
    )
    pip = f"{venv}/bin/pip --quiet --disable-pip-version-check --no-cache-dir"
    steps = ["set -e"]
    if text is None:
        # No record: a new host, an interrupted first install, or the
        # layout of earlier versions (a link to /opt/srht/venvs/ID).
        steps += [f"rm -rf {venv} {root}/venvs", f"python3 -m venv {venv}"]
    if gone:
        steps.append(f"{pip} uninstall --yes {' '.join(shlex.quote(g) for g in gone)}")
    if new:
        steps += [
            f"rm -rf {staging}",
            f"mkdir -p {staging}",
            f"tar -xf {upload} -C {staging}",
            f"{pip} install --no-index --no-deps --force-reinstall {staging}/*.whl",
            f"rm -rf {staging} {upload}",
        ]
    steps += [
        f"{pip} check >&2",
        f"{venv}/bin/python -m srht_deploy.onhost static-links {venv}/static",
        f"mv {upload}.record {record}",
    ]
    yield "; ".join(steps)


def _read_record(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        sha, _, name = line.partition("  ")
        if name:
            out[name] = sha
    return out


# -- one read per host -----------------------------------------------------------
#
# pyinfra 3.10 reads a fact again on every call, and a re-run's time is
# mostly facts, read host after host. These read a fact once per host and
# run, when an operation first asks, and decide from that both when
# pyinfra plans an operation and when it executes it (it runs an
# operation's code for each). That is what they need: no two operations
# write the same path or stamp, so each reads its own as it was before it
# ran; and a unit a restart already started in this run is started again,
# harmlessly.

_CACHE: dict[tuple[Any, ...], Any] = {}
_TRACKED: dict[tuple[int, str], tuple[str, ...]] = {}


def cached_fact(fact: type[FactBase[Any]], **kwargs: Any) -> Any:
    """``host.get_fact(fact, **kwargs)``, read once per host and run."""
    key = (id(host.state), host.name, fact, tuple(sorted(kwargs.items())))
    if key not in _CACHE:
        _CACHE[key] = host.get_fact(fact, **kwargs)
    return _CACHE[key]


def track(globs: list[str]) -> None:
    """Say which paths :func:`put` and :func:`directory` read from one
    snapshot of the host (shell globs, one path component per ``*``);
    others are read one by one, as pyinfra's own operations do."""
    _TRACKED[(id(host.state), host.name)] = tuple(dict.fromkeys(globs))


def _state_of(path: str) -> tuple[bool, tuple[str, ...] | None]:
    """Whether ``path`` is tracked, and its ``(kind, mode, user, group, sha1)``."""
    globs = _TRACKED.get((id(host.state), host.name), ())
    parts = path.split("/")
    if not any(
        len(g.split("/")) == len(parts)
        and all(fnmatchcase(p, q) for p, q in zip(parts, g.split("/"), strict=True))
        for g in globs
    ):
        return False, None
    return True, cached_fact(PathStates, globs=globs).get(path)


def _attributes(
    path: str, state: tuple[str, ...] | None, user: str, group: str, mode: str
) -> list[str]:
    commands = []
    if state is None or (state[2], state[3]) != (user, group):
        commands.append(f"chown {user}:{group} {path}")
    if state is None or int(state[1], 8) != int(mode, 8):
        commands.append(f"chmod {mode} {path}")
    return commands


@operation()
def put(
    src: StringIO, dest: str, user: str = "root", group: str = "root", mode: str = "644"
) -> Commands:
    """``files.put`` of a text, reading the host from one snapshot when
    ``dest`` is tracked (see :func:`track`)."""
    tracked, state = _state_of(dest)
    if not tracked:
        yield from files.put._inner(src=src, dest=dest, user=user, group=group, mode=mode)
        return
    text = src.getvalue()
    if state is not None and state[0] != "file":
        raise OperationError(f"{dest} exists and is not a file")
    uploaded = state is None or state[4] != hashlib.sha1(text.encode()).hexdigest()  # noqa: S324
    if state is None:
        yield f"mkdir -p {dest.rsplit('/', 1)[0] or '/'}"  # as files.put does
    if uploaded:
        yield FileUploadCommand(StringIO(text), dest)
    yield from _attributes(dest, None if uploaded else state, user, group, mode)


@operation()
def directory(path: str, user: str = "root", group: str = "root", mode: str = "755") -> Commands:
    """``files.directory``, reading the host from one snapshot when
    ``path`` is tracked (see :func:`track`)."""
    tracked, state = _state_of(path)
    if not tracked:
        yield from files.directory._inner(path=path, user=user, group=group, mode=mode)
        return
    if state is not None and state[0] != "directory":
        raise OperationError(f"{path} exists and is not a folder")
    if state is None:
        yield f"mkdir -p {path}"
    yield from _attributes(path, state, user, group, mode)


@operation()
def running(unit: str, step: str | None = None) -> Commands:
    """``unit`` is running and enabled (``systemd.service(running=True,
    enabled=True)`` from one read of every unit's state); skipped when the
    service ``step`` failed a step of this run (see :func:`failed`)."""
    if not cached_fact(SystemdStatus).get(unit, False):
        yield _unless_failed(step, f"systemctl start {unit}")
    if not cached_fact(SystemdEnabled).get(unit, False):
        yield _unless_failed(step, f"systemctl enable {unit}")


def _stamp(name: str) -> str | None:
    value = cached_fact(StateFiles, folder=STATE_DIR).get(name)
    return str(value) if value is not None else None


@operation()
def converge(
    key: str, fingerprint: str, command: str, drifted: bool = False, step: str | None = None
) -> Commands:
    """Run ``command`` (restart a daemon, reload a config...) unless it
    already succeeded for ``fingerprint``, a hash of everything it applies.

    The fingerprint is recorded on the host only after ``command``
    succeeds, so a run that failed half-way, or never reached a host,
    applies it on the next run; a run with nothing new changes nothing.
    ``drifted``: a file it applies was changed on the host by something
    else (and is being put back), so it runs whatever the fingerprint.
    With ``step`` (a service), skipped when that service failed a step of
    this run: its daemons keep what they run (see :func:`failed`)."""
    if not drifted and _stamp(f"applied-{key}") == fingerprint:
        return
    yield _unless_failed(step, f"{command} && echo {fingerprint} > {STATE_DIR}/applied-{key}")


@operation()
def migrate(service: str, stamp: str, srht: str, config: str) -> Commands:
    """Apply ``service``'s database migrations, as its user, unless they
    were already applied for ``stamp`` (the software and database they
    were applied with).

    When they fail, the service's step fails (:func:`failed`, with
    PostgreSQL's words) and the run goes on with the other services; its
    daemons are not restarted onto the new code, and :func:`settled`
    fails the host at the end."""
    path = f"{STATE_DIR}/migrated-{service}"
    if _stamp(f"migrated-{service}") == stamp:
        return
    yield (
        f"if out=$(runuser -u srht-{service} -- env SRHT_CONFIG={config} {srht} migrate "
        f'{service} 2>&1); then echo "$out"; echo {stamp} > {path}; else '
        f"{_record_failure(service, 'migration')}; fi"
    )


@operation(is_idempotent=True)
def health(what: str, url: str, resolve: str | None = None, step: bool = False) -> Commands:
    """Fail unless ``url`` answers 200 from the host (changes nothing),
    saying what it answered (a service's ``/healthz`` names what is wrong:
    its database, or meta).

    With ``step``, ``what`` is a service and a wrong answer fails its step
    (:func:`failed`) rather than the host at once: the run goes on with
    the other services and :func:`settled` fails the host at the end. A
    service that already failed a step of this run is not asked again (its
    check through nginx after its own failed): the answer is waited for up
    to a minute, and the service is rolled back whatever it says.

    Only when the run executes: a plan (``--dry``) would wait for services
    that are not started yet, and what they answer before the run says
    nothing about after it."""
    if not host.state.is_executing:
        return
    # Read afresh: the marks are written by this run's own steps.
    if step and f"failed-{what}" in host.get_fact(StateFiles, folder=STATE_DIR):
        return
    answer = host.get_fact(HttpCheck, url=url, resolve=resolve)
    if answer.status == 200:
        return
    if step:
        words = f"{what} {answer.why} at {url}"
        yield f"test -e {failed(what)} || {_record_failure(what, 'health check', words)}"
    else:
        yield _fail(f"{what} {answer.why} at {url}")


# -- a service's steps --------------------------------------------------------------
#
# Each service goes through its steps on its own (migrate, restart, check):
# a step that fails marks the service failed on the host, with the words of
# what failed, and its later steps are skipped, while the other services'
# go on. The run ends with :func:`settled`, which fails the host when one of
# its services failed, so a failure is never silent. ``srht-install
# upgrade`` reads the marks to roll those services back (see
# ``installer/rollback.py``).


def failed(service: str) -> str:
    """The mark, on a host, of ``service`` having failed a step of this run:
    its first line the step (``migration``, ``health check``), then the
    words of what failed."""
    return f"{STATE_DIR}/failed-{service}"


def _record_failure(service: str, step: str, words: str | None = None) -> str:
    text = shlex.quote(words) if words is not None else '"$out"'
    return (
        f"printf '%s\\n%s\\n' {shlex.quote(step)} {text} > {failed(service)}; "
        f"echo {shlex.quote(f'{service}: its {step} failed')} >&2"
    )


def _unless_failed(step: str | None, command: str) -> str:
    return command if step is None else f"test -e {failed(step)} || {{ {command}; }}"


@operation()
def forget_failures() -> Commands:
    """Remove the marks of services that failed a step in an earlier run
    (the installer removes them once it rolled those services back; a run
    by hand leaves them), so this run tries their steps again."""
    if any(name.startswith("failed-") for name in cached_fact(StateFiles, folder=STATE_DIR)):
        yield f"rm -f {STATE_DIR}/failed-*"


@operation(is_idempotent=True)
def settled() -> Commands:
    """Fail the host, naming each service that failed a step of this run
    and the words of what failed, unless none did (changes nothing)."""
    if not host.state.is_executing:
        return
    # Read afresh: the marks are written by this run's own steps.
    now = host.get_fact(StateFiles, folder=STATE_DIR)
    if not any(name.startswith("failed-") for name in now):
        return
    yield (
        f'bad=0; for f in {STATE_DIR}/failed-*; do [ -f "$f" ] || continue; bad=1; '
        'echo "${f##*/failed-}: its $(head -n1 "$f") failed:" >&2; tail -n +2 "$f" >&2; '
        "done; exit $bad"
    )


@operation(is_idempotent=True)
def reaches(service: str, url: str, remedy: str) -> Commands:
    """Fail unless this host reaches ``service`` at ``url`` (changes
    nothing): the services here call it by its origin's name, as they
    will once the run is over. ``remedy`` says what to do otherwise.

    Only when the run executes (see :func:`health`)."""
    if not host.state.is_executing:
        return
    answer = host.get_fact(HttpCheck, url=url)
    if answer.status != 200:
        yield _fail(f"{host.name} cannot reach {service} at {url}: it {answer.why}. {remedy}")


def _fail(message: str) -> str:
    # Failing through a command marks this host failed (and only this
    # host), with the reason in the output.
    return f"echo {shlex.quote(message)} >&2; exit 1"


# -- the site's names, without DNS --------------------------------------------------

HOSTS_FILE = "/etc/hosts"
HOSTS_BEGIN = "# BEGIN srht: the site's service names, written by `srht deploy`"
HOSTS_END = "# END srht"


def hosts_file_text(current: str, entries: dict[str, str]) -> str:
    """``current`` (an ``/etc/hosts``) with the deploy's block holding
    ``{name: address}``: in place of the block it had, else at the end
    (after the administrator's own lines, which win over it); without a
    block when ``entries`` is empty. Every other line is kept as it was."""
    lines = current.splitlines()
    block = [HOSTS_BEGIN, *(f"{address} {name}" for name, address in entries.items()), HOSTS_END]
    if HOSTS_BEGIN in lines and HOSTS_END in lines[lines.index(HOSTS_BEGIN) :]:
        start = lines.index(HOSTS_BEGIN)
        end = lines.index(HOSTS_END, start)
        lines[start : end + 1] = block if entries else []
    elif entries:
        lines += block
    return "".join(line + "\n" for line in lines)


@operation()
def service_names(entries: dict[str, str]) -> Commands:
    """``/etc/hosts`` holding ``{name: address}`` in the deploy's block
    (see :func:`hosts_file_text`), rewritten in place (its owner, mode and
    inode stay) only when it differs."""
    current = host.get_fact(FileText, path=HOSTS_FILE)
    have = "".join(line + "\n" for line in (current or "").splitlines())
    wanted = hosts_file_text(have, entries)
    if wanted == have:
        return
    staged = f"{STATE_DIR}/hosts.new"
    yield f"mkdir -p {STATE_DIR}"
    yield FileUploadCommand(StringIO(wanted), staged)
    yield f"cat {staged} > {HOSTS_FILE} && rm -f {staged}"


@operation()
def absent(path: str) -> Commands:
    """No file at ``path`` (read from the snapshot when it is tracked, see
    :func:`track`)."""
    tracked, state = _state_of(path)
    if tracked and state is None:
        return
    if not tracked:
        yield from files.file._inner(path=path, present=False)
        return
    yield f"rm -f {path}"
