"""The API against its own OpenAPI document, with Schemathesis: for every
operation, the document's examples, then requests generated from it, valid
and invalid, with a valid token, on real objects and on made-up ones. No
answer may be a 5xx, every status must be documented, and every response
must match its documented schema."""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance
from support.openapi import call_as

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

#: A request the schema allows may still be refused (400) for what a schema
#: cannot express: a label or user named in it that does not exist, a cursor
#: the API never gave out. Everything else Schemathesis checks is checked.
EXCLUDED = [positive_data_acceptance]


def test_the_api_honours_its_openapi_document(site: Any) -> None:
    alice, bob = site.user("alice"), site.user("bob")
    site.tracker(alice, "bugs")
    api = site.api(alice)
    label = api.post("/trackers/alice/bugs/labels", {"name": "bug", "color": "#d73a4a"}).json
    webhook = api.post(
        "/trackers/alice/bugs/webhooks", {"url": "http://127.0.0.1:9/", "events": ["ticket:create"]}
    ).json
    site.ticket(alice, "bugs", "Crash", "It crashes", actor=bob)
    site.api(bob).post("/trackers/alice/bugs/tickets/1/comments", {"text": "Me too"})
    delivery = api.get("/trackers/alice/bugs/webhook-deliveries").json["results"][0]
    real = {
        "owner": "alice",
        "tracker": "bugs",
        "number": 1,
        "label_id": label["id"],
        "webhook_id": webhook["id"],
        "delivery_id": delivery["id"],
        "username": "bob",
    }
    headers = {"Authorization": f"Bearer {site.token(alice)}"}

    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", site.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    # Deletions last, deepest first, so that the others find their objects.
    operations.sort(key=lambda op: (op.method.upper() == "DELETE", -len(op.path)))
    statuses: dict[str, set[int]] = {}
    for operation in operations:
        names = [p.name for p in operation.path_parameters]
        pinned = {name: real[name] for name in names}
        strategy = st.one_of(
            *operation.get_strategies_from_examples(),
            operation.as_strategy(GenerationMode.POSITIVE, path_parameters=pinned),
            operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=pinned),
            operation.as_strategy(GenerationMode.POSITIVE),
        )

        @hypothesis.given(case=strategy)
        @hypothesis.settings(
            max_examples=20,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = call_as(case, headers, excluded_checks=EXCLUDED)
            statuses.setdefault(case.operation.label, set()).add(response.status_code)

        run()

    succeeded = [label for label, seen in statuses.items() if any(s < 300 for s in seen)]
    assert len(succeeded) == len(operations), sorted(set(statuses) - set(succeeded))
