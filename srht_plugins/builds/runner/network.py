"""A job's network: its own network namespace, always.

- ``none``: nspawn's private namespace, with nothing but loopback. The job
  reaches neither the runner host, nor other jobs, nor anything else.
- ``mirror``: a namespace of the runner's with loopback only, where the
  runner listens on ``127.0.0.1:3142`` and relays each connection to
  ``[builds] package-proxy`` (an apt proxy). That one port is all the job
  can reach: no route, no forwarding, no firewall rule to get wrong.
- ``full``: the same namespace with ``slirp4netns`` giving it a user-space
  TCP/IP stack: it reaches what the runner host reaches, except the
  host's own loopback, and nothing reaches it.

Namespaces are named ``srht-builds-RUNNER-JOB`` (under ``/run/netns``), so
a runner that restarts removes its leftovers by name.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import socket
import subprocess
import threading
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["JobNetwork", "RELAY_PORT", "remove_namespace"]

RELAY_PORT = 3142
#: How long slirp4netns may take to configure a job's namespace.
SLIRP_READY_TIMEOUT = 10
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True, timeout=30)


def remove_namespace(name: str) -> None:
    if Path("/run/netns", name).exists():
        _ip("netns", "del", name, check=False)


def _listen_inside(path: str, port: int) -> socket.socket:
    """A listening socket on ``127.0.0.1:port`` in the namespace at
    ``path``. Done in a thread of its own: entering a namespace changes
    the calling thread only, and it goes back before it ends."""
    made: list[socket.socket] = []
    failed: list[BaseException] = []

    def enter() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(path, os.O_RDONLY)
        try:
            _setns(target)
            try:
                made.append(socket.create_server(("127.0.0.1", port), backlog=64))
            finally:
                _setns(own)
        except BaseException as error:  # noqa: BLE001 - handed to the caller
            failed.append(error)
        finally:
            os.close(own)
            os.close(target)

    thread = threading.Thread(target=enter, name="srht-builds-netns")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return made[0]


def _pump(source: socket.socket, target: socket.socket, done: threading.Barrier) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)
        # The second direction to end closes both sockets.
        if done.wait() == 0:
            source.close()
            target.close()


class JobNetwork:
    """The namespace of one job, when it needs one of its own (``mirror``
    and ``full``); ``none`` uses nspawn's private network."""

    def __init__(self, name: str, mode: str, proxy: str | None):
        self.name = name
        self.mode = mode
        self.proxy = proxy
        self.listener: socket.socket | None = None
        self.slirp: subprocess.Popen[bytes] | None = None
        self._closing = threading.Event()

    @property
    def path(self) -> str | None:
        return f"/run/netns/{self.name}" if self.mode in ("mirror", "full") else None

    def start(self) -> None:
        if self.mode == "none":
            return
        remove_namespace(self.name)
        _ip("netns", "add", self.name)
        _ip("-n", self.name, "link", "set", "lo", "up")
        assert self.path is not None
        if self.mode == "mirror":
            if not self.proxy:
                raise RuntimeError("network = mirror needs [builds] package-proxy")
            parts = urlsplit(self.proxy)
            target = (parts.hostname or "", parts.port or 80)
            self.listener = _listen_inside(self.path, RELAY_PORT)
            threading.Thread(
                target=self._relay, args=(target,), name=f"relay-{self.name}", daemon=True
            ).start()
        elif self.mode == "full":
            self._start_slirp()

    def _start_slirp(self) -> None:
        """``slirp4netns`` on the namespace, waited for until it says the
        namespace's interface is configured (its ``--ready-fd``), so the
        job's first connection never races it."""
        assert self.path is not None
        ready, told = os.pipe()
        try:
            self.slirp = subprocess.Popen(
                [
                    "slirp4netns",
                    "--configure",
                    "--mtu=65520",
                    "--disable-host-loopback",
                    f"--ready-fd={told}",
                    "--netns-type=path",
                    self.path,
                    "tap0",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(told,),
                start_new_session=True,
            )
            os.close(told)
            told = -1
            readable, _, _ = select.select([ready], [], [], SLIRP_READY_TIMEOUT)
            said = os.read(ready, 1) if readable else b""
        finally:
            os.close(ready)
            if told != -1:
                os.close(told)
        if said != b"1":
            if self.slirp.poll() is None:
                self.slirp.kill()
            _out, error = self.slirp.communicate(timeout=10)
            reason = error.decode(errors="replace").strip() or "no word from it"
            raise RuntimeError(f"slirp4netns did not set up the job's network: {reason}")
        assert self.slirp.stderr is not None
        self.slirp.stderr.close()  # nothing more is read from it

    def _relay(self, target: tuple[str, int]) -> None:
        assert self.listener is not None
        while not self._closing.is_set():
            try:
                inside, _address = self.listener.accept()
            except OSError:
                return
            try:
                outside = socket.create_connection(target, timeout=30)
                outside.settimeout(None)
            except OSError:
                inside.close()
                continue
            done = threading.Barrier(2)
            for source, sink in ((inside, outside), (outside, inside)):
                threading.Thread(target=_pump, args=(source, sink, done), daemon=True).start()

    @property
    def helper_pids(self) -> list[int]:
        return [self.slirp.pid] if self.slirp is not None else []

    def stop(self) -> None:
        self._closing.set()
        if self.listener is not None:
            with contextlib.suppress(OSError):
                self.listener.close()
        if self.slirp is not None and self.slirp.poll() is None:
            self.slirp.kill()
            self.slirp.wait(10)
        if self.mode != "none":
            remove_namespace(self.name)
