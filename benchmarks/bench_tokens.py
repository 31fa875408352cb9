"""What checking a bearer token costs a service.

The same API call, in the same process, answered three ways side by side:
without a token, with a token whose grant is verified (unsealed, expiry and
revocation checked), and with a token whose user is also loaded from the
service's mirror; then an anonymous call that reads one row against the
same call with a token and its user (a real call reads something). Printed
as requests per second and as ratios (the median of each round's ratio, in
short rounds that alternate their order). Targets: token checking costs
under 20% (meta issue); the call with its user loaded runs at 0.8 of the
anonymous one (issue 16).

The service's database is a throwaway PostgreSQL, as in production (the
only database with a row feed, which keeps users in memory: see
:mod:`srht_core.usercache`); ``--sqlite`` measures on SQLite instead.

Revocations are polled from meta at most every 30 s; the benchmark starts
with a fresh poll recorded, so what it measures is the per-request cost,
the poll being amortised over every request of those 30 s.

    python benchmarks/bench_tokens.py [--quick] [--sqlite]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Blueprint
from sqlalchemy.orm import DeclarativeBase

from srht_core import (
    DatabaseSchema,
    MirroredUserMixin,
    PluginHost,
    ServiceInfo,
    TokenGrant,
    api_blueprint,
    api_user,
    create_app,
    current_token,
    db_session,
    hookimpl,
    seal_grant,
)
from srht_core.config import Config, dump_ini
from srht_core.migrate import upgrade
from srht_core.testing import site_config, throwaway_postgres


class Base(DeclarativeBase):
    pass


class User(MirroredUserMixin, Base):
    __tablename__ = "user"


def make_plugin() -> types.ModuleType:
    plugin = types.ModuleType("bench_tokens_service")

    @hookimpl
    def service_info() -> ServiceInfo:
        return ServiceInfo("bench", "Bench", "A service to measure token checks.")

    @hookimpl
    def database_schema() -> DatabaseSchema:
        return DatabaseSchema(Base.metadata, user_model=User)

    @hookimpl
    def blueprints() -> list[Blueprint]:
        api = api_blueprint("bench_api", __name__)

        @api.get("/ping")
        def ping() -> Any:
            grant = current_token()
            return {"user": grant.user_id if grant else None}

        @api.get("/whoami")
        def whoami() -> Any:
            user = api_user()
            return {"user": user.username if user else None}

        @api.get("/read")
        def read() -> Any:
            user = api_user()
            first = db_session.scalar(sa.select(User.username).order_by(User.id).limit(1))
            return {"user": user.username if user else None, "first": first}

        return [api]

    for hook in (service_info, database_schema, blueprints):
        setattr(plugin, hook.__name__, hook)
    return plugin


def rate(client: Any, path: str, headers: dict[str, str], seconds: float) -> float:
    """Requests per second of GET ``path`` for about ``seconds``."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(50):
            response = client.get(path, headers=headers)
            assert response.status_code == 200, response.get_data(as_text=True)
        done += 50
    return done / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter rounds")
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        section: dict[str, str] = {}
        if not args.sqlite:
            section["connection-string"] = stack.enter_context(
                throwaway_postgres()
            ).create_database()
        return measure(args.quick, section)


def measure(quick: bool, section: dict[str, str]) -> int:
    rounds, seconds = (6, 0.5) if quick else (16, 1.0)

    workdir = Path(tempfile.mkdtemp(prefix="srht-bench-tokens-"))
    data = site_config(workdir, {"bench": section})
    path = workdir / "config.ini"
    path.write_text(dump_ini(data), encoding="utf-8")
    plugins = PluginHost(discover=False)
    plugins.register(make_plugin(), "bench")
    app = create_app("bench", Config.from_string(path.read_text(), str(path)), plugins=plugins)
    state = app.extensions["srht"]
    upgrade(state.db, "bench", state.schema)
    with app.app_context():
        db_session.add(User(id=1, username="alice", email="alice@example.org"))
        db_session.commit()
        token = seal_grant(TokenGrant("pat", 1, 1, frozenset({"bench/things:RO"}), None))
    # A revocation poll that has just happened (meta is not running here).
    cache = state.revocations
    cache.checked = cache.tried = time.monotonic() + 3600
    feed = state.db.row_feed()
    if feed is not None and not feed.wait_live():
        print("the row feed did not start listening", file=sys.stderr)
        return 1

    client = app.test_client()
    bearer = {"Authorization": f"Bearer {token}"}
    cases = {
        "no token": ("/api/ping", {}),
        "token verified": ("/api/ping", bearer),
        "token + user loaded": ("/api/whoami", bearer),
        "no token, one query": ("/api/read", {}),
        "token + user, one query": ("/api/read", bearer),
    }
    #: what each call is compared with
    baseline = {name: "no token" for name in cases}
    baseline["token + user, one query"] = "no token, one query"
    results: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases)
    for round_ in range(rounds):  # interleaved, so load on the machine hits all alike
        for name in order if round_ % 2 == 0 else reversed(order):
            target, headers = cases[name]
            results[name].append(rate(client, target, headers, seconds))

    # Each round's rate divided by the anonymous call's in the same round:
    # the machine's load moves both alike, and the median of these moves less.
    ratios = {
        name: [value / base for value, base in zip(values, results[baseline[name]], strict=True)]
        for name, values in results.items()
    }
    print(f"{'call':<24} {'req/s (median)':>15}  ratio (range)")
    for name, values in results.items():
        spread = ratios[name]
        print(
            f"{name:<24} {statistics.median(values):>15.0f}  "
            f"{statistics.median(spread):.2f} ({min(spread):.2f}–{max(spread):.2f}) "
            f"÷ {baseline[name]}"
        )
    cost = 1 - statistics.median(ratios["token verified"])
    print(f"\ntoken checking costs {cost:.0%} of the call's rate (target: under 20%)")
    user = statistics.median(ratios["token + user loaded"])
    print(f"the call with its user loaded runs at {user:.2f} of the anonymous one (target: 0.8)")
    real = statistics.median(ratios["token + user, one query"])
    print(f"with one query in both (as a real call makes), at {real:.2f}")
    state.db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
