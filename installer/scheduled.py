"""Scheduled backups: what the backup host's ``srht-backup.service`` runs
on its timer, and the line ``srht-install status`` shows for them.

Where it runs and why there is said in :mod:`srht_deploy.backupplan`: one
host of the site (``[backup] host``) holds the site's config, the deploy's
SSH key and known hosts as secret files readable only by the
``srht-backup`` account, so it reaches every host as the deploying machine
does. ``python -m srht_installer.scheduled run --config FILE`` then:

1. takes a complete backup with :func:`srht_installer.backup.take_backup`
   (config and secrets included, the daemons stopped unless ``online``),
   into a staging folder of its own (mode 0700);
2. verifies it (every part's SHA-256 against the manifest) before anything
   else;
3. encrypts it with age (to ``recipient``, or with the passphrase in
   scrypt mode), deletes the plain archive, and writes
   ``srht-backup-DATE.tar.age`` to the destination (a ``.partial`` file
   renamed once complete), on the backup host or over SSH on another host
   of the site, or on a host outside it (``ssh://``: as its ordinary
   account, without sudo, with its host key from the config alone);
4. re-reads it from the destination, and writes its index
   (``srht-backup-DATE.tar.age.json``: size and SHA-256 of the encrypted
   file, and the manifest's parts with theirs) only when they match: an
   archive with an index is one that was verified where it lies;
5. re-reads every other archive at the destination against its index, so
   one damaged since (a bad disk, a truncated copy) is found and named;
6. removes the archives beyond ``keep-count`` and older than
   ``keep-days``, the oldest first, never the newest one that verifies;
7. records the outcome in ``/var/lib/srht-backup/last.json`` and, when the
   backup failed or an archive is damaged, mails the admin (``mail-to``,
   else the site owner) and exits 1, so systemd marks the run failed.

``verify`` does step 5 alone, for every archive.

With a ``recipient`` the backup host never holds anything that decrypts an
archive: the admin decrypts with the private key (``age -d -i KEYFILE``, or
``srht-install restore --identity KEYFILE ARCHIVE.tar.age``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import click

from .status import Check

__all__ = ["backup_checks", "decrypt_archive", "judge", "mail_admin", "main"]

ARCHIVE = re.compile(r"^srht-backup-(\d{8}T\d{6}Z)\.tar\.age$")
INDEX_FORMAT = "srht-backup-index/1"
CHUNK = 1024 * 1024
STATE_FILE = "last.json"


def say(message: str) -> None:
    click.echo(message, err=True)


# -- where the archives go ----------------------------------------------------------------


class Destination:
    """The destination folder, on this host or another (``NAME:/PATH``, or
    ``ssh://...`` outside the site: ``where`` then says so). On another
    host only a POSIX shell, mkdir, cat, ls, mv, rm and sync are used."""

    def __init__(self, folder: str, remote: Any = None, where: str | None = None):
        self.folder = folder
        self.remote = remote
        self._where = where

    @property
    def where(self) -> str:
        if self._where:
            return self._where
        return f"{self.remote.name}:{self.folder}" if self.remote else self.folder

    def _path(self, name: str) -> str:
        return f"{self.folder}/{name}"

    def prepare(self) -> None:
        if self.remote:
            folder = shlex.quote(self.folder)
            # Created 0700; a folder of an account outside the site is left as
            # its owner made it (its archives are 0600 either way).
            command = f"umask 077 && mkdir -p {folder}"
            if self._where is None:
                command += f" && chmod 700 {folder}"
            self.remote.run(command, "make the backup folder")
        elif not Path(self.folder).is_dir():
            raise OSError(f"the backup folder {self.folder} is missing (deploy again)")

    def names(self) -> list[str]:
        if self.remote:
            out = self.remote.run(
                f"ls -1A {shlex.quote(self.folder)}", "list the backup folder"
            ).stdout
            return sorted(out.split())
        return sorted(os.listdir(self.folder))

    def put(self, name: str, source: Path) -> None:
        """Copy ``source`` to ``name`` through a ``.partial`` file renamed once whole."""
        partial = self._path(name + ".partial")
        if self.remote:
            path, staged = shlex.quote(self._path(name)), shlex.quote(partial)

            def chunks() -> Iterator[bytes]:
                with open(source, "rb") as data:
                    while chunk := data.read(CHUNK):
                        yield chunk

            self.remote.write(
                f"set -e; umask 077; cat > {staged}; sync {staged} 2>/dev/null || sync; "
                f"mv {staged} {path}",
                f"write {name}",
                chunks(),
            )
            return
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out, open(source, "rb") as data:
            shutil.copyfileobj(data, out, CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, self._path(name))

    def put_text(self, name: str, text: str) -> None:
        if self.remote:
            path, staged = shlex.quote(self._path(name)), shlex.quote(self._path(name + ".partial"))
            self.remote.write(
                f"set -e; umask 077; cat > {staged}; mv {staged} {path}",
                f"write {name}",
                [text.encode()],
            )
            return
        partial = self._path(name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(partial, self._path(name))

    def read_text(self, name: str) -> str:
        if self.remote:
            return str(
                self.remote.run(f"cat {shlex.quote(self._path(name))}", f"read {name}").stdout
            )
        return Path(self._path(name)).read_text()

    def digest(self, name: str) -> tuple[int, str]:
        """Size and SHA-256 of ``name``, read back from where it lies."""
        digest, size = hashlib.sha256(), 0

        def sink(chunk: bytes) -> None:
            nonlocal size
            digest.update(chunk)
            size += len(chunk)

        if self.remote:
            self.remote.read(f"cat {shlex.quote(self._path(name))}", f"read {name} back", sink)
        else:
            with open(self._path(name), "rb") as data:
                while chunk := data.read(CHUNK):
                    sink(chunk)
        return size, digest.hexdigest()

    def remove(self, names: list[str]) -> None:
        if not names:
            return
        if self.remote:
            paths = " ".join(shlex.quote(self._path(n)) for n in names)
            self.remote.run(f"rm -f {paths}", "remove old archives")
            return
        for name in names:
            Path(self._path(name)).unlink(missing_ok=True)


# -- encryption ---------------------------------------------------------------------------


class _Hashing:
    """A file that hashes and counts what is written to it."""

    def __init__(self, out: IO[bytes]):
        self.out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


def encrypt(
    plain: Path, encrypted: Path, *, recipient: str | None, passphrase: str | None
) -> tuple[int, str]:
    """Encrypt ``plain`` into ``encrypted`` (mode 0600) with age; returns
    the encrypted file's size and SHA-256."""
    import pyrage

    fd = os.open(encrypted, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        sink = _Hashing(out)
        if recipient:
            with open(plain, "rb") as source:
                pyrage.encrypt_io(source, sink, [pyrage.x25519.Recipient.from_str(recipient)])
        else:
            # pyrage's scrypt mode takes bytes: the archive is held in memory.
            assert passphrase is not None
            sink.write(pyrage.passphrase.encrypt(plain.read_bytes(), passphrase))
        out.flush()
        os.fsync(out.fileno())
    return sink.size, sink.digest.hexdigest()


def decrypt_archive(
    encrypted: Path, plain: Path, *, identity: Path | None = None, passphrase: str | None = None
) -> None:
    """Decrypt an ``.tar.age`` archive into ``plain`` (mode 0600) with the
    admin's age identity file (``age-keygen``'s output) or the passphrase.

    :raises ValueError: a sentence, when the key does not open it.
    """
    import pyrage

    fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            if identity is not None:
                keys = [
                    pyrage.x25519.Identity.from_str(line.strip())
                    for line in identity.read_text().splitlines()
                    if line.strip().startswith("AGE-SECRET-KEY-")
                ]
                if not keys:
                    raise ValueError(f"{identity} holds no age private key (AGE-SECRET-KEY-...)")
                with open(encrypted, "rb") as source:
                    pyrage.decrypt_io(source, out, keys)
            else:
                assert passphrase is not None
                out.write(pyrage.passphrase.decrypt(encrypted.read_bytes(), passphrase))
    except pyrage.DecryptError as error:
        plain.unlink(missing_ok=True)
        raise ValueError(
            f"{encrypted} does not open with that key ({error}): it was encrypted to another "
            "key, or it is damaged"
        ) from None
    except BaseException:
        plain.unlink(missing_ok=True)
        raise


# -- one run ------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a run did, as ``last.json`` records it."""

    started: float
    finished: float = 0.0
    ok: bool = False
    archive: str | None = None
    size: int = 0
    error: str | None = None
    damaged: list[str] | None = None
    removed: list[str] | None = None
    last_good: dict[str, Any] | None = None

    def record(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "finished": self.finished,
            "ok": self.ok,
            "archive": self.archive,
            "size": self.size,
            "error": self.error,
            "damaged": self.damaged or [],
            "removed": self.removed or [],
            "last-good": self.last_good,
        }


def _stamp(name: str) -> float:
    found = ARCHIVE.match(name)
    assert found
    return datetime.strptime(found[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()


def verify_all(destination: Destination, skip: str | None = None) -> tuple[list[str], list[str]]:
    """``(good, damaged)``: the archives at ``destination`` read back
    against their indexes (an archive with no index never verified)."""
    names = destination.names()
    good, damaged = [], []
    for name in names:
        if not ARCHIVE.match(name):
            continue
        if name == skip:
            good.append(name)
            continue
        if name + ".json" not in names:
            damaged.append(f"{name}: no index (its backup never verified)")
            continue
        try:
            index = json.loads(destination.read_text(name + ".json"))
            size, sha256 = destination.digest(name)
        except (ValueError, OSError) as error:
            damaged.append(f"{name}: cannot be read back ({error})")
            continue
        except Exception as error:  # a remote read (RemoteError)
            damaged.append(f"{name}: cannot be read back ({error})")
            continue
        if (size, sha256) != (index.get("size"), index.get("sha256")):
            damaged.append(
                f"{name}: damaged: {size} bytes with SHA-256 {sha256[:16]}..., its index "
                f"says {index.get('size')} bytes with {str(index.get('sha256'))[:16]}..."
            )
        else:
            good.append(name)
    return good, damaged


def retention(
    destination: Destination, good: list[str], keep_count: int, keep_days: int, now: float
) -> list[str]:
    """Remove the archives (and their indexes) beyond ``keep_count`` or
    older than ``keep_days``, never the newest good one; returns their names."""
    names = destination.names()
    archives = sorted((n for n in names if ARCHIVE.match(n)), reverse=True)  # newest first
    newest_good = max(good) if good else None
    doomed = []
    for position, name in enumerate(archives):
        too_many = keep_count > 0 and position >= keep_count
        too_old = keep_days > 0 and now - _stamp(name) > keep_days * 86400
        if (too_many or too_old) and name != newest_good:
            doomed.append(name)
    # And what an interrupted run left behind (runs never overlap: one oneshot unit).
    leftovers = [n for n in names if n.endswith(".partial")]
    destination.remove([p for n in doomed for p in (n, n + ".json") if p in names] + leftovers)
    return doomed


def _ssh(config_path: Path) -> Any:
    """How the backup host reaches the others: the deploy's settings, with
    the key and known hosts it was given as secret files."""
    from srht_deploy.backupplan import KEY_SECRET, KNOWN_HOSTS_SECRET, secret_path

    from .hosts import ssh_settings

    settings = ssh_settings(config_path)
    key = secret_path(KEY_SECRET)
    if not os.access(key, os.R_OK):
        return settings  # by hand, on the deploying machine
    known = secret_path(KNOWN_HOSTS_SECRET)
    return replace(
        settings,
        key=key,
        known_hosts=known if os.path.exists(known) else "/dev/null",
    )


def _offsite(plan: Any, config_path: Path) -> Any:
    """The :class:`~srht_installer.remote_archive.Remote` of an ``ssh://``
    destination: its own account (no sudo), its own key if the config gives
    one, and its host key from the config as the only known host."""
    import atexit
    import tempfile

    from srht_deploy.backupplan import (
        OFFSITE_KEY_SECRET,
        OFFSITE_KNOWN_HOSTS_SECRET,
        secret_path,
    )

    from srht_core.schema import SshTarget

    from .remote_archive import Remote

    offsite = plan.offsite
    settings = _ssh(config_path)
    key = settings.key  # the deploy's, as the backup host was given it
    if offsite.ssh_key:
        secret = secret_path(OFFSITE_KEY_SECRET)
        local = Path(offsite.ssh_key).expanduser()  # by hand, on the deploying machine
        key = secret if os.access(secret, os.R_OK) else str(config_path.parent / local)
    if offsite.host_key is None:
        known, checking = "/dev/null", "no"
    elif os.access(secret_path(OFFSITE_KNOWN_HOSTS_SECRET), os.R_OK):
        known, checking = secret_path(OFFSITE_KNOWN_HOSTS_SECRET), "yes"
    else:  # by hand, on the deploying machine: the key from the config all the same
        folder = tempfile.mkdtemp(prefix="srht-offsite-")
        atexit.register(shutil.rmtree, folder, True)
        known, checking = f"{folder}/known_hosts", "yes"
        Path(known).write_text(offsite.known_hosts())
    target = SshTarget("off-site", offsite.user, offsite.address, offsite.port)
    settings = replace(
        settings,
        targets={},
        key=key,
        known_hosts=known,
        host_key_checking=checking,
        only_known_hosts=True,
        log_level="INFO",
    )
    return Remote("the off-site host", target, settings, sudo=False)


def _destination(plan: Any, config_path: Path, hosts: dict[str, Any]) -> Destination:
    if plan.offsite is not None:
        return Destination(plan.destination, _offsite(plan, config_path), plan.where)
    return Destination(
        plan.destination, hosts[plan.destination_host] if plan.remote_destination else None
    )


def run_backup(config_path: Path, state_dir: Path) -> Outcome:
    """One scheduled backup of the site of ``config_path`` (see the module)."""
    from srht_deploy import Site
    from srht_deploy.backupplan import PASSPHRASE_SECRET, secret_path

    from .backup import MANIFEST, take_backup, verify_archive
    from .remote_archive import ArchiveReader, Remote

    outcome = Outcome(started=time.time())
    previous = _read_state(state_dir)
    outcome.last_good = previous.get("last-good") if previous else None
    site = Site.from_config(config_path)
    plan = site.backup
    if plan is None:
        raise click.ClickException(f"{config_path} has no [backup] section")
    settings = _ssh(config_path)
    hosts = {name: Remote(name, target, settings) for name, target in settings.targets.items()}
    destination = _destination(plan, config_path, hosts)
    staging = state_dir / "staging"
    passphrase = None
    if plan.passphrase_file:
        secret = Path(secret_path(PASSPHRASE_SECRET))
        source = secret if secret.exists() else Path(plan.passphrase_file).expanduser()
        passphrase = source.read_text().strip("\n")
    try:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700, parents=True)
        destination.prepare()
        plain = take_backup(site, config_path, staging, online=plan.online, hosts=hosts)
        say(f"Verifying {plain.name}...")
        reader = ArchiveReader(plain)
        try:
            manifest = verify_archive(reader)
        finally:
            reader.close()
        name = plain.name + ".age"
        encrypted = staging / name
        how = f"to {plan.recipient}" if plan.recipient else "with the passphrase"
        say(f"Encrypting it with age, {how}...")
        size, sha256 = encrypt(plain, encrypted, recipient=plan.recipient, passphrase=passphrase)
        plain.unlink()
        say(f"Writing {name} to {destination.where}...")
        destination.put(name, encrypted)
        encrypted.unlink()
        read_size, read_sha256 = destination.digest(name)
        if (read_size, read_sha256) != (size, sha256):
            raise OSError(
                f"{name} read back from {destination.where} differs from what was written "
                f"({read_size} bytes, SHA-256 {read_sha256[:16]}...; written {size} bytes, "
                f"{sha256[:16]}...): check that disk"
            )
        index = {
            "format": INDEX_FORMAT,
            "archive": name,
            "created": manifest.get("created"),
            "site-name": manifest.get("site-name"),
            "services": manifest.get("services"),
            "encryption": "age-x25519" if plan.recipient else "age-scrypt",
            "recipient": plan.recipient,
            "size": size,
            "sha256": sha256,
            "manifest": MANIFEST,
            "parts": [{k: p[k] for k in ("name", "size", "sha256")} for p in manifest["parts"]],
            "verified": time.time(),
        }
        destination.put_text(name + ".json", json.dumps(index, indent=2) + "\n")
        say(f"Verified {name} at {destination.where} ({size} bytes, SHA-256 {sha256})")
        outcome.archive, outcome.size = name, size
        outcome.last_good = {"archive": name, "finished": time.time(), "size": size}
        good, damaged = verify_all(destination, skip=name)
        outcome.damaged = damaged
        outcome.removed = retention(destination, good, plan.keep_count, plan.keep_days, time.time())
        for removed in outcome.removed:
            say(f"Removed {removed} (keep-count {plan.keep_count}, keep-days {plan.keep_days})")
        outcome.ok = not damaged
        if damaged:
            outcome.error = "damaged archives at " + destination.where + ": " + "; ".join(damaged)
    except Exception as error:  # every failure is recorded and mailed, then re-raised as exit 1
        outcome.error = f"{type(error).__name__}: {error}" if not str(error) else str(error)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        outcome.finished = time.time()
        _write_state(state_dir, outcome)
    if not outcome.ok:
        _mail_admin(site, plan, outcome)
    return outcome


def _read_state(state_dir: Path) -> dict[str, Any] | None:
    try:
        found = json.loads((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _write_state(state_dir: Path, outcome: Outcome) -> None:
    partial = state_dir / (STATE_FILE + ".partial")
    partial.write_text(json.dumps(outcome.record(), indent=2) + "\n")
    os.replace(partial, state_dir / STATE_FILE)


def mail_admin(site: Any, to: str | None, subject: str, body: str, section: str) -> bool:
    """Mail ``to`` right away with the site's ``[mail]`` (or write to its
    outbox), saying on standard error what was done; ``False`` when nobody
    is to be mailed or the mail could not be sent (the caller's outcome is
    recorded either way). Scheduled backups and restore drills report
    through it."""
    from srht_core.mail import deliver_now

    if not to:
        say(f"error: nobody to mail ([{section}] mail-to and [srht] site-owner-email are empty)")
        return False
    try:
        deliver_now(site.config, to, subject, body)
    except Exception as error:  # noqa: BLE001 - the outcome is recorded either way
        say(f"error: could not mail {to}: {error}")
        return False
    say(f"Mailed {to}: {subject}")
    return True


def _mail_admin(site: Any, plan: Any, outcome: Outcome) -> None:
    failed = outcome.archive is None
    subject = (
        f"[{site.site_name}] backup FAILED"
        if failed
        else f"[{site.site_name}] backup archives are damaged"
    )
    last = outcome.last_good or {}
    when = (
        datetime.fromtimestamp(last["finished"], UTC).strftime("%Y-%m-%d %H:%M UTC")
        if last.get("finished")
        else "never"
    )
    body = (
        f"The scheduled backup of {site.site_name} on {plan.host} "
        + ("failed:\n\n" if failed else "was written, but older archives are damaged:\n\n")
        + f"  {outcome.error}\n\n"
        + f"Last good backup: {last.get('archive', 'none')} ({when}), in {plan.where}.\n\n"
        + f"See `journalctl -u srht-backup` on {plan.host} and `srht-install status`;\n"
        + f"once fixed, run it again: `systemctl start srht-backup` on {plan.host}.\n"
    )
    mail_admin(site, plan.mail_to, subject, body, "backup")


# -- srht-install status --------------------------------------------------------------------


def _period(text: str) -> float | None:
    """Seconds between the next two elapses ``systemd-analyze calendar`` printed."""
    stamps = re.findall(r"(?:Next elapse|Iter\. #2): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", text)
    if len(stamps) < 2:
        return None
    first, second = (datetime.strptime(s, "%Y-%m-%d %H:%M:%S") for s in stamps[:2])
    return (second - first).total_seconds()


def _ago(seconds: float) -> str:
    if seconds < 5400:
        return f"{seconds / 60:.0f} minutes ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} hours ago"
    return f"{seconds / 86400:.0f} days ago"


def backup_checks(config: Path, site: Any) -> list[Any]:
    """The ``backup`` line of ``srht-install status``: red when the last
    scheduled backup failed, an archive is damaged, the timer is not
    running, or the last good backup is older than the schedule allows
    (its period, plus a quarter of it and at least an hour); yellow before
    the first one is due; green otherwise."""
    from srht_deploy.backupplan import STATE_DIR, TIMER_UNIT

    from .hosts import HostError, run_on

    plan = site.backup
    if plan is None:
        return []
    what, where = f"scheduled backup ({plan.schedule})", plan.host
    script = (
        f"date +%s; echo ---; systemctl is-active {TIMER_UNIT}; "
        f"systemctl show {TIMER_UNIT} -p ActiveEnterTimestampMonotonic --value; "
        "cat /proc/uptime; echo ---; "
        f"systemd-analyze calendar --iterations=2 {shlex.quote(plan.schedule)}; echo ---; "
        f"cat {STATE_DIR}/{STATE_FILE} 2>/dev/null"
    )
    try:
        result = run_on(config, plan.host, ["sh", "-c", script], timeout=60)
    except HostError as error:
        return [Check("backup", what, where, "red", str(error))]
    if result.returncode == 255:
        reason = result.stderr.decode(errors="replace").strip().splitlines()
        why = reason[-1] if reason else "no answer"
        return [Check("backup", what, where, "red", f"cannot be reached over SSH: {why}")]
    sections = result.stdout.decode(errors="replace").split("---\n")
    if len(sections) < 4:
        return [Check("backup", what, where, "red", "cannot read the backup's state")]
    try:
        state = json.loads(sections[3]) if sections[3].strip() else None
    except ValueError:
        state = None
    now = float(sections[0].strip() or time.time())
    return [judge(plan, now, sections[1].split(), sections[2], state)]


def judge(
    plan: Any, now: float, timer: list[str], calendar: str, state: dict[str, Any] | None
) -> Check:
    """The status of the scheduled backups from what the backup host says.

    :param now: the host's clock (seconds since the epoch).
    :param timer: the timer's state, its activation (monotonic µs) and the
        host's uptime (seconds): ``["active", "1234567", "2345.6", ...]``.
    :param calendar: ``systemd-analyze calendar --iterations=2``'s output.
    :param state: ``last.json`` (``None`` before the first run).
    """
    from srht_deploy.backupplan import TIMER_UNIT

    what, where = f"scheduled backup ({plan.schedule})", plan.host
    period = _period(calendar) or 86400.0
    allowed = period + max(3600.0, period / 4)
    redo = f"run `systemctl start srht-backup` on {plan.host} once fixed"
    journal = f"see `journalctl -u srht-backup` on {plan.host}"
    if not timer or timer[0] != "active":
        state_of = timer[0] if timer else "missing"
        return Check(
            "backup",
            what,
            where,
            "red",
            f"the timer {TIMER_UNIT} is {state_of}: run srht-install (or srht deploy) again",
        )
    if state is None:
        try:  # how long the timer has been waiting: uptime - its activation
            since = float(timer[2]) - float(timer[1]) / 1e6
        except (IndexError, ValueError):
            since = 0.0
        if since > allowed:
            return Check(
                "backup",
                what,
                where,
                "red",
                f"missed: no backup yet, though the timer started {_ago(since)}; {journal}",
            )
        return Check("backup", what, where, "yellow", "no backup yet; the first one is due")
    last = state.get("last-good") or {}
    if not state.get("ok"):
        when = datetime.fromtimestamp(state.get("finished", now), UTC).strftime("%Y-%m-%d %H:%M")
        return Check(
            "backup",
            what,
            where,
            "red",
            f"the backup of {when} UTC failed: {state.get('error')}. "
            f"Last good: {last.get('archive', 'none')}; {redo}",
        )
    age = now - float(last.get("finished", 0))
    if age > allowed:
        return Check(
            "backup",
            what,
            where,
            "red",
            f"missed: the last good backup, {last.get('archive')}, is from {_ago(age)}, "
            f"and the schedule wants one every {period / 3600:.0f} hours; {journal}",
        )
    return Check(
        "backup",
        what,
        where,
        "green",
        f"{last.get('archive')} ({last.get('size', 0)} bytes), {_ago(age)}, "
        f"verified at {plan.where}",
    )


# -- the command the timer runs ------------------------------------------------------------


@click.group()
def main() -> None:
    """Scheduled backups of an srht site (run by srht-backup.service)."""


@main.command("run")
@click.option(
    "-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where last.json goes (default: the backup account's folder).",
)
def run_command(config_path: Path, state_dir: Path | None) -> None:
    """Take, encrypt, write, verify and prune one backup."""
    from srht_deploy.backupplan import STATE_DIR

    folder = state_dir or Path(STATE_DIR)
    outcome = run_backup(config_path, folder)
    if not outcome.ok:
        say(f"error: {outcome.error}")
        sys.exit(1)
    say(f"Backup done in {outcome.finished - outcome.started:.0f}s: {outcome.archive}")


@main.command("verify")
@click.option(
    "-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path)
)
def verify_command(config_path: Path) -> None:
    """Read every archive at the destination back against its index."""
    from srht_deploy import Site

    from .remote_archive import Remote

    site = Site.from_config(config_path)
    plan = site.backup
    if plan is None:
        raise click.ClickException(f"{config_path} has no [backup] section")
    settings = _ssh(config_path)
    hosts = {name: Remote(name, target, settings) for name, target in settings.targets.items()}
    good, damaged = verify_all(_destination(plan, config_path, hosts))
    for name in good:
        click.echo(f"ok       {name}")
    for problem in damaged:
        click.echo(f"DAMAGED  {problem}")
    if damaged:
        sys.exit(1)


if __name__ == "__main__":
    main()
