"""The images jobs run on: data, not code, so an admin can add one.

Built in: ``debian/bookworm``. ``[builds] images`` names a YAML file of
more, each either built by the runners with ``mmdebstrap`` from a Debian
suite and packages, or unpacked from a root file system tarball the admin
made::

    debian/trixie:
      suite: trixie
      packages: [build-essential, python3]
    company/base:
      tarball: /srv/images/base.tar.zst

Every runner builds (or unpacks) each image once, keeps it, and builds it
again after ``[builds] image-refresh`` seconds.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["BASE_PACKAGES", "Image", "ImageError", "load_images", "queue_name"]

#: What every built image has besides Debian's minimal base: what tasks
#: expect of a build machine (git, sudo, gpg for PGP secrets, ssh for SSH
#: keys, curl).
BASE_PACKAGES = (
    "ca-certificates",
    "curl",
    "git",
    "gnupg",
    "openssh-client",
    "procps",
    "sudo",
    "xz-utils",
)
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}(/[a-z0-9][a-z0-9._-]{0,31})?$")
SUITE = re.compile(r"^[a-z][a-z0-9-]{1,31}$")
PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,99}$")


class ImageError(ValueError):
    """An images file that cannot be used; ``str()`` says where and why."""


@dataclass(frozen=True)
class Image:
    """An image: built from ``suite`` with ``packages``, or unpacked from
    ``tarball``."""

    name: str
    suite: str | None = None
    packages: tuple[str, ...] = ()
    tarball: str | None = None

    def recipe(self, mirror: str) -> str:
        """A short hash of what goes into the image: a runner builds it
        again when this changes."""
        data = {
            "suite": self.suite,
            "packages": sorted(self.packages),
            "tarball": self.tarball,
            "mirror": mirror if self.suite else None,
            "format": 1,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def queue(self) -> str:
        return queue_name(self.name)


BUILTIN = {"debian/bookworm": Image("debian/bookworm", suite="bookworm", packages=BASE_PACKAGES)}


def queue_name(image: str) -> str:
    """The broker queue of an image's jobs: runners take jobs from the
    queues of the images they have."""
    return "srht.builds." + image.replace("/", ".")


def load_images(path: str | None) -> dict[str, Image]:
    """The built-in images and those of the file at ``path`` (which may
    replace a built-in one).

    :raises ImageError: naming the file, line and image at fault.
    """
    images = dict(BUILTIN)
    if not path:
        return images
    file = Path(path)
    try:
        text = file.read_text()
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except OSError as error:
        raise ImageError(f"{file}: cannot read it ({error.strerror})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark is not None else str(file)
        raise ImageError(f"{where}: not valid YAML: {getattr(error, 'problem', error)}") from None
    if root is None:
        return images
    if not isinstance(root, yaml.MappingNode):
        raise ImageError(f"{file}: must map image names to what they are made of")
    problems = []
    for key_node, value_node in root.value:
        line = key_node.start_mark.line + 1
        name = str(getattr(key_node, "value", ""))
        if not NAME.match(name):
            problems.append(f"{file}:{line} {name!r}: not an image name (like debian/trixie)")
            continue
        value: Any = yaml.safe_load(yaml.serialize(value_node))
        if not isinstance(value, dict):
            problems.append(f"{file}:{line} {name}: must be a mapping (suite, packages or tarball)")
            continue
        unknown = sorted(set(value) - {"suite", "packages", "tarball"})
        if unknown:
            problems.append(f"{file}:{line} {name}: unknown keys {', '.join(unknown)}")
            continue
        suite, tarball, packages = value.get("suite"), value.get("tarball"), value.get("packages")
        if bool(suite) == bool(tarball):
            problems.append(f"{file}:{line} {name}: give either suite (and packages) or tarball")
            continue
        if suite is not None and (not isinstance(suite, str) or not SUITE.match(suite)):
            problems.append(f"{file}:{line} {name}: suite {suite!r} is not a Debian suite name")
            continue
        if tarball is not None and (not isinstance(tarball, str) or not tarball.startswith("/")):
            problems.append(f"{file}:{line} {name}: tarball must be an absolute path")
            continue
        listed = packages or []
        if tarball and packages:
            problems.append(f"{file}:{line} {name}: packages go with suite, not tarball")
            continue
        if not isinstance(listed, list) or not all(
            isinstance(p, str) and PACKAGE.match(p) for p in listed
        ):
            problems.append(f"{file}:{line} {name}: packages must be a list of package names")
            continue
        base = BASE_PACKAGES if suite else ()
        images[name] = Image(
            name, suite=suite, packages=tuple(dict.fromkeys([*base, *listed])), tarball=tarball
        )
    if problems:
        raise ImageError("\n".join(problems))
    return images
