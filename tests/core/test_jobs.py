"""srht_core.jobs and srht_core.queue: jobs are rows first, committed with
the data they are about, run at least once by a worker (embedded, or
through Celery and a real Redis), retried with backoff, recovered when
their worker dies, and timers fire once per period across workers."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from support import wait_until

from srht_core import enqueue
from srht_core import jobs as jobs_module
from srht_core.db import utcnow
from srht_core.jobs import Worker, job_table, run_job, run_until_idle, timer_table


def db_of(app: Any) -> Any:
    return app.extensions["srht"].db


def rows(app: Any, name: str | None = None) -> list[Any]:
    query = sa.select(job_table).order_by(job_table.c.id)
    if name is not None:
        query = query.where(job_table.c.name == name)
    with db_of(app).engine.connect() as connection:
        return list(connection.execute(query))


def row(app: Any, job_id: int) -> Any:
    with db_of(app).engine.connect() as connection:
        return connection.execute(sa.select(job_table).where(job_table.c.id == job_id)).one()


def put(app: Any, name: str, *, delay: float = 0, **payload: Any) -> int:
    """Enqueue a job the way code outside a request does, and commit it."""
    with app.app_context(), db_of(app).session() as session:
        return enqueue(name, session=session, delay=delay, **payload)


def make_due(app: Any, job_id: int) -> None:
    """Pretend the job's backoff has passed."""
    with db_of(app).engine.begin() as connection:
        connection.execute(
            job_table.update()
            .where(job_table.c.id == job_id)
            .values(run_after=utcnow() - timedelta(seconds=1))
        )


# -- recorded in the caller's transaction ------------------------------------------


@pytest.mark.postgres
def test_a_job_enqueued_in_a_failed_request_is_rolled_back_with_it(chores_app: Any) -> None:
    client = chores_app.test_client()

    failed = client.post("/api/chores", json={"title": "sweep", "explode": True})

    assert failed.status_code == 500
    assert failed.json == {
        "errors": [{"reason": "Something went wrong on our side; it has been logged."}]
    }
    assert rows(chores_app) == []
    assert client.get("/api/chores").json == {"results": []}


@pytest.mark.postgres
def test_a_job_enqueued_in_a_committed_request_is_recorded_with_it(chores_app: Any) -> None:
    before = utcnow()
    created = chores_app.test_client().post("/api/chores", json={"title": "sweep"})

    assert created.status_code == 201
    [job] = rows(chores_app)
    assert job.id == created.json["job"]
    assert (job.name, json.loads(job.payload)) == ("remind", {"chore": created.json["id"]})
    assert (job.status, job.attempts, job.last_error, job.locked_until) == ("queued", 0, None, None)
    assert before <= job.run_after <= utcnow()


@pytest.mark.postgres
def test_the_embedded_worker_runs_what_was_committed(chores_app: Any) -> None:
    client = chores_app.test_client()
    created = client.post("/api/chores", json={"title": "sweep"}).json

    run_until_idle(chores_app)

    job = row(chores_app, created["job"])
    assert (job.status, job.attempts, job.last_error, job.locked_until) == ("done", 1, None, None)
    assert client.get("/api/chores").json["results"][0]["reminded"] is True
    # a second message for the same job (a duplicate delivery) is harmless
    assert run_job(chores_app, created["job"]) is None
    assert row(chores_app, created["job"]).attempts == 1


def test_enqueue_names_the_jobs_a_service_has(
    chores_plugin: Any, make_config: Callable[..., Any], make_app: Callable[..., Any]
) -> None:
    app = make_app("chores", make_config({"chores": {}}))
    with app.app_context(), pytest.raises(LookupError) as error:
        enqueue("sweep")
    message = str(error.value)
    assert message.startswith("service chores has no job 'sweep' (jobs: flaky, hold, remind, ")
    assert "srht.send-mail" in message


@pytest.mark.postgres
def test_a_delayed_job_waits_for_its_time(chores_app: Any, tmp_path: Path) -> None:
    later = put(chores_app, "stamp", delay=3600, path=str(tmp_path / "later"))
    now = put(chores_app, "stamp", path=str(tmp_path / "now"))

    run_until_idle(chores_app)

    assert (row(chores_app, now).status, row(chores_app, later).status) == ("done", "queued")
    assert row(chores_app, later).attempts == 0
    assert not (tmp_path / "later").exists()
    make_due(chores_app, later)
    run_until_idle(chores_app)
    assert row(chores_app, later).status == "done"
    assert (tmp_path / "later").read_text() == str(os.getpid())


