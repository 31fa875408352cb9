"""``srht dev new-service``: a new service's distribution, written from the
skeleton the core ships.

The skeleton (``srht_core/skeleton/``, package data) is the folder of a
complete service, ``srht-NAME``: its pyproject with the ``srht.services``
entry point, a README, the package with the shape every service has
(``__init__.py`` of hook implementations, ``config.py``, ``models.py``,
``access.py``, ``events.py``, ``api.py``, ``web/``, ``migrations/``,
``templates/NAME/``, ``static/NAME.css``) and its tests. Every file ends in
``.tmpl`` (so linters and type checkers leave the skeleton alone) and holds
placeholders ``@name@``, ``@ident@``, ``@title@``, ``@requires@`` and
``@port@``, in file names too. It imports only ``srht_core``'s public facade
and its pytest plugin, like any third-party service.

Writing refuses a name that is not a service name, that an installed
service or Python package already has, or whose folder exists, and never
overwrites anything: the folder is made first and removed again if
anything fails.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.version import Version

from .schema import CORE_SECTIONS
from .version import __version__

__all__ = ["SKELETON", "NewService", "NewServiceError", "core_requirement", "write_service"]

SKELETON = Path(__file__).parent / "skeleton"
SUFFIX = ".tmpl"
#: A service name the plugin host accepts (``plugins._NAME``), without
#: dashes at its end or twice in a row (the package's name would show them),
#: and short enough for every line written with it to fit in 100 columns.
NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
MAX_NAME = 24
#: Where default ports of generated services start (built-ins use 5000-5099).
FIRST_PORT = 5100
_PLACEHOLDER = re.compile(r"@([a-z]+)@")


class NewServiceError(ValueError):
    """Why a service cannot be written with that name or there."""


@dataclass(frozen=True)
class NewService:
    """What the skeleton's placeholders become for one service."""

    name: str
    port: int

    @property
    def ident(self) -> str:
        """The name as a Python identifier (``build-logs`` → ``build_logs``)."""
        return self.name.replace("-", "_")

    @property
    def package(self) -> str:
        return f"srht_{self.ident}"

    @property
    def distribution(self) -> str:
        return f"srht-{self.name}"

    @property
    def title(self) -> str:
        return self.name.replace("-", " ").capitalize()

    def values(self) -> dict[str, str]:
        return {
            "name": self.name,
            "ident": self.ident,
            "title": self.title,
            "requires": core_requirement(),
            "port": str(self.port),
        }


def core_requirement(version: str = __version__) -> str:
    """The core versions a service written now works with: this one and
    later ones of the same minor series (``>=0.1.0.dev0,<0.2``), since the
    kit it is built on appeared in this version."""
    release = Version(version).release + (0, 0)
    major, minor = release[0], release[1]
    upper = f"{major}.{minor + 1}" if major == 0 else str(major + 1)
    return f">={version},<{upper}"


def check_name(name: str, taken: Iterable[str]) -> None:
    """Refuse ``name`` when it cannot be a new service's.

    :param taken: names of installed services (loaded or not).
    :raises NewServiceError: saying why, and what to do.
    """
    if not NAME.match(name) or len(name) > MAX_NAME:
        raise NewServiceError(
            f"{name!r} is not a service name: use lower-case letters, digits and single "
            f"dashes, starting with a letter, at most {MAX_NAME} characters (like 'notes' "
            "or 'build-logs')"
        )
    if name in {section.name for section in CORE_SECTIONS}:
        raise NewServiceError(
            f"{name!r} is the name of the core's [{name}] config section; choose another name"
        )
    if name in set(taken):
        raise NewServiceError(
            f"a service named {name!r} is installed already (see `srht services`); "
            "choose another name"
        )
    package = NewService(name, 0).package
    if importlib.util.find_spec(package) is not None:
        raise NewServiceError(
            f"a Python package named {package} is installed already; choose another name"
        )


def unused_port(used: Iterable[int]) -> int:
    """The first default port from :data:`FIRST_PORT` that no installed
    service uses (``srht config init --dev`` moves clashes on anyway)."""
    taken = set(used)
    port = FIRST_PORT
    while port in taken:
        port += 1
    return port


def render(text: str, values: dict[str, str]) -> str:
    """``text`` with each ``@key@`` replaced; an unknown key is an error
    (a mistake in the skeleton, not in the service's name)."""

    def value(match: re.Match[str]) -> str:
        return values[match[1]]

    return _PLACEHOLDER.sub(value, text)


def skeleton_files(skeleton: Path = SKELETON) -> list[Path]:
    """The skeleton's files, relative to it, in a stable order."""
    return sorted(
        path.relative_to(skeleton)
        for path in skeleton.rglob("*" + SUFFIX)
        if "__pycache__" not in path.parts
    )


def write_service(
    name: str,
    parent: Path,
    *,
    taken: Iterable[str] = (),
    ports: Iterable[int] = (),
    skeleton: Path = SKELETON,
) -> Path:
    """Write the distribution ``srht-NAME`` into ``parent``; return its folder.

    :param taken: names of installed services, which ``name`` must not be.
    :param ports: default ports of installed services, which it avoids.
    :raises NewServiceError: for a name it refuses or a folder that exists;
        nothing is written then.
    """
    check_name(name, taken)
    service = NewService(name, unused_port(ports))
    target = parent / service.distribution
    try:
        target.mkdir()
    except FileExistsError:
        raise NewServiceError(
            f"{target} exists already; nothing was written. Choose another name or "
            "--path, or move that folder away"
        ) from None
    values = service.values()
    try:
        for relative in skeleton_files(skeleton):
            destination = target / render(str(relative), values).removesuffix(SUFFIX)
            destination.parent.mkdir(parents=True, exist_ok=True)
            text = (skeleton / relative).read_text(encoding="utf-8")
            destination.write_text(render(text, values), encoding="utf-8")
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target
