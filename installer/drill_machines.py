"""Throwaway machines for ``srht-install drill``, booted on a drill host.

With ``[drill] machine-host`` (and no ``--host`` or ``[drill] hosts``), the
drill boots one systemd-nspawn machine per host of the archived site on
that spare host, restores onto them, and removes them:

1. over SSH to the drill host (``[drill] ssh-key``, else the deploy's
   settings) it checks for ``systemd-nspawn``, ``mmdebstrap``, ``nft`` (or
   ``iptables``) and ``unshare``, installing the missing ones with apt
   (``systemd-container``, ``mmdebstrap``, ``nftables``); when apt cannot,
   the error names the packages to install by hand;
2. it builds a Debian root file system (minbase with sshd, python3, sudo,
   systemd, dbus, iproute2, ca-certificates, procps) with ``mmdebstrap``
   from the drill host's own apt sources and apt settings (its proxy
   included, copied into the image so the machines install packages the
   way the drill host does), once: it is cached in
   ``/var/cache/srht-drill/image-KEY`` where KEY hashes the package list,
   the release, the apt sources and settings;
3. it boots the machines (systemd as PID 1) on a private network of the
   drill host: a bridge ``srhtdrill0`` with ``.1`` of ``[drill]
   machine-network``, a network namespace ``srht-drill-N`` and a veth
   ``srhtdrill-N`` per machine at ``.N+1``, NAT (masquerade) out through
   the drill host in an nftables table ``srht_drill`` of its own (or an
   iptables rule commented ``srht-drill``), IPv4 forwarding on while they
   run. Each machine's root is a plain copy of the image in
   ``/var/lib/srht-drill/machines/NAME`` (not an overlay: its upper dir
   could not live on an overlay root, and a tmpfs would hold the restored
   data in memory), with the drill's public key in root's
   ``authorized_keys`` and the drill host's ``resolv.conf``. Each
   ``systemd-nspawn`` runs detached (``setsid``) and its PID goes into
   ``/run/srht-drill/pids``;
4. the drill reaches the machines only through the drill host: its copy of
   the config gets ``[deploy] ssh-proxy-command = ssh ... -W %h:%p
   DRILLHOST`` (pyinfra and the installer's SSH honour it), and the smoke
   checks' HTTPS goes through an ``ssh -N -D`` SOCKS proxy to the drill
   host (:class:`Socks`), stopped by its PID afterwards;
5. the teardown (also run before a boot, so a crashed drill's leftovers go)
   stops each machine by its recorded PID (``SIGTERM``: a clean power-off;
   the PID is checked against the machine's root first), removes the roots,
   the namespaces, veths and bridge by their ``srht-drill`` names, the NAT
   table or rule, and restores IPv4 forwarding as it was. The cached image
   stays.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import shlex
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from srht_core.schema import SshTarget

from .hosts import SshSettings, ssh_argv, ssh_settings
from .remote_archive import Remote, RemoteError

__all__ = [
    "Machine",
    "MachineError",
    "MachineSet",
    "Socks",
    "boot_script",
    "cleanup_script",
    "image_script",
    "plan_machines",
    "prepare_script",
    "proxy_command",
]

#: What the machines boot from: enough for systemd and for pyinfra over SSH.
PACKAGES = (
    "openssh-server",
    "python3",
    "sudo",
    "systemd",
    "systemd-sysv",
    "dbus",
    "iproute2",
    "ca-certificates",
    "procps",
)
#: Bumped when the image recipe changes in a way the inputs do not show.
RECIPE = 1
CACHE = "/var/cache/srht-drill"
MACHINES = "/var/lib/srht-drill/machines"
STATE = "/run/srht-drill"
#: The cleanup script, kept on the drill host for a drill run with --keep.
CLEANUP = "/var/lib/srht-drill/cleanup.sh"
PREFIX = "srht-drill-"
BRIDGE = "srhtdrill0"
VETH = "srhtdrill-"
NFT_TABLE = "srht_drill"
#: Tools the drill host needs, and the Debian package of each.
TOOLS = {
    "systemd-nspawn": "systemd-container",
    "mmdebstrap": "mmdebstrap",
    "unshare": "util-linux",
    "ip": "iproute2",
    "flock": "util-linux",
}


class MachineError(Exception):
    """A step on the drill host failed; the message names the host and the step."""


@dataclass(frozen=True)
class Machine:
    """One throwaway machine for the archived host ``name``."""

    name: str
    index: int
    address: str
    gateway: str

    @property
    def netns(self) -> str:
        return f"{PREFIX}{self.index}"

    @property
    def veth(self) -> str:
        return f"{VETH}{self.index}"

    @property
    def root(self) -> str:
        return f"{MACHINES}/{self.name}"


def plan_machines(names: list[str], network: str) -> list[Machine]:
    """One machine per archived host, at ``.2`` upwards of ``network``."""
    net = ipaddress.IPv4Network(network)
    hosts = list(net.hosts())
    if len(names) > len(hosts) - 1:
        raise MachineError(f"{network} has too few addresses for {len(names)} machines")
    return [Machine(name, i, str(hosts[i]), str(hosts[0])) for i, name in enumerate(names, start=1)]


def prepare_script() -> str:
    """Check the drill host's tools, install the missing ones with apt; the
    last line says what is still missing (nothing: ``ok``)."""
    checks = " ".join(f"{tool}:{package}" for tool, package in TOOLS.items())
    return f"""set -u
