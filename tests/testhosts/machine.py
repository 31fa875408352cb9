"""Test hosts: Debian machines booted with systemd as PID 1 by
``systemd-nspawn``, each in its own network namespace with its own address
and its own copy-on-write root, reached over SSH like any server.

:class:`TestHosts` is the whole set-up as one context manager::

    with TestHosts(["alpha", "beta"], run_dir) as hosts:
        hosts["alpha"].ssh("systemctl is-system-running")

It takes its slot's lock (one set of hosts per slot at a time: the names
are fixed per slot, see :mod:`.slot`), cleans leftovers of an interrupted
run by their exact names and recorded PIDs, builds or reuses the cached
image, and tears everything down by PID and by name on exit.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from . import network
from .image import ensure_image
from .proxy import AptProxy
from .slot import LEFTOVERS, LOCK_FILE, RUN_ROOT

# RUN_ROOT: everything the harness mounts lives under it (a tmpfs), so a
# pre-clean knows exactly what to unmount. LEFTOVERS: outside the tmpfs, so
# it survives an unmount: what the last run started.

TMPFS_SIZE = "6G"
#: A unit that makes a host's cgroup v1 controllers writable at boot. On a
#: machine whose controllers are on cgroup v1 (as here), systemd-nspawn
#: mounts them read-only in the container (only its own name=systemd
#: hierarchy is writable), so nested containers could not get resource
#: limits; root in the host (no user namespace) may remount each bind
#: mount read-write, and then makes groups below the host's own. Given to
#: the hosts that run builds' runner only (``cgroup_hosts``).
CGROUPS_UNIT = """[Unit]
Description=srht e2e: writable cgroup v1 controllers (for nested containers)
DefaultDependencies=no
Before=sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'for c in /sys/fs/cgroup/*/; do mountpoint -q "$$c" && \
mount -o remount,bind,rw "$$c"; done; true'

