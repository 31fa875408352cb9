"""The README's first command with every service this tree installs:
``srht up`` on a development config (SQLite, one port per service).

The core's own ``srht up`` tests use a one-page test service; this one runs
the real services together, so a migration that works on PostgreSQL but not
on SQLite (builds0002 added a foreign key to an existing table, which SQLite
cannot ALTER) stops the suite rather than a newcomer.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from srht_core.testing import free_port, wait_for_http

SERVICES = ["builds", "git", "hub", "lists", "meta", "paste", "todo"]

#: Tables whose ids are not generated there: each service's mirror of meta's
#: users, and meta's record of deleted accounts, keep meta's user ids.
NOT_GENERATED = {("meta", "deleted_user")} | {(s, "user") for s in SERVICES if s != "meta"}


def _srht(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SRHT_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "srht_core.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _dev_config_on_free_ports(folder: Path) -> dict[str, str]:
    """``srht config init --dev``, then each service moved to a free port (the
    defaults may be taken on a shared machine). Returns each service's origin."""
    result = _srht("config", "init", "--dev", "config.ini", cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    parser = configparser.RawConfigParser()
    parser.read(folder / "config.ini")
    assert set(SERVICES) <= set(parser.sections()), parser.sections()
    origins = {}
    for service in SERVICES:
        port = free_port()
        parser[service]["origin"] = origins[service] = f"http://127.0.0.1:{port}"
        parser[service]["bind"] = f"127.0.0.1:{port}"
    with open(folder / "config.ini", "w", encoding="utf-8") as out:
        parser.write(out)
    return origins


def test_every_installed_service_migrates_on_sqlite_without_reusable_ids(tmp_path: Path) -> None:
    _dev_config_on_free_ports(tmp_path)
    result = _srht("migrate", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for service in SERVICES:
        assert f"{service}: empty -> {service}" in result.stdout, result.stdout

    for service in SERVICES:
        database = sqlite3.connect(tmp_path / "srht-data" / f"{service}.db")
        with contextlib.closing(database):
            tables = database.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'alembic%'"
            ).fetchall()
            assert tables, service
            for name, sql in tables:
                columns = [row[1] for row in database.execute(f'PRAGMA table_info("{name}")')]
                if "id" in columns and (service, name) not in NOT_GENERATED:
                    # A deleted row's id must never come back (DESIGN: SQLite is
                    # as safe as PostgreSQL).
                    assert "AUTOINCREMENT" in sql, f"{service}.{name}: {sql}"


@pytest.mark.slow
def test_srht_up_serves_every_installed_service(tmp_path: Path) -> None:
    origins = _dev_config_on_free_ports(tmp_path)
    log = tmp_path / "up.log"
    env = {k: v for k, v in os.environ.items() if k != "SRHT_CONFIG"}
    with open(log, "wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "srht_core.cli", "-c", "config.ini", "up"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        for service, origin in origins.items():
            try:
                wait_for_http(origin + "/healthz", timeout=180, process=up)
            except Exception as error:  # the log says why, not just "timed out"
                raise AssertionError(
                    f"{service} did not come up: {error}\n{log.read_text(errors='replace')}"
                ) from error
            page = requests.get(origin + "/", timeout=30)
            assert page.status_code == 200, (service, page.status_code, page.text[:500])
        assert "Running. Press Ctrl-C to stop." in log.read_text(errors="replace")
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=90) == 0, log.read_text(errors="replace")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(up.pid, signal.SIGKILL)
        up.wait()
