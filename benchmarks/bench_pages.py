"""The pages people look at most, against a bare Flask response.

Two pages under ``srht serve``'s gunicorn (2 sync workers) on a throwaway
PostgreSQL, each against the bare Flask app of ``bare_server.py`` answering
the same number of bytes of static HTML under the same gunicorn options,
measured in alternating rounds:

- todo's tracker page of a tracker with 100 tickets (its first page of 25,
  with labels, counts and the search box: what a visitor opens);
- paste's view of a paste with a 2,000-line Python file (highlighted).

Printed as requests per second and as the page's ratio to the bare app.
Target (todo and paste issue): each page at least a third of the bare rate.

    python benchmarks/bench_pages.py [--quick] [--python-load]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_core import Server, child_env, fetch, load_python, load_wrk, running

from srht_core import TokenGrant, create_app, db_session, seal_grant, state_of
from srht_core.config import dump_ini
from srht_core.migrate import upgrade
from srht_core.testing import free_port, site_config, throwaway_postgres

HERE = Path(__file__).parent


def python_file(lines: int) -> str:
    body = []
    for number in range(lines // 4):
        body += [
            f"def function_{number}(value: int) -> int:",
            f'    """Return value plus {number}."""',
            f"    return value + {number}  # a comment",
            "",
        ]
    return "\n".join(body) + "\n"


def fill(config: Path) -> dict[str, str]:
    """Create alice, her tracker with 100 tickets and her paste; return the
    two page paths."""
    paths = {}
    for service in ("todo", "paste"):
        app = create_app(service, str(config))
        state = app.extensions["srht"]
        upgrade(state.db, service, state.schema)
        state_of(app).revoked = lambda kind, token_id: False  # no meta here
        with app.app_context():
            db_session.add(
                state.schema.user_model(id=1, username="alice", email="alice@example.org")
            )
            db_session.commit()
            token = seal_grant(
                TokenGrant(
                    "pat",
                    1,
                    1,
                    frozenset({"todo/trackers:RW", "todo/tickets:RW", "paste/pastes:RW"}),
                    None,
                )
            )
        client = app.test_client()
        bearer = {"Authorization": f"Bearer {token}"}
        if service == "todo":
            made = client.post("/api/trackers", json={"name": "bugs"}, headers=bearer)
            assert made.status_code == 201, made.json
            for number in range(100):
                ticket = client.post(
                    "/api/trackers/alice/bugs/tickets",
                    headers=bearer,
                    json={"title": f"Ticket number {number}", "description": "Something *broke*."},
                )
                assert ticket.status_code == 201, ticket.json
            paths["todo"] = "/~alice/bugs"
        else:
            made = client.post(
                "/api/pastes",
                headers=bearer,
                json={
                    "visibility": "public",
                    "files": [{"filename": "big.py", "content": python_file(2000)}],
                },
            )
            assert made.status_code == 201, made.json
            paths["paste"] = f"/~alice/{made.json['id']}"
        state.db.dispose()
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument(
        "--python-load", action="store_true", help="use the built-in load generator instead of wrk"
    )
    args = parser.parse_args()
    rounds, seconds, connections = (2, 3, 4) if args.quick else (5, 8, 4)
    load = load_python if args.python_load or not shutil.which("wrk") else load_wrk

    work = Path(tempfile.mkdtemp(prefix="srht-bench-pages-"))
    with throwaway_postgres() as postgres:
        ports = {name: free_port() for name in ("todo", "paste")}
        data = site_config(
            work / "data",
            {
                name: {
                    "origin": f"http://127.0.0.1:{port}",
                    "workers": 2,
                    "bind": f"127.0.0.1:{port}",
                    "connection-string": postgres.create_database(),
                }
                for name, port in ports.items()
            },
        )
        config = work / "config.ini"
        config.write_text(dump_ini(data), encoding="utf-8")
        paths = fill(config)
        env = child_env(work)
        results: dict[str, list[float]] = {}
        for service, path in paths.items():
            page = Server(
                service,
                ports[service],
                [
                    sys.executable,
                    "-m",
                    "srht_core.cli",
                    "--config",
                    str(config),
                    "serve",
                    service,
                    "--workers",
                    "2",
                ],
                env,
                work / f"{service}.log",
            )
            with running([page]):
                page.wait_ready("/healthz")
                status, body = fetch(page.url + path)
                assert status == 200, body[:500]
            body_file = work / f"{service}.html"
            body_file.write_bytes(body)
            bare_port = free_port()
            bare = Server(
                f"bare-{service}",
                bare_port,
                [
                    sys.executable,
                    str(HERE / "bare_server.py"),
                    str(config),
                    service,
                    f"127.0.0.1:{bare_port}",
                    "2",
                    str(body_file),
                ],
                env,
                work / f"bare-{service}.log",
            )
            with running([page, bare]):
                page.wait_ready("/healthz")
                bare.wait_ready("/")
                for _ in range(rounds):
                    results.setdefault(service, []).append(
                        load(page.url + path, seconds, connections)
                    )
                    results.setdefault(f"bare-{service}", []).append(
                        load(bare.url + "/", seconds, connections)
                    )
                    time.sleep(0.5)
            print(f"{service}: {path} is {len(body)} bytes", flush=True)
    print(f"\n{'page':<34} {'req/s':>8} {'bare req/s':>11} {'ratio':>6}")
    for service, label in (
        ("todo", "tracker page, 100 tickets"),
        ("paste", "paste view, 2,000 lines"),
    ):
        mine = statistics.median(results[service])
        bare = statistics.median(results[f"bare-{service}"])
        print(f"{label:<34} {mine:>8.0f} {bare:>11.0f} {mine / bare:>6.2f}")
    print("\ntarget: each page at least 0.33 of the bare response's rate")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
