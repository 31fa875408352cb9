"""Benchmarks of the git service, as ratios against a baseline run side by side.

    python benchmarks/bench_git.py            # full run (a few minutes)
    python benchmarks/bench_git.py --quick    # short run

1. Clone: ``git clone --bare`` of a public repository of about 50 MB over the
   service's smart HTTP (``srht serve git``: access checks, then ``git
   http-backend`` streamed), against ``git http-backend`` run directly as CGI
   by a tiny WSGI wrapper under the same gunicorn settings (``srht_core.serve``).
   Printed as throughput of the service ÷ the baseline's (target ≥ 0.9).
2. Tree page: requests per second of the tree page of a folder of 1,000
   files, against a bare Flask app answering the same bytes under the same
   gunicorn settings.
3. SSH (``--only ssh``, as root): ``git ls-remote``, a no-op ``git fetch``
   and a clone of the same repository over an sshd configured with the
   service's snippet (curl as the key lookup, the service's forced
   command, meta and git served) against a plain sshd whose forced command
   is ``git-shell`` on the same repository folder. Wall time, median per
   operation, and the service's ÷ the plain sshd's (target ≤ 1.3); then
   the pieces of a login timed alone (key lookup, forced command).

Everything runs on loopback in a temporary folder removed afterwards; the
servers run in their own process sessions and are stopped by their PID.
See benchmarks/README.md for the figures and what they mean.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srht_core.config import dump_ini
from srht_core.testing import free_port, site_config, wait_for_http

PYTHON = sys.executable
HERE = Path(__file__).resolve()
BIG_FILES = 5
BIG_FILE_SIZE = 10 * 1024 * 1024
WIDE_FILES = 1000
OWNER = "bench"


def progress(message: str) -> None:
    print(f"  · {message}", file=sys.stderr, flush=True)


def child_env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def git(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> str:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(cwd or Path.cwd()),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Bench",
        "GIT_AUTHOR_EMAIL": "bench@example.org",
        "GIT_COMMITTER_NAME": "Bench",
        "GIT_COMMITTER_EMAIL": "bench@example.org",
        "GIT_TERMINAL_PROMPT": "0",
    }
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        check=False,
        timeout=1800,
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed:\n{result.stderr.decode()}")
    return result.stdout.decode(errors="replace")


# -- the site ----------------------------------------------------------------------


def make_site(work: Path) -> tuple[Path, dict[str, int]]:
    """A config enabling git (SQLite, repositories under ``work``), migrated,
    with a user owning two public repositories; their ids by name."""
    data = site_config(work / "data", {"git": {"repos": str(work / "repos")}})
    config = work / "config.ini"
    config.write_text(dump_ini(data), encoding="utf-8")
    subprocess.run(
        [PYTHON, "-m", "srht_core.cli", "--config", str(config), "migrate", "git"],
        check=True,
        capture_output=True,
        env=child_env(work),
    )
    script = (
        "import json, sys\n"
        "from srht_core import create_app, db_session\n"
        "from srht_plugins.git.models import User\n"
        "from srht_plugins.git.repos import create_repository\n"
        "app = create_app('git', sys.argv[1])\n"
        "with app.app_context():\n"
        f"    user = User(id=1, username={OWNER!r}, email='bench@example.org')\n"
        "    db_session.add(user); db_session.commit()\n"
        "    ids = {n: create_repository(user, n).id for n in ('big', 'wide')}\n"
        "print(json.dumps(ids))\n"
    )
    made = subprocess.run(
        [PYTHON, "-c", script, str(config)],
        check=True,
        capture_output=True,
        text=True,
        env=child_env(work),
    )
    import json

    return config, json.loads(made.stdout.strip().splitlines()[-1])


def fill_big(work: Path, target: Path) -> int:
    """About 50 MB of incompressible files over a few commits."""
    source = work / "big-src"
    git("init", "--quiet", "--initial-branch=main", str(source))
    for index in range(BIG_FILES):
        (source / f"blob-{index}.bin").write_bytes(os.urandom(BIG_FILE_SIZE))
        (source / "README").write_text(f"Revision {index}\n")
        git("add", "--all", cwd=source)
        git("commit", "--quiet", "-m", f"Add blob {index}", cwd=source)
    git("push", "--quiet", str(target), "main", cwd=source)
    return sum(p.stat().st_size for p in (target / "objects").rglob("*") if p.is_file())


def fill_wide(work: Path, target: Path) -> None:
    """One commit with a folder of 1,000 small files."""
    stream = [
        b"commit refs/heads/main\n",
        b"committer Bench <bench@example.org> 1700000000 +0000\n",
        b"data 10\nWide tree\n",
    ]
    for index in range(WIDE_FILES):
        data = f"file {index}\n".encode()
        stream.append(
            f"M 100644 inline many/file-{index:04d}.txt\ndata {len(data)}\n".encode() + data
        )
    stream.append(b"\n")
    source = work / "wide-src"
    git("init", "--quiet", "--initial-branch=main", str(source))
    git("fast-import", "--quiet", cwd=source, stdin=b"".join(stream))
    git("push", "--quiet", str(target), "main", cwd=source)


# -- the baseline server -------------------------------------------------------------


def baseline_app(repos: str, page_file: str) -> Any:
    """A WSGI app: ``git http-backend`` as CGI for every path under the
    repositories folder, and ``/page`` answering the bytes of ``page_file``."""
    from flask import Flask, Response, request

    app = Flask("baseline")
    page = Path(page_file).read_bytes() if Path(page_file).exists() else b""

    @app.get("/page")
    def static_page() -> Response:
        return Response(page, mimetype="text/html")

    @app.route("/<path:path>", methods=["GET", "POST"])
    def backend(path: str) -> Response:
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": repos,
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": "/" + path,
            "REQUEST_METHOD": request.method,
            "QUERY_STRING": request.query_string.decode(),
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "REMOTE_ADDR": request.remote_addr or "",
        }
        for header in ("Content-Encoding", "Git-Protocol"):
            if header in request.headers:
                env["HTTP_" + header.upper().replace("-", "_")] = request.headers[header]
        if request.headers.get("Content-Length"):
            env["CONTENT_LENGTH"] = request.headers["Content-Length"]
        process = subprocess.Popen(
            ["git", "http-backend"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        assert process.stdin is not None and process.stdout is not None
        source = request.environ["wsgi.input"]

        def feed() -> None:
            with contextlib.suppress(OSError):
                while chunk := source.read(65536):
                    process.stdin.write(chunk)  # type: ignore[union-attr]
            with contextlib.suppress(OSError):
                process.stdin.close()  # type: ignore[union-attr]

        threading.Thread(target=feed, daemon=True).start()
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = process.stdout.read1(65536)
            if not chunk:
                break
            head += chunk
        header_block, _, rest = head.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in header_block.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers.append((key, value.strip()))

        def body() -> Iterator[bytes]:
            yield rest
            while chunk := process.stdout.read1(65536):  # type: ignore[union-attr]
                yield chunk
            process.wait()

        return Response(body(), status=status, headers=headers, direct_passthrough=True)

    return app


def serve_baseline(argv: list[str]) -> None:
    """``bench_git.py --serve-baseline CONFIG BIND WORKERS REPOS PAGE``: the
    baseline app under :func:`srht_core.serve.serve`'s gunicorn options."""
    import logging
    from types import SimpleNamespace

    import srht_core.app
    from srht_core.config import load_config
    from srht_core.plugins import PluginHost
    from srht_core.serve import serve

    config_path, bind, workers, repos, page = argv
    app = baseline_app(repos, page)
    app.extensions["srht.db"] = SimpleNamespace(
        engine=SimpleNamespace(dispose=lambda close=True: None)
    )
    srht_core.app.create_app = lambda *_args, **_kwargs: app  # type: ignore[assignment]
    logging.basicConfig(level=logging.WARNING)
    serve("git", load_config(config_path), PluginHost(), bind=bind, workers=int(workers))