[Install]
WantedBy=sysinit.target
"""


@dataclass
class TestHost:
    """One booted host."""

    name: str
    address: str
    key: Path
    root: Path
    log: Path
    pid: int | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def ssh_options(self) -> list[str]:
        return [
            "-i",
            str(self.key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=10",
        ]

    def ssh(
        self, command: str, *, input: str | None = None, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` (a shell line) on the host as root."""
        result = subprocess.run(
            ["ssh", *self.ssh_options, f"root@{self.address}", command],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL if input is None else None,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"on {self.name}, `{command}` exited {result.returncode}:\n"
                f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        return result

    def reachable(self) -> bool:
        try:
            with socket.create_connection((self.address, 22), timeout=1):
                return True
        except OSError:
            return False

    def disconnect(self) -> None:
        """Unplug the host from the bridge: it keeps running, unreachable."""
        network.set_link(self.name, up=False)

    def reconnect(self) -> None:
        network.set_link(self.name, up=True)
        _wait(self.reachable, 60, f"{self.name} to answer on port 22 again")


class TestHosts(Mapping[str, TestHost]):
    """A bridge, an apt proxy and one booted host per name.

    :param names: host names, at most 6 characters each.
    :param run_dir: where keys and logs of this run go.
    :param etc_hosts: extra ``/etc/hosts`` entries for every host
        (``{"meta.srht.test": "alpha"}`` maps a name to a host's address).
        Each host resolves the set's host names; other names only when
        given here. The deploy and installer suites give none: resolving
        the site's names is the deploy's job, and entries written here
        would hide a deploy that does not do it.
    :param cgroup_hosts: hosts whose control groups are made writable at
        boot (:data:`CGROUPS_UNIT`), so a builds runner there can limit
        its jobs; the others keep nspawn's read-only mounts.
    :param net_admin_hosts: hosts booted with ``CAP_NET_ADMIN`` (in their own
        network namespace), so they can make bridges, veths and NAT rules
        for machines of their own (a restore drill's machine host); the
        others cannot change their network.
    """

    def __init__(
        self,
        names: list[str],
        run_dir: Path,
        *,
        etc_hosts: Mapping[str, str] | None = None,
        cgroup_hosts: Collection[str] = (),
        net_admin_hosts: Collection[str] = (),
    ):
        self.names = list(names)
        self.cgroup_hosts = set(cgroup_hosts)
        self.net_admin_hosts = set(net_admin_hosts)
        self.run_dir = Path(run_dir)
        self.etc_hosts = dict(etc_hosts or {})
        self.hosts: dict[str, TestHost] = {}
        self.proxy: AptProxy | None = None
        self._lock: int | None = None
        self.key = self.run_dir / "id_ed25519"

    # Mapping

    def __getitem__(self, name: str) -> TestHost:
        return self.hosts[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.hosts)

    def __len__(self) -> int:
        return len(self.hosts)

    def address(self, name: str) -> str:
        return network.address(self.names.index(name))

    # lifecycle

    def __enter__(self) -> TestHosts:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        for program in ("mmdebstrap", "systemd-nspawn", "unshare", "ssh", "ssh-keygen", "zstd"):
            if shutil.which(program) is None:
                raise FileNotFoundError(f"{program} is not installed (see scripts/test)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        clean_leftovers(self.names)
        image = ensure_image(self.run_dir / "image-build.log")
        for old in (self.key, Path(str(self.key) + ".pub")):
            old.unlink(missing_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "srht-e2e", "-f", str(self.key)],
            check=True,
            timeout=30,
        )
        RUN_ROOT.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "mount",
                "-t",
                "tmpfs",
                "-o",
                f"size={TMPFS_SIZE},mode=0755",
                "srht-e2e",
                str(RUN_ROOT),
            ],
            check=True,
            timeout=30,
        )
        network.create_bridge()
        self.proxy = AptProxy(network.GATEWAY, self.run_dir)
        self.proxy.start()
        for index, name in enumerate(self.names):
            host = TestHost(
                name,
                network.address(index),
                self.key,
                RUN_ROOT / name / "root",
                self.run_dir / f"{name}.console.log",
            )
            network.create_host_network(name, host.address)
            self._prepare_root(host, image)
            self.hosts[name] = host
        for host in self.hosts.values():
            self._boot(host)
        self._record()
        for host in self.hosts.values():
            _wait(host.reachable, 120, f"{host.name} to answer on port 22")
            state = host.ssh("systemctl is-system-running --wait", check=False, timeout=180)
            if state.stdout.strip() not in ("running", "degraded"):
                raise RuntimeError(f"{host.name} did not boot: {state.stdout}{state.stderr}")

    def _prepare_root(self, host: TestHost, image: Path) -> None:
        base = host.root.parent
        for part in ("upper", "work", "root"):
            (base / part).mkdir(parents=True)
        subprocess.run(
            [
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                f"lowerdir={image},upperdir={base / 'upper'},workdir={base / 'work'}",
                str(host.root),
            ],
            check=True,
            timeout=30,
        )
        root = host.root
        (root / "etc/hostname").write_text(host.name + "\n")
        lines = ["127.0.0.1 localhost", f"127.0.1.1 {host.name}"]
        lines += [f"{self.address(other)} {other}" for other in self.names]
        lines += [f"{self._resolve(target)} {alias}" for alias, target in self.etc_hosts.items()]
        (root / "etc/hosts").write_text("\n".join(lines) + "\n")
        ssh_dir = root / "root/.ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        keys = ssh_dir / "authorized_keys"
        keys.write_text(Path(str(self.key) + ".pub").read_text())
        keys.chmod(0o600)
        if host.name in self.cgroup_hosts:
            units = root / "etc/systemd/system"
            (units / "srht-e2e-cgroups.service").write_text(CGROUPS_UNIT)
            (units / "sysinit.target.wants").mkdir(exist_ok=True)
            (units / "sysinit.target.wants/srht-e2e-cgroups.service").symlink_to(
                "../srht-e2e-cgroups.service"
            )
        assert self.proxy is not None
        (root / "etc/apt/apt.conf.d/01srht-e2e-proxy").write_text(
            f'Acquire::http::Proxy "{self.proxy.url}";\n'
        )

    def _resolve(self, target: str) -> str:
        return self.address(target) if target in self.names else target

    def _boot(self, host: TestHost) -> None:
        machine = network.namespace(host.name)
        nspawn = [
            "systemd-nspawn",
            "-q",
            "-b",
            "-D",
            str(host.root),
            "-M",
            machine,
            f"--hostname={host.name}",
            "--register=no",
            "--keep-unit",
            f"--network-namespace-path=/run/netns/{machine}",
            "--console=passive",
        ]
        if host.name in self.net_admin_hosts:
            nspawn.append("--capability=CAP_NET_ADMIN")
            # nspawn mounts /proc/sys read-only: forwarding is set from here.
            subprocess.run(
                ["ip", "netns", "exec", machine, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
                check=True,
                capture_output=True,
                timeout=30,
            )
        # nspawn needs a private /run/systemd/nspawn (else "can't allow that" on
        # its propagate directory) and, with --keep-unit, no system bus.
        script = (
            "mkdir -p /run/systemd/nspawn && "
            "mount -t tmpfs tmpfs /run/systemd/nspawn && exec " + shlex.join(nspawn)
        )
        with open(host.log, "ab") as out:
            process = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        host.process, host.pid = process, process.pid

    def _record(self) -> None:
        """Write what a later run needs to clean up after this one, were it killed."""
        state = {
            "hosts": {h.name: {"pid": h.pid, "root": str(h.root)} for h in self.hosts.values()},
            "proxy": self.proxy.process.pid if self.proxy and self.proxy.process else None,
        }
        (self.run_dir / "state.json").write_text(json.dumps(state))
        LEFTOVERS.write_text(json.dumps(state))

    def replace(self, name: str) -> TestHost:
        """Destroy host ``name`` and boot a fresh one in its place: power it
        off, throw its copy-on-write layer away (everything it ever wrote),
        and boot the image again at the same address, in the same network
        namespace. What a restore onto new hardware starts from; the new
        host may have a new SSH host key (the tests do not check them)."""
        old = self.hosts[name]
        _stop_machine(old.pid, str(old.root))
        if old.process is not None:
            with suppress(subprocess.TimeoutExpired):
                old.process.wait(5)
        base = old.root.parent
        for target in sorted(_mounts_under(base), key=len, reverse=True):
            subprocess.run(["umount", target], check=True, capture_output=True, timeout=60)
        shutil.rmtree(base)
        host = TestHost(name, old.address, self.key, old.root, old.log)
        self._prepare_root(host, ensure_image(self.run_dir / "image-build.log"))
        self.hosts[name] = host
        self._boot(host)
        self._record()
        _wait(host.reachable, 120, f"{name} to answer on port 22")
        state = host.ssh("systemctl is-system-running --wait", check=False, timeout=180)
        if state.stdout.strip() not in ("running", "degraded"):
            raise RuntimeError(f"{name} did not boot: {state.stdout}{state.stderr}")
        return host

    def stop(self) -> None:
        for host in self.hosts.values():
            _stop_machine(host.pid, str(host.root))
            if host.process is not None:
                with suppress(subprocess.TimeoutExpired):
                    host.process.wait(5)
        if self.proxy is not None:
            self.proxy.stop()
        _unmount_all()
        network.clean(self.names)
        with suppress(FileNotFoundError):
            LEFTOVERS.unlink()
        self.hosts.clear()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def clean_leftovers(names: list[str]) -> None:
    """Stop the machines and proxy an interrupted run left, by their recorded
    PIDs (checked against what they run), unmount its file systems and
    remove its network, by exact names."""
    if LEFTOVERS.exists():
        try:
            state = json.loads(LEFTOVERS.read_text())
        except ValueError:
            state = {}
        for host in state.get("hosts", {}).values():
            _stop_machine(host.get("pid"), host.get("root", ""))
        proxy = state.get("proxy")
        if proxy and "apt-cacher-ng" in _cmdline(proxy):
            with suppress(ProcessLookupError):
                os.kill(proxy, 15)
        LEFTOVERS.unlink()
    _unmount_all()
    network.clean(names)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _stop_machine(pid: int | None, root: str) -> None:
    """Power a machine off by signalling its nspawn process (by PID, and only
    if that PID still runs nspawn on ``root``)."""
    if not pid or root not in _cmdline(pid) or "systemd-nspawn" not in _cmdline(pid):
        return
    with suppress(ProcessLookupError):
        os.kill(pid, 15)
    try:
        _wait(lambda: not _cmdline(pid), 30, "the machine to power off")
    except TimeoutError:
        with suppress(ProcessLookupError):
            os.kill(pid, 9)
    with suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _mounts_under(path: Path) -> list[str]:
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = line.split()[1].replace("\\040", " ")
        if target == str(path) or target.startswith(str(path) + "/"):
            found.append(target)
    return found


def _unmount_all() -> None:
    # Deepest first: the overlays, then the tmpfs under them.
    for target in sorted(_mounts_under(RUN_ROOT), key=len, reverse=True):
        subprocess.run(["umount", target], check=False, capture_output=True, timeout=60)
        if target in _mounts_under(RUN_ROOT):
            subprocess.run(["umount", "-l", target], check=False, capture_output=True, timeout=60)


def _wait(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout}s")
        time.sleep(0.2)
