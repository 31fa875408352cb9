"""git's web pages against cgit, behind the same nginx, as rate ratios.

    python benchmarks/bench_git_pages.py            # full run (a few minutes)
    python benchmarks/bench_git_pages.py --quick    # short run

One repository (200 commits, a README, a Python file changed by each
commit, a folder of 1,000 files) is served on loopback by one nginx:
``/cgit/`` by cgit (Debian's package, its defaults: no cache, no source
filter) through fcgiwrap with 2 children, everything else by the git
service under ``srht serve`` (gunicorn, 2 sync workers, SQLite). cgit and
fcgiwrap are installed with apt-get when missing (they are in bookworm;
root needed then).

Each page is loaded by ``wrk -t1 -c4`` (or a Python load generator when
wrk is missing) in alternating rounds, srht then cgit then cgit then srht,
so that the load of a shared machine falls on both; the ratio is srht's
rate ÷ cgit's, per round, and the median is printed. Two views per page:

- *rendered*: every request carries a new query string (``?n=1``, ``?n=2``
  ...), which neither server reads, so srht renders each one as on a first
  view (its kept pages are keyed by URL) and cgit does what it always does;
- *repeated*: the same URL again and again, as a page people share is
  viewed: srht answers from the worker's kept rendering after resolving the
  branch (or nothing, for a commit page) and checking access.

Targets (issue 16): ≥ 1.0 on summary, log, tree, blob and commit; ≥ 3.0 on
a repeated view of the same commit's page. Everything runs in a temporary
folder removed afterwards; the servers are stopped by their PID.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench_git import OWNER, Samples, Server, child_env, git, load_python, progress, ratios, spread

from srht_core.config import dump_ini
from srht_core.testing import free_port, site_config, wait_for_http

PYTHON = sys.executable
COMMITS = 200
FILES = 1000
CGIT = Path("/usr/lib/cgit/cgit.cgi")
NAME = "pages"


@dataclass(frozen=True)
class Page:
    name: str
    srht: str
    cgit: str


def ensure_cgit() -> None:
    """cgit, fcgiwrap and nginx from Debian, installed if missing."""
    missing = [
        package
        for package, found in (
            ("cgit", CGIT.exists()),
            ("fcgiwrap", shutil.which("fcgiwrap") or Path("/usr/sbin/fcgiwrap").exists()),
            ("nginx", shutil.which("nginx") or Path("/usr/sbin/nginx").exists()),
        )
        if not found
    ]
    if not missing:
        return
    progress(f"installing {', '.join(missing)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def python_file(version: int) -> str:
    lines = [f"# Revision {version}\n"]
    for index in range(60):
        lines.append(f"def step_{index}(value: int) -> int:\n")
        lines.append(f'    """Step {index}."""\n    return value * {index} + {version}\n\n')
    return "".join(lines)


def history() -> bytes:
    """A fast-import stream: a README, a folder of FILES files and a
    Python file in the first commit; each later commit changes the
    Python file."""
    stream = []
    for number in range(1, COMMITS + 1):
        message = f"Commit number {number}\n".encode()
        stream.append(
            b"commit refs/heads/main\n"
            + f"author Bench <bench@example.org> {1_700_000_000 + number * 60} +0000\n".encode()
            + f"committer Bench <bench@example.org> {1_700_000_000 + number * 60} +0000\n".encode()
            + f"data {len(message)}\n".encode()
            + message
        )
        files = {"src/main.py": python_file(number)}
        if number == 1:
            files["README.md"] = (
                "# Pages\n\nA repository to *benchmark* git's pages.\n\n"
                "```python\nprint('hello')\n```\n\n- one\n- two\n"
            )
            for index in range(FILES):
                files[f"many/file-{index:04d}.txt"] = f"file {index}\n"
        for path, text in files.items():
            data = text.encode()
            stream.append(f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data)
        stream.append(b"\n")
    return b"".join(stream)


def make_site(work: Path) -> tuple[Path, dict[str, object], Path]:
    """A config enabling git (SQLite), migrated, with a user owning one
    public repository filled with the history; the config, its data and
    the repository's folder."""
    data = site_config(work / "data", {"git": {"repos": str(work / "repos")}})
    config = work / "config.ini"
    config.write_text(dump_ini(data), encoding="utf-8")
    env = child_env(work)
    subprocess.run(
        [PYTHON, "-m", "srht_core.cli", "--config", str(config), "migrate", "git"],
        check=True,
        capture_output=True,
        env=env,
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
        f"    print(create_repository(user, {NAME!r}, visibility='public').folder)\n"
    )
    made = subprocess.run(
        [PYTHON, "-c", script, str(config)], check=True, capture_output=True, text=True, env=env
    )
    target = work / "repos" / made.stdout.strip().splitlines()[-1]
    source = work / "source"
    git("init", "--quiet", "--initial-branch=main", str(source))
    git("fast-import", "--quiet", cwd=source, stdin=history())
    git("push", "--quiet", str(target), "main", cwd=source)
    return config, data, target