# -- failures ----------------------------------------------------------------------


@pytest.mark.postgres
def test_a_failing_job_is_retried_with_exponential_backoff_then_failed(chores_app: Any) -> None:
    job_id = put(chores_app, "flaky", message="the kettle is broken")

    run_until_idle(chores_app)
    first = row(chores_app, job_id)
    assert (first.status, first.attempts, first.locked_until) == ("queued", 1, None)
    assert first.run_after - first.updated == timedelta(seconds=10)
    assert "RuntimeError: the kettle is broken" in first.last_error
    assert "Traceback" in first.last_error

    run_until_idle(chores_app)  # not due yet: nothing happens
    assert row(chores_app, job_id).attempts == 1

    make_due(chores_app, job_id)
    run_until_idle(chores_app)
    second = row(chores_app, job_id)
    assert (second.status, second.attempts) == ("queued", 2)
    assert second.run_after - second.updated == timedelta(seconds=20)

    make_due(chores_app, job_id)
    run_until_idle(chores_app)
    last = row(chores_app, job_id)
    assert (last.status, last.attempts) == ("failed", 3)  # max_attempts of flaky
    assert "RuntimeError: the kettle is broken" in last.last_error

    make_due(chores_app, job_id)
    run_until_idle(chores_app)
    assert (row(chores_app, job_id).status, row(chores_app, job_id).attempts) == ("failed", 3)


@pytest.mark.postgres
def test_a_job_no_longer_declared_fails_at_once(chores_app: Any) -> None:
    now = utcnow()
    with db_of(chores_app).engine.begin() as connection:
        job_id = connection.execute(
            job_table.insert().values(
                name="retired",
                payload="{}",
                status="queued",
                attempts=0,
                run_after=now,
                created=now,
                updated=now,
            )
        ).inserted_primary_key[0]

    assert run_job(chores_app, job_id) == "failed"
    assert (
        row(chores_app, job_id).last_error == "no job named 'retired' is declared by this service"
    )


@pytest.mark.postgres
def test_a_running_job_is_recovered_only_once_its_lock_has_expired(
    chores_app: Any, tmp_path: Path
) -> None:
    job_id = put(chores_app, "stamp", path=str(tmp_path / "stamp"))
    with db_of(chores_app).engine.begin() as connection:
        connection.execute(
            job_table.update()
            .where(job_table.c.id == job_id)
            .values(status="running", attempts=1, locked_until=utcnow() + timedelta(hours=1))
        )
    worker = Worker(chores_app)

    assert worker.recover() == 0
    assert run_job(chores_app, job_id) is None  # still someone else's
    with db_of(chores_app).engine.begin() as connection:
        connection.execute(
            job_table.update()
            .where(job_table.c.id == job_id)
            .values(locked_until=utcnow() - timedelta(seconds=1))
        )
    assert worker.recover() == 1

    recovered = row(chores_app, job_id)
    assert (recovered.status, recovered.attempts, recovered.locked_until) == ("queued", 1, None)
    assert recovered.last_error == "the worker running this job stopped before it finished"
    run_until_idle(chores_app)
    assert (row(chores_app, job_id).status, row(chores_app, job_id).attempts) == ("done", 2)


# -- the worker process --------------------------------------------------------------


def start_worker(support_venv: Any, config: Any, log: Path) -> subprocess.Popen[bytes]:
    return support_venv.popen("worker", "chores", config=config.path, log=log)


def gave_up(worker: subprocess.Popen[bytes], log: Path) -> bool:
    """The worker exited, or Celery logged that it cannot go on (it may hang
    after that instead of exiting)."""
    return worker.poll() is not None or "Unrecoverable error" in log.read_text()


def stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@pytest.mark.slow
@pytest.mark.postgres
def test_srht_worker_runs_jobs_from_the_database_and_stops_on_sigterm(
    support_venv: Any, chores_app: Any, process_log: Callable[[str], Path], tmp_path: Path
) -> None:
    config = chores_app.extensions["srht"].config
    log = process_log("worker")
    worker = start_worker(support_venv, config, log)
    try:
        job_id = put(chores_app, "stamp", path=str(tmp_path / "stamp"))
        wait_until(
            lambda: row(chores_app, job_id).status == "done" or worker.poll(),
            what=f"the worker to run job {job_id}",
        )
        assert worker.poll() is None, log.read_text()
        assert (tmp_path / "stamp").read_text() == str(worker.pid)
    finally:
        code = stop(worker)
    assert code == 0, log.read_text()
    assert "worker for chores started (embedded mode" in log.read_text()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_job_whose_worker_was_killed_is_run_again(
    support_venv: Any, chores_app: Any, process_log: Callable[[str], Path], tmp_path: Path
) -> None:
    config = chores_app.extensions["srht"].config
    log = process_log("worker")
    release = tmp_path / "release"
    job_id = put(chores_app, "hold", path=str(release))
    worker = start_worker(support_venv, config, log)
    try:
        wait_until(
            lambda: Path(f"{release}.started").exists() or worker.poll(),
            what="the worker to start the job",
        )
        assert worker.poll() is None, log.read_text()
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
    caught = row(chores_app, job_id)
    assert (caught.status, caught.attempts) == ("running", 1)
    assert caught.locked_until > caught.updated  # the job's 2 s lock

    release.touch()
    survivor = Worker(chores_app)
    wait_until(survivor.recover, what="the lock of the dead worker to expire")
    assert row(chores_app, job_id).status == "queued"
    run_until_idle(chores_app)
    finished = row(chores_app, job_id)
    assert (finished.status, finished.attempts, finished.last_error) == ("done", 2, None)


# -- outages -------------------------------------------------------------------------


def test_the_tick_waits_for_an_unreachable_database_and_carries_on(
    chores_plugin: Any,
    make_config: Callable[..., Any],
    make_app: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The worker's loop survives a database it cannot reach (here, a
    port nobody listens on): it says so once and keeps trying, rather than
    die on the first error."""
    from srht_core.testing import free_port

    unreachable = f"postgresql://srht@127.0.0.1:{free_port()}/nothing"
    app = make_app(
        "chores", make_config({"chores": {"connection-string": unreachable}}), migrate=False
    )
    worker = Worker(app, tick=0.01)
    ticks: list[int] = []
    original = worker.tick

    def counted() -> int:
        ticks.append(1)
        if len(ticks) >= 4:
            worker.stop()
        return original()

    worker.tick = counted  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="srht.jobs"):
        worker.run_forever()  # returns only because it was stopped

    assert len(ticks) == 4
    waits = [r for r in caplog.records if "the worker waits for it" in r.getMessage()]
    assert len(waits) == 1  # said once per outage, not once per tick
    assert waits[0].getMessage().startswith("the database of chores cannot be reached (")


@pytest.mark.postgres
def test_the_tick_stops_the_worker_on_an_error_it_cannot_wait_out(
    chores_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Anything but an outage (here, a table missing) is not waited out: the
    loop logs it and raises, so that the process ends and is started again."""
    with db_of(chores_app).engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE srht_timer"))
    worker = Worker(chores_app)

    with caplog.at_level(logging.INFO, logger="srht.jobs"), pytest.raises(sa.exc.ProgrammingError):
        worker.run_forever()

    assert "the worker for chores cannot go on" in caplog.text


# -- timers ---------------------------------------------------------------------------


@pytest.mark.postgres
def test_a_timer_fires_once_per_period_across_workers(
    chores_plugin: Any, chores_config: Callable[..., Any], make_app: Callable[..., Any]
) -> None:
    config = chores_config({"tidy-every": 600})
    # two apps on one database, as two worker processes would have
    workers = [Worker(make_app("chores", config)), Worker(make_app("chores", config))]
    app = workers[0].app

    def tick_together(rounds: int = 5) -> None:
        barrier = threading.Barrier(len(workers))
        errors: list[BaseException] = []

        def tick(worker: Worker) -> None:
            try:
                for _ in range(rounds):
                    barrier.wait()
                    worker.fire_timers()
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=tick, args=(w,)) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []

    tick_together()
    assert len(rows(app, "tidy")) == 1
    assert len(rows(app, "srht.purge-jobs")) == 1

    with db_of(app).engine.begin() as connection:  # the period passes
        connection.execute(
            timer_table.update()
            .where(timer_table.c.name == "tidy")
            .values(last_run=utcnow() - timedelta(seconds=601))
        )
    tick_together()
    assert len(rows(app, "tidy")) == 2
    assert len(rows(app, "srht.purge-jobs")) == 1

    run_until_idle(app)
    assert {r.status for r in rows(app)} == {"done"}


# -- with a broker ---------------------------------------------------------------------


