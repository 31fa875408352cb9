"""Benchmarks of the srht core, as ratios against a baseline run side by side.

    python benchmarks/bench_core.py            # full run (a few minutes)
    python benchmarks/bench_core.py --quick    # short run (well under a minute)

1. Start-up: plugin discovery and ``create_app``, each in fresh interpreters,
   against ``python -c 'import srht_core'``; for the installed services and for
   50 generated dummy services installed as real distributions (a
   ``.dist-info`` with ``entry_points.txt`` on ``PYTHONPATH``).
2. HTTP: requests per second of a dummy service's page extending
   ``srht/base.html``, served by ``srht serve`` (gunicorn, 2 sync workers),
   against a bare Flask app answering the same bytes through the same
   ``srht_core.serve`` code; plus the core app answering the same bytes
   cached (its request handling alone) and with only the layout rendered,
   and ``/healthz``. Rounds alternate between them.

See benchmarks/README.md for what the figures mean.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from srht_core.config import dump_ini
from srht_core.testing import free_port, site_config, wait_for_http

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
DUMMIES = 50
SERVED_SERVICES = 8  # services enabled in the served site: a realistic nav bar
SERVED = "bench-00"

# -- dummy services ------------------------------------------------------------

PLUGIN_MODULE = '''\
"""Benchmark dummy service {index}: one page, served three ways."""

from flask import Blueprint, render_template
from markupsafe import Markup

from srht_core import Integer, Key, NavEntry, Section, ServiceInfo, Text, hookimpl

NAME = "{name}"
TITLE = "Dummy {index}"
ITEMS = range(20)
bp = Blueprint("{module}", __name__)
_rendered: dict[str, str] = {{}}


@bp.get("/")
def page() -> str:
    """The page: the shared layout around a list of links."""
    return render_template("{module}/page.html", items=ITEMS)


@bp.get("/layout")
def layout() -> str:
    """The same bytes: the shared layout around the list rendered once."""
    if "items" not in _rendered:
        _rendered["items"] = render_template("{module}/items.html", items=ITEMS)
    return render_template("{module}/layout.html", content=Markup(_rendered["items"]))


@bp.get("/cached")
def cached() -> str:
    """The same bytes, rendered once."""
    if "page" not in _rendered:
        _rendered["page"] = page()
    return _rendered["page"]


@bp.get("/items/<int:number>")
def item(number: int) -> str:
    return f"item {{number}}"


@hookimpl
def service_info() -> ServiceInfo:
    return ServiceInfo(NAME, TITLE, "A generated service for benchmarks.",
                       core_requires=">=0.1.0.dev0", default_port={port})


@hookimpl
def config_schema() -> list[Section]:
    return [Section(NAME, (
        Key("greeting", Text(), default="Hello from {name}."),
        Key("page-size", Integer(min=1, max=100), default=20),
    ))]


@hookimpl
def blueprints(config: object) -> list[Blueprint]:
    return [bp]


@hookimpl
def nav_entries(config: object) -> list[NavEntry]:
    return [NavEntry(TITLE, "/", order={index})]
'''

# Templates of each dummy service, by file name; MODULE is its package.
TEMPLATES = {
    "page.html": """\
{% extends "srht/base.html" %}
{% block title %}Items · {{ super() }}{% endblock %}
{% block content %}{% include "MODULE/items.html" %}{% endblock %}
""",
    "layout.html": """\
{% extends "srht/base.html" %}
{% block title %}Items · {{ super() }}{% endblock %}
{% block content %}{{ content }}{% endblock %}
""",
    "items.html": """\
<h1>{{ srht.service.title }}</h1>
<p>{{ srht.section["greeting"] }}</p>
<ul class="items">
  {% for number in items %}
  <li><a href="{{ url_for('.item', number=number) }}">Item {{ number }}</a></li>
  {% endfor %}
