"""The tree reads one way: ruff's lint and format, mypy --strict on the core,
every service and the deploy, and no import cycle among the core's modules.
Each is what a contributor runs before sending a change."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: What mypy --strict checks (the pyproject's [tool.mypy] settings apply).
TYPED = [
    "srht_core",
    "srht_plugins/meta",
    "srht_plugins/todo",
    "srht_plugins/git",
    "srht_plugins/paste",
    "srht_plugins/lists",
    "srht_plugins/hub",
    "srht_plugins/builds",
    "deploy",
]

pytestmark = pytest.mark.slow


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=900
    )


def test_ruff_finds_nothing() -> None:
    checked = _run("ruff", "check", ".")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    formatted = _run("ruff", "format", "--check", ".")
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


@pytest.mark.parametrize("package", TYPED)
def test_mypy_strict(package: str) -> None:
    checked = _run("mypy", "--strict", package)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _imports(module: Path, package: str, names: set[str]) -> set[str]:
    """The core modules ``module`` imports, at the top or inside functions
    (TYPE_CHECKING imports too: a cycle of types is still a knot)."""
    own = module.relative_to(ROOT).with_suffix("")
    parts = own.parts[:-1] if own.name == "__init__" else own.parts
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(parts if module.name == "__init__.py" else parts[:-1])
            if node.level:
                base = base[: len(base) - node.level + 1]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            targets = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t in names and t != package}
    return found


def test_the_core_has_no_import_cycle() -> None:
    """The core's layers point one way (issue 14): its state in
    srht_core.globals imports nothing above it, and no module reaches back
    up, not even from inside a function."""
    modules = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
        for p in (ROOT / "srht_core").rglob("*.py")
        if "migrations" not in p.parts and "skeleton" not in p.parts
    }
    edges = {
        name: _imports(path, "srht_core", set(modules)) - {name} for name, path in modules.items()
    }
    cycles: list[list[str]] = []
    seen: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        for target in sorted(edges[name]):
            if target in path:
                cycles.append(path[path.index(target) :] + [target])
            elif target not in seen:
                seen.add(target)
                visit(target, [*path, target])

    for name in sorted(modules):
        if name not in seen:
            seen.add(name)
            visit(name, [name])
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
