"""srht_deploy: pyinfra deploys of srht sites, from the one config.

- :class:`Site` reads and checks the config and its topology;
- :func:`install`, :func:`configure`, :func:`activate` are the packaged
  pyinfra ``@deploy`` stages (:mod:`srht_deploy.deploys`);
- ``deploy/inventory.py`` and ``deploy/site.py`` are what ``pyinfra``
  runs, and ``srht deploy`` runs them for you.

Names are imported lazily: the package is also installed on the hosts
(``srht_deploy.onhost`` runs there), where pyinfra is not.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Site",
    "Topology",
    "activate",
    "configure",
    "install",
    "inventory_groups",
    "read_topology",
]

_WHERE = {
    "Site": "model",
    "Topology": "topology",
    "read_topology": "topology",
    "install": "deploys",
    "configure": "deploys",
    "activate": "deploys",
    "inventory_groups": "inventory_data",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'srht_deploy' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