# -- servers and measurements -----------------------------------------------------------


@dataclass
class Server:
    """A gunicorn server we started, stopped by its PID."""

    name: str
    command: list[str]
    port: int
    log: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready: str) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        try:
            wait_for_http(self.url + ready, timeout=60, process=self.process)
        except (RuntimeError, TimeoutError) as error:
            raise RuntimeError(
                f"{self.name} did not start: {error}\n"
                f"{self.log.read_text(errors='replace')[-3000:]}"
            ) from None

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def worker_peak_rss(self) -> int:
        """The largest peak resident size (VmHWM) among the server's workers."""
        if self.process is None:
            return 0
        peak = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            parent = re.search(r"^PPid:\s+(\d+)", status, re.M)
            if parent and int(parent.group(1)) == self.process.pid:
                found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
                peak = max(peak, int(found.group(1)) * 1024 if found else 0)
        return peak


@dataclass
class Samples:
    values: list[float] = field(default_factory=list)

    def median(self) -> float:
        return statistics.median(self.values)


def ratios(case: Samples, baseline: Samples, *, higher_is_better: bool) -> Samples:
    pairs = zip(case.values, baseline.values, strict=True)
    return Samples([c / b if higher_is_better else b / c for c, b in pairs])


def spread(samples: Samples) -> str:
    return f"{samples.median():.2f} ({min(samples.values):.2f}–{max(samples.values):.2f})"


