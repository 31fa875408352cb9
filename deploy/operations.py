"""Operations pyinfra lacks, each idempotent: it reads a fact, and yields
commands only when the host differs from what is wanted.

Secrets never appear in a command: SQL carrying a password verifier is
uploaded into a root-only folder and fed to ``psql`` on standard input.
"""

from __future__ import annotations

import re
import shlex
from io import StringIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, OperationError, operation

from .facts import FileText, HttpStatus, PostgresState

__all__ = ["converge", "health", "migrate", "postgres_database", "postgres_role", "virtualenv"]

#: Root-only folder on every host for the deploy's own state (stamps, SQL).
STATE_DIR = "/var/lib/srht-deploy"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise OperationError(f"{name!r} is not a PostgreSQL name the deploy manages "
                             "(letters, digits, _ and -)")
    return '"' + name + '"'


def _psql_file(sql: str, label: str) -> list[object]:
    path = f"{STATE_DIR}/{label}.sql"
    return [FileUploadCommand(StringIO(sql), path),
            f"runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 < {path}; "
            f"status=$?; rm -f {path}; exit $status"]


@operation()
def postgres_role(role: str, verifier: str | None = None):  # type: ignore[no-untyped-def]
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
def postgres_database(database: str, owner: str):  # type: ignore[no-untyped-def]
    """A database owned by ``owner``; an existing one is left as it is."""
    if database not in host.get_fact(PostgresState)["database"]:
        _ident(database), _ident(owner)
        yield (f"runuser -u postgres -- createdb --owner={shlex.quote(owner)} "
               f"{shlex.quote(database)}")


@operation()
def virtualenv(root: str, wheelhouse_id: str, tarball: str,  # type: ignore[no-untyped-def]
               requirements: list[str]):
    """A virtualenv at ``ROOT/venvs/ID`` holding ``requirements`` from the
    uploaded wheelhouse ``tarball``, without any index. Earlier venvs but
    the current one are removed; the wheels are deleted once installed."""
    venv = f"{root}/venvs/{wheelhouse_id}"
    marker = f"{venv}/.srht-complete"
    if host.get_fact(FileText, path=marker) is not None:
        return
    wheels = f"{root}/wheels/{wheelhouse_id}"
    names = " ".join(shlex.quote(r) for r in requirements)
    yield (f"set -e; rm -rf {venv} {wheels}; mkdir -p {root}/venvs {wheels}; "
           f"tar -xf {tarball} -C {wheels}; python3 -m venv {venv}; "
           f"{venv}/bin/pip install --quiet --no-index --disable-pip-version-check "
           f"--no-cache-dir --find-links {wheels} {names}; "
           f"{venv}/bin/python -m srht_deploy.onhost static-links {venv}/static; "
           f"rm -rf {wheels} {tarball}; touch {marker}; "
           f"current=$(readlink -f {root}/venv || true); "
           f"for old in {root}/venvs/*; do "
           f"[ \"$old\" = {venv} ] || [ \"$old\" = \"$current\" ] || rm -rf \"$old\"; done")


@operation()
def converge(key: str, fingerprint: str, command: str):  # type: ignore[no-untyped-def]
    """Run ``command`` (restart a daemon, reload a config...) unless it
    already succeeded for ``fingerprint``, a hash of everything it applies.

    The fingerprint is recorded on the host only after ``command``
    succeeds, so a run that failed half-way, or never reached a host,
    applies it on the next run; a run with nothing new changes nothing."""
    path = f"{STATE_DIR}/applied-{key}"
    if host.get_fact(FileText, path=path) == fingerprint:
        return
    yield f"{command} && echo {fingerprint} > {path}"


@operation()
def migrate(service: str, stamp: str, srht: str, config: str):  # type: ignore[no-untyped-def]
    """Apply ``service``'s database migrations, as its user, unless they
    were already applied for ``stamp`` (the software and database they
    were applied with)."""
    path = f"{STATE_DIR}/migrated-{service}"
    if host.get_fact(FileText, path=path) == stamp:
        return
    yield (f"runuser -u srht-{service} -- env SRHT_CONFIG={config} {srht} migrate {service} "
           f"&& echo {stamp} > {path}")


@operation(is_idempotent=True)
def health(what: str, url: str, resolve: str | None = None):  # type: ignore[no-untyped-def]
    """Fail unless ``url`` answers 200 from the host (changes nothing)."""
    status = host.get_fact(HttpStatus, url=url, resolve=resolve)
    if status != 200:
        # Failing through a command marks this host failed (and only this
        # host), with the reason in the output.
        answer = f"answered {status}" if status else "did not answer"
        yield f"echo {shlex.quote(f'{what} {answer} at {url}')} >&2; exit 1"
