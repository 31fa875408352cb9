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

from .conftest import DOMAIN, message

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

#: A request the schema allows may still be refused (400 or 404) for what a
#: schema cannot express: a user named in it who does not exist, a cursor
#: the API never gave out. Everything else Schemathesis checks is checked.
EXCLUDED = [positive_data_acceptance]


def test_the_api_honours_its_openapi_document(site: Any) -> None:
    alice, bob = site.user("alice"), site.user("bob")
    devel = site.mailing_list(alice, "devel")
    site.subscribe(devel, "carol@example.org")
    to = f"~alice/devel@{DOMAIN}"
    patch = "x\n---\ndiff --git a/a b/a\n--- a/a\n+++ b/a\n@@ -1 +1 @@\n-a\n+b\n"
    assert site.deliver(message("[PATCH] a", patch, to=to), to).startswith("250")
    api = site.api(alice)
    webhook = api.post(
        "/lists/alice/devel/webhooks", {"url": "http://127.0.0.1:9/", "events": ["email:received"]}
    ).json
    user_webhook = api.post(
        "/user/webhooks", {"url": "http://127.0.0.1:9/", "events": ["list:create"]}
    ).json
    assert site.deliver(message("Hello", to=to), to).startswith("250")
    delivery = api.get("/lists/alice/devel/webhook-deliveries").json["results"][0]
    [subscription] = api.get("/lists/alice/devel/subscriptions").json["results"]
    [thread, _other] = api.get("/lists/alice/devel/threads").json["results"]
    [email_, _first] = api.get("/lists/alice/devel/messages").json["results"]
    [patchset] = api.get("/lists/alice/devel/patchsets").json["results"]
    real = {
        "owner": "alice",
        "list": "devel",
        "username": "bob",
        "thread_id": thread["id"],
        "email_id": email_["id"],
        "patchset_id": patchset["id"],
        "tool": "builds",
        "subscription_id": subscription["id"],
        "webhook_id": webhook["id"],
        "delivery_id": delivery["id"],
    }
    del bob
    headers = {"Authorization": f"Bearer {site.token(alice)}"}

    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", site.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30
    # Deletions last, deepest first, so that the others find their objects.
    operations.sort(key=lambda op: (op.method.upper() == "DELETE", -len(op.path)))
    statuses: dict[str, set[int]] = {}
    for operation in operations:
        names = [p.name for p in operation.path_parameters]
        pinned = {name: real[name] for name in names}
        if operation.path.startswith("/api/user/webhooks/"):
            pinned["webhook_id"] = user_webhook["id"]  # not the list's
        strategy = st.one_of(
            *operation.get_strategies_from_examples(),
            operation.as_strategy(GenerationMode.POSITIVE, path_parameters=pinned),
            operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=pinned),
            operation.as_strategy(GenerationMode.POSITIVE),
        )

        @hypothesis.given(case=strategy)
        @hypothesis.settings(
            max_examples=15,
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
