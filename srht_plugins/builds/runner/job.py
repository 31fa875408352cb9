"""Running one job: from the spec the service handed out to the end the
runner reports, whatever happens in between.

1. The job's folder (``RUNNER-DIR/jobs/ID``): ``io`` is a size-limited
   tmpfs with ``in`` (the driver, tasks, variables, secrets: never on disk)
   and ``out`` (artifacts); ``src`` holds the sources the runner cloned
   (as the jobs' unprivileged user) from the site's git with a token
   acting for the job's owner, which never enters the container; ``fs`` is
   where the container's own file system is mounted, in a mount namespace
   of its own, so it vanishes with the container whatever happens.
   ``state.json`` says what to clean up after a crash.
2. Its control groups (:mod:`.cgroups`) and network (:mod:`.network`).
3. ``systemd-nspawn`` with the image as the read-only lower layer of an
   overlay whose upper layer is a tmpfs of ``[builds] disk`` MiB, its users
   mapped to ``[builds] uid-base`` (root in the job is nobody on the host),
   running ``driver.sh`` as PID 2.
4. The output is read as it comes, split into setup and tasks by the
   driver's markers, and sent to the service every second (and at once
   when a task starts or ends). The answer may say stop (cancelled, or the
   job was given up on); the runner's own clock stops it at its time limit.
5. Artifacts are read from ``out`` (regular files only, never following a
   link the job made) and uploaded; the job is reported finished; and the
   control groups, network namespace, mounts and folder are removed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets as random
import shlex
import shutil
import stat
import subprocess
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from srht_core import ServiceUnreachable

from . import cgroups
from .network import JobNetwork, remove_namespace
from .service import Service

__all__ = ["JobRun", "LogSplitter", "clean_leftovers"]

log = logging.getLogger("srht.builds.runner")

MiB = 1024 * 1024
#: How often the log goes to the service while nothing else happens.
FLUSH_EVERY = 1.0
#: Log bytes that make the runner send at once.
FLUSH_BYTES = 256 * 1024
#: What ``io`` holds besides the artifacts: scripts, variables, secrets.
IO_BASE = 64 * MiB
ARTIFACT_PIECE = 4 * MiB


class LogSplitter:
    """Splits the container's output at the driver's markers into pieces
    of the setup (0) and of each task (1...), and events
    ``("start", n, None)`` / ``("end", n, code)``."""

    def __init__(self, nonce: str):
        self.marker = ("\n" + nonce + ":").encode()
        self.pattern = re.compile(re.escape(self.marker) + rb"(start|end):(\d+)(?::(-?\d+))?\n")
        self.position = 0
        self.buffer = b""

    def feed(
        self, data: bytes, final: bool = False
    ) -> tuple[list[tuple[int, bytes]], list[tuple[str, int, int | None]]]:
        self.buffer += data
        pieces: list[tuple[int, bytes]] = []
        events: list[tuple[str, int, int | None]] = []
        start = 0
        for match in self.pattern.finditer(self.buffer):
            if match.start() > start:
                pieces.append((self.position, self.buffer[start : match.start()]))
            kind, number = match[1].decode(), int(match[2])
            code = int(match[3]) if match[3] is not None else None
            events.append((kind, number, code))
            if kind == "start":
                self.position = number
            start = match.end()
        rest = self.buffer[start:]
        keep = b""
        if not final:
            # A marker may have begun at the end of what was read so far.
            cut = rest.rfind(b"\n")
            if cut != -1 and len(rest) - cut < len(self.marker) + 32:
                tail = rest[cut:]
                if self.marker.startswith(tail[: len(self.marker)]):
                    rest, keep = rest[:cut], tail
        if rest:
            pieces.append((self.position, rest))
        self.buffer = keep
        return pieces, events


@dataclass
class RunnerContext:
    """What every job of one runner shares."""

    name: str
    directory: Path
    service: Service
    uid_base: int
    #: Ready image trees by image name.
    trees: dict[str, Path] = field(default_factory=dict)
    #: Jobs running now, by id (so the runner can stop them all).
    running: dict[int, JobRun] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def jobs_dir(self) -> Path:
        return self.directory / "jobs"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", text)[:40]


def _mounts_under(path: Path) -> list[str]:
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = line.split()[1].replace("\\040", " ")
        if target == str(path) or target.startswith(str(path) + "/"):
            found.append(target)
    return sorted(found, key=len, reverse=True)


def _human(seconds: float) -> str:
    seconds = int(seconds)
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"


class JobRun:
    """One job on this runner."""

    def __init__(self, context: RunnerContext, spec: dict[str, Any]):
        self.context = context
        self.spec = spec
        self.id = int(spec["id"])
        self.service = context.service
        self.limits = spec["limits"]
        self.folder = context.jobs_dir / str(self.id)
        self.nonce = random.token_hex(16)
        self.name = f"srht-builds-{_slug(context.name)}-{self.id}"
        self.group: cgroups.JobGroup | None = None
        self.network: JobNetwork | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.stopping: str | None = None
        #: Where the job was when it was stopped (" during task build"...),
        #: fixed then: what the container prints as it dies must not move it.
        self.stopped_at: str | None = None
        self.timed_out = False
        self.started = time.monotonic()
        self.pending: list[tuple[int, bytes]] = []
        self.task_updates: list[tuple[int, str]] = []
        self.setup_code: int | None = None
        self.task_codes: dict[int, int] = {}
        self.current = 0
        self.lost = False
        #: The image tree it runs on, fixed when it is made: an image built
        #: again meanwhile replaces it for later jobs, never under this one.
        self.tree = context.trees.get(spec["image"])

    # -- the log -----------------------------------------------------------------

    def say(self, text: str, position: int = 0) -> None:
        """A line of the runner's own in the log."""
        self.pending.append((position, (text + "\n").encode()))

    def flush(self) -> None:
        """Send what is pending; stop the job if the answer says so."""
        logs, self.pending = self.pending, []
        tasks, self.task_updates = self.task_updates, []
        merged: list[tuple[int, bytes]] = []
        for position, data in logs:
            if merged and merged[-1][0] == position:
                merged[-1] = (position, merged[-1][1] + data)
            else:
                merged.append((position, data))
        try:
            stop = self.service.progress(self.id, merged, tasks)
        except ServiceUnreachable as error:
            log.warning("job %s: could not report progress (%s); keeping it", self.id, error)
            self.pending = logs + self.pending
            self.task_updates = tasks + self.task_updates
            return
        if stop and self.stopping is None:
            self.stopping = stop
            self.pending.append((self.current, f"\nStopping the job: {stop}.\n".encode()))
            if "cancelled" not in stop:
                self.lost = True  # no longer ours: do not report its end
            self.kill()

    # -- preparing ---------------------------------------------------------------

    def _state(self) -> None:
        state = {
            "runner": self.context.name,
            "job": self.id,
            "cgroups": self.group.dirs if self.group else [],
            "v2": bool(self.group and self.group.v2),
            "netns": self.network.name if self.network and self.network.path else None,
            "helpers": self.network.helper_pids if self.network else [],
        }
        (self.folder / "state.json").write_text(json.dumps(state))

    def _owned(self, path: Path, mode: int = 0o700) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, self.context.uid_base, self.context.uid_base)
        path.chmod(mode)
        return path

    def prepare(self) -> None:
        spec = self.spec
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.folder.chmod(0o711)
        (self.folder / "fs").mkdir()
        self.group = cgroups.job_group(
            self.name,
            cgroups.Limits(
                memory=(self.limits["memory"] + self.limits["disk"]) * MiB,
                cpus=self.limits["cpus"],
                processes=self.limits["processes"],
            ),
        )
        self._state()
        io = self.folder / "io"
        io.mkdir()
        subprocess.run(
            [
                "mount",
                "-t",
                "tmpfs",
                "-o",
                f"size={IO_BASE + self.limits['artifacts']},mode=0711,nosuid,nodev",
                "srht-builds-io",
                str(io),
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        # Tasks run as the job's user: they read their scripts and variables;
        # secrets stay root's (in the job) until the setup puts them in place.
        inside = self._owned(io / "in", 0o755)
        self._owned(io / "out")
        src = self._owned(self.folder / "src")
        tasks = self._owned(inside / "tasks", 0o755)
        driver = resources.files(__package__).joinpath("driver.sh").read_bytes()
        self._file(inside / "driver.sh", driver, 0o500)
        variables = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/home/build",
            "USER": "build",
            "LOGNAME": "build",
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            **spec["environment"],
        }
        exports = "".join(
            f"export {name}={shlex.quote(value)}\n" for name, value in sorted(variables.items())
        )
        self._file(inside / "env", exports.encode(), 0o644)
        for position, (_name, script) in enumerate(spec["tasks"], start=1):
            body = f'. /srht/in/env\ncd "$HOME"\nset -x\n{script}\n'
            self._file(tasks / str(position), body.encode(), 0o644)
        self._file(inside / "packages", "".join(f"{p}\n" for p in spec["packages"]).encode())
        self._file(inside / "network", (spec["network"] + "\n").encode())
        self._file(inside / "artifacts", "".join(f"{p}\n" for p in spec["artifacts"]).encode())
        secret_lines = []
        if spec["secrets"]:
            folder = self._owned(inside / "secret-files")
            import base64

            for secret in spec["secrets"]:
                self._file(folder / secret["id"], base64.b64decode(secret["data"]))
                mode = f"{int(secret.get('mode') or 0o600):o}"
                secret_lines.append(
                    f"{secret['kind']} {secret['id']} {mode} {secret.get('path') or '-'}\n"
                )
        self._file(inside / "secrets", "".join(secret_lines).encode())
        source_lines = []
        for source in spec["sources"]:
            ref = source.get("ref") or "-"
            source_lines.append(
                f"{source['name']} {1 if source['inside'] else 0} {source['url']} {ref}\n"
            )
            if not source["inside"]:
                self._clone(source, src)
        self._file(inside / "sources", "".join(source_lines).encode())
        self.network = JobNetwork(self.name, spec["network"], spec.get("package_proxy"))
        self.network.start()
        self._state()

    def _file(self, path: Path, data: bytes, mode: int = 0o600) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chown(path, self.context.uid_base, self.context.uid_base)

    def _clone(self, source: dict[str, Any], src: Path) -> None:
        """Clone a source of the site's git on the host, as the jobs' user,
        with the owner's token (given to git in its environment, never on a
        command line nor to the job)."""
        url, name, ref = source["url"], source["name"], source.get("ref")
        self.say(f"Cloning {url}" + (f" at {ref}" if ref else ""))
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(src),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_ALLOW_PROTOCOL": "http:https",
            "LC_ALL": "C",
        }
        if source.get("token"):
            env.update(
                GIT_CONFIG_COUNT="1",
                GIT_CONFIG_KEY_0="http.extraHeader",
                GIT_CONFIG_VALUE_0=f"Authorization: Bearer {source['token']}",
            )
        base = str(self.context.uid_base)
        user = ["setpriv", f"--reuid={base}", f"--regid={base}", "--clear-groups", "--"]
        steps = [["git", "clone", "--quiet", url, str(src / name)]]
        if ref:
            steps.append(["git", "-C", str(src / name), "checkout", "--quiet", ref])
        for step in steps:
            result = subprocess.run(
                [*user, *step],
                env=env,
                capture_output=True,
                timeout=max(60, self.limits["time"]),
                stdin=subprocess.DEVNULL,
                check=False,
            )
            if result.stdout or result.stderr:
                self.pending.append((0, result.stdout + result.stderr))
            if result.returncode != 0:
                raise JobSetupError(f"Could not clone {url}" + (f" at {ref}" if ref else "") + ".")
        if source.get("patches"):
            self._apply_patches(source, src / name, user, env)

    def _apply_patches(
        self, source: dict[str, Any], clone: Path, user: list[str], env: dict[str, str]
    ) -> None:
        """Apply the patchset the job was started for (``git am -3``)."""
        import base64

        from .patches import failed_patch, git_am

        self.say(f"Applying patchset {source.get('patchset') or ''} with git am")
        result = git_am(
            clone,
            base64.b64decode(source["patches"]),
            user=user,
            env=env,
            timeout=max(60, self.limits["time"]),
        )
        if result.stdout:
            self.pending.append((0, result.stdout))
        if result.returncode != 0:
            failed = failed_patch(result.stdout.decode(errors="replace"))
            which = f"Patch {failed[0]} ({failed[1]})" if failed else "The patchset"
            raise JobSetupError(
                f"{which} of patchset {source.get('patchset') or ''} did not apply to "
                f"{source['url']}"
                + (f" at {source['ref'][:12]}" if source.get("ref") else "")
                + " (git am failed); see the setup's log."
            )

    # -- running -------------------------------------------------------------------

    def command(self, tree: Path) -> list[str]:
        assert self.group is not None and self.network is not None
        root = self.folder / "fs"
        base = self.context.uid_base
        # nspawn cannot join a namespace of the host's from inside the job's
        # user namespace ("Failed to join network namespace: Operation not
        # permitted"): it is started in the job's namespace instead, and
        # shares it (the job's root has no power over it either way).
        network = [] if self.network.path else ["--private-network"]
        enter = ["nsenter", f"--net={self.network.path}"] if self.network.path else []
        nspawn = [
            "systemd-nspawn",
            "--quiet",
            "--register=no",
            "--keep-unit",
            f"--directory={root}/root",
            f"--machine=srht-job-{self.id}",
            "--hostname=build",
            f"--private-users={base}:65536",
            "--private-users-ownership=off",
            *network,
            f"--bind-ro={self.folder}/io/in:/srht/in",
            f"--bind={self.folder}/io/out:/srht/out",
            f"--bind-ro={self.folder}/src:/srht/src",
            "--console=pipe",
            "--as-pid2",
            "--resolv-conf=off",
            "--timezone=off",
            "--link-journal=no",
            "--",
            "/bin/bash",
            "/srht/in/driver.sh",
            self.nonce,
        ]
        script = " && ".join(
            [
                *(f"echo $$ > {shlex.quote(path)}" for path in self.group.procs),
                "mkdir -p /run/systemd/nspawn",
                "mount -t tmpfs tmpfs /run/systemd/nspawn",
                f"mount -t tmpfs -o size={self.limits['disk']}m,mode=0755 srht-builds-job {root}",
                f"mkdir {root}/upper {root}/work {root}/root",
                f"chown {base}:{base} {root}/upper",
                f"mount -t overlay overlay -o lowerdir={tree},upperdir={root}/upper,"
                f"workdir={root}/work {root}/root",
                "exec " + shlex.join([*enter, *nspawn]),
            ]
        )
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]

    def kill(self) -> None:
        """Stop the container and everything in it, now."""
        if self.stopped_at is None:
            self.stopped_at = self._where()
        if self.group is not None:
            self.group.kill()
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    def _apply(self, events: list[tuple[str, int, int | None]]) -> None:
        for kind, number, code in events:
            if kind == "start" and number >= 1:
                self.current = number
                self.task_updates.append((number, "running"))
            elif kind == "end" and number == 0:
                self.setup_code = code
            elif kind == "end" and self.stopped_at is not None:
                continue  # the task died of the kill: its state is the job's end
            elif kind == "end":
                self.task_codes[number] = code or 0
                self.task_updates.append((number, "success" if code == 0 else "failed"))

    def run(self, tree: Path) -> int | None:
        """Start the container and follow it to its end; its exit code."""
        chunks: list[bytes] = []
        arrived = threading.Event()
        lock = threading.Lock()

        self.process = subprocess.Popen(
            self.command(tree),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_LOG_LEVEL": "warning"},
        )
        assert self.process.stdout is not None
        stream = self.process.stdout

        def read() -> None:
            while True:
                data = os.read(stream.fileno(), 65536)
                with lock:
                    chunks.append(data)
                arrived.set()
                if not data:
                    return

        reader = threading.Thread(target=read, name=f"job-{self.id}-output", daemon=True)
        reader.start()
        splitter = LogSplitter(self.nonce)
        deadline = self.started + self.limits["time"]
        last_flush = 0.0
        while True:
            arrived.wait(0.25)
            arrived.clear()
            done = not reader.is_alive()
            with lock:
                data = b"".join(chunks)
                chunks.clear()
            pieces, events = splitter.feed(data, final=done)
            self.pending.extend(pieces)
            self._apply(events)
            now = time.monotonic()
            if now >= deadline and self.stopping is None and not done:
                self.timed_out = True
                self.stopping = "timeout"
                self.say(
                    f"The job ran past its time limit of {_human(self.limits['time'])}.",
                    self.current,
                )
                self.kill()
            size = sum(len(piece) for _position, piece in self.pending)
            if events or size >= FLUSH_BYTES or now - last_flush >= FLUSH_EVERY or done:
                self.flush()
                last_flush = now
            if done:
                break
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.wait(30)

    # -- ending ------------------------------------------------------------------

    def _where(self) -> str:
        """Where the job is now, for its reason: " during task NAME",
        " during its setup", " before task NAME" or ""."""
        names = [name for name, _script in self.spec["tasks"]]
        if self.current and self.current not in self.task_codes:
            return f" during task {names[self.current - 1]}"
        if self.setup_code is None:
            return " during its setup"
        upcoming = max([self.current, *self.task_codes]) + 1
        if upcoming <= len(names):
            return f" before task {names[upcoming - 1]}"
        return ""

    def outcome(self, code: int | None) -> tuple[str, str]:
        """``(status, reason)`` of the job as it ended."""
        names = [name for name, _script in self.spec["tasks"]]
        during = self.stopped_at if self.stopped_at is not None else self._where()
        if self.timed_out:
            return (
                "timeout",
                f"The job ran past its time limit of {_human(self.limits['time'])} and was "
                f"stopped{during}.",
            )
        if self.stopping is not None:
            return "cancelled", f"Cancelled by its owner{during}."
        limits = self._limits_reached()
        if self.setup_code is None:
            return "failed", f"The job's container stopped{during} (exit {code}).{limits}"
        if self.setup_code != 0:
            return "failed", f"The setup failed (exit {self.setup_code}); see its log.{limits}"
        for position, value in sorted(self.task_codes.items()):
            if value != 0:
                return "failed", f"Task {names[position - 1]} failed (exit {value}).{limits}"
        if len(self.task_codes) < len(names):
            return "failed", f"The job's container stopped{during} (exit {code}).{limits}"
        return "success", ""

    def _limits_reached(self) -> str:
        """What a failed job's reason adds when the kernel held it to its
        limits: " It ran out of memory (...)." and the like, or ""."""
        if self.group is None:
            return ""
        said = ""
        if self.group.out_of_memory():
            said += (
                f" It ran out of memory ({self.limits['memory']} MiB, and its disk's "
                f"{self.limits['disk']} MiB): the kernel stopped a process of it."
            )
        if self.group.processes_refused():
            said += (
                f" It reached its limit of {self.limits['processes']} processes: "
                "starting more failed."
            )
        return said

    def upload_artifacts(self) -> None:
        """Upload what the driver copied to ``out``: regular files only,
        opened without following links (the job owns that folder)."""
        out = self.folder / "io" / "out"
        limit = int(self.limits["artifacts"])
        kept = 0
        directory = os.open(out, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for index, path in enumerate(self.spec["artifacts"]):
                try:
                    fd = os.open(str(index), os.O_RDONLY | os.O_NOFOLLOW, dir_fd=directory)
                except OSError:
                    continue
                with os.fdopen(fd, "rb") as handle:
                    if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                        continue
                    name = os.path.basename(path.rstrip("/")) or f"artifact-{index}"
                    offset = 0
                    size = os.fstat(handle.fileno()).st_size
                    if kept + size > limit:
                        self.say(
                            f"Artifact {path} not kept: it has {size} bytes, and the job's "
                            f"artifacts are limited to {limit // MiB} MiB in all "
                            "([builds] artifact-limit)."
                        )
                        continue
                    kept += size
                    while True:
                        piece = handle.read(ARTIFACT_PIECE)
                        if not piece and offset > 0:
                            break
                        answer = self.service.artifact(self.id, name, path, offset, piece)
                        refused = answer.get("refused") if isinstance(answer, dict) else None
                        if refused:
                            self.say(f"Artifact {path} not kept: {refused}.")
                            break
                        offset += len(piece)
                        if not piece or offset >= size:
                            break
                    else:
                        continue
                    if offset >= size:
                        self.say(f"Kept artifact {path} ({size} bytes).")
        finally:
            os.close(directory)

    def cleanup(self) -> None:
        """Remove everything the job had on this host."""
        self.kill()
        if self.network is not None:
            self.network.stop()
        if self.group is not None:
            self.group.remove()
        for target in _mounts_under(self.folder):
            subprocess.run(["umount", "-l", target], check=False, capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)

    def execute(self) -> None:
        """The whole job: prepare, run, report, clean up."""
        status, reason = "failed", ""
        try:
            tree = self.tree
            for note in self.spec.get("notes") or ():
                self.say(note)
            if tree is None:
                raise JobSetupError(f"This runner has no image {self.spec['image']}.")
            self.say(f"Runner {self.context.name}, image {self.spec['image']}.")
            self.prepare()
            self.flush()
            if self.stopping is None:
                code = self.run(tree)
                status, reason = self.outcome(code)
                if status == "success" and self.spec["artifacts"]:
                    self.upload_artifacts()
            else:
                status, reason = "cancelled", "Cancelled by its owner before it started."
        except JobSetupError as error:
            status, reason = "failed", str(error)
            self.say(str(error))
        except Exception as error:
            log.exception("job %s failed on the runner", self.id)
            status, reason = "failed", f"The runner could not run the job: {error}"
            self.say(reason)
        finally:
            self.cleanup()
        if self.lost:
            return
        with contextlib.suppress(ServiceUnreachable):
            self.flush()
        if self.lost:
            return
        try:
            self.service.finish(self.id, status, reason)
        except ServiceUnreachable as error:
            log.error(
                "job %s ended %s but the service could not be told: %s", self.id, status, error
            )


class JobSetupError(Exception):
    """The job cannot start; ``str()`` is the reason its owner reads."""


def clean_leftovers(context: RunnerContext) -> list[int]:
    """Remove what jobs of this runner left when it last stopped (killed,
    crashed, the host rebooted): their processes, control groups, network
    namespaces, mounts and folders. Returns their ids."""
    found: list[int] = []
    if not context.jobs_dir.exists():
        return found
    for folder in sorted(context.jobs_dir.iterdir()):
        state_file = folder / "state.json"
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            state = None
        if state is None:
            if folder.name.isdigit() and not (folder / "io").is_mount():
                shutil.rmtree(folder, ignore_errors=True)
            continue
        if state.get("runner") != context.name:
            continue  # another runner's, sharing the folder
        group = cgroups.JobGroup(
            folder.name, list(state.get("cgroups") or ()), bool(state.get("v2"))
        )
        group.kill()
        for pid in state.get("helpers") or ():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), 9)
        group.remove()
        if state.get("netns"):
            remove_namespace(str(state["netns"]))
        for target in _mounts_under(folder):
            subprocess.run(["umount", "-l", target], check=False, capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
        found.append(int(state["job"]))
    return found