def time_clone(url: str, work: Path) -> float:
    target = work / "clone.git"
    shutil.rmtree(target, ignore_errors=True)
    started = time.perf_counter()
    git("clone", "--bare", "--quiet", url, str(target), cwd=work)
    took = time.perf_counter() - started
    shutil.rmtree(target, ignore_errors=True)
    return took


def load_wrk(url: str, seconds: int, connections: int) -> float:
    result = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", url],
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 30,
    )
    match = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    if result.returncode != 0 or match is None or "Non-2xx" in result.stdout:
        raise RuntimeError(f"wrk failed on {url}:\n{result.stdout}{result.stderr}")
    return float(match.group(1))


def load_python(url: str, seconds: int, connections: int) -> float:
    import urllib.request

    deadline = time.perf_counter() + seconds
    counts = [0] * connections

    def worker(slot: int) -> None:
        while time.perf_counter() < deadline:
            with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback
                answer.read()
            counts[slot] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started)


@contextlib.contextmanager
def running(servers: list[Server], ready: list[str]) -> Iterator[None]:
    try:
        for server, path in zip(servers, ready, strict=True):
            server.start(path)
        yield
    finally:
        for server in servers:
            server.stop()


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


# -- SSH ---------------------------------------------------------------------------


SSHD = "/usr/sbin/sshd"
HISTORY = 200


def start_sshd(folder: Path, name: str, port: int, body: str) -> subprocess.Popen[bytes]:
    host_key = folder / f"{name}_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    config = folder / f"{name}_sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"PidFile {folder / (name + '.pid')}\nUsePAM no\nPermitRootLogin forced-commands-only\n"
        "PubkeyAuthentication yes\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n" + body
    )
    log = (folder / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return process
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"sshd {name} did not start: {(folder / (name + '.log')).read_text()}"
            )
        time.sleep(0.05)


def timed_git(args: list[str], ssh: str, cwd: Path) -> float:
    env = {**os.environ, "GIT_SSH_COMMAND": ssh, "GIT_TERMINAL_PROMPT": "0"}
    start = time.perf_counter()
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.decode(errors='replace')}")
    return time.perf_counter() - start


