"""``srht serve`` for real: gunicorn with two workers, an installed service
found through its entry point, PostgreSQL behind it, requests over HTTP."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from support import wait_until

from srht_core.config import dump_ini
from srht_core.testing import serve_service, site_config

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@dataclass(frozen=True)
class Site:
    url: str
    origin: str
    database_url: str
    hold_dir: Path


@pytest.fixture(scope="module")
def site(
    support_venv: Any, srht_postgres: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """chores served by ``srht serve`` (2 gunicorn workers) on a migrated
    PostgreSQL database, for every test of this module."""
    root = tmp_path_factory.mktemp("serve")
    database_url = srht_postgres.create_database()
    hold_dir = root / "hold"
    hold_dir.mkdir()
    data = site_config(
        root / "data",
        {"chores": {"connection-string": database_url, "hold-dir": str(hold_dir), "workers": 2}},
    )
    config = root / "config.ini"
    config.write_text(dump_ini(data), encoding="utf-8")
    migrated = support_venv.srht("migrate", config=config)
    assert migrated.returncode == 0, migrated.stderr
    with serve_service("chores", config, python=support_venv.python, workers=2) as url:
        yield Site(url, data["chores"]["origin"], database_url, hold_dir)


def get(site: Site, path: str, **kwargs: Any) -> requests.Response:
    return requests.get(site.url + path, timeout=60, allow_redirects=False, **kwargs)


def csrf_token(page: str) -> str:
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def test_the_page_renders_in_the_shared_layout(site: Site) -> None:
    page = get(site, "/")

    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    html = page.text
    assert "<title>Chores · srht test</title>" in html
    assert '<header class="site">' in html and '<footer class="site">' in html
    assert f'<a href="{site.origin}/" aria-current="page">Chores</a>' in html
    assert "powered by srht" in html
    assert "<h1>Chores</h1>" in html
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"

    stylesheet = re.search(r'<link rel="stylesheet" href="([^"]+)">', html)
    assert stylesheet and stylesheet.group(1).startswith("/style.css?v=")
    css = get(site, stylesheet.group(1))
    assert css.status_code == 200
    assert css.headers["Content-Type"].startswith("text/css")
    assert "max-age=31536000" in css.headers["Cache-Control"]


def test_the_form_adds_a_chore_and_records_its_job(site: Site) -> None:
    browser = requests.Session()
    token = csrf_token(browser.get(site.url + "/", timeout=60).text)

    posted = browser.post(
        site.url + "/",
        data={"csrf_token": token, "title": "mop the hall"},
        timeout=60,
        allow_redirects=False,
    )

    assert posted.status_code == 302
    assert posted.headers["Location"] == "/"
    assert "<li>mop the hall</li>" in browser.get(site.url + "/", timeout=60).text
    engine = sa.create_engine(site.database_url)
    try:
        with engine.connect() as connection:
            jobs = connection.execute(
                sa.text("SELECT j.name, j.payload FROM srht_job j WHERE j.name = 'remind'")
            ).all()
            chore = connection.execute(
                sa.text("SELECT id FROM chore WHERE title = 'mop the hall'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert (jobs[-1].name, jobs[-1].payload) == ("remind", f'{{"chore": {chore}}}')


def test_a_post_without_csrf_token_is_refused(site: Site) -> None:
    refused = requests.post(
        site.url + "/", data={"title": "forged"}, timeout=60, allow_redirects=False
    )

    assert refused.status_code == 400
    assert refused.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<h1>400 Bad Request</h1>" in refused.text
    assert "The CSRF token is missing." in refused.text
    assert '<header class="site">' in refused.text
    assert "forged" not in get(site, "/").text


def test_healthz_reports_the_database(site: Site) -> None:
    health = get(site, "/healthz")

    assert health.status_code == 200
    body = health.json()
    assert (body["service"], body["database"]) == ("chores", "ok")


def test_api_errors_are_json_and_page_errors_are_pages(site: Site) -> None:
    missing = get(site, "/api/no-such-thing")
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/json"
    assert list(missing.json()) == ["errors"]
    assert missing.json()["errors"][0]["reason"]

    invalid = requests.post(site.url + "/api/chores", json={}, timeout=60)  # no CSRF needed
    assert invalid.status_code == 400
    assert invalid.json() == {"errors": [{"field": "title", "reason": "a chore needs a title"}]}

    page = get(site, "/no-such-page")
    assert page.status_code == 404
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<h1>404 Not Found</h1>" in page.text


def requests_counted(metrics: str, endpoint: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "srht_requests_total" and sample.labels.get("endpoint") == endpoint
    )


def test_metrics_add_up_the_requests_of_both_workers(site: Site) -> None:
    # Keep one worker busy so that the other must answer the next requests.
    held: dict[str, Any] = {}
    holder = threading.Thread(target=lambda: held.update(response=get(site, "/hold/metrics")))
    holder.start()
    try:
        started = wait_until(
            lambda: (site.hold_dir / "metrics.started").exists(),
            what="a worker to take the held request",
        )
        assert started
        busy = int((site.hold_dir / "metrics.started").read_text())
        others = {get(site, "/whoami").json()["pid"] for _ in range(5)}
    finally:
        (site.hold_dir / "metrics.release").touch()
        holder.join()
    assert held["response"].json() == {"pid": busy}
    assert len(others) == 1 and busy not in others  # two workers answered

    metrics = get(site, "/metrics")

    assert metrics.status_code == 200
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert requests_counted(metrics.text, "chores.hold") == 1
    assert requests_counted(metrics.text, "chores.whoami") == 5
    assert re.search(r'^srht_jobs_queued\{service="chores"\} \d+\.0$', metrics.text, re.MULTILINE)


class Held:
    """A request to ``/hold/<name>`` keeping one worker busy until released."""

    def __init__(self, site: Site, name: str):
        self.site, self.name = site, name
        self.thread = threading.Thread(target=lambda: get(site, f"/hold/{name}"))
        self.thread.start()
        started = site.hold_dir / f"{name}.started"
        wait_until(started.exists, what=f"a worker to take /hold/{name}")
        self.pid = int(started.read_text())

    def release(self) -> None:
        (self.site.hold_dir / f"{self.name}.release").touch()
        self.thread.join()


def from_each_worker(site: Site, path: str, tag: str) -> dict[int, Any]:
    """``path``'s JSON as each of the two workers answers it, by pid (the
    other worker held busy meanwhile)."""
    first = Held(site, f"{tag}a")
    try:
        one = get(site, path).json()  # the worker not holding
        second = Held(site, f"{tag}b")  # the only one free: the worker that answered
    finally:
        first.release()
    try:
        other = get(site, path).json()
    finally:
        second.release()
    assert second.pid == one["pid"] != other["pid"] == first.pid
    return {one["pid"]: one, other["pid"]: other}


def test_a_kept_page_follows_a_change_in_every_worker(site: Site) -> None:
    """A chore's page is kept per worker for visitors without cookies; a
    change written elsewhere (here, straight into the database) reaches
    both workers through PostgreSQL's notification."""
    engine = sa.create_engine(site.database_url)
    try:
        with engine.begin() as connection:
            number = connection.execute(
                sa.text(
                    "INSERT INTO chore (title, done, reminded, created, updated) VALUES "
                    "('water the plants', false, false, now(), now()) RETURNING id"
                )
            ).scalar_one()
        path = f"/chore/{number}"
        rounds = iter(range(1000))

        def each_worker() -> dict[int, Any]:
            return from_each_worker(site, path, f"r{next(rounds)}")

        def kept_twice() -> dict[int, Any] | None:
            # (a worker's first watched page starts its feed, and is not
            # kept while the feed is not listening yet)
            first = each_worker()
            return first if each_worker() == first else None

        # answered again from memory: the same render of each worker
        kept = wait_until(kept_twice, what="both workers to keep the page")
        assert {answer["title"] for answer in kept.values()} == {"water the plants"}

        with engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE chore SET title = 'feed the cat' WHERE id = :n"), {"n": number}
            )

        def followed() -> bool:
            return {answer["title"] for answer in each_worker().values()} == {"feed the cat"}

        wait_until(followed, what="both workers to drop the kept page")
        counted = {
            sample.labels["result"]: sample.value
            for family in text_string_to_metric_families(get(site, "/metrics").text)
            for sample in family.samples
            if sample.name == "srht_kept_pages_total"
        }
        assert counted["hit"] >= 2 and counted["miss"] >= 4  # both workers, added up
    finally:
        engine.dispose()


def test_metrics_are_hidden_from_clients_outside_the_internal_networks(site: Site) -> None:
    # as nginx on loopback would relay a request from outside
    relayed = get(site, "/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert relayed.status_code == 404
