"""srht_core.idempotency: every API write of every service commits once, with
its answer, and a retry with the same ``Idempotency-Key`` replays that
answer and changes nothing. Shown on the chores service, which has no code
of its own for it."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from support import wait_until

from srht_core import TokenGrant, idempotency_header_parameter, seal_grant, state_of
from srht_core.db import utcnow
from srht_core.idempotency import idempotency_table, purge_expired_keys
from srht_core.jobs import job_table

pytestmark = pytest.mark.postgres


@pytest.fixture
def app(chores_app: Any) -> Any:
    # no meta here to ask about revoked tokens: none is
    state_of(chores_app).revoked = lambda _kind, _token_id: False
    return chores_app


def token(app: Any, token_id: int = 1) -> str:
    grant = TokenGrant("pat", token_id, 1, frozenset({"chores/chores:RW"}), None)
    return seal_grant(grant, state_of(app))


def post(app: Any, body: dict[str, Any], *, key: str | None, token_id: int | None = 1) -> Any:
    headers = {}
    if token_id is not None:
        headers["Authorization"] = f"Bearer {token(app, token_id)}"
    if key is not None:
        headers["Idempotency-Key"] = key
    return app.test_client().post("/api/chores", json=body, headers=headers)


def count(app: Any, table: Any) -> int:
    with app.extensions["srht"].db.engine.connect() as connection:
        return int(connection.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


def chores(app: Any) -> list[str]:
    with app.extensions["srht"].db.engine.connect() as connection:
        return list(connection.scalars(sa.text("SELECT title FROM chore ORDER BY id")))


def test_a_retry_with_the_same_key_replays_the_answer_and_changes_nothing(app: Any) -> None:
    key = str(uuid.uuid4())
    first = post(app, {"title": "sweep"}, key=key)
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers

    retry = post(app, {"title": "sweep"}, key=key)

    assert retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.headers["Content-Type"] == "application/json"
    assert retry.get_data() == first.get_data()
    assert chores(app) == ["sweep"]
    assert count(app, job_table) == 1  # its job was recorded once too


def test_the_same_key_for_another_request_is_refused(app: Any) -> None:
    key = str(uuid.uuid4())
    assert post(app, {"title": "sweep"}, key=key).status_code == 201

    other = post(app, {"title": "mop"}, key=key)

    assert other.status_code == 422
    assert other.json == {
        "errors": [
            {
                "field": "Idempotency-Key",
                "reason": "this key was already used for another request (POST /api/chores); "
                "a new request needs a new key",
            }
        ]
    }
    assert chores(app) == ["sweep"]


def test_keys_belong_to_a_token(app: Any) -> None:
    key = str(uuid.uuid4())
    assert post(app, {"title": "sweep"}, key=key, token_id=1).status_code == 201
    again = post(app, {"title": "sweep"}, key=key, token_id=2)
    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again.headers
    assert chores(app) == ["sweep", "sweep"]


@pytest.mark.parametrize(
    ("key", "token_id", "reason"),
    [
        ("k", None, "needs a bearer token"),
        (" padded", 1, "printable ASCII"),
        ("x" * 256, 1, "printable ASCII"),
        ("clé", 1, "printable ASCII"),
        ("", 1, "printable ASCII"),
    ],
)
def test_a_key_needs_a_token_and_a_sensible_value(
    app: Any, key: str, token_id: int | None, reason: str
) -> None:
    refused = post(app, {"title": "sweep"}, key=key, token_id=token_id)
    assert refused.status_code == 400
    [error] = refused.json["errors"]
    assert error["field"] == "Idempotency-Key"
    assert reason in error["reason"]
    assert chores(app) == []


def test_a_failed_write_commits_nothing_and_leaves_its_key_free(app: Any) -> None:
    key = str(uuid.uuid4())
    failed = post(app, {"title": "sweep", "explode": True}, key=key)
    assert failed.status_code == 500
    assert (chores(app), count(app, job_table), count(app, idempotency_table)) == ([], 0, 0)

    assert post(app, {"title": "sweep"}, key=key).status_code == 201
    assert chores(app) == ["sweep"]


@pytest.mark.parametrize("key", [None, "after-commit"])
def test_a_write_that_fails_after_its_commit_is_not_committed(app: Any, key: str | None) -> None:
    """The view committed, then failed: the client is told it failed, so
    nothing may be kept (the core commits only with the answer)."""
    failed = post(app, {"title": "sweep", "explode": "after commit"}, key=key)

    assert failed.status_code == 500
    assert (chores(app), count(app, job_table), count(app, idempotency_table)) == ([], 0, 0)


def test_a_refusal_is_not_stored(app: Any) -> None:
    key = str(uuid.uuid4())
    assert post(app, {"title": ""}, key=key).status_code == 400
    assert count(app, idempotency_table) == 0
    assert post(app, {"title": "sweep"}, key=key).status_code == 201


def test_reads_are_left_alone(app: Any) -> None:
    answer = app.test_client().get(
        "/api/chores",
        headers={"Idempotency-Key": "x", "Authorization": f"Bearer {token(app)}"},
    )
    assert answer.status_code == 200
    assert count(app, idempotency_table) == 0


def test_two_racing_requests_with_one_key_commit_once(app: Any, tmp_path: Path) -> None:
    """Both write, then one commits first: the other is rolled back and
    answered with the first one's answer."""
    key = str(uuid.uuid4())
    body = {"title": "sweep", "hold": "race"}
    answers: list[Any] = []

    def send() -> None:
        answers.append(post(app, body, key=key))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    hold_dir = Path(app.extensions["srht"].section["hold-dir"])
    wait_until(
        lambda: len(list(hold_dir.glob("race.*.started"))) == 2,
        what="both requests to have written their chore",
    )
    (hold_dir / "race.release").touch()
    for thread in threads:
        thread.join(60)

    assert sorted(a.status_code for a in answers) == [201, 201]
    assert answers[0].get_data() == answers[1].get_data()
    assert sorted(a.headers.get("Idempotent-Replayed", "") for a in answers) == ["", "true"]
    assert chores(app) == ["sweep"]
    assert count(app, job_table) == 1


def test_keys_are_forgotten_after_a_day(app: Any) -> None:
    old, new = str(uuid.uuid4()), str(uuid.uuid4())
    assert post(app, {"title": "old"}, key=old).status_code == 201
    assert post(app, {"title": "new"}, key=new).status_code == 201
    with app.extensions["srht"].db.engine.begin() as connection:
        connection.execute(
            idempotency_table.update()
            .where(idempotency_table.c.key == old)
            .values(created=utcnow() - timedelta(hours=25))
        )

    with app.app_context():
        purge_expired_keys()

    with app.extensions["srht"].db.engine.connect() as connection:
        kept = list(connection.scalars(sa.select(idempotency_table.c.key)))
    assert kept == [new]


def test_the_openapi_parameter_describes_the_header() -> None:
    parameter = idempotency_header_parameter()
    assert (parameter["name"], parameter["in"], parameter["required"]) == (
        "Idempotency-Key",
        "header",
        False,
    )
    assert parameter["schema"]["maxLength"] == 255
    assert "422" in parameter["description"]
