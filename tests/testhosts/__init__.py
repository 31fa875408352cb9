"""Test hosts for the deploy and installer suites: real Debian machines
booted with systemd in network namespaces, over one cached image, reached
over SSH. Each module's docstring says what its piece does and why it is
done that way.

Run ``python -m testhosts up`` (from ``tests/``) to boot a pair by hand,
``python -m testhosts down`` to stop them.
"""

from __future__ import annotations

from .image import IMAGE_PACKAGES, ensure_image
from .machine import TestHost, TestHosts
from .network import GATEWAY, SUBNET

__all__ = ["GATEWAY", "IMAGE_PACKAGES", "SUBNET", "TestHost", "TestHosts", "ensure_image"]