@pytest.mark.postgres
def test_jobs_enqueued_by_two_threads_are_each_published_after_their_commit(
    chores_plugin: Any,
    chores_config: Callable[..., Any],
    make_app: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker's threads enqueue through the same scoped session (its
    ``db_session``), each in a session of its own: the first commit
    publishes only its own ids, and the second still publishes its own.
    (The publishing itself is the broker tests' below.)"""
    from srht_core import db_session

    published: list[int] = []
    monkeypatch.setattr(
        jobs_module, "publish", lambda _state, job_id, _delay=0: published.append(job_id)
    )
    app = make_app("chores", chores_config(srht={"broker": "redis://127.0.0.1:9/0"}))
    enqueued: dict[str, int] = {}
    second_enqueued, first_committed = threading.Event(), threading.Event()

    def second() -> None:
        with app.app_context():
            enqueued["second"] = enqueue("stamp", session=db_session, path="/nowhere/2")
            second_enqueued.set()
            first_committed.wait(30)
            db_session.commit()

    thread = threading.Thread(target=second)
    thread.start()
    with app.app_context():
        assert second_enqueued.wait(30)
        enqueued["first"] = enqueue("stamp", session=db_session, path="/nowhere/1")
        db_session.commit()
        assert published == [enqueued["first"]]
        first_committed.set()
    thread.join(30)
    assert published == [enqueued["first"], enqueued["second"]]
    # A rolled-back job is never published, and the next commit publishes its own.
    with app.app_context():
        enqueue("stamp", session=db_session, path="/nowhere/3")
        db_session.rollback()
        last = enqueue("stamp", session=db_session, path="/nowhere/4")
        db_session.commit()
    assert published == [enqueued["first"], enqueued["second"], last]


@pytest.fixture
def close_celery() -> Any:
    """Close the in-process Celery apps (and their Redis connections) that
    publishing opened during the test."""
    yield
    from srht_core import queue

    queue.close_all()


@pytest.mark.slow
@pytest.mark.postgres
def test_celery_worker_runs_published_jobs_and_lost_ones_are_published_again(
    support_venv: Any,
    redis_server: Any,
    chores_plugin: Any,
    chores_config: Callable[..., Any],
    make_app: Callable[..., Any],
    process_log: Callable[[str], Path],
    tmp_path: Path,
    close_celery: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import redis

    from srht_core import queue

    config = chores_config(srht={"broker": redis_server.url})
    app = make_app("chores", config)

    # enqueued and committed: published to the service's queue at once
    first = put(app, "stamp", path=str(tmp_path / "first"))
    broker = redis.Redis.from_url(redis_server.url)
    try:
        wait_until(lambda: broker.llen("srht.chores") == 1, what=f"job {first} to be published")
    finally:
        broker.close()

    log = process_log("celery-worker")
    worker = start_worker(support_venv, config, log)
    try:
        wait_until(
            lambda: row(app, first).status == "done" or gave_up(worker, log),
            what="the Celery worker to run the published job",
        )
        assert not gave_up(worker, log), log.read_text()
        assert (tmp_path / "first").read_text() == str(worker.pid)

        # the broker is down when the next job is enqueued: the row is kept,
        # and so is its id, in the process's publisher
        redis_server.stop()
        with caplog.at_level(logging.WARNING, logger="srht.queue"):
            second = put(app, "stamp", path=str(tmp_path / "second"))
            wait_until(
                lambda: f"could not publish job {second} to the broker" in caplog.text,
                what="the publisher to find the broker gone",
            )
        assert row(app, second).status == "queued"
        # a process that ends while the broker is away loses the ids it kept
        third = put(app, "stamp", path=str(tmp_path / "third"))
        queue.close_all()

        # it comes back empty: the publisher of the second is gone with its
        # process, so a tick finds both lost jobs and publishes them again
        redis_server.start()
        monkeypatch.setattr(jobs_module, "LOST_AFTER", timedelta(0))
        Worker(app).tick()
        wait_until(
            lambda: (
                {row(app, second).status, row(app, third).status} == {"done"}
                or gave_up(worker, log)
            ),
            what="the Celery worker to run the re-published jobs",
        )
        assert not gave_up(worker, log), log.read_text()
        assert (tmp_path / "second").read_text() == str(worker.pid)
        assert (tmp_path / "third").read_text() == str(worker.pid)
        assert (row(app, second).attempts, row(app, third).attempts) == (1, 1)
    finally:
        stop(worker)
