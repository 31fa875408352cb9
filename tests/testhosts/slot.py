"""Which set of test hosts this run uses.

Every name the harness creates (network namespaces, the bridge, its /24,
the tmpfs, the lock, the leftovers record, the apt cache) is derived from a
slot number, ``SRHT_TESTHOSTS_SLOT`` (0 to 9, default 0). Runs in different
slots share only the cached image, so two suites (say, deploy and installer
work on one machine) can boot hosts at the same time; runs in the same slot
wait for each other on the slot's lock.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path


def _slot() -> int:
    raw = os.environ.get("SRHT_TESTHOSTS_SLOT", "0")
    if not raw.isdigit() or not 0 <= int(raw) <= 9:
        raise ValueError(f"SRHT_TESTHOSTS_SLOT must be a digit 0-9, not {raw!r}")
    return int(raw)


SLOT = _slot()
#: "" for slot 0, so its names are the ones earlier runs used.
SUFFIX = "" if SLOT == 0 else str(SLOT)

#: Prefix of every interface and namespace name; 9 characters either way,
#: which leaves 6 of Linux's 15 for a host's name.
PREFIX = "srht-e2e-" if SLOT == 0 else f"srht-e{SLOT}x-"
SUBNET = ipaddress.ip_network(f"10.200.{73 + SLOT}.0/24")
RUN_ROOT = Path(f"/run/srht-e2e{SUFFIX}")
LOCK_FILE = Path(f"/run/srht-e2e{SUFFIX}.lock")
LEFTOVERS = Path(f"/run/srht-e2e{SUFFIX}.state.json")
APT_CACHE_NAME = f"apt-cacher-ng{SUFFIX}"
