"""hub: the home page and a project page with a 1,000-event feed against a
bare Flask response, under the same gunicorn.

hub runs alone on its PostgreSQL database: 50 public projects of 10 users
(the home page lists the 12 most recent), and one project with a public
repository attached whose 1,000 pushes were recorded as hub records
webhook deliveries (the page shows the newest 30). The repository's
service is not running: a project page asks it at most once per 15
seconds per resource (hub keeps the answer, or that it did not answer, as
in production), so the rounds measure hub's own work.

Each page is measured with ``srht serve``'s gunicorn (2 sync workers)
against ``bare_server.py`` answering the same bytes, in alternating
rounds (as ``bench_pages.py``). Target (issue 17): at least 0.33.

    python benchmarks/bench_hub.py [--quick] [--python-load]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_core import Server, child_env, fetch, load_python, load_wrk, running

from srht_core import create_app, db_session, state_of
from srht_core.config import dump_ini
from srht_core.migrate import upgrade
from srht_core.testing import free_port, site_config, throwaway_postgres

HERE = Path(__file__).parent
EVENTS = 1_000


def populate(app: object) -> None:
    from srht_plugins.hub.models import Attachment, Event, Project, Source, User

    with app.app_context():  # type: ignore[attr-defined]
        users = [
            User(id=n, username=f"user{n}", email=f"user{n}@example.org") for n in range(1, 11)
        ]
        db_session.add_all(users)
        for n in range(50):
            db_session.add(
                Project(
                    owner=users[n % 10],
                    name=f"project-{n}",
                    description=f"Project number {n}, a tool for things",
                    readme="# Hello\n\nA *README* with a [link](https://example.org).\n" * 5,
                    visibility="public",
                    tags="python tools",
                )
            )
        big = Project(
            owner=users[0],
            name="busy",
            description="A busy project",
            readme="# Busy\n\n" + "Some text about the project. " * 40,
            visibility="public",
            tags="busy",
        )
        source = Source(
            owner=users[0],
            service="git",
            kind="repository",
            item="/api/~user1/repos/busy",
            title="~user1/busy",
            url="https://git.example.org/~user1/busy",
            visibility="public",
            hook_key="bench",
        )
        db_session.add_all([big, source])
        db_session.flush()
        db_session.add(Attachment(project_id=big.id, source_id=source.id))
        for n in range(EVENTS):
            db_session.add(
                Event(
                    source_id=source.id,
                    event="repo:push",
                    actor="~user1",
                    summary=f"pushed main to ~user1/busy ({n})",
                    url=source.url,
                )
            )
        db_session.commit()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter rounds")
    parser.add_argument(
        "--python-load", action="store_true", help="use the built-in load generator instead of wrk"
    )
    args = parser.parse_args()
    rounds, seconds, connections = (2, 3, 4) if args.quick else (5, 8, 4)
    load = load_python if args.python_load or not shutil.which("wrk") else load_wrk
    work = Path(tempfile.mkdtemp(prefix="srht-bench-hub-"))
    with throwaway_postgres() as postgres:
        port = free_port()
        data = site_config(
            work / "data",
            {
                "hub": {
                    "origin": f"http://127.0.0.1:{port}",
                    "workers": 2,
                    "bind": f"127.0.0.1:{port}",
                    "connection-string": postgres.create_database(),
                    "site-description": "A forge for the *benchmark*.",
                }
            },
        )
        config = work / "config.ini"
        config.write_text(dump_ini(data), encoding="utf-8")
        app = create_app("hub", str(config))
        state = state_of(app)
        upgrade(state.db, "hub", state.schema)
        populate(app)
        state.db.dispose()

        env = child_env(work)
        base = [sys.executable, "-m", "srht_core.cli", "--config", str(config)]
        paths = {"home": "/", "project": "/~user1/busy"}
        page = Server("hub", port, [*base, "serve", "hub", "--workers", "2"], env, work / "hub.log")
        results: dict[str, list[float]] = {}
        for name, path in paths.items():
            with running([page]):
                page.wait_ready("/healthz")
                status, body = fetch(page.url + path)
                assert status == 200, body[:500]
                if name == "project":
                    assert body.count(b"pushed main to ~user1/busy") == 30, body[:2000]
            body_file = work / f"{name}.html"
            body_file.write_bytes(body)
            bare_port = free_port()
            bare = Server(
                f"bare-{name}",
                bare_port,
                [
                    sys.executable,
                    str(HERE / "bare_server.py"),
                    str(config),
                    "hub",
                    f"127.0.0.1:{bare_port}",
                    "2",
                    str(body_file),
                ],
                env,
                work / f"bare-{name}.log",
            )
            with running([page, bare]):
                page.wait_ready("/healthz")
                bare.wait_ready("/")
                for _ in range(rounds):
                    results.setdefault(name, []).append(load(page.url + path, seconds, connections))
                    results.setdefault(f"bare-{name}", []).append(
                        load(bare.url + "/", seconds, connections)
                    )
                    time.sleep(0.5)
            print(f"{name}: {path} is {len(body)} bytes", flush=True)

    print(f"\nload average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"\n{'page':<34} {'req/s':>8} {'bare req/s':>11} {'ratio':>6}")
    for name, label in (("home", "home page, logged out"), ("project", "project, 1,000 events")):
        mine = statistics.median(results[name])
        bare_rate = statistics.median(results[f"bare-{name}"])
        print(f"{label:<34} {mine:>8.0f} {bare_rate:>11.0f} {mine / bare_rate:>6.2f}")
    print("\ntarget: each page at least 0.33 of the bare response's rate")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
