"""Property-based run of the API against its own OpenAPI document
(Schemathesis, through the WSGI app of the running site's config, with a
valid token): whatever it sends, no 5xx, and every answer is one the
document lists, in the shape it describes."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import GitStack

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

# Explicit, so that no check about response times can creep in. Left out:
# positive_data_acceptance, since the document cannot express every rule
# (a name taken already, a user not known yet, a branch that must exist),
# so a schema-valid request may rightly get a 400 or 404 naming its field.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
RUN = settings(
    max_examples=30,
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


def test_the_api_honours_its_document(git_stack: GitStack) -> None:
    alice = git_stack.new_user("alice")
    token = git_stack.publish(alice, "fuzzed", {"a.txt": "a\n"})
    headers = {"Authorization": "Bearer " + token}
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", git_stack.git_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 14
    for operation in operations:
        run(operation, GenerationMode.POSITIVE, headers)
        try:
            run(operation, GenerationMode.NEGATIVE, headers)
        except Unsatisfiable:
            # Only free-form strings in the path: nothing is invalid to send.
            assert operation.method.upper() in ("GET", "DELETE"), operation.label
    # And on a repository that exists.
    for operation in operations:
        if "{name}" in operation.path and operation.method.upper() != "DELETE":
            run(
                operation,
                GenerationMode.POSITIVE,
                headers,
                path_parameters={"username": alice, "name": "fuzzed"},
            )