missing=""
for pair in {checks}; do
  command -v "${{pair%%:*}}" >/dev/null 2>&1 || missing="$missing ${{pair#*:}}"
done
command -v nft >/dev/null 2>&1 || command -v iptables >/dev/null 2>&1 || missing="$missing nftables"
if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  if command -v apt-get >/dev/null 2>&1; then
    timeout 600 apt-get update -qq >/dev/null 2>&1
    timeout 900 apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1
  fi
  still=""
  for pair in {checks}; do
    command -v "${{pair%%:*}}" >/dev/null 2>&1 || still="$still ${{pair#*:}}"
  done
  command -v nft >/dev/null 2>&1 || command -v iptables >/dev/null 2>&1 || still="$still nftables"
  if [ -n "$still" ]; then echo "missing:$still"; exit 0; fi
fi
[ -d /proc/sys/net/ipv4 ] || {{ echo "no IPv4 forwarding settings (/proc/sys/net/ipv4)"; exit 0; }}
echo ok
"""


def image_script() -> str:
    """Build the machines' root file system if it is not cached; prints
    ``image PATH`` (and ``built`` when it was built now)."""
    include = ",".join(PACKAGES)
    return f"""set -eu
cache={CACHE}
mkdir -p "$cache"
suite=$(. /etc/os-release && echo "${{VERSION_CODENAME:-}}")
[ -n "$suite" ] || {{ echo "no VERSION_CODENAME in /etc/os-release: not Debian?" >&2; exit 3; }}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
list="$work/drill-host.list"  # apt reads only *.list files
grep -hsv '^[[:space:]]*#' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \\
  | grep -s . > "$list" || true
