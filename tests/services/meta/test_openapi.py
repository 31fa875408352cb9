"""The API against its own OpenAPI document, with Schemathesis: for every
operation, requests generated from the document, valid and invalid, with a
valid token, on real keys and on made-up ones. No answer may be a 5xx,
every status must be documented, and every response must match its
documented schema."""

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

from .conftest import MetaSite
from .test_api import Api, token
from .test_keys import ED25519, PGP_ALICE

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

#: A request the schema allows may still be refused (400): a string that is
#: not a public key, a cursor the API never gave out. Everything else
#: Schemathesis checks is checked.
EXCLUDED = [positive_data_acceptance]


def test_the_api_honours_its_openapi_document(meta_site: MetaSite) -> None:
    meta_site.create_user("alice")
    bearer = token(meta_site, "alice", "meta/profile:RO meta/keys:RW")
    api = Api(meta_site, bearer)
    real = {
        "/api/ssh-keys/{key_id}": api.post("/ssh-keys", {"key": ED25519}).json["id"],
        "/api/pgp-keys/{key_id}": api.post("/pgp-keys", {"key": PGP_ALICE}).json["id"],
    }
    headers = {"Authorization": f"Bearer {bearer}"}

    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", meta_site.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 9
    # Deletions last, so that the others find their keys.
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    statuses: dict[str, set[int]] = {}
    for operation in operations:
        pinned = {"key_id": real[operation.path]} if operation.path in real else {}
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE, path_parameters=pinned),
            operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=pinned),
            operation.as_strategy(GenerationMode.POSITIVE),
        )

        @hypothesis.given(case=strategy)
        @hypothesis.settings(
            max_examples=25,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = call_as(case, headers, excluded_checks=EXCLUDED)
            statuses.setdefault(case.operation.label, set()).add(response.status_code)

        run()

    assert set(statuses) == {op.label for op in operations}
    assert all(status < 500 for seen in statuses.values() for status in seen), statuses
