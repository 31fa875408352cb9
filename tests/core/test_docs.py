"""Generated documentation is current: ``docs/plugin-api.md``,
``docs/config.md`` and ``config.example.ini`` are what ``srht dev docs``
makes from the hookspecs and schemas, and a changed docstring shows."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from srht_core import PluginHost
from srht_core.docs import generated_files, plugin_api_markdown

ROOT = Path(__file__).resolve().parents[2]


def _srht(
    *args: str, cwd: Path, pythonpath: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SRHT_CONFIG", "PYTHONPATH")}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [sys.executable, "-m", "srht_core.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_generated_files_are_current():
    result = _srht("dev", "docs", "--check", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "generated files are current\n"


def test_the_plugin_api_page_is_made_from_the_hookspecs():
    page = plugin_api_markdown()
    assert page == (ROOT / "docs" / "plugin-api.md").read_text(encoding="utf-8")
    for name in PluginHost.spec_names():
        assert f"### `{name}(" in page
    assert "*Added in 0.1.*" in page
    assert ":param" not in page and ":return:" not in page
    # Everything else the core exports has its entry under "What services call".
    import srht_core
    from srht_core import service

    helpers = page[page.index("## What services call") :]
    for name in set(srht_core.__all__) - set(service.__all__) - {"__version__"}:
        assert f"#### `{name}" in helpers, name


def test_a_changed_docstring_makes_the_page_stale(tmp_path):
    docs = tmp_path / "docs-root"
    assert _srht("dev", "docs", "--root", str(docs), cwd=tmp_path).returncode == 0
    copy = tmp_path / "modified" / "srht_core"
    shutil.copytree(ROOT / "srht_core", copy, ignore=shutil.ignore_patterns("__pycache__"))
    hookspecs = copy / "hookspecs.py"
    source = hookspecs.read_text(encoding="utf-8")
    changed = source.replace(
        "Contribute links to the navigation bar",
        "Contribute links (a new sentence) to the navigation bar",
        1,
    )
    assert changed != source
    hookspecs.write_text(changed, encoding="utf-8")
    result = _srht(
        "dev", "docs", "--check", "--root", str(docs), cwd=tmp_path, pythonpath=copy.parent
    )
    assert result.returncode == 1
    assert result.stderr == "error: stale: docs/plugin-api.md; run `srht dev docs`\n"
    unchanged = _srht("dev", "docs", "--check", "--root", str(docs), cwd=tmp_path)
    assert unchanged.returncode == 0, unchanged.stderr


def test_dev_docs_writes_the_files_it_checks(tmp_path):
    result = _srht("dev", "docs", "--root", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    expected = generated_files(PluginHost())
    assert sorted(result.stdout.splitlines()) == sorted(f"wrote {p}" for p in expected)
    for relative, text in expected.items():
        assert (tmp_path / relative).read_text(encoding="utf-8") == text
    again = _srht("dev", "docs", "--check", "--root", str(tmp_path), cwd=tmp_path)
    assert (again.returncode, again.stdout) == (0, "generated files are current\n")
