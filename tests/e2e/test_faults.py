"""Faults, survived: todo under write load while its PostgreSQL restarts or
stops, while its Redis stops or freezes, and while its worker is killed.

The servers are shared by the tests of this module: a throwaway PostgreSQL
cluster for todo that the tests restart and stop, a Redis they freeze with
SIGSTOP, todo served by ``srht serve`` (gunicorn, two workers), meta beside
it on the suite's own PostgreSQL (it issues the token and is left alone),
and a webhook receiver in the test process that the tracker's webhook
posts to. Each test starts the ``srht worker`` it needs and leaves every
server running when it ends. Every process here is started by the tests
and stopped by its PID.

What is asserted is what a client and a user of the site see: no 500 for
an outage (a 503 with ``Retry-After`` instead), no acknowledged write lost,
no write reported failed that was committed, a retry with an
``Idempotency-Key`` creating nothing twice, every job of an acknowledged
write run (its webhook delivered, signed), and every process back to work
by itself, none restarted by hand. Waits are bounded to catch a hang;
nothing is asserted about how long anything took.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from cryptography.fernet import Fernet
from support import wait_until
from support.ci import require
from support.redis_server import RedisServer
from support.webhook_receiver import WebhookReceiver

from srht_core.config import dump_ini
from srht_core.db import utcnow
from srht_core.keys import webhook_public_key
from srht_core.testing import (
    ThrowawayPostgres,
    free_port,
    serve_service,
    site_config,
    throwaway_postgres,
    wait_for_http,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
TRACKER = "/api/trackers/alice/load"


# -- the site --------------------------------------------------------------------------


@dataclass
class Site:
    todo: str
    config: Path  # with the broker
    embedded: Path  # the same site, without a broker: workers run jobs from the database
    postgres: ThrowawayPostgres
    redis: RedisServer
    receiver: WebhookReceiver
    token: str
    todo_database: str
    public_key: str
    network_key: str
    root: Path
    engine: sa.Engine = field(init=False)

    def __post_init__(self) -> None:
        self.engine = sa.create_engine(self.todo_database, poolclass=sa.pool.NullPool)

    def login_cookie(self) -> str:
        """alice's login cookie, sealed as meta seals it."""
        data = {"u": 1, "s": 1, "t": int(time.time())}
        return Fernet(self.network_key).encrypt(json.dumps(data).encode()).decode()

    def headers(self, key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    def submit(self, title: str, *, key: str | None = None, timeout: float = 30) -> Any:
        return requests.post(
            self.todo + TRACKER + "/tickets",
            data=ticket_body(title),
            headers={**self.headers(key), "Content-Type": "application/json"},
            timeout=timeout,
        )

    def read(self, path: str = TRACKER + "/tickets?limit=5", *, timeout: float = 30) -> Any:
        return requests.get(self.todo + path, headers=self.headers(), timeout=timeout)

    def titles(self, prefix: str) -> Counter[str]:
        """How many tickets of each title starting with ``prefix`` exist."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT title FROM ticket WHERE title LIKE :prefix"),
                {"prefix": prefix + "%"},
            )
            return Counter(row.title for row in rows)

    def delivered(self, prefix: str) -> Counter[str]:
        """How many ``ticket:create`` deliveries of each title the receiver got."""
        found: Counter[str] = Counter()
        for body in self.receiver.bodies():
            event = json.loads(body)
            if event["event"] == "ticket:create":
                title = event["data"]["ticket"]["title"]
                if title.startswith(prefix):
                    found[title] += 1
        return found

    def job(self, job_id: int) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(
                sa.text("SELECT * FROM srht_job WHERE id = :id"), {"id": job_id}
            ).one()


def ticket_body(title: str) -> bytes:
    return json.dumps({"title": title, "description": "written under load"}).encode()


def srht(config: Path, *args: str, stdin: str = "") -> str:
    done = subprocess.run(
        [sys.executable, "-m", "srht_core.cli", "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def postgres() -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL cluster of this module's own, to restart and stop."""
    try:
        with throwaway_postgres() as server:
            yield server
    except RuntimeError as error:
        require(False, f"a throwaway PostgreSQL is needed: {error}")


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    require(shutil.which("redis-server") is not None, "redis-server is not installed")
    server = RedisServer(free_port())
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def site(
    postgres: ThrowawayPostgres,
    redis: RedisServer,
    srht_postgres: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("faults")
    todo_database = postgres.create_database()
    ports = {"meta": free_port(), "todo": free_port()}
    data = site_config(
        root / "data",
        {
            "meta": {
                "origin": f"http://127.0.0.1:{ports['meta']}",
                "connection-string": srht_postgres.create_database(),
            },
            "todo": {
                "origin": f"http://127.0.0.1:{ports['todo']}",
                "connection-string": todo_database,
                "notify-from": "todo@example.org",
            },
        },
        srht={"broker": redis.url},
    )
    config = root / "config.ini"
    config.write_text(dump_ini(data), encoding="utf-8")
    del data["srht"]["broker"]
    embedded = root / "embedded.ini"
    embedded.write_text(dump_ini(data), encoding="utf-8")

    srht(config, "migrate")
    srht(
        config,
        "meta",
        "create-user",
        "alice",
        "--email",
        "alice@example.org",
        "--password-stdin",
        stdin="a long enough password\n",
    )
    token = srht(
        config, "meta", "token", "alice", "--scopes", "todo/trackers:RW todo/tickets:RW"
    ).splitlines()[-1]
    with ExitStack() as stack:
        receiver = stack.enter_context(WebhookReceiver())
        stack.enter_context(serve_service("meta", config, port=ports["meta"]))
        todo = stack.enter_context(serve_service("todo", config, port=ports["todo"], workers=2))
        site = Site(
            todo,
            config,
            embedded,
            postgres,
            redis,
            receiver,
            token,
            todo_database,
            webhook_public_key(data["webhooks"]["private-key"]),
            data["srht"]["network-key"],
            root,
        )
        made = requests.post(
            todo + "/api/trackers", json={"name": "load"}, headers=site.headers(), timeout=30
        )
        assert made.status_code == 201, made.text
        hook = requests.post(
            todo + TRACKER + "/webhooks",
            json={"url": receiver.url, "events": ["ticket:create"]},
            headers=site.headers(),
            timeout=30,
        )
        assert hook.status_code == 201, hook.text
        yield site
        site.engine.dispose()


@pytest.fixture
def healthy(site: Site) -> Iterator[Site]:
    """The site, given back healthy whatever the test did to it."""
    yield site
    if site.postgres.pid is None:
        site.postgres.start()
    if site.redis.running:
        site.redis.thaw()
    else:
        site.redis.start()
    site.receiver.release()


# -- workers -------------------------------------------------------------------------------


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def says(self, text: str) -> bool:
        return text in self.output()

    def alive(self) -> bool:
        return self.process.poll() is None


@pytest.fixture
def start_worker(site: Site, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """``start_worker()`` runs ``srht worker todo`` (Celery, with the broker;
    ``embedded=True``: without) and waits until it ticks; each is stopped by
    its PID after the test."""
    started: list[Worker] = []

    def start(*, embedded: bool = False) -> Worker:
        log = tmp_path / f"worker-{len(started)}.log"
        config = site.embedded if embedded else site.config
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "srht_core.cli", "--config", str(config), "worker", "todo"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        worker = Worker(process, log)
        started.append(worker)
        ready = "embedded mode" if embedded else " ready."
        wait_until(lambda: worker.says(ready) or not worker.alive(), what="the worker to start")
        assert worker.alive(), worker.output()
        return worker

    yield start
    for worker in started:
        if worker.alive():
            worker.process.terminate()
            try:
                worker.process.wait(30)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()


# -- load ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    title: str
    status: int | None  # None: no answer (connection refused or cut, timeout)
    retry_after: str | None = None
    replayed: bool = False
    error: str = ""


class Load:
    """Clients writing tickets the way a careful client does (each write
    with an ``Idempotency-Key``, retried with the same key on a 503 or a
    lost answer until it is answered 201) while another reads."""

    def __init__(self, site: Site, prefix: str, writers: int = 3):
        self.site = site
        self.prefix = prefix
        self.writes: list[Attempt] = []
        self.reads: list[Attempt] = []
        self.acknowledged: dict[str, dict[str, Any]] = {}
        self.unacknowledged: list[str] = []
        self._stop = threading.Event()
        self._abandon = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._write, args=(n,), daemon=True) for n in range(writers)
        ] + [threading.Thread(target=self._read, daemon=True)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, failed: object, *_exc: object) -> None:
        self._stop.set()
        if failed:
            self._abandon.set()  # the test failed already: do not wait for the clients
        for thread in self._threads:
            thread.join(180)

    def count(self, status: int) -> int:
        with self._lock:
            return sum(1 for a in self.writes + self.reads if a.status == status)

    def failures(self) -> int:
        """Attempts not answered with success (an error status, or none)."""
        with self._lock:
            return sum(1 for a in self.writes + self.reads if a.status is None or a.status >= 400)

    def _write(self, writer: int) -> None:
        number = 0
        while not self._stop.is_set():
            number += 1
            title = f"{self.prefix}-{writer}-{number}"
            key = str(uuid.uuid4())
            deadline = time.monotonic() + 120
            while True:
                attempt = self._attempt(
                    title, lambda title=title, key=key: self.site.submit(title, key=key)
                )
                with self._lock:
                    self.writes.append(attempt)
                if attempt.status == 201 or self._abandon.is_set():
                    break
                if time.monotonic() > deadline:
                    with self._lock:
                        self.unacknowledged.append(title)
                    break
                time.sleep(0.2)
            time.sleep(0.02)

    def _read(self) -> None:
        while not self._stop.is_set():
            attempt = self._attempt("(read)", self.site.read)
            with self._lock:
                self.reads.append(attempt)
            time.sleep(0.05)

    def _attempt(self, title: str, call: Callable[[], Any]) -> Attempt:
        try:
            answer = call()
        except requests.RequestException as error:
            return Attempt(title, None, error=type(error).__name__)
        if answer.status_code == 201:
            with self._lock:
                self.acknowledged[title] = answer.json()
        return Attempt(
            title,
            answer.status_code,
            answer.headers.get("Retry-After"),
            answer.headers.get("Idempotent-Replayed") == "true",
            answer.text[:300] if answer.status_code >= 400 else "",
        )


def check_nothing_lost(site: Site, load: Load) -> None:
    """What the clients saw, and what the site kept, after a fault."""
    attempts = load.writes + load.reads
    assert [
        a for a in attempts if a.status is not None and a.status >= 500 and a.status != 503
    ] == []
    assert [a for a in attempts if a.status == 503 and not a.retry_after] == []
    assert load.unacknowledged == []
    assert load.acknowledged, "no write went through"
    # a write answered as failed had committed nothing: its retry wrote it
    # anew, where a committed one would have been replayed
    answered_failed = {a.title for a in load.writes if a.status not in (None, 201)}
    assert [a for a in load.writes if a.title in answered_failed and a.replayed] == []
    kept = site.titles(load.prefix)
    assert {title: n for title, n in kept.items() if n != 1} == {}  # nothing twice
    assert set(kept) == set(load.acknowledged)  # every acknowledged write, nothing else
    numbers = {title: ticket["number"] for title, ticket in load.acknowledged.items()}
    assert len(set(numbers.values())) == len(numbers)
    # the job of every acknowledged write runs: its webhook reaches the receiver
    wait_until(
        lambda: set(load.acknowledged) <= set(site.delivered(load.prefix)),
        timeout=180,
        what="a webhook delivery for every acknowledged ticket",
    )


def warm(site: Site, prefix: str) -> None:
    """Requests that leave pooled connections in both gunicorn workers."""
    for n in range(6):
        assert site.submit(f"{prefix}-warm-{n}").status_code == 201
        assert site.read().status_code == 200


# -- PostgreSQL ----------------------------------------------------------------------------


def test_the_first_requests_after_a_postgres_restart_succeed(
    healthy: Site, start_worker: Callable[..., Worker]
) -> None:
    """Item 24: pooled connections used a moment before the restart are
    checked before use, so no request fails once PostgreSQL is back; and
    under load, a restart loses nothing and answers no 500."""
    site = healthy
    worker = start_worker()
    warm(site, "restart")

    site.postgres.restart()
    answers = []
    for n in range(6):
        answers.append(site.submit(f"restart-after-{n}").status_code)
        answers.append(site.read().status_code)
        answers.append(requests.get(site.todo + "/~alice/load", timeout=30).status_code)
    assert answers == [201, 200, 200] * 6

    with Load(site, "restart-load") as load:
        wait_until(lambda: load.count(201) >= 10, what="writes before the restart")
        site.postgres.restart()
        count = load.count(201)
        wait_until(lambda: load.count(201) >= count + 20, what="writes after the restart")
    check_nothing_lost(site, load)
    assert worker.alive(), worker.output()


def test_while_postgres_is_down_requests_answer_503_and_all_recovers_by_itself(
    healthy: Site, start_worker: Callable[..., Worker]
) -> None:
    """Items 23 and 21: while the database is away, the API answers 503 with
    Retry-After in JSON, pages a plain "temporarily unavailable" page;
    writes retried with their key go through once it is back; the embedded
    worker waits it out and runs every job, without a restart."""
    site = healthy
    worker = start_worker(embedded=True)
    with Load(site, "down-load") as load:
        wait_until(lambda: load.count(201) >= 10, what="writes before the outage")
        site.postgres.stop()
        try:
            wait_until(lambda: load.failures() >= 10, what="failed attempts during the outage")

            write = site.submit("down-direct", key=str(uuid.uuid4()))
            assert write.status_code == 503
            assert write.headers["Retry-After"].isdigit()
            assert write.headers["Content-Type"] == "application/json"
            assert "temporarily unavailable" in write.json()["errors"][0]["reason"]
            read = site.read()
            assert (read.status_code, read.headers["Content-Type"]) == (503, "application/json")
            assert read.headers["Retry-After"].isdigit()
            for cookies in ({}, {"srht-login": site.login_cookie()}):  # anonymous, alice
                page = requests.get(site.todo + "/~alice/load", cookies=cookies, timeout=30)
                assert page.status_code == 503
                assert page.headers["Content-Type"] == "text/html; charset=utf-8"
                assert page.headers["Retry-After"].isdigit()
                assert "<h1>Temporarily unavailable</h1>" in page.text
            assert requests.get(site.todo + "/healthz", timeout=30).status_code == 503
            wait_until(
                lambda: worker.says("the worker waits for it") or not worker.alive(),
                what="the worker to meet the outage",
            )
        finally:
            site.postgres.start()
        count = load.count(201)
        wait_until(lambda: load.count(201) >= count + 20, what="writes after the outage")
    check_nothing_lost(site, load)
    assert site.titles("down-direct") == Counter()  # answered 503: not written
    assert worker.alive(), worker.output()
    assert worker.says("answers again"), worker.output()


def test_the_celery_workers_tick_outlives_a_postgres_outage(
    healthy: Site, start_worker: Callable[..., Worker]
) -> None:
    """Item 21: after an outage the tick of a Celery worker still re-sends
    jobs whose broker message was lost (and fires timers, recovers jobs)."""
    site = healthy
    worker = start_worker()
    site.postgres.stop()
    try:
        wait_until(
            lambda: (
                worker.says("the worker waits for it")
                or worker.says("srht-tick")  # the name of a thread that died
                or not worker.alive()
            ),
            what="the tick to meet the outage",
        )
    finally:
        site.postgres.start()

    # a job recorded long ago whose message never reached the broker
    past = utcnow() - timedelta(minutes=5)
    with site.engine.begin() as connection:
        job_id = connection.execute(
            sa.text(
                "INSERT INTO srht_job (name, payload, status, attempts, run_after, created, "
                "updated) VALUES ('srht.purge-jobs', '{}', 'queued', 0, :past, :past, :past) "
                "RETURNING id"
            ),
            {"past": past},
        ).scalar_one()
    wait_until(
        lambda: site.job(job_id).status == "done" or not worker.alive(),
        timeout=120,
        what="the tick to publish the lost job again",
    )
    assert worker.alive(), worker.output()
    assert worker.says("answers again"), worker.output()


# -- Redis ---------------------------------------------------------------------------------


def test_a_frozen_broker_holds_no_request_and_its_jobs_run_once_it_thaws(
    healthy: Site, start_worker: Callable[..., Worker]
) -> None:
    """Item 22: with Redis alive but silent (SIGSTOP), writes answer 201 at
    once (their jobs wait in the database), reads answer, and every job
    runs once Redis answers again."""
    site = healthy
    start_worker()
    warm(site, "frozen")
    site.redis.freeze()
    try:
        answers = []
        for n in range(6):
            answers.append(site.submit(f"frozen-{n}", key=str(uuid.uuid4())).status_code)
            answers.append(site.read().status_code)
        assert answers == [201, 200] * 6
    finally:
        site.redis.thaw()
    assert site.titles("frozen-") == Counter(
        {f"frozen-{n}": 1 for n in range(6)} | {f"frozen-warm-{n}": 1 for n in range(6)}
    )
    wait_until(
        lambda: {f"frozen-{n}" for n in range(6)} <= set(site.delivered("frozen-")),
        timeout=180,
        what="the jobs of the writes made while the broker was frozen",
    )


def test_a_broker_restart_under_write_load_loses_nothing(
    healthy: Site, start_worker: Callable[..., Worker]
) -> None:
    """Redis stopped and started again (empty) under load: every write
    answered, every job run."""
    site = healthy
    start_worker()
    with Load(site, "redis-load") as load:
        wait_until(lambda: load.count(201) >= 10, what="writes before the broker stops")
        site.redis.stop()
        count = load.count(201)
        wait_until(lambda: load.count(201) >= count + 10, what="writes while it is away")
        site.redis.start()
        count = load.count(201)
        wait_until(lambda: load.count(201) >= count + 10, what="writes after it is back")
    check_nothing_lost(site, load)


# -- idempotency ---------------------------------------------------------------------------


def test_a_retry_with_the_same_key_creates_nothing_twice(healthy: Site) -> None:
    """Item 22: a client whose answer was lost retries with the same key and
    gets the stored answer; nothing is created twice."""
    site = healthy
    key = str(uuid.uuid4())
    body = ticket_body("lost-answer")
    port = int(site.todo.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(
            b"POST " + TRACKER.encode() + b"/tickets HTTP/1.1\r\n"
            b"Host: 127.0.0.1\r\n"
            b"Authorization: Bearer " + site.token.encode() + b"\r\n"
            b"Idempotency-Key: " + key.encode() + b"\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n"
            b"Connection: close\r\n\r\n" + body
        )
    # the client went away before the answer: the ticket is made all the same
    wait_until(lambda: site.titles("lost-answer"), what="the first request to be handled")

    retry = site.submit("lost-answer", key=key)
    assert retry.status_code == 201, retry.text
    assert site.titles("lost-answer") == Counter({"lost-answer": 1})
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert retry.json()["title"] == "lost-answer"

    again = site.submit("lost-answer", key=key)
    assert (again.status_code, again.json()) == (201, retry.json())

    other = site.submit("another title", key=key)
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert "already used for another request" in other.json()["errors"][0]["reason"]
    assert site.titles("another title") == Counter()


# -- the worker killed -----------------------------------------------------------------------


def test_a_delivery_in_flight_in_a_killed_worker_goes_out_again(
    healthy: Site, start_worker: Callable[..., Worker]
) -> None:
    """Item 25: a worker killed while it delivers a webhook leaves a lease
    that lapses; the next worker sends the delivery again, signed."""
    site = healthy
    first = start_worker()
    site.receiver.hold_next(lambda body: b'"title": "in-flight"' in body)
    made = site.submit("in-flight")
    assert made.status_code == 201
    wait_until(site.receiver.holding.is_set, what="the delivery to reach the receiver")
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait()
    site.receiver.release()

    start_worker()
    wait_until(
        lambda: site.delivered("in-flight")["in-flight"] >= 2,
        timeout=120,
        what="the delivery to go out again",
    )
    verify = documented_verify()
    [first_try, second_try] = [
        r for r in site.receiver.snapshot() if b'"title": "in-flight"' in r.body
    ][:2]
    assert first_try.body == second_try.body
    assert verify(site.public_key, second_try.headers, second_try.body)


# -- srht up ---------------------------------------------------------------------------------


def _children(pid: int) -> dict[int, list[bytes]]:
    """The live descendants of ``pid`` and their command lines, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if stat[0] != "Z":
                parents[int(entry.name)] = int(stat[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    commands = {}
    for child in found:
        try:
            commands[child] = (Path("/proc") / str(child) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
    return commands


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_srht_up_keeps_every_service_running_through_an_outage(
    healthy: Site, support_venv: Any, tmp_path: Path
) -> None:
    """Item 21: `srht up` with its embedded worker: a PostgreSQL outage stops
    nothing, and a worker that dies is started again while the web
    service goes on."""
    site = healthy
    port = free_port()
    data = site_config(
        tmp_path / "data",
        {
            "chores": {
                "origin": f"http://127.0.0.1:{port}",
                "bind": f"127.0.0.1:{port}",
                "connection-string": site.postgres.create_database(),
                "hold-dir": str(tmp_path),
            }
        },
    )
    config = tmp_path / "config.ini"
    config.write_text(dump_ini(data), encoding="utf-8")
    url = data["chores"]["origin"]
    output = tmp_path / "up.log"
    with open(output, "ab") as out:
        up = subprocess.Popen(
            [support_venv.python, "-m", "srht_core.cli", "--config", str(config), "up"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def says(text: str) -> bool:
        return text in output.read_text(errors="replace")

    def worker_pid() -> int | None:
        for pid, command in _children(up.pid).items():
            if b"worker" in command and b"chores" in command:
                return pid
        return None

    try:
        wait_for_http(url + "/healthz", timeout=120, process=up)
        wait_until(lambda: says("embedded mode") or up.poll() is not None, what="the worker")
        site.postgres.stop()
        try:
            wait_until(
                lambda: says("the worker waits for it") or up.poll() is not None,
                what="the worker to meet the outage",
            )
        finally:
            site.postgres.start()
        assert up.poll() is None, output.read_text()

        worker = worker_pid()
        assert worker is not None
        os.kill(worker, signal.SIGKILL)
        wait_until(
            lambda: (worker_pid() or worker) != worker or up.poll() is not None,
            what="srht up to start the worker again",
        )
        assert up.poll() is None, output.read_text()
        assert says("chores worker exited with code -9; starting it again")

        made = requests.post(url + "/api/chores", json={"title": "after"}, timeout=30)
        assert made.status_code == 201, made.text

        def reminded() -> bool:
            chores = requests.get(url + "/api/chores", timeout=30).json()["results"]
            return any(c["title"] == "after" and c["reminded"] for c in chores)

        wait_until(reminded, what="the new worker to run the chore's job")
    finally:
        descendants = list(_children(up.pid))
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(60)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(pid) for pid in descendants):
            time.sleep(0.1)
        for pid in descendants:
            if _alive(pid):  # left behind by a failed run: the processes this test started
                os.kill(pid, signal.SIGKILL)
    assert up.returncode == 0, output.read_text()


# -- the receiver's side ---------------------------------------------------------------------


def documented_verify() -> Callable[..., bool]:
    """``verify_delivery`` as docs/webhooks.md writes it, ready to call."""
    text = (ROOT / "docs" / "webhooks.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    [code] = [block for block in blocks if "def verify_delivery" in block]
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/webhooks.md", "exec"), namespace)  # noqa: S102 - our own docs
    return namespace["verify_delivery"]  # type: ignore[no-any-return]


def test_the_documented_check_accepts_a_delivery_and_refuses_a_forgery_or_a_replay(
    healthy: Site, start_worker: Callable[..., Worker]
) -> None:
    """Item 26: a receiver that follows docs/webhooks.md accepts what the site
    sends, and refuses a changed body, another key, and a replay."""
    site = healthy
    start_worker(embedded=True)
    assert site.submit("documented").status_code == 201
    wait_until(lambda: site.delivered("documented"), what="the delivery")
    [delivery] = [r for r in site.receiver.snapshot() if b'"title": "documented"' in r.body]
    verify = documented_verify()

    other_key = webhook_public_key(base64.b64encode(os.urandom(32)).decode())
    assert not verify(site.public_key, delivery.headers, delivery.body.replace(b"doc", b"DOC"))
    assert not verify(other_key, delivery.headers, delivery.body)
    assert verify(site.public_key, delivery.headers, delivery.body)
    assert not verify(site.public_key, delivery.headers, delivery.body)  # replayed