def _older_snippet(ssh: Any, site: dict[str, Any], user: str, config: Path, work: Path) -> str:
    """The sshd snippet of a tree before the curl key lookup (run with that
    tree's interpreter), to compare: its ``srht-git-keys`` as nobody when
    nobody can run it."""
    program = str(Path(sys.executable).parent / "srht")
    probe = subprocess.run(
        ["runuser", "-u", "nobody", "--", program + "-git-keys", "--help"],
        capture_output=True,
        check=False,
    )
    keys_user = "nobody" if probe.returncode == 0 else user
    parameters = inspect.signature(ssh.sshd_snippet).parameters
    if "ssh_user" in parameters:
        # A tree before issue 16 (``srht git keys``).
        return str(ssh.sshd_snippet(user, program, str(config), keys_user=user))
    if "credential_file" in parameters:
        # The lookup credential in a file of the keys account's, as deployed.
        lookup = work / "git-ssh-keys"
        lookup.write_text(ssh.keys_secret(site).text)
        shutil.chown(lookup, keys_user)
        lookup.chmod(0o400)
        return str(
            ssh.sshd_snippet(
                site, program, str(config), keys_user=keys_user, credential_file=str(lookup)
            )
        )
    return str(ssh.sshd_snippet(site, program, str(config), keys_user=keys_user))