extra=$(ls /etc/apt/sources.list.d/*.sources 2>/dev/null | tr "\\n" " " || true)
[ -s "$list" ] || [ -n "$extra" ] || \\
  {{ echo "no apt sources in /etc/apt/sources.list(.d)" >&2; exit 3; }}
confs=$(ls /etc/apt/apt.conf.d/* 2>/dev/null | grep -v mmdebstrap | tr "\\n" " " || true)
key=$({{ echo "{include} {RECIPE} $suite"; cat "$list" $extra $confs; }} \\
  | sha256sum | cut -c1-16)
image="$cache/image-$key"
exec 9>"$cache/lock"
flock 9
if [ ! -f "$image/etc/os-release" ]; then
  rm -rf "$image.build"
  aptopts=""
  for conf in $confs; do aptopts="$aptopts --aptopt=$conf"; done
  timeout 1200 mmdebstrap --variant=minbase --mode=root --format=directory \\
    --include={include} $aptopts \\
    --customize-hook='for c in '"$confs"'; do cp "$c" "$1/etc/apt/apt.conf.d/"; done' \\
    --customize-hook='chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer' \\
    --customize-hook='rm -f "$1/etc/hostname"' \\
    "$suite" "$image.build" "$list" $extra >"$cache/build.log" 2>&1 \\
    || {{ tail -n 20 "$cache/build.log" >&2; rm -rf "$image.build"; exit 4; }}
  mv "$image.build" "$image"
  echo built
  for old in "$cache"/image-*; do [ "$old" = "$image" ] || rm -rf "$old"; done
fi
echo "image $image"
"""


def _alive_check(pid: str, root: str) -> str:
    """A shell test: ``pid`` is still the ``systemd-nspawn`` of ``root``."""
    return (
        f'[ -r /proc/{pid}/cmdline ] && tr "\\0" " " < /proc/{pid}/cmdline '
        f'| grep -qF -- "-D {root} "'
    )


def cleanup_script() -> str:
    """Remove every machine of the drill and their network, by the PIDs
    recorded in ``/run/srht-drill/pids`` and by the ``srht-drill`` names
    only; idempotent. Prints ``left ...`` for what it could not remove."""
    alive = _alive_check("$pid", "$root")
    return f"""set -u
state={STATE}
if [ -f "$state/pids" ]; then
  while read -r pid root; do
    if {alive}; then kill -TERM "$pid" 2>/dev/null || true; fi
  done < "$state/pids"
  for i in $(seq 1 60); do
    running=""
    while read -r pid root; do
      if {alive}; then running="$running $pid"; fi
    done < "$state/pids"
    [ -z "$running" ] && break
    sleep 0.5
  done
  for pid in $running; do kill -KILL "$pid" 2>/dev/null || true; done
  [ -z "$running" ] || sleep 1
fi
rm -rf {MACHINES}
for ns in $(ip netns list 2>/dev/null | awk '{{print $1}}' | grep '^{PREFIX}' || true); do
  ip netns delete "$ns" 2>/dev/null || true
done
for link in $(ip -o link show 2>/dev/null | awk -F': ' '{{print $2}}' | cut -d@ -f1 \\
    | grep -E '^({VETH}[0-9]+|{BRIDGE})$' || true); do
  ip link delete "$link" 2>/dev/null || true
done
if command -v nft >/dev/null 2>&1; then nft delete table ip {NFT_TABLE} 2>/dev/null || true; fi
if command -v iptables >/dev/null 2>&1; then
  iptables -t nat -S POSTROUTING 2>/dev/null | grep -- '--comment {PREFIX.rstrip("-")}' \\
    | sed 's/^-A /-D /' | while read -r rule; do eval "iptables -t nat $rule" || true; done
fi
if [ -f "$state/ip_forward" ] && \\
    [ "$(cat "$state/ip_forward")" != "$(cat /proc/sys/net/ipv4/ip_forward)" ]; then
  cat "$state/ip_forward" > /proc/sys/net/ipv4/ip_forward || true
fi
[ ! -d {MACHINES} ] || echo "left {MACHINES}"
ip netns list 2>/dev/null | awk '{{print $1}}' | grep '^{PREFIX}' | sed 's/^/left netns /'
ip -o link show 2>/dev/null | awk -F': ' '{{print $2}}' | cut -d@ -f1 \\
  | grep -E '^({VETH}[0-9]+|{BRIDGE})$' | sed 's/^/left link /'
if command -v nft >/dev/null 2>&1 && nft list table ip {NFT_TABLE} >/dev/null 2>&1; then
  echo "left nftables table ip {NFT_TABLE}"
fi
if [ -f "$state/pids" ]; then
  while read -r pid root; do
    if {alive}; then echo "left machine $root (PID $pid)"; fi
  done < "$state/pids"
fi
rm -rf "$state"
true
"""


def boot_script(machines: list[Machine], network: str, image: str, public_key: str) -> str:
    """Make the network and boot every machine, detached; their PIDs go to
    the state file as they start (so a failure half-way is cleaned up)."""
    net = ipaddress.IPv4Network(network)
    gateway = machines[0].gateway
    nft = (
        f"table ip {NFT_TABLE} {{\n"
        "  chain postrouting {\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        f"    ip saddr {net} ip daddr != {net} masquerade\n"
        "  }\n"
        "}\n"
    )
    lines = [
        "set -eu",
        f"state={STATE}",
        f'mkdir -p "$state" {MACHINES}',
        f"ip link add {BRIDGE} type bridge",
        f"ip addr add {gateway}/{net.prefixlen} dev {BRIDGE}",
        f"ip link set {BRIDGE} up",
        'cat /proc/sys/net/ipv4/ip_forward > "$state/ip_forward"',
        '[ "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 ] || echo 1 > /proc/sys/net/ipv4/ip_forward',
        "if command -v nft >/dev/null 2>&1; then",
        f"  nft -f - <<'EOF'\n{nft}EOF",
        "else",
        f"  iptables -t nat -A POSTROUTING -s {net} ! -d {net} -j MASQUERADE "
        f"-m comment --comment {PREFIX.rstrip('-')}",
        "fi",
        f"key={shlex.quote(public_key.strip())}",
    ]
    for m in machines:
        ns, root = m.netns, m.root
        nspawn = shlex.join(
            [
                "systemd-nspawn",
                "-q",
                "-b",
                "-D",
                root,
                "-M",
                f"{PREFIX}{m.index}",
                f"--hostname={m.name}",
                "--register=no",
                "--keep-unit",
                f"--network-namespace-path=/run/netns/{ns}",
                "--console=passive",
            ]
        )
        inner = (
            "mkdir -p /run/systemd/nspawn && mount -t tmpfs tmpfs /run/systemd/nspawn && exec "
            + nspawn
        )
        lines += [
            f"ip netns add {ns}",
            f"ip link add {m.veth} type veth peer name eth0 netns {ns}",
            f"ip link set {m.veth} master {BRIDGE} up",
            f"ip -n {ns} link set lo up",
            f"ip -n {ns} addr add {m.address}/{net.prefixlen} dev eth0",
            f"ip -n {ns} link set eth0 up",
            f"ip -n {ns} route add default via {gateway}",
            f"cp -a {image} {root}",
            f"install -d -m 700 {root}/root/.ssh",
            f'printf "%s\\n" "$key" > {root}/root/.ssh/authorized_keys',
            f"chmod 600 {root}/root/.ssh/authorized_keys",
            f"rm -f {root}/etc/resolv.conf && cat /etc/resolv.conf > {root}/etc/resolv.conf",
            f"echo {m.name} > {root}/etc/hostname",
            f"printf '127.0.0.1 localhost\\n127.0.1.1 {m.name}\\n' > {root}/etc/hosts",
            f"setsid unshare --mount --propagation private sh -c {shlex.quote(inner)} "
            f'> "$state/{m.name}.log" 2>&1 < /dev/null &',
            f'echo "$! {root}" >> "$state/pids"',
        ]
    lines.append("echo booted")
    return "\n".join(lines) + "\n"


def wait_script(machines: list[Machine], timeout: int) -> str:
    """Wait until every machine's sshd answers; prints ``late NAME LOGTAIL``
    for a machine that did not within ``timeout`` seconds."""
    lines = ["set -u", f"deadline=$(( $(date +%s) + {timeout} ))"]
    for m in machines:
        probe = f"exec 3<>/dev/tcp/{m.address}/22 && head -c 4 <&3"
        lines += [
            "while :; do",
            f"  got=$(timeout 3 bash -c {shlex.quote(probe)} 2>/dev/null || true)",
            '  [ "$got" = "SSH-" ] && break',
            '  if [ "$(date +%s)" -ge "$deadline" ]; then',
            f"    tail=$(tail -n 5 {STATE}/{m.name}.log 2>/dev/null | tr '\\n' ' ')",
            f'    echo "late {m.name}: $tail"',
            "    break",
            "  fi",
            "  sleep 0.5",
            "done",
        ]
    return "\n".join(lines) + "\n"


def proxy_command(settings: SshSettings, target: SshTarget) -> str:
    """``[deploy] ssh-proxy-command`` reaching hosts through ``target``:
    OpenSSH's ``-W`` with the drill host's own settings (no shell syntax,
    so paramiko's ProxyCommand splits it as OpenSSH runs it)."""
    quiet = dataclasses.replace(settings, log_level="ERROR")  # its stderr is not read
    return shlex.join(_ssh_with(quiet, target, ["-W", "%h:%p"]))


def _ssh_with(settings: SshSettings, target: SshTarget, extra: list[str]) -> list[str]:
    """``ssh`` to ``target`` as :func:`ssh_argv` runs it, with ``extra``
    options in place of a remote command."""
    argv = ssh_argv(settings, target, [], sudo=False)
    # ssh_argv ends with the destination, "--" and the (empty) remote command.
    head = argv[: argv.index("--")]
    return [*head[:-1], *extra, head[-1]]


def run_step(remote: Remote, script: str, step: str, timeout: float = 900) -> str:
    """Run a step's script on the drill host; its output, or a
    :class:`MachineError` naming the host and the step."""
    try:
        return remote.run(script, step, timeout=timeout).stdout
    except RemoteError as error:
        raise MachineError(f"drill host {remote.where}: {step}: {error}") from None
    except subprocess.TimeoutExpired:
        raise MachineError(
            f"drill host {remote.where}: {step} did not finish within {timeout:.0f}s"
        ) from None


class Socks:
    """An ``ssh -N -D 127.0.0.1:PORT`` SOCKS proxy to the drill host, for
    the smoke checks' HTTPS to the machines; stopped by its PID."""

    def __init__(self, settings: SshSettings, target: SshTarget, log: Path):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        command = _ssh_with(
            settings,
            target,
            ["-N", "-o", "ExitOnForwardFailure=yes", "-D", f"127.0.0.1:{self.port}"],
        )
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise MachineError(
                    f"the SOCKS proxy to {target.address} stopped: "
                    + (log.read_text().strip()[-500:] or f"exit {self.process.returncode}")
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise MachineError(
                        f"the SOCKS proxy to {target.address} did not listen within 30s"
                    ) from None
                time.sleep(0.2)

    @property
    def url(self) -> str:
        """For git's ``http.proxy`` (names resolved here, so ``curloptResolve`` holds)."""
        return f"socks5://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _say(message: str) -> None:
    click.echo(message, err=True)


class MachineSet:
    """The drill's machines on ``[drill] machine-host``: boot, reach, remove.

    The drill host is reached with the deploy's SSH settings of the site's
    config (its known hosts, host key checking) and ``[drill] ssh-key``
    (else the deploy's key); the machines get a key the drill makes in
    its own folder."""

    def __init__(
        self, config: Path, target: SshTarget, ssh_key: Path | None, site_config: Any, folder: Path
    ):
        base = ssh_settings(config)
        self.settings = dataclasses.replace(
            base, targets={}, key=str(ssh_key) if ssh_key else base.key, log_level="INFO"
        )
        self.target = target._replace(name="machine-host")
        self.remote = Remote("machine-host", self.target, self.settings)
        self.network = str(site_config.get("drill", "machine-network") or "10.213.77.0/24")
        self.timeout = int(site_config.get("drill", "machine-boot-timeout") or 120)
        self.folder = folder
        self.key = folder / "machine-key"
        self.proxy = proxy_command(self.settings, self.target)
        self.machines: list[Machine] = []
        self._socks: Socks | None = None
        self._booting = False

    @property
    def where(self) -> str:
        t = self.target
        return f"{t.user}@{t.address}" + ("" if t.port == 22 else f":{t.port}")

    def refuse(self, real: set[str]) -> None:
        """The drill host must not be one of the site's own hosts."""
        from .drill import HostsProblem

        if self.target.address in real:
            raise HostsProblem(
                f"[drill] machine-host {self.where} is at an address of the site itself: "
                "a drill boots its machines on a spare host only; nothing was done"
            )

    def boot(self, names: list[str]) -> dict[str, SshTarget]:
        """Prepare the drill host, build or reuse the image, boot one machine
        per archived host; ``{name: how to reach its machine}``."""
        where = self.remote.where
        try:
            self.remote.run("true", "reach it", timeout=60)
        except (RemoteError, subprocess.TimeoutExpired) as error:
            raise MachineError(f"drill host {where} cannot be reached: {error}") from None
        _say(f"Preparing the drill host {self.where} (systemd-nspawn, mmdebstrap, nftables)...")
        out = run_step(self.remote, prepare_script(), "check and install its tools", 1800)
        if out.strip().splitlines()[-1:] != ["ok"]:
            raise MachineError(
                f"drill host {where}: check and install its tools: {out.strip()} "
                "(apt-get could not install them: install them by hand)"
            )
        _say("Building (or reusing) the machines' root file system with mmdebstrap...")
        out = run_step(self.remote, image_script(), "build the machines' image (mmdebstrap)", 1500)
        image = out.strip().splitlines()[-1].split(" ", 1)[1]
        if "built" in out.split():
            _say(f"  built {image}")
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "drill", "-f", str(self.key)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.machines = plan_machines(names, self.network)
        run_step(self.remote, cleanup_script(), "remove a former drill's machines")
        self._booting = True
        public = self.key.with_suffix(".pub").read_text()
        script = boot_script(self.machines, self.network, image, public)
        script += f"cat > {CLEANUP} <<'SRHT_DRILL_EOF'\n{cleanup_script()}SRHT_DRILL_EOF\n"
        run_step(self.remote, script, f"boot the machines on {self.network}", 600)
        out = run_step(
            self.remote, wait_script(self.machines, self.timeout), "wait for the machines to boot"
        )
        late = [line[5:] for line in out.splitlines() if line.startswith("late ")]
        if late:
            raise MachineError(
                f"drill host {where}: machine(s) did not boot within {self.timeout}s "
                "([drill] machine-boot-timeout): " + "; ".join(late)
            )
        return {m.name: SshTarget(m.name, "root", m.address, 22) for m in self.machines}

    def reached(self, hosts: dict[str, Remote]) -> None:
        """Each machine answers over SSH through the drill host."""
        for name, remote in hosts.items():
            try:
                remote.run("systemctl is-system-running --wait >/dev/null; true", "boot")
            except (RemoteError, subprocess.TimeoutExpired) as error:
                raise MachineError(
                    f"machine {name} on {self.where} cannot be reached through it: {error}"
                ) from None

    def socks(self) -> Socks:
        self._socks = Socks(self.settings, self.target, self.folder / "socks.log")
        return self._socks

    def down(self, drill: Any, *, keep: bool) -> None:
        """Stop the SOCKS proxy; remove the machines unless ``keep``."""
        if self._socks is not None:
            self._socks.stop()
            self._socks = None
        if not self._booting:
            return
        if keep:
            _say(
                f"The machines keep running on {self.where} (--keep); remove them with "
                f"`ssh {self.where} sh {CLEANUP}` (the next drill there does too)."
            )
            return
        _say(f"Removing the machines from {self.where}...")
        started = time.monotonic()
        try:
            out = run_step(self.remote, cleanup_script(), "remove the machines")
            left = [line[5:] for line in out.splitlines() if line.startswith("left ")]
        except MachineError as error:
            left = [str(error)]
        drill.teardown_s = round(time.monotonic() - started, 1)
        self._booting = False
        if left:
            drill.left["machine-host"] = left
            _say(f"  left on {self.where}: {', '.join(left)}")
        else:
            _say(
                f"Machines removed in {drill.teardown_s:.0f}s: {self.where} holds nothing of "
                "the drill but its cached image."
            )
