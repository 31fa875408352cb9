"""What ``python -m srht_deploy.onhost put-back`` does to a virtualenv:
one distribution's files back as the kept copy holds them, the others
untouched. Quick: virtualenv-shaped folders, no host."""

from __future__ import annotations

import shutil
from importlib import metadata
from pathlib import Path

from srht_deploy.onhost import put_back

SITE = "lib/python3.11/site-packages"


def install(venv: Path, name: str, version: str, modules: dict[str, str]) -> None:
    """``name`` at ``version`` as pip leaves it: its files and a dist-info with a RECORD."""
    site = venv / SITE
    package = name.replace("-", "_")
    info = f"{package}-{version}.dist-info"
    files = {f"{package}/{module}": text for module, text in modules.items()}
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    for path, text in files.items():
        (site / path).parent.mkdir(parents=True, exist_ok=True)
        (site / path).write_text(text)
    (site / info / "RECORD").write_text("".join(f"{p},,\n" for p in [*files, f"{info}/RECORD"]))


def versions(venv: Path) -> dict[str, str | None]:
    found = metadata.distributions(path=[str(venv / SITE)])
    return {d.metadata["Name"]: d.version for d in found}


def test_put_back_restores_one_distribution_and_its_record_line(tmp_path: Path) -> None:
    venv, previous = tmp_path / "venv", tmp_path / "venv.previous"
    install(venv, "srht-test-notes", "1.0", {"__init__.py": "V = 1", "old.py": ""})
    install(venv, "other", "1.0", {"__init__.py": "V = 1"})
    (venv / ".srht-wheels").write_text(
        "a1  srht_test_notes-1.0-py3-none-any.whl\no1  other-1.0-py3-none-any.whl\n"
    )
    shutil.copytree(venv, previous, symlinks=True)
    # The upgrade: both change, notes drops a module and adds one.
    shutil.rmtree(venv / SITE)
    install(venv, "srht-test-notes", "2.0", {"__init__.py": "V = 2", "new.py": ""})
    install(venv, "other", "2.0", {"__init__.py": "V = 2"})
    (venv / ".srht-wheels").write_text(
        "a2  srht_test_notes-2.0-py3-none-any.whl\no2  other-2.0-py3-none-any.whl\n"
    )

    assert put_back("srht_test_notes", venv, previous) == "1.0"

    assert versions(venv) == {"srht-test-notes": "1.0", "other": "2.0"}
    package = venv / SITE / "srht_test_notes"
    assert sorted(p.name for p in package.iterdir()) == ["__init__.py", "old.py"]
    assert (package / "__init__.py").read_text() == "V = 1"
    assert not (venv / SITE / "srht_test_notes-2.0.dist-info").exists()
    assert sorted((venv / ".srht-wheels").read_text().splitlines()) == [
        "a1  srht_test_notes-1.0-py3-none-any.whl",
        "o2  other-2.0-py3-none-any.whl",
    ]