def nginx_conf(work: Path, port: int, service_port: int, repo: Path) -> Path:
    cgitrc = work / "cgitrc"
    cgitrc.write_text(
        "virtual-root=/cgit/\ncss=/cgit-css/cgit.css\nlogo=\n"
        f"repo.url={NAME}\nrepo.path={repo}\nrepo.desc=A repository to benchmark\n"
    )
    conf = work / "nginx.conf"
    conf.write_text(
        f"""
user root;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {work}/nginx-body;
    proxy_temp_path {work}/nginx-proxy;
    fastcgi_temp_path {work}/nginx-fastcgi;
    uwsgi_temp_path {work}/nginx-uwsgi;
    scgi_temp_path {work}/nginx-scgi;
    server {{
        listen 127.0.0.1:{port};
        location /cgit/ {{
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME {CGIT};
            fastcgi_split_path_info ^(/cgit)(/.*)$;
            fastcgi_param SCRIPT_NAME /cgit;
            fastcgi_param PATH_INFO $fastcgi_path_info;
            fastcgi_param QUERY_STRING $args;
            fastcgi_param CGIT_CONFIG {cgitrc};
            fastcgi_pass unix:{work}/fcgiwrap.sock;
        }}
        location / {{
            proxy_pass http://127.0.0.1:{service_port};
            proxy_set_header Host 127.0.0.1:{service_port};
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
    }}
}}
"""
    )
    return conf


