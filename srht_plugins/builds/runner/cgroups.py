"""Resource control of a job: one control group per job, with its memory,
CPU and process limits, inside the runner's own group.

On a systemd host (cgroup v2) the runner's unit has ``Delegate=yes``: the
subtree below its group is the runner's to manage, as systemd documents
for delegation. The runner moves itself into a leaf ``runner`` group,
enables the memory, cpu and pids controllers below its unit's group, and
makes a ``job-ID`` group beside itself for each job. Stopping the unit
kills everything in it, jobs included. On a host whose controllers are on
cgroup v1 (the legacy or hybrid layout, as some virtual machines still
have), each controller's hierarchy gets a ``job-ID`` group below the
runner's group in that hierarchy.

Either way a job's processes are put in its groups before ``systemd-nspawn``
starts (the wrapper writes its own PID), so everything the container ever
runs is counted, limited, and killed together.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CgroupError", "JobGroup", "Limits", "prepare", "job_group"]

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "cpu", "pids")


class CgroupError(RuntimeError):
    """The runner cannot control jobs' resources here; ``str()`` says why
    and what to do."""


@dataclass(frozen=True)
class Limits:
    memory: int  #: bytes
    cpus: int
    processes: int


def _own(hierarchy: str) -> str:
    """The runner's group path in a v1 hierarchy (``memory``), or in the
    unified one (``""``)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        if hierarchy == "" and number == "0":
            return path
        if hierarchy and hierarchy in controllers.split(","):
            return path
    raise CgroupError(f"this process is in no {hierarchy or 'unified'} control group")


def _unified_root() -> Path | None:
    """Where cgroup v2 is mounted with the controllers jobs need, if it is."""
    for candidate in (ROOT, ROOT / "unified"):
        available = candidate / "cgroup.controllers"
        if available.exists():
            have = set(available.read_text().split())
            if set(CONTROLLERS) <= have:
                return candidate
    return None


@dataclass
class JobGroup:
    """The groups of one job: ``procs`` are the files its wrapper writes its
    PID to; ``dirs`` every group made for it (to kill and remove)."""

    name: str
    dirs: list[str] = field(default_factory=list)
    v2: bool = False

    @property
    def procs(self) -> list[str]:
        return [f"{d}/cgroup.procs" for d in self.dirs]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self.procs:
            try:
                found |= {int(p) for p in Path(path).read_text().split()}
            except OSError:
                continue
        return found

    def kill(self, wait: float = 10.0) -> bool:
        """Kill every process of the job; ``True`` once none is left."""
        deadline = time.monotonic() + wait
        if self.v2 and self.dirs:
            kill_file = Path(self.dirs[0]) / "cgroup.kill"
            if kill_file.exists():
                with contextlib.suppress(OSError):
                    kill_file.write_text("1")
        while True:
            left = self.pids()
            if not left:
                return True
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def remove(self) -> None:
        """Remove the (empty) groups."""
        for directory in reversed(self.dirs):
            for _attempt in range(50):
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)

    def memory_peak(self) -> int | None:
        """The most memory the job used, in bytes, if the kernel says."""
        for directory in self.dirs:
            for name in ("memory.peak", "memory.max_usage_in_bytes"):
                path = Path(directory) / name
                if path.exists():
                    try:
                        return int(path.read_text().split()[0])
                    except (OSError, ValueError):
                        return None
        return None

    def out_of_memory(self) -> bool:
        """Whether the kernel killed a process of the job for memory."""
        for directory in self.dirs:
            events = Path(directory) / "memory.events"
            if events.exists():
                for line in events.read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and int(value or 0) > 0:
                        return True
            control = Path(directory) / "memory.oom_control"
            if control.exists():
                for line in control.read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and int(value or 0) > 0:
                        return True
        return False

    def processes_refused(self) -> bool:
        """Whether the job tried to have more processes than it may."""
        for directory in self.dirs:
            events = Path(directory) / "pids.events"
            if events.exists():
                for line in events.read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "max" and int(value or 0) > 0:
                        return True
        return False


@dataclass(frozen=True)
class Layout:
    """Where the runner makes job groups."""

    v2: bool
    #: v2: the parent group (the runner's unit); v1: ``{controller: parent}``.
    parents: dict[str, Path]


_layout: Layout | None = None


def prepare() -> Layout:
    """Find (and on cgroup v2, set up) where job groups go. Called once,
    at the runner's start.

    :raises CgroupError: when the controllers are not to be had.
    """
    global _layout
    unified = _unified_root()
    if unified is not None:
        own = unified / _own("").lstrip("/")
        if own.name == "runner":
            parent = own.parent
        else:
            parent = own
            leaf = own / "runner"
            try:
                leaf.mkdir(exist_ok=True)
                (leaf / "cgroup.procs").write_text(str(os.getpid()))
            except OSError as error:
                raise CgroupError(
                    f"cannot make control groups below {own} ({error.strerror}): run the "
                    "runner in a systemd unit with Delegate=yes"
                ) from None
        try:
            (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in CONTROLLERS))
        except OSError as error:
            raise CgroupError(
                f"cannot enable {', '.join(CONTROLLERS)} below {parent} ({error.strerror}): "
                "run the runner in a systemd unit with Delegate=yes"
            ) from None
        _layout = Layout(True, {"": parent})
        return _layout
    parents: dict[str, Path] = {}
    for controller in CONTROLLERS:
        mount = ROOT / controller
        if not (mount / "cgroup.procs").exists():
            raise CgroupError(
                f"no {controller} controller: it is neither in a cgroup v2 hierarchy nor "
                f"mounted at {mount}"
            )
        parent = mount / _own(controller).lstrip("/")
        # Inside a container the hierarchies may be there but read-only:
        # every job would fail, so the runner does not start.
        if not os.access(parent, os.W_OK):
            raise CgroupError(
                f"cannot make control groups in {parent} (read-only here): run the runner "
                "where the memory, cpu and pids controllers are writable"
            )
        parents[controller] = parent
    _layout = Layout(False, parents)
    return _layout


def job_group(name: str, limits: Limits) -> JobGroup:
    """Make the groups of a job called ``name``, with ``limits``."""
    layout = _layout or prepare()
    group = JobGroup(name, v2=layout.v2)
    period = 100_000
    try:
        if layout.v2:
            directory = layout.parents[""] / name
            directory.mkdir()
            group.dirs.append(str(directory))
            (directory / "memory.max").write_text(str(limits.memory))
            if (directory / "memory.swap.max").exists():
                (directory / "memory.swap.max").write_text("0")
            (directory / "cpu.max").write_text(f"{limits.cpus * period} {period}")
            (directory / "pids.max").write_text(str(limits.processes))
        else:
            for parent in layout.parents.values():
                directory = parent / name
                directory.mkdir()
                group.dirs.append(str(directory))
            memory = layout.parents["memory"] / name
            (memory / "memory.limit_in_bytes").write_text(str(limits.memory))
            swap = memory / "memory.memsw.limit_in_bytes"
            if swap.exists():
                swap.write_text(str(limits.memory))
            cpu = layout.parents["cpu"] / name
            (cpu / "cpu.cfs_period_us").write_text(str(period))
            (cpu / "cpu.cfs_quota_us").write_text(str(limits.cpus * period))
            (layout.parents["pids"] / name / "pids.max").write_text(str(limits.processes))
    except OSError as error:
        group.remove()
        raise CgroupError(f"cannot make the control groups of {name}: {error}") from None
    return group