</ul>
""",
}


def service_name(index: int) -> str:
    return f"bench-{index:02d}"


def write_dummies(root: Path, count: int = DUMMIES) -> list[str]:
    """Write ``count`` dummy services into ``root`` as installed distributions
    (a package and its ``.dist-info``); return their service names."""
    names = []
    for index in range(count):
        name, module = service_name(index), f"srht_bench_dummy_{index:02d}"
        package = root / module
        (package / "templates" / module).mkdir(parents=True)
        (package / "__init__.py").write_text(
            PLUGIN_MODULE.format(index=index, name=name, module=module, port=6000 + index)
        )
        for filename, text in TEMPLATES.items():
            (package / "templates" / module / filename).write_text(text.replace("MODULE", module))
        dist_info = root / f"{module}-0.1.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: srht-bench-dummy-{index:02d}\nVersion: 0.1\n"
            "Summary: A generated srht service for benchmarks\n"
        )
        (dist_info / "entry_points.txt").write_text(f"[srht.services]\n{name} = {module}\n")
        names.append(name)
    return names


def write_config(path: Path, data_dir: Path, services: list[str]) -> Path:
    path.write_text(dump_ini(site_config(data_dir, {name: {} for name in services})))
    return path


# -- measuring -------------------------------------------------------------------


@dataclass
class Samples:
    """Repeated measurements of one case, and what to say about them."""

    label: str
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def spread(self) -> str:
        return f"{min(self.values):.0f}–{max(self.values):.0f}"

    def ratios(self, baseline: Samples) -> list[float]:
        """Each measurement divided by the baseline's of the same run."""
        return [mine / base for mine, base in zip(self.values, baseline.values, strict=True)]


def print_table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        print("  ".join(cells))


