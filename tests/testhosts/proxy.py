"""The test hosts' apt: ``apt-cacher-ng`` on the bridge address, started
(and stopped, by PID) by the harness. Not on its usual port 3142: the
packaged service, if the machine runs it, listens there on every address.

Its config is a copy of the packaged one with the Debian backend set to the
mirror this machine's own apt uses (the packaged default does not resolve
here), its sockets and logs under the run's folder, and its cache under
``/var/cache/srht-e2e/apt-cacher-ng`` (one per slot: two proxies never
share a cache) so packages are fetched once across runs.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from .image import cache_dir, debian_mirror
from .slot import APT_CACHE_NAME

PORT = 3149
PACKAGED = Path("/etc/apt-cacher-ng")
PROGRAM = Path("/usr/sbin/apt-cacher-ng")


class AptProxy:
    """One apt-cacher-ng process listening on ``address:3142``."""

    def __init__(self, address: str, run_dir: Path):
        self.address = address
        self.run_dir = run_dir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{PORT}"

    def start(self) -> None:
        if not PROGRAM.exists():
            raise FileNotFoundError(
                "apt-cacher-ng is not installed (apt-get install apt-cacher-ng)"
            )
        conf = self.run_dir / "acng"
        logs = self.run_dir / "acng-log"
        shutil.rmtree(conf, ignore_errors=True)
        shutil.copytree(PACKAGED, conf)
        logs.mkdir(parents=True, exist_ok=True)
        cache = cache_dir() / APT_CACHE_NAME
        cache.mkdir(parents=True, exist_ok=True)
        (conf / "backends_debian").write_text(debian_mirror() + "\n")
        settings = {
            "CacheDir": cache,
            "LogDir": logs,
            "Port": PORT,
            "BindAddress": self.address,
            "SocketPath": conf / "socket",
            "PidFile": conf / "pid",
            "ExThreshold": 30,
        }
        with open(conf / "acng.conf", "a") as handle:
            handle.write("\n# srht-e2e\n")
            for key, value in settings.items():
                handle.write(f"{key}: {value}\n")
        with open(self.run_dir / "acng.out", "ab") as out:
            self.process = subprocess.Popen(
                [str(PROGRAM), "-c", str(conf), "ForeGround=1"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection((self.address, PORT), timeout=1):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"apt-cacher-ng did not start; see {self.run_dir / 'acng.out'}"
                    ) from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
