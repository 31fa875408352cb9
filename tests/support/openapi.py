"""Driving Schemathesis against a service's own OpenAPI document."""

from __future__ import annotations

from typing import Any

from schemathesis.core.parameters import ParameterLocation


def call_as(case: Any, headers: dict[str, str], **kwargs: Any) -> Any:
    """``case.call_and_validate`` with ``headers`` (a token), except when
    Schemathesis generated the case's headers to break the document (say,
    without the ``Authorization`` it requires): that request goes as made,
    so a refusal is expected and checked."""
    negative = case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER)
    return case.call_and_validate(headers=None if negative else headers, **kwargs)