def child_env(work: Path, pythonpath: str = "") -> dict[str, str]:
    """The environment of the interpreters we start: ``pythonpath`` in front,
    no ``$SRHT_CONFIG``, and a bytecode cache of their own (in the work
    folder), so that they run from bytecode as an installed system does even
    where ``PYTHONDONTWRITEBYTECODE`` is set, without writing into the repo."""
    env = dict(os.environ)
    env.pop("SRHT_CONFIG", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
    return env


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- 1. start-up -------------------------------------------------------------------

# Each snippet runs in a fresh interpreter and prints one JSON line: the time
# spent in its own steps, and what it found.
IMPORT_SNIPPET = "import srht_core"
DISCOVER_SNIPPET = """
import json, time
import srht_core
started = time.perf_counter()
host = srht_core.PluginHost()
took = time.perf_counter() - started
print(json.dumps({"services": [r.name for r in host.services()], "step_ms": took * 1000}))
"""
CREATE_APP_SNIPPET = """
import json, sys, time
import srht_core
started = time.perf_counter()
app = srht_core.create_app(sys.argv[1], sys.argv[2])
took = time.perf_counter() - started
state = app.extensions["srht"]
print(json.dumps({"services": [link.service for link in state.nav], "step_ms": took * 1000}))
"""


@dataclass
class StartupCase:
    label: str
    code: str
    work: Path
    args: list[str] = field(default_factory=list)
    pythonpath: str = ""
    note: str = ""
    wall: Samples = field(init=False)
    step: Samples = field(init=False)
    found: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.wall = Samples(self.label)
        self.step = Samples(self.label)

    def warm_up(self) -> None:
        """A first run: checks the case works, fills the bytecode cache."""
        self.run_once()
        self.wall.values.clear()
        self.step.values.clear()

    def run_once(self) -> None:
        env = child_env(self.work, self.pythonpath)
        started = time.perf_counter()
        result = subprocess.run(
            [PYTHON, "-c", self.code, *self.args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        wall = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(f"{self.label} failed:\n{result.stderr}")
        self.wall.values.append(wall * 1000)
        lines = result.stdout.strip().splitlines()
        if lines:
            report = json.loads(lines[-1])
            self.step.values.append(report["step_ms"])
            self.found = report["services"]


def bench_startup(work: Path, runs: int) -> None:
    dummies = work / "site-packages"
    dummies.mkdir()
    names = write_dummies(dummies)
    all_enabled = write_config(work / "all50.ini", work / "data-all50", names)
    with_dummies = str(dummies)

    plain = StartupCase("python -c pass", "pass", work, pythonpath=with_dummies)
    baseline = StartupCase(
        "import srht_core (baseline)", IMPORT_SNIPPET, work, pythonpath=with_dummies
    )
    installed = StartupCase("PluginHost(), installed services only", DISCOVER_SNIPPET, work)
    discover = StartupCase(
        f"PluginHost(), + {DUMMIES} dummy services", DISCOVER_SNIPPET, work, pythonpath=with_dummies
    )
    create = StartupCase(
        f"create_app({SERVED!r}), {DUMMIES} enabled",
        CREATE_APP_SNIPPET,
        work,
        [SERVED, str(all_enabled)],
        pythonpath=with_dummies,
    )
    cases = [plain, baseline, installed, discover, create]
    for case in cases:
        case.warm_up()
    if len(discover.found) - len(installed.found) != DUMMIES:
        raise RuntimeError(f"discovery found {discover.found}, expected {DUMMIES} dummies")
    if len(create.found) != DUMMIES:
        raise RuntimeError(
            f"create_app's nav names {len(create.found)} services, expected {DUMMIES}"
        )

    builtin = list(installed.found)
    if builtin:
        config = write_config(work / "installed.ini", work / "data-installed", builtin)
        builtin_create = StartupCase(
            f"create_app({builtin[0]!r}), installed enabled",
            CREATE_APP_SNIPPET,
            work,
            [builtin[0], str(config)],
        )
        try:
            builtin_create.warm_up()
            cases.append(builtin_create)
        except RuntimeError as error:
            installed.note = f"create_app skipped: {str(error).strip().splitlines()[-1]}"

    for run in range(runs):
        progress(f"start-up: run {run + 1}/{runs}")
        # Rotate the order so no case always runs first (or last).
        shift = run % len(cases)
        for case in cases[shift:] + cases[:shift]:
            case.run_once()

    rows = []
    for case in cases:
        step = f"{case.step.median:.1f}" if case.step.values else "–"
        ratio = statistics.median(case.wall.ratios(baseline.wall))
        rows.append([case.label, f"{case.wall.median:.0f}", case.wall.spread, step, f"{ratio:.2f}"])
    print_table(
        f"Start-up, fresh interpreter each run (median of {runs}; ms)",
        ["case", "wall ms", "min–max", "step ms", "÷ import srht_core"],
        rows,
    )
    if builtin:
        print(f"  installed services: {', '.join(builtin)}")
        if installed.note:
            print(f"  {installed.note}")
    else:
        print(
            "  installed services: none found, so there is no create_app row for them; "
            "their discovery row is the cost of scanning an empty entry-point group."
        )
    print(
        "  wall: the whole interpreter run; step: the discovery or create_app call alone "
        "(create_app includes its own discovery);\n  ÷ import srht_core: each run's wall "
        "time divided by the baseline's in the same run, median over the runs."
    )


# -- 2. HTTP -----------------------------------------------------------------------


@dataclass
class Server:
    """A gunicorn server we started, stopped by its PID."""

    name: str
    port: int
    command: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("wb") as log:
            # Its own session: a Ctrl-C in the terminal reaches only us, and we
            # stop the server (and its workers) ourselves.
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )

    def wait_ready(self, path: str) -> None:
        try:
            wait_for_http(self.url + path, timeout=60, process=self.process)
        except (RuntimeError, TimeoutError) as error:
            raise RuntimeError(
                f"{self.name} did not start: {error}\n"
                f"{self.log.read_text(errors='replace')[-3000:]}"
            ) from None

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()  # gunicorn: graceful stop of master and workers
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                # The server's own process group: its master and workers.
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.process = None


def fetch(url: str) -> tuple[int, bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        connection.request("GET", parts.path or "/")
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def load_wrk(url: str, seconds: int, connections: int) -> float:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", url]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    out = result.stdout
    if result.returncode != 0 or "Requests/sec" not in out:
        raise RuntimeError(f"wrk failed on {url}:\n{out}{result.stderr}")
    if "Non-2xx" in out:
        raise RuntimeError(f"errors from {url}:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match is not None
    return float(match.group(1))


def load_python(url: str, seconds: int, connections: int, max_requests: int = 200_000) -> float:
    """A bounded load generator for machines without wrk: ``connections``
    threads, each sending one request per connection (gunicorn's sync
    workers close it anyway) until the time or the request budget runs out."""
    deadline = time.perf_counter() + seconds
    counts = [0] * connections
    failures: list[str] = []
    budget = max_requests // connections

    def worker(slot: int) -> None:
        while counts[slot] < budget and time.perf_counter() < deadline and not failures:
            try:
                status, _body = fetch(url)
            except OSError as error:
                failures.append(repr(error))
                return
            if status != 200:
                failures.append(f"HTTP {status}")
                return
            counts[slot] += 1

    started = time.perf_counter()
    threads = [
        threading.Thread(target=worker, args=(slot,), daemon=True) for slot in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    took = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"errors from {url}: {failures[0]}")
    return sum(counts) / took


@contextlib.contextmanager
def running(servers: list[Server]) -> Iterator[None]:
    try:
        for server in servers:
            server.start()
        yield
    finally:
        for server in servers:
            server.stop()


def bench_http(
    work: Path, rounds: int, seconds: int, connections: int, workers: int, use_wrk: bool
) -> None:
    site = work / "http-site"
    site.mkdir()
    names = write_dummies(site, SERVED_SERVICES)
    config = write_config(work / "served.ini", work / "data-served", names)
    env = child_env(work, str(site))
    body_file = work / "page.html"

    core_port, bare_port = free_port(), free_port()
    core = Server(
        "srht serve",
        core_port,
        [
            PYTHON,
            "-m",
            "srht_core.cli",
            "--config",
            str(config),
            "serve",
            SERVED,
            "--bind",
            f"127.0.0.1:{core_port}",
            "--workers",
            str(workers),
        ],
        env,
        work / "core.log",
    )
    bare = Server(
        "bare Flask",
        bare_port,
        [
            PYTHON,
            str(HERE / "bare_server.py"),
            str(config),
            SERVED,
            f"127.0.0.1:{bare_port}",
            str(workers),
            str(body_file),
        ],
        env,
        work / "bare.log",
    )

    generator: Callable[[str, int, int], float] = load_wrk if use_wrk else load_python

    with running([core]):
        core.wait_ready("/healthz")
        status, body = fetch(core.url + "/")
        if status != 200:
            raise RuntimeError(f"the page answered {status}:\n{body[:500]!r}")
        body_file.write_bytes(body)
        with running([bare]):
            bare.wait_ready("/")
            # (label, URL, whether it answers exactly the page's bytes)
            checks = [
                ("bare Flask, static bytes (baseline)", bare.url + "/", True),
                ("core app, page cached (no rendering)", core.url + "/cached", True),
                ("core app, layout only (content cached)", core.url + "/layout", True),
                ("core app, page (layout + 20 links)", core.url + "/", True),
                ("core app, /healthz (SQLite SELECT 1)", core.url + "/healthz", False),
            ]
            for label, url, same_bytes in checks:
                status, answer = fetch(url)
                if status != 200:
                    raise RuntimeError(f"{label}: {url} answered {status}")
                if same_bytes and answer != body:
                    raise RuntimeError(f"{label}: {url} does not answer the page's bytes")
                generator(url, 1, connections)  # warm-up
            cases = {label: url for label, url, _ in checks}
            samples = {label: Samples(label) for label in cases}
            order = list(cases)
            for run in range(rounds):
                progress(f"http: round {run + 1}/{rounds}")
                for label in order if run % 2 == 0 else order[::-1]:
                    samples[label].values.append(generator(cases[label], seconds, connections))

    base = samples[order[0]]
    rows = []
    for case in samples.values():
        ratios = case.ratios(base)
        rows.append(
            [
                case.label,
                f"{case.median:.0f}",
                case.spread,
                f"{statistics.median(ratios):.2f}",
                f"{min(ratios):.2f}–{max(ratios):.2f}",
            ]
        )
    print_table(
        f"HTTP, gunicorn via srht_core.serve, {workers} sync workers, "
        f"{connections} connections, {rounds} rounds × {seconds}s (median)",
        ["case", "req/s", "min–max", "÷ bare", "min–max"],
        rows,
    )
    print(
        f"  page: {len(body)} bytes, {SERVED_SERVICES} services in the nav bar; "
        f"load: {'wrk' if use_wrk else 'Python threads'}"
    )
    print(
        "  ÷ bare: each round's req/s divided by the bare app's in the same round; "
        "median and range over the rounds."
    )


# -- main ----------------------------------------------------------------------------


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs")
    parser.add_argument("--only", choices=("startup", "http"), help="run one benchmark")
    parser.add_argument("--runs", type=int, help="start-up runs per case (default 15, quick 5)")
    parser.add_argument("--rounds", type=int, help="HTTP rounds (default 8, quick 3)")
    parser.add_argument(
        "--seconds", type=int, help="seconds per HTTP measurement (default 3, quick 2)"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=4,
        help="concurrent connections of the load generator (default 4)",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument(
        "--python-load",
        action="store_true",
        help="use the Python load generator even when wrk is installed",
    )
    args = parser.parse_args(argv)
    runs = args.runs or (5 if args.quick else 15)
    rounds = args.rounds or (3 if args.quick else 8)
    seconds = args.seconds or (2 if args.quick else 3)

    # A SIGTERM stops us like a Ctrl-C does: through the finally blocks that
    # stop the servers and remove the work folder.
    signal.signal(signal.SIGTERM, _interrupt)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    started = time.monotonic()
    print(
        textwrap.dedent(f"""\
        srht core benchmarks — {time.strftime("%Y-%m-%d %H:%M")}, {os.cpu_count()} CPUs,
        Python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f}""")
    )
    work = Path(tempfile.mkdtemp(prefix="srht-bench-"))
    try:
        if args.only in (None, "startup"):
            bench_startup(work, runs)
        if args.only in (None, "http"):
            use_wrk = shutil.which("wrk") is not None and not args.python_load
            bench_http(work, rounds, seconds, args.connections, args.workers, use_wrk)
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped.", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ndone in {time.monotonic() - started:.0f}s, load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
