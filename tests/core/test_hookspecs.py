"""The plugin API documents itself and is tested: every hookspec has a
docstring saying what it returns, each parameter and since when, and its
name appears in a test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from srht_core import hookspecs
from srht_core.plugins import PluginHost

TESTS = Path(__file__).resolve().parents[1]
HOOKS = PluginHost.spec_names()

#: Hooks no core code calls yet, so there is nothing to test through; each
#: must come off this list (the test then passes strictly) when it gets a test.
AWAITING_A_CONSUMER = {}


def test_there_are_hooks():
    assert "service_info" in HOOKS and len(HOOKS) >= 10
    assert set(AWAITING_A_CONSUMER) <= set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_every_hookspec_is_documented(name):
    spec = getattr(hookspecs, name)
    doc = inspect.cleandoc(spec.__doc__ or "")
    summary = doc.split("\n\n")[0]
    assert len(summary) > 20, f"{name}: no summary sentence"
    assert ":return:" in doc or re.search(r"returns? (None|nothing)", doc), (
        f"{name}: the docstring does not say what to return"
    )
    assert re.search(r"^\.\. versionadded:: \d", doc, re.M), f"{name}: no versionadded"
    for parameter in inspect.signature(spec).parameters:
        assert f":param {parameter}:" in doc, f"{name}: parameter {parameter} undocumented"
    assert re.search(r"^Called ", doc, re.M), f"{name}: does not say when it is called"


def _test_sources() -> str:
    return "\n".join(
        path.read_text(encoding="utf-8")
        for path in TESTS.rglob("test_*.py")
        if path.resolve() != Path(__file__).resolve()
    )


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=AWAITING_A_CONSUMER[name]))
        if name in AWAITING_A_CONSUMER
        else name
        for name in HOOKS
    ],
)
def test_every_hookspec_is_tested(name):
    assert re.search(rf"\b{name}\b", _test_sources()), (
        f"no test under tests/ mentions the hook {name}"
    )