def _ssh_pieces(snippet: str, public: str, user: str, repo: Path, runs: int) -> dict[str, float]:
    """Where a login's time goes, each piece timed alone: sshd's key lookup
    (the snippet's AuthorizedKeysCommand), the forced
    command up to git's ref advertisement (stdin closed), and git-shell
    doing the same on the plain sshd's side."""
    line = next(x for x in snippet.splitlines() if "AuthorizedKeysCommand " in x)
    key_type, blob = public.split()[:2]
    words = shlex.split(line.split("AuthorizedKeysCommand ", 1)[1])
    lookup = [w.replace("%u", user).replace("%t", key_type).replace("%k", blob) for w in words]
    answer = subprocess.run(lookup, capture_output=True, text=True, check=True).stdout
    forced = shlex.split(answer.split('command="', 1)[1].split('" ', 1)[0].replace('\\"', '"'))
    env = {**os.environ, "SSH_ORIGINAL_COMMAND": f"git-upload-pack '~{OWNER}/history'"}
    cases = {
        "key lookup (sshd asks twice)": (lookup, None),
        "forced command to git's advertisement": (forced, env),
        "git-shell to git's advertisement": (
            ["git-shell", "-c", f"git-upload-pack '{repo}'"],
            None,
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    from srht_plugins.git import ssh_programs

    config, fingerprint = forced[-2], forced[-1]
    origin, network_key = ssh_programs.read_site(config)
    token = ssh_programs.credential(network_key, ssh_programs.SHELL)
    body = ssh_programs.access_request(fingerprint, env["SSH_ORIGINAL_COMMAND"].encode())
    access = "its request to the git service alone"
    times[access] = []
    for _ in range(runs):
        start = time.perf_counter()
        ssh_programs._post(origin, "/internal/ssh/access", token, body)
        times[access].append(time.perf_counter() - start)
    for _ in range(runs):
        for name, (command, environment) in cases.items():
            start = time.perf_counter()
            done = subprocess.run(
                command, env=environment, capture_output=True, stdin=subprocess.DEVNULL
            )
            times[name].append(time.perf_counter() - start)
            # git exits 128 when stdin closes after its advertisement.
            if b"refs/heads/main" not in done.stdout and b"restrict," not in done.stdout:
                raise RuntimeError(f"{name}: {done.stderr.decode(errors='replace')}")
    return {name: statistics.median(values) for name, values in times.items()}


def bench_ssh(runs: int, workers: int) -> int:
    """git over SSH through the service ÷ through a plain sshd with git-shell."""
    import getpass

    if os.geteuid() != 0 or not Path(SSHD).exists():
        print("SSH benchmark skipped: it needs root and openssh-server", file=sys.stderr)
        return 0
    work = Path(tempfile.mkdtemp(prefix="srht-bench-ssh-"))
    os.chmod(work, 0o755)  # noqa: S103 - sshd's keys account runs srht-git-keys from here
    processes: list[subprocess.Popen[bytes]] = []
    try:
        progress("SSH: making a site with meta and git, a user, a key, a repository")
        user = getpass.getuser()
        data = site_config(
            work / "data", {"meta": {}, "git": {"repos": str(work / "repos"), "ssh-user": user}}
        )
        config = work / "config.ini"
        config.write_text(dump_ini(data), encoding="utf-8")
        env = child_env(work)
        srht = [PYTHON, "-m", "srht_core.cli", "--config", str(config)]
        for service in ("meta", "git"):
            subprocess.run([*srht, "migrate", service], check=True, capture_output=True, env=env)
        subprocess.run(
            [*srht, "meta", "create-user", OWNER, "--email", "bench@example.org", "--no-password"],
            check=True,
            capture_output=True,
            env=env,
        )
        key = work / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        public = (work / "id_ed25519.pub").read_text()
        subprocess.run(
            [*srht, "meta", "add-ssh-key", OWNER],
            input=public.encode(),
            check=True,
            env=env,
            capture_output=True,
        )
        script = (
            "import sys\n"
            "from srht_core import create_app, db_session\n"
            "from srht_plugins.git.models import User\n"
            "from srht_plugins.git.repos import create_repository\n"
            "app = create_app('git', sys.argv[1])\n"
            "with app.app_context():\n"
            f"    user = User(id=1, username={OWNER!r}, email='bench@example.org')\n"
            "    db_session.add(user); db_session.commit()\n"
            "    print(create_repository(user, 'history').id)\n"
        )
        made = subprocess.run(
            [PYTHON, "-c", script, str(config)], check=True, capture_output=True, text=True, env=env
        )
        repo_id = made.stdout.strip().splitlines()[-1]
        repo = work / "repos" / f"{repo_id}.git"
        source = work / "history-src"
        git("init", "--quiet", "--initial-branch=main", str(source))
        (source / "README").write_text("A history of 200 commits.\n")
        for index in range(HISTORY):
            (source / "counter.txt").write_text(f"{index}\n")
            git("add", "--all", cwd=source)
            git("commit", "--quiet", "-m", f"Commit {index}", cwd=source)
        git("push", "--quiet", str(repo), "main", cwd=source)

        servers = []
        for service in ("meta", "git"):
            port = int(str(data[service]["origin"]).rsplit(":", 1)[1])
            server = Server(
                service,
                [*srht, "serve", service, "--bind", f"127.0.0.1:{port}", "--workers", str(workers)],
                port,
                work / f"{service}.log",
                env,
            )
            servers.append(server)
        from srht_plugins.git import ssh

        sshd_snippet: Any = ssh.sshd_snippet
        site = {name: dict(data[name]) for name in ("srht", "git")}
        if "curl" in inspect.signature(sshd_snippet).parameters:
            # The key lookup is curl, run as nobody with its config file, as deployed.
            lookup = work / "git-ssh-keys"
            lookup.write_text(ssh.keys_secret(site).text)
            shutil.chown(lookup, "nobody")
            lookup.chmod(0o400)
            snippet = sshd_snippet(site, keys_user="nobody", credential_file=str(lookup))
        else:
            lookup = None
            snippet = _older_snippet(ssh, site, user, config, work)
        service_port, plain_port = free_port(), free_port()
        processes.append(start_sshd(work, "service", service_port, snippet))
        authorized = work / "plain_authorized_keys"
        # root logs in only with a key's forced command (forced-commands-only).
        authorized.write_text('command="git-shell -c \\"$SSH_ORIGINAL_COMMAND\\"" ' + public)
        os.chmod(authorized, 0o600)
        processes.append(
            start_sshd(
                work,
                "plain",
                plain_port,
                # The key file is under /tmp, which everyone may write to.
                f"StrictModes no\nMatch User {user}\n    AuthorizedKeysFile {authorized}\n"
                "    PermitTTY no\n    DisableForwarding yes\n",
            )
        )
        with running(servers, ["/healthz", "/healthz"]):
            base_ssh = (
                f"ssh -i {key} -o IdentitiesOnly=yes -o BatchMode=yes -o LogLevel=ERROR "
                "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
            )
            cases = {
                "the service": (
                    f"{base_ssh} -p {service_port}",
                    f"{user}@127.0.0.1:~{OWNER}/history",
                ),
                "plain sshd + git-shell": (
                    f"{base_ssh} -p {plain_port}",
                    f"{user}@127.0.0.1:{repo}",
                ),
            }
            clones = {}
            for name, (ssh, url) in cases.items():
                clones[name] = work / f"clone-{len(clones)}"
                timed_git(["clone", "--quiet", url, str(clones[name])], ssh, work)
            operations = {
                "git ls-remote": lambda url, name: ["ls-remote", url],
                "no-op git fetch": lambda url, name: ["-C", str(clones[name]), "fetch", "--quiet"],
                f"clone of {HISTORY} commits": lambda url, name: [
                    "clone",
                    "--quiet",
                    "--bare",
                    url,
                    str(work / f"c-{time.monotonic_ns()}"),
                ],
            }
            load_before = os.getloadavg()
            times: dict[tuple[str, str], list[float]] = {}
            progress(f"SSH: {len(operations)} operations × {runs} runs × 2 servers")
            for run in range(runs):
                order = list(cases.items())
                for name, (ssh, url) in order if run % 2 == 0 else reversed(order):
                    for operation, make in operations.items():
                        seconds = timed_git(make(url, name), ssh, work)
                        times.setdefault((operation, name), []).append(seconds)
            pieces = _ssh_pieces(snippet, public, user, repo, runs) if lookup else {}
            load_after = os.getloadavg()
        print(
            f"\ngit over SSH · {time.strftime('%Y-%m-%d %H:%M')} · load "
            f"{load_before[0]:.1f} → {load_after[0]:.1f} · median of {runs}, wall seconds"
        )
        print(f"  {'operation':<22} {'plain sshd':>11} {'service':>9} {'ratio':>7}   target ≤ 1.3")
        for operation in operations:
            plain = statistics.median(times[(operation, "plain sshd + git-shell")])
            ours = statistics.median(times[(operation, "the service")])
            print(f"  {operation:<22} {plain:>10.3f}s {ours:>8.3f}s {ours / plain:>7.2f}")
        for piece, seconds in pieces.items():
            print(f"  {piece}: {seconds * 1000:.1f} ms (median of {runs})")
    except RuntimeError:
        for log in sorted(work.glob("*.log")):
            print(f"--- {log.name}", log.read_text(errors="replace")[-1500:], file=sys.stderr)
        raise
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(15)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--clones", type=int, help="clone rounds (default 6, quick 2)")
    parser.add_argument("--rounds", type=int, help="tree page rounds (default 6, quick 2)")
    parser.add_argument("--seconds", type=int, help="per tree page measurement (default 3)")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", choices=("http", "ssh"), help="one part (default: both)")
    parser.add_argument("--ssh-runs", type=int, help="SSH runs per operation (default 10)")
    parser.add_argument("--serve-baseline", nargs=5, metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_baseline:
        serve_baseline(args.serve_baseline)
        return 0
    if args.only != "http":
        code = bench_ssh(args.ssh_runs or (4 if args.quick else 10), args.workers)
        if args.only == "ssh" or code:
            return code
    clones = args.clones or (2 if args.quick else 6)
    rounds = args.rounds or (2 if args.quick else 6)
    seconds = args.seconds or (2 if args.quick else 3)
    signal.signal(signal.SIGTERM, _interrupt)
    generator: Callable[[str, int, int], float] = load_wrk if shutil.which("wrk") else load_python

    work = Path(tempfile.mkdtemp(prefix="srht-bench-git-"))
    try:
        progress("making the site and its repositories")
        config, ids = make_site(work)
        repos = work / "repos"
        size = fill_big(work, repos / f"{ids['big']}.git")
        fill_wide(work, repos / f"{ids['wide']}.git")
        page = work / "page.html"
        env = child_env(work)
        service = Server(
            "git",
            [
                PYTHON,
                "-m",
                "srht_core.cli",
                "--config",
                str(config),
                "serve",
                "git",
                "--bind",
                "127.0.0.1:{port}",
                "--workers",
                str(args.workers),
            ],
            free_port(),
            work / "git.log",
            env,
        )
        service.command = [c.format(port=service.port) for c in service.command]
        baseline = Server(
            "baseline",
            [
                PYTHON,
                str(HERE),
                "--serve-baseline",
                str(config),
                "",
                str(args.workers),
                str(repos),
                str(page),
            ],
            free_port(),
            work / "baseline.log",
            env,
        )
        baseline.command[4] = f"127.0.0.1:{baseline.port}"
        tree_path = f"/~{OWNER}/wide/tree/main/item/many"

        with running([service], ["/healthz"]):
            import urllib.request

            with urllib.request.urlopen(service.url + tree_path, timeout=60) as answer:  # noqa: S310
                page.write_bytes(answer.read())
        with running([service, baseline], ["/healthz", "/page"]):
            service_clone = f"{service.url}/~{OWNER}/big"
            baseline_clone = f"{baseline.url}/{ids['big']}.git"
            progress(f"clone of {size / 2**20:.0f} MiB: {clones} rounds")
            time_clone(service_clone, work)
            time_clone(baseline_clone, work)
            service_times, baseline_times = Samples(), Samples()
            for index in range(clones):
                order = [(service_clone, service_times), (baseline_clone, baseline_times)]
                for url, samples in order if index % 2 == 0 else reversed(order):
                    samples.values.append(time_clone(url, work))
            clone_ratio = ratios(service_times, baseline_times, higher_is_better=False)

            progress(f"tree page of {WIDE_FILES} files: {rounds} rounds × {seconds} s")
            generator(service.url + tree_path, 1, args.connections)
            generator(baseline.url + "/page", 1, args.connections)
            service_rps, baseline_rps = Samples(), Samples()
            for index in range(rounds):
                order = [
                    (service.url + tree_path, service_rps),
                    (baseline.url + "/page", baseline_rps),
                ]
                for url, samples in order if index % 2 == 0 else reversed(order):
                    samples.values.append(generator(url, seconds, args.connections))
            page_ratio = ratios(service_rps, baseline_rps, higher_is_better=True)
            peak = service.worker_peak_rss()

        load = os.getloadavg()[0]
        print(
            f"\ngit benchmark · {time.strftime('%Y-%m-%d %H:%M')} · load {load:.1f} · "
            f"{os.cpu_count()} cores · {args.workers} workers"
        )
        print(
            f"\nClone of a {size / 2**20:.0f} MiB repository (git clone --bare, "
            f"{clones} rounds, median seconds):"
        )
        print(
            f"  git http-backend directly  {baseline_times.median():6.2f} s  "
            f"{size / 2**20 / baseline_times.median():6.1f} MiB/s"
        )
        print(
            f"  the service                {service_times.median():6.2f} s  "
            f"{size / 2**20 / service_times.median():6.1f} MiB/s"
        )
        print(f"  service ÷ direct (throughput): {spread(clone_ratio)}   target ≥ 0.90")
        print(
            f"\nTree page of {WIDE_FILES} files ({len(page.read_bytes()) / 1024:.0f} kB; "
            f"{rounds} rounds × {seconds} s, {args.connections} connections):"
        )
        print(f"  bare Flask, same bytes     {baseline_rps.median():7.1f} req/s")
        print(f"  the service                {service_rps.median():7.1f} req/s")
        print(f"  service ÷ bare: {spread(page_ratio)}")
        print(f"\nPeak RSS of a service worker afterwards: {peak / 2**20:.0f} MiB")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
