"""The API against its own OpenAPI document, with Schemathesis: for every
operation, requests generated from the document, valid and invalid, with a
valid token, on a real paste and on made-up ones. No answer may be a 5xx,
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

from .conftest import PasteSite

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

#: A request the schema allows may still be refused for what a schema cannot
#: express: file names unique within a paste, sizes in bytes of UTF-8 from
#: the config, a cursor the API never gave out, an id no paste has (404).
#: Everything else Schemathesis checks is checked.
EXCLUDED = [positive_data_acceptance]


def test_the_api_honours_its_openapi_document(paste_site: PasteSite) -> None:
    alice = paste_site.user("alice")
    headers = {"Authorization": "Bearer " + paste_site.token(alice, "paste/pastes:RW")}
    existing = paste_site.api(
        "POST",
        "/api/pastes",
        headers=dict(headers),
        json={"visibility": "public", "files": [{"filename": "a.py", "content": "x = 1\n"}]},
    )
    assert existing.status_code == 201
    real = {"id": existing.json["id"]}

    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", paste_site.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} == {
        "GET /api/pastes",
        "POST /api/pastes",
        "GET /api/pastes/{id}",
        "DELETE /api/pastes/{id}",
    }
    # The deletion last, so that the others find the paste.
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    statuses: dict[str, set[int]] = {}
    for operation in operations:
        pinned = {p.name: real[p.name] for p in operation.path_parameters}
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE, path_parameters=pinned),
            operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=pinned),
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @hypothesis.given(case=strategy)
        @hypothesis.settings(
            max_examples=60,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = call_as(case, headers, excluded_checks=EXCLUDED)
            statuses.setdefault(case.operation.label, set()).add(response.status_code)

        run()

    succeeded = [label for label, seen in statuses.items() if any(s < 300 for s in seen)]
    assert sorted(succeeded) == sorted(op.label for op in operations), statuses