@contextlib.contextmanager
def started(command: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    """A process of ours for the block, stopped by its PID."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        yield
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


UNIQUE_QUERY = """
counter = 0
separator = string.find(wrk.path, "?", 1, true) and "&" or "?"
request = function()
  counter = counter + 1
  return wrk.format(nil, wrk.path .. separator .. "n=" .. counter)
end
"""


def load(url: str, seconds: int, connections: int, work: Path, *, unique: bool) -> float:
    """Requests per second on ``url`` (with a new query string each time
    when ``unique``)."""
    if shutil.which("wrk") is None:
        if unique:
            raise RuntimeError("the rendered figures need wrk (apt-get install wrk)")
        return load_python(url, seconds, connections)
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    if unique:
        script = work / "unique.lua"
        script.write_text(UNIQUE_QUERY)
        command += ["-s", str(script)]
    result = subprocess.run(
        [*command, url], capture_output=True, text=True, check=False, timeout=seconds + 30
    )
    match = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    if result.returncode != 0 or match is None or "Non-2xx" in result.stdout:
        raise RuntimeError(f"wrk failed on {url}:\n{result.stdout}{result.stderr}")
    return float(match.group(1))


def check_page(url: str, marker: str) -> None:
    import urllib.request

    with urllib.request.urlopen(url, timeout=60) as answer:  # noqa: S310 - loopback
        body = answer.read().decode(errors="replace")
    if marker not in body:
        raise RuntimeError(f"{url} does not show {marker!r}:\n{body[:2000]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--rounds", type=int, help="rounds per page (default 8, quick 2)")
    parser.add_argument("--seconds", type=int, help="per measurement (default 2)")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pages", help="only these pages (comma-separated names)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 8)
    seconds = args.seconds or 2
    ensure_cgit()

    work = Path(tempfile.mkdtemp(prefix="srht-bench-pages-"))
    try:
        progress(f"making the site and a repository of {COMMITS} commits, {FILES} files")
        config, _data, repo = make_site(work)
        head = git("--git-dir", str(repo), "rev-parse", "main").strip()
        middle = git("--git-dir", str(repo), "rev-parse", "main~100").strip()
        base = f"/~{OWNER}/{NAME}"
        pages = [
            Page("summary", base, f"/cgit/{NAME}/"),
            Page("log", f"{base}/log", f"/cgit/{NAME}/log/"),
            Page("tree (1,000 files)", f"{base}/tree/main/item/many", f"/cgit/{NAME}/tree/many"),
            Page("blob", f"{base}/tree/main/item/src/main.py", f"/cgit/{NAME}/tree/src/main.py"),
            Page("commit", f"{base}/commit/{middle}", f"/cgit/{NAME}/commit/?id={middle}"),
        ]
        if args.pages:
            wanted = {name.strip() for name in args.pages.split(",")}
            pages = [page for page in pages if page.name.split()[0] in wanted]
        service_port, port = free_port(), free_port()
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
                f"127.0.0.1:{service_port}",
                "--workers",
                str(args.workers),
            ],
            service_port,
            work / "git.log",
            env,
        )
        conf = nginx_conf(work, port, service_port, repo)
        fcgiwrap = ["fcgiwrap", "-c", "2", "-s", f"unix:{work}/fcgiwrap.sock"]
        nginx = ["nginx", "-c", str(conf), "-g", "daemon off;"]
        front = f"http://127.0.0.1:{port}"
        with (
            started(fcgiwrap, work / "fcgiwrap.log"),
            started(nginx, work / "nginx.log"),
        ):
            service.start("/healthz")
            try:
                wait_for_http(front + "/healthz", timeout=30)
                for page in pages:
                    check_page(front + page.srht, "</html>")
                    check_page(front + page.cgit, "</html>")
                check_page(front + f"/cgit/{NAME}/commit/?id={head}", "Commit number 200")
                results: dict[tuple[str, str], Samples] = {}
                load_before = os.getloadavg()
                views = [("rendered", True), ("repeated", False)]
                progress(
                    f"{len(pages)} pages × 2 views × {rounds} rounds × 2 servers × {seconds} s"
                )
                for page in pages:
                    for view, unique in views:
                        ours, theirs = Samples(), Samples()
                        order = [(page.srht, ours), (page.cgit, theirs)]
                        for url, _samples in order:  # warm both
                            load(front + url, 1, args.connections, work, unique=unique)
                        for index in range(rounds):
                            for url, samples in order if index % 2 == 0 else reversed(order):
                                samples.values.append(
                                    load(
                                        front + url, seconds, args.connections, work, unique=unique
                                    )
                                )
                        results[(page.name, view)] = ours
                        results[(page.name, view + " cgit")] = theirs
                load_after = os.getloadavg()
            finally:
                service.stop()
        print(
            f"\ngit pages ÷ cgit · {time.strftime('%Y-%m-%d %H:%M')} · load "
            f"{load_before[0]:.1f} → {load_after[0]:.1f} · {os.cpu_count()} cores · "
            f"{args.workers} gunicorn workers, fcgiwrap -c 2 · wrk -t1 -c{args.connections}, "
            f"{rounds} rounds × {seconds} s"
        )
        print(
            f"  {'page':<20} {'view':<9} {'cgit req/s':>10} {'srht req/s':>10}  "
            "srht ÷ cgit (median, range)"
        )
        summary: dict[str, object] = {}
        for page in pages:
            for view, _unique in views:
                ours, theirs = results[(page.name, view)], results[(page.name, view + " cgit")]
                ratio = ratios(ours, theirs, higher_is_better=True)
                summary[f"{page.name} {view}"] = round(ratio.median(), 2)
                print(
                    f"  {page.name:<20} {view:<9} {theirs.median():>10.0f} "
                    f"{ours.median():>10.0f}  {spread(ratio)}"
                )
        print("  targets: ≥ 1.0 per page; ≥ 3.0 on the repeated commit page")
        print(json.dumps(summary), file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except RuntimeError:
        for log in sorted(work.glob("*.log")):
            print(f"--- {log.name}", log.read_text(errors="replace")[-1500:], file=sys.stderr)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
