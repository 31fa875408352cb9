"""Property-based run of the API against its own OpenAPI document
(Schemathesis, through the WSGI app, with a valid token): whatever it
sends, no 5xx, and every answer is one the document lists, in the shape it
describes."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import PasteSite

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

# Explicit, so that no check about response times can creep in. Left out:
# positive_data_acceptance, since the document cannot express every rule
# (an opaque cursor, file names unique within a paste, sizes in bytes of
# UTF-8), so a schema-valid request may rightly get a 400 naming its field;
# and negative_data_rejection, since the API ignores query parameters it
# does not know, as web APIs do, and every request here carries the token.
# Invalid data is still sent (the negative mode) and must get a documented
# 4xx in the documented shape.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
RUN = settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


def run(operation: Any, mode: GenerationMode, headers: dict[str, str], **fixed: Any) -> None:
    @RUN
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    def check(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    check()


def test_the_api_honours_its_document(paste_site: PasteSite) -> None:
    alice = paste_site.user("alice")
    headers = {"Authorization": "Bearer " + paste_site.token(alice, "paste/pastes:RW")}
    existing = paste_site.api(
        "POST",
        "/api/pastes",
        headers=dict(headers),
        json={"visibility": "public", "files": [{"filename": "a.py", "content": "x = 1\n"}]},
    )
    assert existing.status_code == 201

    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", paste_site.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} == {
        "GET /api/pastes",
        "POST /api/pastes",
        "GET /api/pastes/{id}",
        "DELETE /api/pastes/{id}",
    }
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run(operation, mode, headers)
    # And on a paste that exists, read then deleted.
    for label in ("GET /api/pastes/{id}", "DELETE /api/pastes/{id}"):
        operation = schema.find_operation_by_label(label)
        run(
            operation, GenerationMode.POSITIVE, headers, path_parameters={"id": existing.json["id"]}
        )
